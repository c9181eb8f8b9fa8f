"""The event log: what happened to containers and images, kept for `docker events`.

Docker's daemon keeps events in memory; without a daemon they live in a file under the storage
root, `events/events.log`, one JSON object per line in the shape `docker events --format json`
prints:

    {"status": "start", "id": "<container id>", "from": "busybox", "Type": "container",
     "Action": "start", "Actor": {"ID": "<container id>", "Attributes": {"image": "busybox",
     "name": "web"}}, "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789}

Any process may append: the CLI, and the monitor's starter and cleaner. Each event is one write
of one line under an exclusive lock, so lines never interleave. When the file passes MAX_BYTES it
is replaced by its newest half (Docker too keeps only recent events); a follower notices the new
file and resumes after the last event it printed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dockyard.core.store import atomic_write, file_lock

__all__ = ["MAX_BYTES", "EventLog", "event_log", "new_event"]

MAX_BYTES = 4 << 20
POLL_INTERVAL = 0.1
_LEGACY_TYPES = ("container", "image")  # events that also carry Docker's old status/id/from


def event_log(root: Path) -> EventLog:
    """The event log of the storage root `root`."""
    return EventLog(root / "events")


def new_event(
    kind: str, action: str, actor_id: str, attributes: dict[str, str], *, time_ns: int | None = None
) -> dict[str, Any]:
    """An event record in Docker's shape, stamped now unless `time_ns` is given."""
    stamp = time.time_ns() if time_ns is None else time_ns
    event: dict[str, Any] = {}
    if kind in _LEGACY_TYPES:
        event.update(status=action, id=actor_id)
        if kind == "container" and "image" in attributes:
            event["from"] = attributes["image"]
    event.update(
        Type=kind,
        Action=action,
        Actor={"ID": actor_id, "Attributes": dict(attributes)},
        scope="local",
        time=stamp // 1_000_000_000,
        timeNano=stamp,
    )
    return event


class EventLog:
    """The events of one storage root."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "events.log"

    def append(self, event: dict[str, Any]) -> None:
        """Add one event; trims the log to its newest half once it passes MAX_BYTES."""
        line = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        with file_lock(self.directory / "events.lock"):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > MAX_BYTES:
                self._trim()

    def _trim(self) -> None:
        data = self.path.read_bytes()
        cut = data.find(b"\n", len(data) // 2) + 1
        atomic_write(self.path, data[cut:], mode=0o600)

    def events(
        self, *, since_ns: int = 0, until_ns: int | None = None, follow: Callable[[], bool] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events stamped from `since_ns` to `until_ns` (inclusive), in the order they were logged.

        With `follow`, keep reading new events while `follow()` is true and `until_ns` has not
        passed. The file is read on from where the last pass stopped; a trimmed (replaced) log is
        read again from its start, skipping what was already seen by time.
        """
        inode, position, newest, floor = -1, 0, 0, since_ns
        while True:
            try:
                handle = self.path.open("rb")
            except FileNotFoundError:
                handle = None
            if handle is not None:
                with handle:
                    info = os.fstat(handle.fileno())
                    if info.st_ino != inode or info.st_size < position:
                        if inode != -1:  # trimmed: what is left was partly read already
                            floor = max(floor, newest + 1)
                        inode, position = info.st_ino, 0
                    handle.seek(position)
                    for line in handle:
                        if not line.endswith(b"\n"):
                            break  # being written right now: the next pass reads it whole
                        position += len(line)
                        event = _parse(line)
                        if event is None:
                            continue
                        stamp = int(event.get("timeNano") or 0)
                        newest = max(newest, stamp)
                        if floor <= stamp and (until_ns is None or stamp <= until_ns):
                            yield event
            if follow is None or not follow() or (until_ns is not None and time.time_ns() > until_ns):
                return
            time.sleep(POLL_INTERVAL)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None
