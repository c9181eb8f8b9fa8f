"""The bridge driver's kernel links through pyroute2: the bridge, one veth pair per container,
the container's side configured inside its namespace.

pyroute2 is imported inside each function (it costs ~85 ms) and its NetlinkError, like OSError,
is translated into DriverFailed here, at the boundary.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.core.errors import DriverFailed

if TYPE_CHECKING:
    from pyroute2 import IPRoute

__all__ = ["add_veth", "ensure_bridge", "host_networks", "remove_link"]


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


def ensure_bridge(name: str, *, gateway: IPv4Interface) -> None:
    """Create bridge `name` holding `gateway`, up, unless it exists; let it route 127.0.0.0/8
    (route_localnet) so host-local traffic to published ports can be DNATed onto it."""
    with _netlink(f"create the bridge {name}") as ipr:
        if not ipr.link_lookup(ifname=name):
            ipr.link("add", ifname=name, kind="bridge")
            index = ipr.link_lookup(ifname=name)[0]
            ipr.addr("add", index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
            ipr.link("set", index=index, state="up")
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
    """A veth pair: `host_name` on `bridge`, its peer moved into `netns_path` as `interface` with
    `address`, `mac` and, for eth0, the default route via `gateway`."""
    from dockyard.core.linux.netns import entered

    peer = "dp" + host_name[2:]
    with _netlink(f"create the veth pair {host_name}") as ipr:
        ipr.link("add", ifname=host_name, kind="veth", peer={"ifname": peer})
        index = ipr.link_lookup(ifname=host_name)[0]
        ipr.link("set", index=index, master=ipr.link_lookup(ifname=bridge)[0], state="up")
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], net_ns_fd=fd)
        finally:
            os.close(fd)
    try:
        with entered(netns_path), _netlink("configure eth0 in the container") as ipr:
            index = ipr.link_lookup(ifname=peer)[0]
            ipr.link("set", index=index, ifname=interface, address=mac)
            ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
            ipr.link("set", index=index, state="up")
            if interface == "eth0":
                ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway))
    except OSError as exc:
        raise DriverFailed(f"cannot enter the network namespace {netns_path}: {exc.strerror}") from exc


def remove_link(name: str) -> None:
    """Delete link `name` (a veth takes its peer with it); a missing link is already removed."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with _netlink(f"remove {name}") as ipr:
            ipr.link("del", ifname=name)
    except DriverFailed as exc:
        if not (isinstance(exc.__cause__, NetlinkError) and exc.__cause__.code == errno.ENODEV):
            raise
