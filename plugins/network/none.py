"""The `none` network driver: a private network namespace holding only loopback, up.

Each container gets a named namespace file, `<run_dir>/netns/<container id>`, the way
`ip netns add` makes one: a bind mount of a fresh namespace's /proc/thread-self/ns/net, which
keeps the namespace alive with no process in it. The isolation driver joins it through the
attachment's `netns_path`; `detach` unmounts and removes the file.

It is the default until the bridge driver exists (priority 10; bridge will rank above it): a
container started with no --network is isolated and can reach nothing, which is safe, where
sharing the host's network would silently expose the host's ports and abstract sockets.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.core.drivers import Availability, DriverContext, NetworkAttachment
from dockyard.core.errors import DriverFailed, UsageError
from dockyard.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from dockyard.core.drivers import DriverRegistry

__all__ = ["NoneNetworkDriver", "dockyard_register_drivers"]


class NoneNetworkDriver:
    """A loopback-only network namespace per container (see the module docstring)."""

    name = "none"

    def __init__(self, context: DriverContext) -> None:
        self._directory = context.run_dir / "netns"

    def available(self) -> Availability:
        """Usable as root, which may create and mount network namespaces."""
        if os.geteuid() != 0:
            return Availability(False, "needs root (rootless networking is the rootless drivers' job)")
        return Availability(True)

    def attach(self, container_id: str, *, hostname: str) -> NetworkAttachment:
        """Create the container's namespace with loopback up and return its path."""
        path = self._path(container_id)
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            with open(path, "x"):
                pass
        except FileExistsError:
            raise DriverFailed(
                f"container {container_id} already has a network namespace at {path}"
            ) from None
        except OSError as exc:
            raise DriverFailed(f"cannot create {path}: {exc.strerror}") from exc
        try:
            _create_namespace(path)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise DriverFailed(f"cannot create the network namespace of {container_id}: {exc}") from exc
        return NetworkAttachment(netns_path=str(path))

    def detach(self, container_id: str) -> None:
        """Unmount and remove the namespace file; nothing there is already detached."""
        from dockyard.core.linux.mounts import MNT_DETACH, umount2

        path = self._path(container_id)
        try:
            umount2(str(path), MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EINVAL):  # gone, or no longer a mount point
                raise DriverFailed(f"cannot unmount {path}: {exc.strerror}") from exc
        path.unlink(missing_ok=True)

    def _path(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise UsageError(f"invalid container id {container_id!r}")
        return self._directory / container_id


def _create_namespace(path: Path) -> None:
    """Move this thread into a new network namespace, bring lo up, pin the namespace on `path`,
    and return the thread to its own namespace, whatever fails on the way.

    Only the calling thread changes namespace (network namespaces are per thread), and only for
    the span of this function, so no child process is needed.
    """
    from dockyard.core.linux.mounts import MS_BIND, mount
    from dockyard.core.linux.namespaces import CLONE_FLAGS, setns, unshare
    from dockyard.core.linux.netdev import set_link_up

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        unshare(CLONE_FLAGS["network"])
        try:
            set_link_up("lo")
            mount("/proc/thread-self/ns/net", str(path), None, MS_BIND)
        finally:
            setns(own, CLONE_FLAGS["network"])
    finally:
        os.close(own)


@hookimpl
def dockyard_register_drivers(register: DriverRegistry) -> None:
    """Register `none`, the default network until the bridge driver exists."""
    register.network(
        "none",
        NoneNetworkDriver,
        plugin=__name__,
        priority=10,
        description="a private network namespace with only loopback",
    )
