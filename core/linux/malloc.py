"""glibc's malloc set for streaming: a pull moves hundreds of megabytes through 1 MiB buffers.

glibc serves a buffer that large with mmap(2) and gives it back with munmap(2) (or trims the top
of its heap), so every new buffer is faulted in again page by page and zeroed by the kernel. Raising
the mmap and trim thresholds keeps such buffers in the heap, reused as they are freed. The memory
kept is bounded by the process's peak, a few MiB for a pull and its staging children.
"""

from __future__ import annotations

from dockyard.core.linux.libc import libc

__all__ = ["keep_freed_buffers"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for this setting on 64-bit
_TRIM_THRESHOLD = 128 << 20


def keep_freed_buffers() -> None:
    """Serve buffers up to 32 MiB from the heap and keep freed memory there (mallopt(3)); a C
    library without mallopt leaves the defaults."""
    c_library = libc()
    if hasattr(c_library, "mallopt"):
        c_library.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        c_library.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
