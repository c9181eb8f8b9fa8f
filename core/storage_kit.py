"""Bookkeeping every storage driver needs, whatever its backend.

    check_id(layer_id)        a layer or container id is a name, never a path
    MountCounts(run_dir)      mount reference counts shared by every process, under a file lock
    failing(driver, action)   an OSError from the backend becomes DriverFailed, saying what failed

Reference counts live in one JSON record under the driver's run directory (`mounts.json`, locked
by `mounts.lock`), so a container mounted by one command is still counted when another command
unmounts it, and a killed command never leaves the lock held (flock dies with its holder).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dockyard.core import store
from dockyard.core.errors import DriverFailed, UsageError

__all__ = ["LAYER_ID", "MountCounts", "check_id", "failing"]

LAYER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_id(layer_id: str) -> str:
    """Return `layer_id` if it is a plain name (no separator, no leading dot); else UsageError."""
    if not LAYER_ID.fullmatch(layer_id):
        raise UsageError(f"invalid layer id {layer_id!r}")
    return layer_id


class MountCounts:
    """Per-layer mount reference counts, shared by every process through a locked record."""

    def __init__(self, run_dir: Path) -> None:
        self._path = run_dir / "mounts.json"
        self._lock = run_dir / "mounts.lock"

    def exists(self) -> bool:
        """Whether any count was ever recorded (so that asking creates no lock file)."""
        return self._path.exists()

    @contextmanager
    def locked(self) -> Iterator[dict[str, int]]:
        """The counts, locked for the block; written back if the block changes them."""
        with store.file_lock(self._lock):
            counts: dict[str, int] = store.read_json(self._path, default={})
            before = dict(counts)
            yield counts
            if counts != before:  # mounts end with a power cut, so their counts need no fsync
                store.write_json(self._path, counts, durable=False)


@contextmanager
def failing(driver: str, action: str) -> Iterator[None]:
    """Report an OSError from the filesystem as DriverFailed, saying what was being done."""
    try:
        yield
    except OSError as exc:
        raise DriverFailed(f"{driver}: {action} failed: {exc}") from exc
