"""The `host` network driver: the container shares the host's network namespace.

Nothing is created or torn down; the isolation driver sees `netns_path=None` and leaves the
network namespace out of the container's spec. Only used when named (`--network host`): it takes
away the network isolation, so it must never be picked by default.
"""

from __future__ import annotations

from dockyard.core.drivers import Availability, DriverContext, NetworkAttachment, PortMapping

__all__ = ["HostNetworkDriver"]


class HostNetworkDriver:
    """The host's own network, shared (see the module docstring)."""

    name = "host"

    def __init__(self, context: DriverContext) -> None:
        self._context = context

    def available(self) -> Availability:
        """Always usable: sharing needs nothing."""
        return Availability(True)

    def attach(
        self, container_id: str, *, hostname: str, ports: tuple[PortMapping, ...] = ()
    ) -> NetworkAttachment:
        """Nothing to set up: the container joins no namespace of its own (and `ports` need no
        publishing: the container's sockets are the host's)."""
        return NetworkAttachment(netns_path=None)

    def detach(self, container_id: str) -> None:
        """Nothing to release."""
