"""Device nodes for a container's /dev: the minimal set every container gets, the host's whole
set for privileged ones, and the conventional symlinks (/dev/fd, /dev/ptmx, ...)."""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass

__all__ = [
    "MINIMAL_DEVICES",
    "STANDARD_SYMLINKS",
    "DeviceNode",
    "create_nodes",
    "create_symlinks",
    "host_devices",
]


@dataclass(frozen=True)
class DeviceNode:
    """A device node: its path under /dev, `c` or `b`, numbers, permission bits and owner."""

    path: str
    kind: str
    major: int
    minor: int
    mode: int = 0o666
    uid: int = 0
    gid: int = 0


MINIMAL_DEVICES = (
    DeviceNode("null", "c", 1, 3),
    DeviceNode("zero", "c", 1, 5),
    DeviceNode("full", "c", 1, 7),
    DeviceNode("random", "c", 1, 8),
    DeviceNode("urandom", "c", 1, 9),
    DeviceNode("tty", "c", 5, 0),
)

# path under /dev -> link target
STANDARD_SYMLINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
)

# Directories of /dev that hold mounts of their own in a container, not host devices.
_SKIPPED = {"pts", "shm", "mqueue"}


def host_devices(root: str = "/dev") -> list[DeviceNode]:
    """Every character and block device under the host's /dev (for `--privileged`)."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        if directory == root:
            subdirectories[:] = [name for name in subdirectories if name not in _SKIPPED]
        for name in files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                found.append(
                    DeviceNode(
                        os.path.relpath(path, root),
                        "c" if stat.S_ISCHR(info.st_mode) else "b",
                        os.major(info.st_rdev),
                        os.minor(info.st_rdev),
                        stat.S_IMODE(info.st_mode),
                        info.st_uid,
                        info.st_gid,
                    )
                )
    return found


def create_nodes(nodes: tuple[DeviceNode, ...] | list[DeviceNode], dev: str = "/dev") -> None:
    """mknod each node under `dev` (parents created), owned and moded as described; an existing
    entry of the same name is left alone.

    Call it once the process is inside the container's root: the paths are the container's.
    """
    for node in nodes:
        path = os.path.join(dev, node.path)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        kind = stat.S_IFCHR if node.kind == "c" else stat.S_IFBLK
        try:
            os.mknod(path, kind | node.mode, os.makedev(node.major, node.minor))
        except FileExistsError:
            continue
        os.chmod(path, node.mode)
        os.chown(path, node.uid, node.gid)


def create_symlinks(dev: str = "/dev") -> None:
    """The conventional /dev symlinks; an existing entry of the same name is left alone."""
    for name, target in STANDARD_SYMLINKS:
        with contextlib.suppress(FileExistsError):
            os.symlink(target, os.path.join(dev, name))
