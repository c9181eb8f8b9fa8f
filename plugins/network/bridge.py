"""The `bridge` network driver: containers on a Linux bridge, `dockyard0`, behind NAT.

Each container gets a network namespace (pinned on `<run_dir>/netns/<id>` like `none`'s) whose
eth0 is one end of a veth pair; the other end sits on the bridge, which holds the gateway (.1)
of a private /16 that overlaps no host route (172.30.0.0/16 unless taken). Addresses come from
a locked address book (bridge_ipam), the MAC from the address as Docker derives it
(02:42 + the four address bytes), outbound traffic is masqueraded and published ports are
DNATed by one nftables table (bridge_nft). The bridge and the table exist only while at least
one container is attached: the last detach removes them, so nothing of ours outlives its use.

Priority 5, below `none`'s 10: `none` stays the default for now and the bridge is picked with
`--network bridge`.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.core.drivers import Availability, DriverContext, NetworkAttachment, PortMapping
from dockyard.core.errors import DriverFailed
from dockyard.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from dockyard.core.drivers import DriverRegistry

__all__ = ["BRIDGE", "BridgeNetworkDriver", "dockyard_register_drivers", "mac_for"]

BRIDGE = "dockyard0"


def mac_for(address: IPv4Address) -> str:
    """Docker's MAC for a bridge address: 02:42 followed by the address's four bytes."""
    return ":".join(f"{byte:02x}" for byte in (0x02, 0x42, *address.packed))


def host_nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[str, ...]:
    """The host's nameservers a container can reach: loopback ones (a local stub) are left out."""
    try:
        lines = resolv_conf.read_text().splitlines()
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise DriverFailed(f"cannot read {resolv_conf}: {exc.strerror}") from exc
    servers = [line.split()[1] for line in lines if line.startswith("nameserver") and len(line.split()) > 1]
    return tuple(server for server in servers if not server.startswith("127.") and server != "::1")


class BridgeNetworkDriver:
    """Containers on the `dockyard0` bridge with NAT and published ports (see the module docstring)."""

    name = "bridge"

    def __init__(self, context: DriverContext) -> None:
        self._directory = context.run_dir
        self._rootless = context.rootless
        self._netns = context.run_dir / "netns"

    def available(self) -> Availability:
        """Usable as root with the nft command installed."""
        import shutil

        if os.geteuid() != 0 or self._rootless:
            return Availability(False, "needs root (rootless networking is the rootless drivers' job)")
        if shutil.which("nft") is None:
            return Availability(False, "the nft command is missing (Debian: nftables)")
        return Availability(True)

    def attach(
        self, container_id: str, *, hostname: str, ports: tuple[PortMapping, ...] = ()
    ) -> NetworkAttachment:
        """Give the container an address on the bridge and publish `ports` to it."""
        from dockyard.plugins.network import bridge_links, bridge_nft, netns_files
        from dockyard.plugins.network.bridge_ipam import free_subnet, locked_book

        path = netns_files.path_for(self._netns, container_id)
        dns_servers = host_nameservers()
        netns_files.reserve(path, container_id)
        with locked_book(self._directory) as book:
            first = not book.leases
            try:
                if first:
                    book.subnet = str(free_subnet(bridge_links.host_networks(excluding=BRIDGE)))
                network = book.network
                leased = [[p.protocol, p.host_ip, p.host_port, p.container_port] for p in ports]
                address = book.allocate(container_id, ports=leased)
                gateway = IPv4Interface(f"{next(network.hosts())}/{network.prefixlen}")
                if first:
                    bridge_links.ensure_bridge(BRIDGE, gateway=gateway)
                    bridge_nft.create_table(bridge=BRIDGE, subnet=network)
                netns_files.create(path, container_id)
                bridge_links.add_veth(
                    self._veth(container_id),
                    bridge=BRIDGE,
                    netns_path=path,
                    address=IPv4Interface(f"{address}/{network.prefixlen}"),
                    gateway=gateway.ip,
                    mac=mac_for(address),
                )
                bridge_nft.add_rules(container_id, address=address, ports=ports)
            except BaseException:
                self._take_down(container_id, last=first)
                raise
        return NetworkAttachment(
            netns_path=str(path),
            ip_address=str(address),
            gateway=str(gateway.ip),
            mac_address=mac_for(address),
            dns_servers=dns_servers,
            prefix_length=network.prefixlen,
            ports=ports,
        )

    def detach(self, container_id: str) -> None:
        """Remove the container's veth, namespace, rules and lease; the last one out also
        removes the bridge and the table. Safe to call twice."""
        from dockyard.plugins.network import netns_files
        from dockyard.plugins.network.bridge_ipam import locked_book

        path = netns_files.path_for(self._netns, container_id)
        if not self._directory.exists():
            netns_files.remove(path)
            return
        with locked_book(self._directory) as book:
            book.leases.pop(container_id, None)
            self._take_down(container_id, last=not book.leases)
            if not book.leases:
                book.subnet = ""

    def _take_down(self, container_id: str, *, last: bool) -> None:
        """Undo what attach did for one container, and the shared pieces when `last`."""
        from dockyard.plugins.network import bridge_links, bridge_nft, netns_files

        bridge_links.remove_link(self._veth(container_id))
        netns_files.remove(netns_files.path_for(self._netns, container_id))
        if last:
            bridge_links.remove_link(BRIDGE)
            bridge_nft.delete_table()
        else:
            bridge_nft.remove_rules(container_id)

    @staticmethod
    def _veth(container_id: str) -> str:
        """The host end's name: `dy` and 11 characters of the id, within IFNAMSIZ."""
        return "dy" + container_id[:11]


@hookimpl
def dockyard_register_drivers(register: DriverRegistry) -> None:
    """Register `bridge`, below `none` until it becomes the default."""
    register.network(
        "bridge",
        BridgeNetworkDriver,
        plugin=__name__,
        priority=5,
        description="a private address on the dockyard0 bridge, NAT and published ports",
    )
