"""`-p`/`-P` turned into Docker's `HostConfig.PortBindings`, and those into the concrete
PortMappings a network driver publishes.

`-p [IP:][HOST:]CONTAINER[/PROTO]` and `-P` (every exposed port, on an ephemeral host port)
give `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`; `HostPort` "" means "pick one", done
at each start. Each explicit host port is bind-tested on the host before anything starts, so a
port in use is a clear error rather than a container nobody can reach, and a rootless user's port
below the host's `net.ipv4.ip_unprivileged_port_start` is refused with that sysctl named.
"""

from __future__ import annotations

import errno
import socket
from ipaddress import IPv4Address
from typing import Any

from dockyard.core.drivers import PortMapping
from dockyard.core.errors import ConflictError, UsageError

__all__ = ["exposed_ports", "parse_publish", "port_mappings", "privileged_port_refusal"]

PROTOCOLS = ("tcp", "udp")
UNPRIVILEGED_PORT_START = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
Bindings = dict[str, list[dict[str, str]]]


def _port(text: str, *, spec: str, allow_zero: bool = False) -> int:
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise UsageError(f"invalid port {text!r} in publish specification {spec!r}")
    return int(text)


def _one(spec: str) -> tuple[str, str, str]:
    """One `-p` value as (container port key, host ip, host port)."""
    rest, _, protocol = spec.partition("/")
    protocol = protocol or "tcp"
    if protocol not in PROTOCOLS:
        raise UsageError(f"invalid protocol {protocol!r} in publish specification {spec!r}")
    parts = rest.split(":")
    if len(parts) > 3 or "-" in rest:
        raise UsageError(f"invalid publish specification {spec!r} (ranges and IPv6 are not supported)")
    host_ip = parts[0] if len(parts) == 3 else ""
    host_port = parts[-2] if len(parts) >= 2 else ""
    if host_ip:
        try:
            IPv4Address(host_ip)
        except ValueError:
            raise UsageError(f"invalid IP address {host_ip!r} in publish specification {spec!r}") from None
    if host_port:
        _port(host_port, spec=spec)
    container_port = _port(parts[-1], spec=spec)
    return f"{container_port}/{protocol}", host_ip, host_port


def exposed_ports(image_exposed: dict[str, Any] | None, bindings: Bindings) -> dict[str, Any] | None:
    """The image's exposed ports plus every published one, as `Config.ExposedPorts`."""
    exposed = {**(image_exposed or {}), **{key: {} for key in bindings}}
    return exposed or None


def parse_publish(values: list[str], *, publish_all: bool, image_exposed: dict[str, Any] | None) -> Bindings:
    """`-p` values (and, with `-P`, the image's exposed ports) as PortBindings, host ports checked free."""
    bindings: Bindings = {}
    if publish_all:
        for key in image_exposed or {}:
            number, _, protocol = key.partition("/")
            bindings.setdefault(_one(f"{number}/{protocol or 'tcp'}")[0], []).append(
                {"HostIp": "", "HostPort": ""}
            )
    for value in values:
        key, host_ip, host_port = _one(value)
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    for key, entries in bindings.items():
        for entry in entries:
            if entry["HostPort"]:
                _bind_test(key.partition("/")[2], entry["HostIp"], int(entry["HostPort"]))
    return bindings


def port_mappings(bindings: Bindings | None) -> tuple[PortMapping, ...]:
    """The concrete mappings to publish now: explicit host ports bind-tested, "" ones picked."""
    mappings = []
    for key, entries in (bindings or {}).items():
        number, _, protocol = key.partition("/")
        for entry in entries or []:
            host_ip = entry.get("HostIp", "")
            port = _bind_test(protocol, host_ip, int(entry.get("HostPort") or 0))
            mappings.append(PortMapping(int(number), protocol, host_ip, port))
    return tuple(mappings)


def _bind_test(protocol: str, host_ip: str, port: int) -> int:
    """Bind `host_ip:port` (port 0: any free one) and let go; the port, or ConflictError if taken."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host_ip or "0.0.0.0", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConflictError(
                    f"Bind for {host_ip or '0.0.0.0'}:{port} failed: port is already allocated"
                ) from exc
            reason = privileged_port_refusal(port) if exc.errno == errno.EACCES else ""
            raise UsageError(
                f"cannot publish {host_ip or '0.0.0.0'}:{port}: {reason or exc.strerror}"
            ) from exc
        return int(probe.getsockname()[1])


def privileged_port_refusal(port: int) -> str:
    """Why binding `port` was refused when the host keeps it for root (below the sysctl
    `net.ipv4.ip_unprivileged_port_start` of this network namespace), else ""."""
    try:
        with open(UNPRIVILEGED_PORT_START, encoding="ascii") as file:
            start = int(file.read())
    except (OSError, ValueError):
        return ""
    if port >= start:
        return ""
    return (
        f"ports below {start} need root on this host (sysctl net.ipv4.ip_unprivileged_port_start="
        f"{start}); publish {start} or above, or have an administrator run "
        f"sysctl -w net.ipv4.ip_unprivileged_port_start={port}"
    )
