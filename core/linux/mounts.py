"""mount(2), umount2(2), pivot_root(2), and the parsing of mount options into flags and data.

Options are spelled as in fstab and the OCI runtime spec: `ro`, `nosuid`, `rbind`, `rprivate`,
`mode=755`, ... A flag word sets or clears an MS_* flag, a propagation word becomes a separate
propagation change (the kernel refuses it combined with other flags), anything else is passed to
the filesystem as data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dockyard.core.linux.libc import check, libc

__all__ = [
    "MNT_DETACH",
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "MS_SLAVE",
    "MS_STRICTATIME",
    "MountOptions",
    "current_flags",
    "mount",
    "parse_options",
    "pivot_root",
    "umount2",
]

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_DETACH = 0x2

# word -> (flag, whether the word sets it rather than clears it)
_FLAGS: dict[str, tuple[int, bool]] = {
    "defaults": (0, True),
    "ro": (MS_RDONLY, True),
    "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True),
    "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True),
    "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True),
    "exec": (MS_NOEXEC, False),
    "sync": (MS_SYNCHRONOUS, True),
    "async": (MS_SYNCHRONOUS, False),
    "dirsync": (MS_DIRSYNC, True),
    "mand": (MS_MANDLOCK, True),
    "nomand": (MS_MANDLOCK, False),
    "noatime": (MS_NOATIME, True),
    "atime": (MS_NOATIME, False),
    "nodiratime": (MS_NODIRATIME, True),
    "diratime": (MS_NODIRATIME, False),
    "relatime": (MS_RELATIME, True),
    "norelatime": (MS_RELATIME, False),
    "strictatime": (MS_STRICTATIME, True),
    "nostrictatime": (MS_STRICTATIME, False),
    "nosymfollow": (MS_NOSYMFOLLOW, True),
    "bind": (MS_BIND, True),
    "rbind": (MS_BIND | MS_REC, True),
}

_PROPAGATION: dict[str, int] = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# statvfs f_flag bits (ST_*) and the mount flags they stand for.
_STATVFS_FLAGS = {
    os.ST_RDONLY: MS_RDONLY,
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
    os.ST_SYNCHRONOUS: MS_SYNCHRONOUS,
    os.ST_MANDLOCK: MS_MANDLOCK,
    os.ST_NOATIME: MS_NOATIME,
    os.ST_NODIRATIME: MS_NODIRATIME,
    os.ST_RELATIME: MS_RELATIME,
}


@dataclass(frozen=True)
class MountOptions:
    """Mount options split the way mount(2) wants them."""

    flags: int
    propagation: tuple[int, ...]
    data: str

    @property
    def is_bind(self) -> bool:
        """Whether the options ask for a bind mount (`bind` or `rbind`)."""
        return bool(self.flags & MS_BIND)


def parse_options(options: tuple[str, ...] | list[str]) -> MountOptions:
    """Split option words into MS_* flags, propagation changes and filesystem data."""
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for word in options:
        if word in _FLAGS:
            flag, sets = _FLAGS[word]
            flags = flags | flag if sets else flags & ~flag
        elif word in _PROPAGATION:
            propagation.append(_PROPAGATION[word])
        else:
            data.append(word)
    return MountOptions(flags, tuple(propagation), ",".join(data))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str = "") -> None:
    """mount(2); None for an unused source or filesystem type."""
    check(
        libc().mount(
            _bytes(source), os.fsencode(target), _bytes(fstype), flags, data.encode() if data else None
        ),
        f"mount {fstype or 'bind'} on {target}",
    )


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    check(libc().umount2(os.fsencode(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make `new_root` the root of the calling process's mount namespace."""
    check(libc().pivot_root(os.fsencode(new_root), os.fsencode(put_old)), "pivot_root")


def current_flags(path: str) -> int:
    """The per-mount flags (MS_RDONLY, MS_NOSUID, ...) of the mount `path` is on.

    A bind remount replaces every per-mount flag, so a remount that only means to add
    MS_RDONLY must repeat the ones the mount already has.
    """
    f_flag = os.statvfs(path).f_flag
    return sum(flag for bit, flag in _STATVFS_FLAGS.items() if f_flag & bit)


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)
