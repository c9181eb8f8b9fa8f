"""Paths resolved inside a root directory, never outside it, whatever symlinks the tree holds.

An image's files are hostile input: its /etc/passwd may be a symlink to the host's, its /dev a
symlink to /. Every lookup below a container's root goes through `open_in_root`, which resolves
each component as if the root were `/` (openat2 with RESOLVE_IN_ROOT, or an O_NOFOLLOW walk on
kernels without it), so no symlink or `..` can lead out.
"""

from __future__ import annotations

import errno
import functools
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = [
    "RESOLVE_IN_ROOT",
    "RESOLVE_NO_MAGICLINKS",
    "RESOLVE_NO_SYMLINKS",
    "open_in_root",
    "openat2",
    "read_file_in_root",
    "split_inside",
]

_SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def split_inside(path: str) -> tuple[str, ...]:
    """The components of `path` taken relative to the root, `..` clamped at the root as the
    kernel clamps it at `/`."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


RESOLVE_NO_MAGICLINKS = _RESOLVE_NO_MAGICLINKS
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_IN_ROOT = _RESOLVE_IN_ROOT


def openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    """The raw openat2(2) system call through ctypes: `flags` (plus O_CLOEXEC) and RESOLVE_* bits.

    EAGAIN (a rename raced the lookup) and EINTR are retried; other errors raise OSError.
    """
    import ctypes

    how = _open_how()(flags | os.O_CLOEXEC, 0, resolve)
    syscall = _syscall()
    for _ in range(64):
        fd = syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_long(dirfd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code not in (errno.EAGAIN, errno.EINTR):
            raise OSError(code, os.strerror(code), path)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


@functools.cache
def _open_how() -> type:
    import ctypes

    class OpenHow(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]

    return OpenHow


@functools.cache
def _syscall() -> Callable[..., int]:
    import ctypes

    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long
    return syscall


@functools.cache
def _openat2() -> Callable[[int, str, int], int] | None:
    """openat2 with RESOLVE_IN_ROOT, or None where the kernel or a seccomp filter refuses it
    (probed once)."""
    if os.uname().machine not in ("x86_64", "aarch64"):
        return None

    def in_root(dirfd: int, path: str, flags: int) -> int:
        return openat2(dirfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

    probe = os.open("/", _DIR_FLAGS)
    try:
        os.close(in_root(probe, ".", _DIR_FLAGS))
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
            return None
        raise
    finally:
        os.close(probe)
    return in_root


def _walk(root_fd: int, parts: tuple[str, ...], flags: int) -> int:
    """RESOLVE_IN_ROOT by hand, one O_NOFOLLOW step at a time; the last component opened with
    `flags` (and followed, inside the root, when it is a symlink)."""
    pending = list(reversed(parts))
    stack = [os.dup(root_fd)]
    followed = 0
    try:
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            last = not pending
            try:
                step_flags = (flags if last else _DIR_FLAGS) | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(name, step_flags, dir_fd=stack[-1])
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                try:
                    target = os.readlink(name, dir_fd=stack[-1])
                except OSError as not_link:
                    if not_link.errno == errno.EINVAL:
                        raise exc from None
                    raise
                followed += 1
                if followed > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/".join(parts)) from None
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending.extend(reversed(target.split("/")))
                continue
            if last:
                return fd
            stack.append(fd)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def open_in_root(root: int | Path | str, path: str, flags: int = _DIR_FLAGS) -> int:
    """Open `path` below `root` (a directory fd or path) with every symlink resolved inside it."""
    parts = split_inside(path)
    root_fd = root if isinstance(root, int) else os.open(root, _DIR_FLAGS)
    try:
        if not parts:
            return os.dup(root_fd)
        openat2 = _openat2()
        if openat2 is not None:
            return openat2(root_fd, "/".join(parts), flags)
        return _walk(root_fd, parts, flags)
    finally:
        if not isinstance(root, int):
            os.close(root_fd)


def read_file_in_root(root: Path | str, path: str, *, limit: int = 1 << 20) -> bytes | None:
    """The contents of a regular file below `root`, or None when it is missing or not a file."""
    import stat

    try:
        fd = open_in_root(root, path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
