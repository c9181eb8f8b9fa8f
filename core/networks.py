"""Network records: the user-defined networks (`network create`) and the built-in ones.

networks/<id>.json   one user-defined network, Docker's `network inspect` shape (without the
                     `Containers`, which are read off the containers when asked)
networks/lock        held while a network is created, removed, joined or left

Every registered network driver also gives one built-in network named after it (`bridge`,
`host`, `none`, ...); those are not stored, their ids are derived from their names, and they
cannot be created or removed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dockyard.core.drivers import NetworkConfig
from dockyard.core.errors import AmbiguousIdError, ConflictError, NotFoundError, UsageError
from dockyard.core.store import file_lock, read_json, write_json

__all__ = ["NetworkStore", "builtin_record", "network_config", "valid_network_name"]

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def valid_network_name(name: str) -> str:
    """The name, or Docker's usage error when it cannot name a network."""
    if not _NAME.fullmatch(name):
        raise UsageError(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    return name


def builtin_record(driver: str) -> dict[str, Any]:
    """The record of the built-in network a driver gives, named after it."""
    return {
        "Name": driver,
        "Id": hashlib.sha256(f"dockyard built-in network {driver}".encode()).hexdigest(),
        "Created": "0001-01-01T00:00:00Z",
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Options": {},
        "Labels": {},
    }


def network_config(record: dict[str, Any]) -> NetworkConfig:
    """A stored record as the NetworkConfig its driver is handed."""
    ipam = (record.get("IPAM") or {}).get("Config") or [{}]
    return NetworkConfig(
        name=record["Name"],
        id=record["Id"],
        subnet=ipam[0].get("Subnet", ""),
        gateway=ipam[0].get("Gateway", ""),
        internal=bool(record.get("Internal")),
        options=dict(record.get("Options") or {}),
    )


class NetworkStore:
    """The user-defined networks under one storage root."""

    def __init__(self, home: Path) -> None:
        self.home = home

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the networks' lock: no network appears, goes, gains or loses a member meanwhile."""
        with file_lock(self.home / "lock"):
            yield

    def all(self) -> list[dict[str, Any]]:
        """Every user-defined network, oldest first."""
        if not self.home.is_dir():
            return []
        records = [read_json(path, default={}) for path in self.home.glob("*.json")]
        return sorted((dict(record) for record in records if record), key=lambda r: str(r["Created"]))

    def find(self, text: str) -> dict[str, Any] | None:
        """A user-defined network by exact name, full id or unique id prefix (Docker's order)."""
        records = self.all()
        for record in records:
            if text in (record["Name"], record["Id"]):
                return record
        matches = [record for record in records if text and record["Id"].startswith(text)]
        if len(matches) > 1:
            raise AmbiguousIdError(
                f"network {text} is ambiguous ({len(matches)} matches found based on ID prefix)"
            )
        return matches[0] if matches else None

    def get(self, network_id: str) -> dict[str, Any]:
        """A user-defined network by its full id."""
        record: dict[str, Any] = read_json(self.home / f"{network_id}.json", default={})
        if not record:
            raise NotFoundError(f"network {network_id[:12]} not found")
        return record

    def add(self, record: dict[str, Any]) -> None:
        """Store a new network; the caller holds the lock. A taken name is Docker's conflict."""
        if self.find(record["Name"]) is not None:
            raise ConflictError(f"network with name {record['Name']} already exists")
        write_json(self.home / f"{record['Id']}.json", record)

    def delete(self, record: dict[str, Any]) -> None:
        """Forget a network; the caller holds the lock and has checked it is unused."""
        (self.home / f"{record['Id']}.json").unlink(missing_ok=True)
