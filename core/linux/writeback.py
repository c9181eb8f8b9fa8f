"""Start writing a file's dirty pages to disk without waiting for them (sync_file_range(2)).

A pull or build writes hundreds of megabytes and then syncs the filesystem once before recording
the image. Started early, file by file, the disk works while the CPU is still busy extracting, and
the final sync has little left to wait for. The final sync is still what makes the data durable:
this call only moves the disk's work earlier.
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

__all__ = ["start_writeback"]

_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _sync_file_range() -> Any:
    from dockyard.core.linux.libc import libc

    function = libc().sync_file_range
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


def start_writeback(fd: int) -> None:
    """Queue every dirty page of the open file `fd` for writing; errors are the final sync's to
    report, so none is raised here."""
    _sync_file_range()(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)
