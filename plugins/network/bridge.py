"""The `bridge` network driver: containers on a Linux bridge, `dockyard0`, behind NAT.

Each container gets a network namespace (pinned on `<run_dir>/netns/<id>` like `none`'s) whose
eth0 is one end of a veth pair; the other end sits on the bridge, which holds the gateway (.1)
of a private /16 that overlaps no host route (172.30.0.0/16 unless taken). Addresses come from
a locked address book (bridge_ipam), the MAC from the address as Docker derives it
(02:42 + the four address bytes), outbound traffic is masqueraded and published ports are
DNATed by one nftables table (bridge_nft). Like docker0, dockyard0 and its table stay once
made, so a `run` only plugs a veth in and out; a container leaves nothing of its own behind.

User-defined networks (`network create`) work the same way, each on its own bridge `dy-<id>`
with its own table and address book, on the subnet chosen when it was created (bridge_subnets);
an `internal` one gets no masquerade and no way off its bridge. A user-defined network's bridge
and table go with its last container. No bridge forwards to another: containers on different
networks cannot reach each other, as with Docker.

Priority 20, above `none`'s 10: as root a container with no --network lands on the bridge, as
Docker's do. Rootless, the driver refuses (it needs root), so selection falls through to the
rootless drivers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.core.drivers import Availability, DriverContext, NetworkAttachment, NetworkConfig, PortMapping
from dockyard.core.errors import DriverFailed

if TYPE_CHECKING:
    from dockyard.plugins.network.bridge_ipam import AddressBook

__all__ = ["BRIDGE", "USER_BRIDGE_PREFIX", "BridgeNetworkDriver", "mac_for"]

BRIDGE = "dockyard0"
USER_BRIDGE_PREFIX = "dy-"  # then 12 characters of the network's id
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
            bridge=f"{USER_BRIDGE_PREFIX}{network.id[:12]}",
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
        """Lease an address (bringing the bridge up if it is not), then, outside the book's lock,
        plug a veth into the namespace (a new one unless `netns_path` is given) and publish
        `ports`; a failure gives everything back."""
        from dockyard.plugins.network import bridge_links, bridge_nft, netns_files
        from dockyard.plugins.network.bridge_ipam import locked_book

        owns = netns_path is None
        path = netns_files.path_for(self._netns, container_id) if owns else Path(str(netns_path))
        dns_servers = host_nameservers()
        if owns:
            netns_files.reserve(path, container_id)
        leased = [[p.protocol, p.host_ip, p.host_port, p.container_port] for p in ports]
        try:
            with locked_book(segment.book) as book:
                self._reclaim(segment, book.leases)
                self._ensure_segment(segment, book)
                network = book.network
                gateway = self._gateway(segment, network)
                address = book.allocate(container_id, ports=leased, gateway=gateway.ip, owns_netns=owns)
                book.leases[container_id]["netns"] = str(path)
        except BaseException:
            if owns:
                path.unlink(missing_ok=True)
            raise
        try:
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
            self._detach(segment, container_id)
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

    @staticmethod
    def _gateway(segment: _Segment, network: IPv4Network) -> IPv4Interface:
        """The bridge's own address: the network's gateway, else its first host."""
        return IPv4Interface(f"{segment.gateway or next(network.hosts())}/{network.prefixlen}")

    def _ensure_segment(self, segment: _Segment, book: AddressBook) -> None:
        """Bring the bridge and its table up unless the book's subnet already runs on it; a fresh
        start (no lease) picks the subnet and first clears a stale bridge of ours. Called with
        the book locked."""
        from dockyard.plugins.network import bridge_links, bridge_nft
        from dockyard.plugins.network.bridge_ipam import free_subnet

        if book.subnet and bridge_links.link_exists(segment.bridge):
            return
        if not book.leases:
            bridge_links.remove_link(segment.bridge)
            book.subnet = segment.subnet or str(free_subnet(self._routed_and_reserved()))
        network = book.network
        bridge_links.ensure_bridge(segment.bridge, gateway=self._gateway(segment, network))
        bridge_nft.create_table(
            bridge=segment.bridge, subnet=network, table=segment.table, internal=segment.internal
        )

    def _reclaim(self, segment: _Segment, leases: dict[str, dict[str, Any]]) -> None:
        """Free the leases of containers that vanished without detaching (their namespace file is
        gone: a crashed command, a removed root), with their veths and rules."""
        from dockyard.plugins.network import bridge_links, bridge_nft

        for container_id, lease in list(leases.items()):
            netns = str(lease.get("netns") or "")
            if netns and not os.path.exists(netns):
                del leases[container_id]
                bridge_links.remove_link(self._veth(segment, container_id))
                if lease.get("ports"):
                    bridge_nft.remove_rules(container_id, table=segment.table)

    def _routed_and_reserved(self) -> list[IPv4Network]:
        """What the default bridge's subnet must not overlap: the host's routes and the
        subnets of the user-defined networks."""
        from dockyard.plugins.network import bridge_links, bridge_subnets

        return [*bridge_links.host_networks(excluding=BRIDGE), *bridge_subnets.known_subnets(self._home)]

    def _detach(self, segment: _Segment, container_id: str) -> None:
        """Remove the container's veth and namespace (if its attachment made it), then, under the
        book's lock, its rules and lease. A user-defined network's last container also takes the
        bridge and table along; the default bridge stays up for the next container, as docker0
        does, so a `run` pays for neither."""
        from dockyard.plugins.network import bridge_links, bridge_nft, netns_files
        from dockyard.plugins.network.bridge_ipam import locked_book, read_lease

        default = not segment.network_id
        if not segment.book.exists():
            if default:
                netns_files.remove(netns_files.path_for(self._netns, container_id))
            return
        lease = read_lease(segment.book, container_id)
        bridge_links.remove_link(self._veth(segment, container_id))
        if bool(lease.get("owns_netns", True)) if lease else default:
            netns_files.remove(netns_files.path_for(self._netns, container_id))
        with locked_book(segment.book) as book:
            lease = book.leases.pop(container_id, {})
            if not default and not book.leases:
                book.subnet = ""
                bridge_links.remove_link(segment.bridge)
                bridge_nft.delete_table(segment.table)
            elif lease.get("ports"):
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
