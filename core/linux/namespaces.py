"""Namespaces: the CLONE_* flag of each kind, unshare(2) and setns(2).

Kinds are spelled as in `dockyard.core.spec` (and the OCI runtime spec): pid, mount, uts, ipc,
network, cgroup, user. `PROC_NAMES` gives each kind's file under /proc/PID/ns.
"""

from __future__ import annotations

import os

from dockyard.core.linux.libc import check, libc

__all__ = [
    "CLONE_FLAGS",
    "PROC_NAMES",
    "SETNS_ORDER",
    "same_namespace",
    "setns",
    "unshare",
]

CLONE_FLAGS: dict[str, int] = {
    "mount": 0x00020000,
    "cgroup": 0x02000000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "user": 0x10000000,
    "pid": 0x20000000,
    "network": 0x40000000,
}

PROC_NAMES: dict[str, str] = {
    "mount": "mnt",
    "cgroup": "cgroup",
    "uts": "uts",
    "ipc": "ipc",
    "user": "user",
    "pid": "pid",
    "network": "net",
}

# The order in which a process joins another's namespaces: the user namespace first (it grants
# the rights to join the others), the mount namespace last (joining it changes the root and the
# working directory, after which the other /proc/PID/ns paths may no longer resolve).
SETNS_ORDER = ("user", "ipc", "uts", "network", "cgroup", "pid", "mount")


def unshare(flags: int) -> None:
    """Move the calling thread into new namespaces of the kinds in `flags`."""
    check(libc().unshare(flags), "unshare")


def setns(fd: int, flags: int = 0) -> None:
    """Join the namespace `fd` refers to; `flags` (its CLONE_* flag, or 0) guards its kind."""
    check(libc().setns(fd, flags), "setns")


def same_namespace(kind: str, pid: int) -> bool:
    """Whether process `pid` is in the calling process's namespace of `kind`."""
    name = PROC_NAMES[kind]
    theirs = os.stat(f"/proc/{pid}/ns/{name}")
    ours = os.stat(f"/proc/self/ns/{name}")
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)
