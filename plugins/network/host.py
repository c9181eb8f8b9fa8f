"""The `host` network driver: the container shares the host's network namespace.

Nothing is created or torn down; the isolation driver sees `netns_path=None` and leaves the
network namespace out of the container's spec. Only used when named (`--network host`): it takes
away the network isolation, so it must never be picked by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.core.drivers import Availability, DriverContext, NetworkAttachment, PortMapping
from dockyard.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from dockyard.core.drivers import DriverRegistry

__all__ = ["HostNetworkDriver", "dockyard_register_drivers"]


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


@hookimpl
def dockyard_register_drivers(register: DriverRegistry) -> None:
    """Register `host`, only used when named."""
    register.network(
        "host",
        HostNetworkDriver,
        plugin=__name__,
        priority=0,
        description="share the host's network namespace (no isolation)",
    )
