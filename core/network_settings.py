"""A container's network attachments as Docker's `NetworkSettings`, the shape `inspect` shows and
`port` reads.

Written into the container's state when it is prepared and cleared when it is released, so a
stopped container shows no stale address, as Docker's do. As in Docker, the top-level address
fields describe the default bridge only (a driver's built-in network); a container on user-defined
networks has them empty and its addresses under `Networks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.core.drivers import NetworkAttachment

__all__ = ["Endpoint", "endpoint_fields", "network_settings"]


@dataclass(frozen=True)
class Endpoint:
    """One network the container is attached to, and what its driver set up there."""

    network: str
    attachment: NetworkAttachment
    network_id: str = ""
    endpoint_id: str = ""
    aliases: tuple[str, ...] = ()
    user_defined: bool = False


def endpoint_fields(endpoint: Endpoint) -> dict[str, Any]:
    """One entry of `NetworkSettings.Networks`: the endpoint as Docker shows it."""
    attachment = endpoint.attachment
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": list(endpoint.aliases) or None,
        "MacAddress": attachment.mac_address,
        "NetworkID": endpoint.network_id,
        "EndpointID": endpoint.endpoint_id,
        "Gateway": attachment.gateway,
        "IPAddress": attachment.ip_address,
        "IPPrefixLen": attachment.prefix_length,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def network_settings(endpoints: Sequence[Endpoint], *, sandbox: str = "") -> dict[str, Any]:
    """Docker's NetworkSettings for a container attached to `endpoints` (first one first)."""
    ports: dict[str, list[dict[str, str]]] = {}
    for endpoint in endpoints[:1]:
        for port in endpoint.attachment.ports:
            ports.setdefault(f"{port.container_port}/{port.protocol}", []).append(
                {"HostIp": port.host_ip or "0.0.0.0", "HostPort": str(port.host_port)}
            )
    default = next((e for e in endpoints if not e.user_defined), None)
    attachment = default.attachment if default else NetworkAttachment(netns_path=None)
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": sandbox,
        "Ports": ports,
        "IPAddress": attachment.ip_address,
        "IPPrefixLen": attachment.prefix_length,
        "Gateway": attachment.gateway,
        "MacAddress": attachment.mac_address,
        "Networks": {endpoint.network: endpoint_fields(endpoint) for endpoint in endpoints},
    }
