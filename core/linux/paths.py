"""Paths inside a root directory that can never lead out of it: openat2(2) with RESOLVE_IN_ROOT.

A container image is untrusted: its /dev or /proc may be a symlink to /etc or to `../../..`.
Resolving such a path with the kernel scoping every symlink and `..` to the root (as if the
process had chrooted there) keeps every mount and every created file inside the image; mounting
onto `/proc/self/fd/N` of the opened object then hits exactly what was resolved, whatever is
renamed meanwhile.
"""

from __future__ import annotations

import errno
import os
import posixpath

from dockyard.core.rootpath import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, openat2

__all__ = ["ensure_in_root", "fd_entry_path", "fd_path", "lstat_at", "open_in_root"]

_MAX_LINKS = 40  # as the kernel's own limit on followed symlinks


def fd_path(fd: int) -> str:
    """The /proc/self/fd path of `fd`: mount(2) onto it targets the very object `fd` refers to."""
    return f"/proc/self/fd/{fd}"


def fd_entry_path(dirfd: int, name: str) -> str:
    """A path naming `name` in the directory `dirfd`, for calls that take no dir_fd (xattrs).

    The magic link lands on the directory itself; `name` is one component, looked up without
    following it when the call is made with follow_symlinks=False.
    """
    return f"/proc/self/fd/{dirfd}/{name}"


def lstat_at(dirfd: int, name: str) -> os.stat_result | None:
    """`name` in the directory `dirfd`, not followed if a symlink; None when it does not exist."""
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_in_root(root_fd: int, path: str, *, flags: int = os.O_PATH, no_symlinks: bool = False) -> int:
    """Open `path` as if `root_fd` were `/`: symlinks and `..` never leave it.

    Returns a close-on-exec descriptor (O_PATH unless `flags` says otherwise). With `no_symlinks`,
    any symlink on the way is refused with ELOOP. Magic links (/proc/PID/fd/N) are always refused.
    """
    resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (RESOLVE_NO_SYMLINKS if no_symlinks else 0)
    return openat2(root_fd, path.lstrip("/") or ".", flags, resolve)


def ensure_in_root(root_fd: int, path: str, *, directory: bool, no_symlinks: bool = False) -> int:
    """Open `path` inside the root, creating what is missing (`mkdir -p`, then the last part as a
    directory or an empty file), and return an O_PATH descriptor of it.

    A dangling symlink on the way is followed inside the root, so the object is created where the
    link points within the image, never on the host; with `no_symlinks` it is refused (ELOOP).
    """
    return _ensure(root_fd, posixpath.normpath("/" + path.lstrip("/")), directory, no_symlinks, 0)


def _ensure(root_fd: int, path: str, directory: bool, no_symlinks: bool, links: int) -> int:
    try:
        return open_in_root(root_fd, path, no_symlinks=no_symlinks)
    except FileNotFoundError:
        pass
    parent, name = posixpath.split(path)
    parent_fd = _ensure(root_fd, parent, True, no_symlinks, links)
    try:
        if directory:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            os.close(os.open(name, flags, 0o644, dir_fd=parent_fd))
    except FileExistsError:
        # A dangling symlink (the only existing entry openat2 reports as missing).
        target = os.readlink(name, dir_fd=parent_fd)
        if no_symlinks or links >= _MAX_LINKS:
            raise OSError(errno.ELOOP, f"{path}: too many or forbidden symlinks") from None
        followed = posixpath.normpath(posixpath.join(parent, target))
        return _ensure(root_fd, followed, directory, no_symlinks, links + 1)
    finally:
        os.close(parent_fd)
    return open_in_root(root_fd, path, no_symlinks=no_symlinks)
