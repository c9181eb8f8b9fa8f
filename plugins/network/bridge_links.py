"""The bridge driver's kernel links: the bridge, one veth pair per container, the container's
side configured inside its namespace.

The per-container operations go through core.linux.rtnetlink, a few raw netlink requests, because
importing pyroute2 alone costs a third of a second on every `run`; pyroute2 serves the rare,
richer question (the host's routing table, asked when a bridge or network is created), imported
inside that function. Kernel refusals (OSError, pyroute2's NetlinkError) become DriverFailed here,
at the boundary.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.core.errors import DriverFailed

if TYPE_CHECKING:
    from pyroute2 import IPRoute

__all__ = ["add_veth", "ensure_bridge", "host_networks", "link_exists", "remove_link"]


@contextmanager
def _netlink(action: str) -> Iterator[IPRoute]:
    """An IPRoute socket in the calling thread's namespace; failures become DriverFailed."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            yield ipr
    except (NetlinkError, OSError) as exc:
        raise DriverFailed(f"cannot {action}: {exc}") from exc


def host_networks(*, excluding: str) -> list[IPv4Network]:
    """Every IPv4 destination the host routes, except the default route and link `excluding`'s."""
    with _netlink("list the host's routes") as ipr:
        skip = set(ipr.link_lookup(ifname=excluding))
        return [
            IPv4Network(f"{route.get('dst')}/{route.get('dst_len')}", strict=False)
            for route in ipr.route("dump", family=2)
            if route.get("dst") and route.get("oif") not in skip
        ]


def link_exists(name: str) -> bool:
    """Whether link `name` exists in the calling thread's namespace."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def ensure_bridge(name: str, *, gateway: IPv4Interface) -> None:
    """Create bridge `name` holding `gateway`, up, unless it exists; let it route 127.0.0.0/8
    (route_localnet) so host-local traffic to published ports can be DNATed onto it."""
    from dockyard.core.linux.rtnetlink import Rtnetlink

    try:
        with Rtnetlink() as rtnl:
            index = rtnl.add_bridge(name)
            rtnl.add_address(index, gateway)
            rtnl.set_up(index)
    except FileExistsError:
        pass
    except OSError as exc:
        raise DriverFailed(f"cannot create the bridge {name}: {exc.strerror}") from exc
    try:
        Path(f"/proc/sys/net/ipv4/conf/{name}/route_localnet").write_text("1")
        Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    except OSError as exc:
        raise DriverFailed(f"cannot enable forwarding on {name}: {exc.strerror}") from exc


def add_veth(
    host_name: str,
    *,
    bridge: str,
    netns_path: Path,
    address: IPv4Interface,
    gateway: IPv4Address,
    mac: str,
    interface: str = "eth0",
) -> None:
    """A veth pair: `host_name` up on `bridge`, its peer born inside `netns_path` as `interface`
    with `mac`, then given `address` and, for eth0, the default route via `gateway`."""
    from dockyard.core.linux.netns import entered
    from dockyard.core.linux.rtnetlink import Rtnetlink

    try:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with Rtnetlink() as rtnl:
                index = rtnl.add_veth(host_name, peer=interface, peer_netns_fd=fd, peer_mac=mac)
                rtnl.set_up(index, master=socket.if_nametoindex(bridge))
        finally:
            os.close(fd)
    except OSError as exc:
        raise DriverFailed(f"cannot create the veth pair {host_name}: {exc.strerror}") from exc
    try:
        with entered(netns_path), Rtnetlink() as rtnl:
            index = socket.if_nametoindex(interface)
            rtnl.add_address(index, address)
            rtnl.set_up(index)
            if interface == "eth0":
                rtnl.add_default_route(gateway)
    except OSError as exc:
        raise DriverFailed(f"cannot configure {interface} in {netns_path}: {exc.strerror}") from exc


def remove_link(name: str) -> None:
    """Delete link `name` (a veth takes its peer with it); a missing link is already removed."""
    from dockyard.core.linux.rtnetlink import Rtnetlink

    try:
        with Rtnetlink() as rtnl:
            rtnl.delete_link(name)
    except OSError as exc:
        if exc.errno != errno.ENODEV:
            raise DriverFailed(f"cannot remove {name}: {exc.strerror}") from exc
