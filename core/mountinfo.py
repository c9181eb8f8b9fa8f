"""What is mounted where, read from /proc/self/mountinfo.

Storage drivers ask which filesystem holds a directory (btrfs is usable only on btrfs, overlay
refuses to nest in overlay, `info` reports it) and whether a mount point is still mounted (a
reference count can outlive a mount: a reboot, a namespace that went away). The kernel's own table
is the source of truth for both; it lists mounts in the caller's mount namespace.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mount", "backing_filesystem", "find_mount", "is_mount_point", "mounts"]

_MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: where, what filesystem, from what source, with which options
    (the mount's own, then the filesystem's)."""

    mount_point: str
    fstype: str
    source: str
    options: tuple[str, ...]
    super_options: tuple[str, ...]


def mounts() -> list[Mount]:
    """Every mount of this mount namespace, in mount order (raises OSError if unreadable)."""
    found = []
    with open(_MOUNTINFO, encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split()
            separator = fields.index("-")
            found.append(
                Mount(
                    mount_point=_unescape(fields[4]),
                    fstype=fields[separator + 1],
                    source=_unescape(fields[separator + 2]),
                    options=tuple(fields[5].split(",")),
                    super_options=tuple(fields[separator + 3].split(",")),
                )
            )
    return found


def find_mount(path: Path) -> Mount | None:
    """The mount holding `path` (or, while it does not exist, its nearest existing ancestor):
    the last-mounted one with the longest mount point above it. None if mountinfo is unreadable."""
    while not path.exists() and path != path.parent:
        path = path.parent
    target = os.path.realpath(path)
    best: Mount | None = None
    try:
        table = mounts()
    except OSError:
        return None
    for mount in table:
        point = mount.mount_point
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = mount
    return best


def backing_filesystem(path: Path) -> str:
    """The type of the filesystem `path` (or its nearest existing ancestor) lives on."""
    mount = find_mount(path)
    return mount.fstype if mount is not None else "unknown"


def is_mount_point(path: Path) -> bool:
    """Whether something is mounted exactly at `path` (raises OSError if mountinfo is
    unreadable)."""
    target = os.path.realpath(path)
    return any(mount.mount_point == target for mount in mounts())


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (`\\040` for a space)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)
