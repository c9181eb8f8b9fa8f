"""Named network namespaces, the way `ip netns add` makes them: a bind mount of a namespace's
/proc/thread-self/ns/net on a file, which keeps the namespace alive with no process in it.

Only the calling thread ever changes namespace (network namespaces are per thread), and only for
the span of one call, so no child process is needed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["create_named", "entered", "remove_named"]


@contextmanager
def _returning() -> Iterator[None]:
    """Run the body, then put this thread back into the network namespace it started in."""
    from dockyard.core.linux.namespaces import CLONE_FLAGS, setns

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield
    finally:
        try:
            setns(own, CLONE_FLAGS["network"])
        finally:
            os.close(own)


def create_named(path: Path) -> None:
    """Pin a new network namespace, loopback up, on the existing empty file `path`.

    A short-lived child makes it: the caller's own network namespace stays untouched, which also
    holds rootless, where a process may leave the host's network namespace but not return to it.
    """
    from dockyard.core.linux.mounts import MS_BIND, mount
    from dockyard.core.linux.namespaces import CLONE_FLAGS, unshare
    from dockyard.core.linux.netdev import set_link_up

    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            unshare(CLONE_FLAGS["network"])
            set_link_up("lo")
            mount("/proc/thread-self/ns/net", str(path), None, MS_BIND)
            code = 0
        except OSError as exc:
            code = exc.errno or 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise OSError(code, os.strerror(code) if code > 0 else "the namespace child was killed")


@contextmanager
def entered(path: Path) -> Iterator[None]:
    """Run the body inside the namespace pinned on `path`, then return to our own."""
    from dockyard.core.linux.namespaces import CLONE_FLAGS, setns

    with _returning():
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd, CLONE_FLAGS["network"])
        finally:
            os.close(fd)
        yield


def remove_named(path: Path) -> None:
    """Unmount and remove `path`; raises OSError only for failures other than "already gone"."""
    from dockyard.core.linux.mounts import MNT_DETACH, umount2

    try:
        umount2(str(path), MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EINVAL):  # gone, or no longer a mount point
            raise
    path.unlink(missing_ok=True)
