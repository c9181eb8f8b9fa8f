"""The `none` network driver: a private network namespace holding only loopback, up.

Each container gets a named namespace file, `<run_dir>/netns/<container id>`, the way
`ip netns add` makes one: a bind mount of a fresh namespace's /proc/thread-self/ns/net, which
keeps the namespace alive with no process in it. The isolation driver joins it through the
attachment's `netns_path`; `detach` unmounts and removes the file.

Priority 10, below `bridge`'s 20: it is the fallback when the bridge cannot be used (no nft),
isolated and reaching nothing, which is safe, where sharing the host's network would silently
expose the host's ports and abstract sockets. Rootless it is only used when named: there the
default is a user-mode network (pasta, slirp4netns) that reaches somewhere, and when none of
them is usable the user is told why rather than handed a container that silently cannot connect.
"""

from __future__ import annotations

import os

from dockyard.core.drivers import Availability, DriverContext, NetworkAttachment, PortMapping

__all__ = ["NoneNetworkDriver"]


class NoneNetworkDriver:
    """A loopback-only network namespace per container (see the module docstring)."""

    name = "none"

    def __init__(self, context: DriverContext) -> None:
        self._directory = context.run_dir / "netns"
        self._rootless = context.rootless

    def available(self) -> Availability:
        """Usable as root, which may create and mount network namespaces, and by a rootless
        command in its user namespace, which picks it only when named."""
        if os.geteuid() != 0:
            return Availability(False, "needs root (rootless networking is the rootless drivers' job)")
        if self._rootless:
            return Availability(True, "rootless: used only when named, as --network none", automatic=False)
        return Availability(True)

    def attach(
        self, container_id: str, *, hostname: str, ports: tuple[PortMapping, ...] = ()
    ) -> NetworkAttachment:
        """Create the container's namespace with loopback up and return its path (`ports` are
        ignored, as Docker ignores them on `--network none`: nothing can reach the container)."""
        from dockyard.plugins.network import netns_files

        path = netns_files.path_for(self._directory, container_id)
        netns_files.reserve(path, container_id)
        netns_files.create(path, container_id)
        return NetworkAttachment(netns_path=str(path))

    def detach(self, container_id: str) -> None:
        """Unmount and remove the namespace file; nothing there is already detached."""
        from dockyard.plugins.network import netns_files

        netns_files.remove(netns_files.path_for(self._directory, container_id))
