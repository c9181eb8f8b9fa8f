"""Named and anonymous volumes: directories under the storage root that outlive containers.

volumes/<name>/volume.json   Docker's volume record (Name, Driver, Mountpoint, Labels, ...)
volumes/<name>/_data         what containers mount
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from dockyard.core.errors import ConflictError, NotFoundError, UsageError
from dockyard.core.store import file_lock, new_id, read_json, write_json
from dockyard.core.timestamps import now_rfc3339

__all__ = ["VolumeStore"]

_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


class VolumeStore:
    """The volumes under one storage root."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def _record(self, name: str) -> Path:
        return self.home / name / "volume.json"

    def create(
        self, name: str | None = None, *, labels: dict[str, str] | None = None, anonymous: bool = False
    ) -> dict[str, Any]:
        """Create a volume (a random 64-hex name when none is given); an existing one is returned."""
        name = name or new_id()
        if not _NAME.fullmatch(name):
            raise UsageError(
                f'volume name "{name}" includes invalid characters, '
                'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed'
            )
        with file_lock(self.home / "lock"):
            existing = read_json(self._record(name), default={})
            if existing:
                return dict(existing)
            data = self.home / name / "_data"
            data.mkdir(parents=True, exist_ok=True)
            record = {
                "CreatedAt": now_rfc3339(),
                "Driver": "local",
                "Labels": labels or None,
                "Mountpoint": str(data),
                "Name": name,
                "Options": None,
                "Scope": "local",
                "Anonymous": anonymous,
            }
            write_json(self._record(name), record)
        return record

    def get(self, name: str) -> dict[str, Any]:
        """A volume's record."""
        if not _NAME.fullmatch(name):
            raise NotFoundError(f"get {name}: no such volume")
        record = read_json(self._record(name), default={})
        if not record:
            raise NotFoundError(f"get {name}: no such volume")
        return dict(record)

    def all(self) -> list[dict[str, Any]]:
        """Every volume, by name."""
        if not self.home.is_dir():
            return []
        records = [
            read_json(entry / "volume.json", default={})
            for entry in sorted(self.home.iterdir())
            if entry.is_dir()
        ]
        return [dict(record) for record in records if record]

    def remove(self, name: str, *, in_use_by: list[str]) -> None:
        """Delete a volume and its data unless a container uses it."""
        record = self.get(name)
        if in_use_by:
            raise ConflictError(f"remove {name}: volume is in use - [{', '.join(in_use_by)}]")
        with file_lock(self.home / "lock"):
            shutil.rmtree(Path(record["Mountpoint"]).parent, ignore_errors=True)
