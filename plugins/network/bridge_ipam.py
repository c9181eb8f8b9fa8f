"""The bridge network's address book: one JSON file, read and written under a file lock, that
records the subnet and, per attached container, its address and published ports.

Holding the lock across a whole attach or detach is what keeps two concurrent `run`s from
getting one address or one host port, and what makes "the last container left" a safe moment to
take the bridge down.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from dockyard.core.errors import ConflictError, DriverFailed

__all__ = ["AddressBook", "free_subnet", "locked_book"]

CANDIDATE_SUBNETS = tuple(IPv4Network(f"172.{second}.0.0/16") for second in (30, 31, *range(16, 30)))


@dataclass
class AddressBook:
    """The subnet in use ("" while no container is attached) and each container's lease."""

    subnet: str = ""
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def network(self) -> IPv4Network:
        """The subnet as a network object."""
        return IPv4Network(self.subnet)

    def allocate(self, container_id: str, *, ports: list[list[Any]]) -> IPv4Address:
        """The lowest free address after the gateway, leased with `ports` to `container_id`.

        A host port another container already publishes is a ConflictError.
        """
        taken = [tuple(port[:3]) for lease in self.leases.values() for port in lease["ports"]]
        for protocol, host_ip, host_port, _ in ports:
            if any(
                protocol == other_protocol and host_port == other_port and _overlap(host_ip, other_ip)
                for other_protocol, other_ip, other_port in taken
            ):
                raise ConflictError(
                    f"Bind for {host_ip or '0.0.0.0'}:{host_port} failed: port is already allocated"
                )
        used = {IPv4Address(lease["ip"]) for lease in self.leases.values()}
        hosts = self.network.hosts()
        next(hosts)  # the gateway
        for address in hosts:
            if address not in used:
                self.leases[container_id] = {"ip": str(address), "ports": ports}
                return address
        raise DriverFailed(f"no free address left in {self.subnet}")


def _overlap(first: str, second: str) -> bool:
    """Whether two host addresses collide: equal, or either one is every address."""
    return first == second or {first, second} & {"", "0.0.0.0"} != set()


def free_subnet(routes: Iterable[IPv4Network]) -> IPv4Network:
    """The first candidate /16 that overlaps none of the host's routes."""
    routes = list(routes)
    for candidate in CANDIDATE_SUBNETS:
        if not any(candidate.overlaps(route) for route in routes):
            return candidate
    raise DriverFailed("no free private /16 for the bridge network: every candidate is routed")


@contextmanager
def locked_book(directory: Path) -> Iterator[AddressBook]:
    """The address book under its lock; saved atomically when the body ends without error."""
    from dockyard.core.store import file_lock, read_json, write_json

    path = directory / "addresses.json"
    with file_lock(directory / "addresses.lock"):
        data = read_json(path, default={})
        book = AddressBook(subnet=data.get("subnet", ""), leases=data.get("leases", {}))
        yield book
        write_json(path, {"subnet": book.subnet, "leases": book.leases})
