"""Inode flags (chattr(1)'s attributes) that steer how a filesystem lays out what it stores.

Only one is used: FS_TOPDIR_FL, chattr's `T`. ext2/3/4 place a new directory near its parent
(the Orlov allocator), so every layer built under one store directory lands in the same block
group, and on ext4 without a journal each new inode there is found by stepping over every inode
freed in the last minute (`rmi` then `pull` pays for each file twice). A directory marked `T` holds
unrelated trees: its subdirectories are spread over the groups with the most room, as /home's
are. Other filesystems refuse the flag, and since it is only a placement hint, that is fine.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

__all__ = ["mark_unrelated_subtrees"]

_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000
_UNSUPPORTED = (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM, errno.EACCES)


def mark_unrelated_subtrees(directory: Path) -> None:
    """Mark `directory` as a top of unrelated directory trees (chattr +T) where the filesystem
    has the notion; a filesystem or a caller that cannot set it leaves the directory as it is."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        (flags,) = struct.unpack("i", fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(4)))
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, struct.pack("i", flags | _FS_TOPDIR_FL))
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED:
            raise
    finally:
        os.close(fd)
