"""The bridge driver's user-defined networks: their subnets chosen and checked, and remembered.

Each network the driver serves is recorded under `<home>/networks/<id>.json` (subnet, gateway,
internal), so a subnet is never handed to two networks, and the default bridge, which picks its
subnet when its first container arrives, avoids every one of them as it avoids the host's routes.
Choices happen under one lock, so two concurrent `network create`s cannot pick the same subnet.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from dockyard.core.drivers import NetworkConfig
from dockyard.core.errors import ConflictError, UsageError

__all__ = ["forget", "known_subnets", "register"]


def _directory(home: Path) -> Path:
    return home / "networks"


def known_subnets(home: Path) -> list[IPv4Network]:
    """The subnets of every user-defined network the driver serves."""
    from dockyard.core.store import read_json

    directory = _directory(home)
    if not directory.is_dir():
        return []
    records = [read_json(path, default={}) for path in sorted(directory.glob("*.json"))]
    return [IPv4Network(record["subnet"]) for record in records if record.get("subnet")]


def _parse_subnet(text: str) -> IPv4Network:
    try:
        subnet = IPv4Network(text, strict=True)
    except ValueError as exc:
        raise UsageError(f'invalid subnet "{text}": {exc}') from None
    if subnet.prefixlen > 30:
        raise UsageError(f'invalid subnet "{text}": a /{subnet.prefixlen} leaves no address for containers')
    return subnet


def _parse_gateway(text: str, subnet: IPv4Network) -> IPv4Address:
    try:
        gateway = IPv4Address(text)
    except ValueError as exc:
        raise UsageError(f'invalid gateway "{text}": {exc}') from None
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise UsageError(f"no matching subnet for gateway {text}")
    return gateway


def register(network: NetworkConfig, *, home: Path, taken: list[IPv4Network]) -> NetworkConfig:
    """Check or choose `network`'s subnet and gateway against `taken` (host routes, the default
    bridge's subnet) and the other networks', then remember it."""
    from dockyard.core.store import file_lock, write_json
    from dockyard.plugins.network.bridge_ipam import USER_SUBNETS, free_subnet

    if network.gateway and not network.subnet:
        raise UsageError("a gateway needs a subnet (--subnet) to belong to")
    with file_lock(home / "networks.lock"):
        used = [*taken, *known_subnets(home)]
        if network.subnet:
            subnet = _parse_subnet(network.subnet)
            if any(subnet.overlaps(other) for other in used):
                raise ConflictError("Pool overlaps with other one on this address space")
        else:
            subnet = free_subnet(used, USER_SUBNETS)
        gateway = _parse_gateway(network.gateway, subnet) if network.gateway else next(subnet.hosts())
        chosen = replace(network, subnet=str(subnet), gateway=str(gateway))
        write_json(
            _directory(home) / f"{network.id}.json",
            {"name": network.name, "subnet": chosen.subnet, "gateway": chosen.gateway},
        )
    return chosen


def forget(home: Path, network_id: str) -> None:
    """Drop a network's record; one already gone is forgotten."""
    (_directory(home) / f"{network_id}.json").unlink(missing_ok=True)
