"""Named network namespaces, the way `ip netns add` makes them: a bind mount of a namespace's
/proc/thread-self/ns/net on a file, which keeps the namespace alive with no process in it.

Only the calling thread ever changes namespace (network namespaces are per thread), and only for
the span of one call, so no child process is needed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

_T = TypeVar("_T")

__all__ = ["call_inside", "create_named", "entered", "remove_named"]


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

    A short-lived thread makes it (network namespaces belong to threads, and a thread costs far
    less than forking the engine): it unshares, binds its namespace on `path` and ends there, so
    the caller's own network namespace stays untouched, which also holds rootless, where a
    process may leave the host's network namespace but not return to it.
    """
    from dockyard.core.linux.mounts import MS_BIND, mount
    from dockyard.core.linux.namespaces import CLONE_FLAGS, unshare
    from dockyard.core.linux.netdev import set_link_up

    def make() -> None:
        unshare(CLONE_FLAGS["network"])
        set_link_up("lo")
        mount("/proc/thread-self/ns/net", str(path), None, MS_BIND)

    _on_own_thread(make, name=f"netns {path.name}")


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


def call_inside(path: Path, function: Callable[[], _T]) -> _T:
    """Call `function` inside the namespace pinned on `path`, on a thread of its own that ends there.

    Unlike `entered`, nothing has to return to the caller's namespace, which a process inside a
    user namespace may not be allowed to re-enter when the host owns it (setns needs
    CAP_SYS_ADMIN over the target's owner): the rootless case.
    """
    from dockyard.core.linux.namespaces import CLONE_FLAGS, setns

    def inside() -> _T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd, CLONE_FLAGS["network"])
        finally:
            os.close(fd)
        return function()

    return _on_own_thread(inside, name=f"netns {path.name}")


def _on_own_thread(function: Callable[[], _T], *, name: str) -> _T:
    """Call `function` on a new thread that ends with it (taking whatever namespace it entered
    along); its result, or its exception re-raised here."""
    import threading

    outcome: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(function())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, re-raised there
            failure.append(exc)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def remove_named(path: Path) -> None:
    """Unmount and remove `path`; raises OSError only for failures other than "already gone"."""
    from dockyard.core.linux.mounts import MNT_DETACH, umount2

    try:
        umount2(str(path), MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EINVAL):  # gone, or no longer a mount point
            raise
    path.unlink(missing_ok=True)
