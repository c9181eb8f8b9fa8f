"""A NetworkAttachment as Docker's `NetworkSettings`, the shape `inspect` shows and `port` reads.

Written into the container's state when it is prepared and cleared when it is released, so a
stopped container shows no stale address, as Docker's do.
"""

from __future__ import annotations

from typing import Any

from dockyard.core.drivers import NetworkAttachment

__all__ = ["network_settings"]


def network_settings(attachment: NetworkAttachment, *, network: str) -> dict[str, Any]:
    """Docker's NetworkSettings for `attachment` on the network called `network`."""
    ports: dict[str, list[dict[str, str]]] = {}
    for port in attachment.ports:
        ports.setdefault(f"{port.container_port}/{port.protocol}", []).append(
            {"HostIp": port.host_ip or "0.0.0.0", "HostPort": str(port.host_port)}
        )
    endpoint = {
        "IPAddress": attachment.ip_address,
        "IPPrefixLen": attachment.prefix_length,
        "Gateway": attachment.gateway,
        "MacAddress": attachment.mac_address,
    }
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": attachment.netns_path or "",
        "Ports": ports,
        **endpoint,
        "Networks": {network: endpoint} if attachment.ip_address else {},
    }
