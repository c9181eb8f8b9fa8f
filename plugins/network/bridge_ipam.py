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

__all__ = [
    "CANDIDATE_SUBNETS",
    "USER_SUBNETS",
    "AddressBook",
    "free_subnet",
    "locked_book",
    "read_lease",
    "read_subnet",
]

CANDIDATE_SUBNETS = tuple(IPv4Network(f"172.{second}.0.0/16") for second in (30, 31, *range(16, 30)))
# User-defined networks draw from Docker's pool order, after the default bridge's two favourites.
USER_SUBNETS = (
    *(IPv4Network(f"172.{second}.0.0/16") for second in range(18, 30)),
    *(IPv4Network(f"192.168.{third}.0/20") for third in range(0, 256, 16)),
)


@dataclass
class AddressBook:
    """The subnet in use ("" while no container is attached) and each container's lease."""

    subnet: str = ""
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def network(self) -> IPv4Network:
        """The subnet as a network object."""
        return IPv4Network(self.subnet)

    def allocate(
        self,
        container_id: str,
        *,
        ports: list[list[Any]],
        gateway: IPv4Address | None = None,
        owns_netns: bool = True,
    ) -> IPv4Address:
        """The lowest free address other than the gateway (the first host unless given), leased
        with `ports` to `container_id` (`owns_netns`: whether this attachment created the
        container's namespace).

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
        used.add(gateway or next(self.network.hosts()))
        for address in self.network.hosts():
            if address not in used:
                self.leases[container_id] = {"ip": str(address), "ports": ports, "owns_netns": owns_netns}
                return address
        raise DriverFailed(f"no free address left in {self.subnet}")


def _overlap(first: str, second: str) -> bool:
    """Whether two host addresses collide: equal, or either one is every address."""
    return first == second or {first, second} & {"", "0.0.0.0"} != set()


def free_subnet(
    routes: Iterable[IPv4Network], candidates: tuple[IPv4Network, ...] = CANDIDATE_SUBNETS
) -> IPv4Network:
    """The first candidate that overlaps none of `routes` (the host's, other networks')."""
    routes = list(routes)
    for candidate in candidates:
        if not any(candidate.overlaps(route) for route in routes):
            return candidate
    raise DriverFailed("no free private subnet for the bridge network: every candidate is routed")


@contextmanager
def locked_book(directory: Path) -> Iterator[AddressBook]:
    """The address book under its lock; saved atomically when the body ends without error."""
    from dockyard.core.store import file_lock, read_json, write_json

    path = directory / "addresses.json"
    with file_lock(directory / "addresses.lock"):
        data = read_json(path, default={})
        leases = data.get("leases", {})
        book = AddressBook(
            subnet=data.get("subnet", ""), leases={key: dict(lease) for key, lease in leases.items()}
        )
        yield book
        if book.subnet != data.get("subnet", "") or book.leases != leases:
            # Runtime state on tmpfs that dies with the links it describes: no fsync needed.
            write_json(path, {"subnet": book.subnet, "leases": book.leases}, durable=False)


def read_lease(directory: Path, container_id: str) -> dict[str, Any]:
    """The container's lease as the book holds it now ({} when none), read without the lock:
    only the container's own attach and detach change it."""
    from dockyard.core.store import read_json

    leases: dict[str, dict[str, Any]] = read_json(directory / "addresses.json", default={}).get("leases", {})
    return leases.get(container_id, {})


def read_subnet(directory: Path) -> list[IPv4Network]:
    """The subnet the book in `directory` holds right now ([] while no container is attached)."""
    from dockyard.core.store import read_json

    subnet = read_json(directory / "addresses.json", default={}).get("subnet", "")
    return [IPv4Network(subnet)] if subnet else []
