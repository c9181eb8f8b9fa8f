"""The `bridge` network driver: containers on a Linux bridge, `dockyard0`, behind NAT.

Each container gets a network namespace (pinned on `<run_dir>/netns/<id>` like `none`'s) whose
eth0 is one end of a veth pair; the other end sits on the bridge, which holds the gateway (.1)
of a private /16 that overlaps no host route (172.30.0.0/16 unless taken). Addresses come from
a locked address book (bridge_ipam), the MAC from the address as Docker derives it
(02:42 + the four address bytes), outbound traffic is masqueraded and published ports are
DNATed by one nftables table (bridge_nft). The bridge and the table exist only while at least
one container is attached: the last detach removes them, so nothing of ours outlives its use.

User-defined networks (`network create`) work the same way, each on its own bridge `dy-<id>`
with its own table and address book, on the subnet chosen when it was created (bridge_subnets);
an `internal` one gets no masquerade and no way off its bridge.

Priority 20, above `none`'s 10: as root a container with no --network lands on the bridge, as
Docker's do. Rootless, the driver refuses (it needs root), so selection falls through to the
rootless drivers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.core.drivers import Availability, DriverContext, NetworkAttachment, NetworkConfig, PortMapping
from dockyard.core.errors import DriverFailed
from dockyard.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from dockyard.core.drivers import DriverRegistry

__all__ = ["BRIDGE", "BridgeNetworkDriver", "dockyard_register_drivers", "mac_for"]

BRIDGE = "dockyard0"
# The default bridge, its table and its address book are one per host, whatever root or runroot a
# command uses: two roots keeping two books would both bring up and tear down the same dockyard0.
DEFAULT_BOOK = Path("/run/dockyard-bridge")


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


@dataclass(frozen=True)
class _Segment:
    """One bridge the driver runs: the default network's or a user-defined network's.

    `subnet` "" means "pick a free one when the first container arrives" (the default network).
    """

    bridge: str
    table: str
    book: Path
    network_id: str = ""
    subnet: str = ""
    gateway: str = ""
    internal: bool = False


class BridgeNetworkDriver:
    """Containers on Linux bridges with NAT and published ports (see the module docstring)."""

    name = "bridge"

    def __init__(self, context: DriverContext) -> None:
        self._directory = context.run_dir
        self._netns = context.run_dir / "netns"
        self._rootless = context.rootless
        self._home = context.home

    def available(self) -> Availability:
        """Usable as root with the nft command installed."""
        import shutil

        if os.geteuid() != 0 or self._rootless:
            return Availability(False, "needs root (rootless networking is the rootless drivers' job)")
        if shutil.which("nft") is None:
            return Availability(False, "the nft command is missing (Debian: nftables)")
        return Availability(True)

    def create_network(self, network: NetworkConfig) -> NetworkConfig:
        """Choose or check the network's subnet and gateway; its bridge appears with its first
        container."""
        from dockyard.plugins.network import bridge_links, bridge_subnets
        from dockyard.plugins.network.bridge_ipam import read_subnet

        taken = bridge_links.host_networks(excluding=BRIDGE)
        default = read_subnet(DEFAULT_BOOK)
        return bridge_subnets.register(network, home=self._home, taken=[*taken, *default])

    def remove_network(self, network: NetworkConfig) -> None:
        """Forget the network's subnet and address book (its bridge went with its last container)."""
        import shutil

        from dockyard.plugins.network import bridge_subnets

        bridge_subnets.forget(self._home, network.id)
        shutil.rmtree(self._segment(network).book, ignore_errors=True)

    def attach(
        self, container_id: str, *, hostname: str, ports: tuple[PortMapping, ...] = ()
    ) -> NetworkAttachment:
        """Give the container an address on the default bridge and publish `ports` to it."""
        return self._attach(self._default(), container_id, ports=ports, netns_path=None, interface="eth0")

    def attach_network(
        self,
        container_id: str,
        *,
        network: NetworkConfig,
        hostname: str,
        aliases: tuple[str, ...] = (),
        ports: tuple[PortMapping, ...] = (),
        netns_path: str | None = None,
        interface: str = "eth0",
    ) -> NetworkAttachment:
        """Give the container an address on a user-defined network's bridge (names and aliases
        are the core's business: it writes /etc/hosts)."""
        return self._attach(
            self._segment(network), container_id, ports=ports, netns_path=netns_path, interface=interface
        )

    def detach(self, container_id: str) -> None:
        """Leave the default bridge; safe to call twice."""
        self._detach(self._default(), container_id)

    def detach_network(self, container_id: str, *, network: NetworkConfig) -> None:
        """Leave a user-defined network's bridge; safe to call twice."""
        self._detach(self._segment(network), container_id)

    def _default(self) -> _Segment:
        return _Segment(bridge=BRIDGE, table=bridge_nft_table(""), book=DEFAULT_BOOK)

    def _segment(self, network: NetworkConfig) -> _Segment:
        return _Segment(
            bridge=f"dy-{network.id[:12]}",
            table=bridge_nft_table(network.id),
            book=self._directory / "networks" / network.id,
            network_id=network.id,
            subnet=network.subnet,
            gateway=network.gateway,
            internal=network.internal,
        )

    def _attach(
        self,
        segment: _Segment,
        container_id: str,
        *,
        ports: tuple[PortMapping, ...],
        netns_path: str | None,
        interface: str,
    ) -> NetworkAttachment:
        """Lease an address, bring the bridge up if this is its first container, plug a veth
        into the namespace (a new one unless `netns_path` is given), publish `ports`."""
        from dockyard.plugins.network import bridge_links, bridge_nft, netns_files
        from dockyard.plugins.network.bridge_ipam import free_subnet, locked_book

        owns = netns_path is None
        path = netns_files.path_for(self._netns, container_id) if owns else Path(str(netns_path))
        dns_servers = host_nameservers()
        if owns:
            netns_files.reserve(path, container_id)
        with locked_book(segment.book) as book:
            self._reclaim(segment, book.leases)
            first = not book.leases
            try:
                if first:
                    book.subnet = segment.subnet or str(free_subnet(self._routed_and_reserved()))
                network = book.network
                gateway = IPv4Interface(f"{segment.gateway or next(network.hosts())}/{network.prefixlen}")
                leased = [[p.protocol, p.host_ip, p.host_port, p.container_port] for p in ports]
                address = book.allocate(container_id, ports=leased, gateway=gateway.ip, owns_netns=owns)
                book.leases[container_id]["netns"] = str(path)
                if first:
                    bridge_links.ensure_bridge(segment.bridge, gateway=gateway)
                    bridge_nft.create_table(
                        bridge=segment.bridge, subnet=network, table=segment.table, internal=segment.internal
                    )
                if owns:
                    netns_files.create(path, container_id)
                bridge_links.add_veth(
                    self._veth(segment, container_id),
                    bridge=segment.bridge,
                    netns_path=path,
                    address=IPv4Interface(f"{address}/{network.prefixlen}"),
                    gateway=gateway.ip,
                    mac=mac_for(address),
                    interface=interface,
                )
                bridge_nft.add_rules(container_id, address=address, ports=ports, table=segment.table)
            except BaseException:
                self._take_down(segment, container_id, last=first, owns_netns=owns)
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

    def _reclaim(self, segment: _Segment, leases: dict[str, dict[str, object]]) -> None:
        """Free the leases of containers that vanished without detaching (their namespace file is
        gone: a crashed command, a removed root), with their veths and rules."""
        for container_id, lease in list(leases.items()):
            netns = str(lease.get("netns") or "")
            if netns and not os.path.exists(netns):
                del leases[container_id]
                self._take_down(segment, container_id, last=False, owns_netns=False)

    def _routed_and_reserved(self) -> list[IPv4Network]:
        """What the default bridge's subnet must not overlap: the host's routes and the
        subnets of the user-defined networks."""
        from dockyard.plugins.network import bridge_links, bridge_subnets

        return [*bridge_links.host_networks(excluding=BRIDGE), *bridge_subnets.known_subnets(self._home)]

    def _detach(self, segment: _Segment, container_id: str) -> None:
        """Remove the container's veth, rules and lease (and the namespace if its attachment
        made it); the last one out also removes the bridge and the table."""
        from dockyard.plugins.network import netns_files
        from dockyard.plugins.network.bridge_ipam import locked_book

        default = not segment.network_id
        if not segment.book.exists():
            if default:
                netns_files.remove(netns_files.path_for(self._netns, container_id))
            return
        with locked_book(segment.book) as book:
            lease = book.leases.pop(container_id, None)
            owns = bool(lease.get("owns_netns", True)) if lease else default
            self._take_down(segment, container_id, last=not book.leases, owns_netns=owns)
            if not book.leases:
                book.subnet = ""

    def _take_down(self, segment: _Segment, container_id: str, *, last: bool, owns_netns: bool) -> None:
        """Undo what an attach did for one container, and the shared pieces when `last`."""
        from dockyard.plugins.network import bridge_links, bridge_nft, netns_files

        bridge_links.remove_link(self._veth(segment, container_id))
        if owns_netns:
            netns_files.remove(netns_files.path_for(self._netns, container_id))
        if last:
            bridge_links.remove_link(segment.bridge)
            bridge_nft.delete_table(segment.table)
        else:
            bridge_nft.remove_rules(container_id, table=segment.table)

    @staticmethod
    def _veth(segment: _Segment, container_id: str) -> str:
        """The host end's name within IFNAMSIZ: `dy` and 11 characters of the container's id on
        the default bridge, of a hash of network and container ids on a user-defined one."""
        if not segment.network_id:
            return "dy" + container_id[:11]
        import hashlib

        return "dy" + hashlib.blake2b(f"{segment.network_id}/{container_id}".encode()).hexdigest()[:11]


def bridge_nft_table(network_id: str) -> str:
    """The nftables table of the default network ("") or of a user-defined one."""
    return f"inet dockyard_{network_id[:12]}" if network_id else "inet dockyard"


@hookimpl
def dockyard_register_drivers(register: DriverRegistry) -> None:
    """Register `bridge`, the default network as root."""
    register.network(
        "bridge",
        BridgeNetworkDriver,
        plugin=__name__,
        priority=20,
        description="a private address on the dockyard0 bridge, NAT and published ports",
    )
