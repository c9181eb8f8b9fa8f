"""Reading a container's json-file log: `--tail`, `--since`, `-t` and `-f`, as `docker logs` does."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from dockyard.core.errors import UsageError

__all__ = ["LogEntry", "parse_since", "read_log"]

LogEntry = tuple[str, str, str]  # (stream, time, text)
_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_since(value: str | None) -> float | None:
    """`--since`: an RFC 3339 time, a Unix timestamp, or a duration before now (`10m`, `1h30m`)."""
    if not value:
        return None
    from dockyard.core.timestamps import seconds_since

    if value[-1] in _UNITS and value[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(value[:-1]) * _UNITS[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    ago = seconds_since(value)
    if ago is None:
        raise UsageError(f"invalid value for --since: {value!r}")
    return time.time() - ago


def _entries(handle: Iterator[bytes]) -> Iterator[LogEntry]:
    for line in handle:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        yield record.get("stream", "stdout"), record.get("time", ""), record.get("log", "")


def _after(entry_time: str, since: float | None) -> bool:
    if since is None:
        return True
    from dockyard.core.timestamps import seconds_since

    ago = seconds_since(entry_time)
    return ago is not None and time.time() - ago >= since


def read_log(
    path: Path, *, tail: str = "all", since: float | None = None, follow: Callable[[], bool] | None = None
) -> Iterator[LogEntry]:
    """Log entries oldest first; with `follow`, keep reading while `follow()` says the container runs."""
    if tail != "all" and not tail.lstrip("-").isdigit():
        raise UsageError(f"invalid value for --tail: {tail!r}")
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        existing = (entry for entry in _entries(handle) if _after(entry[1], since))
        if tail != "all" and int(tail) >= 0:
            yield from deque(existing, maxlen=int(tail))
        else:
            yield from existing
        if follow is None:
            return
        while True:
            line = handle.readline()
            if line.endswith(b"\n"):
                yield from _entries(iter([line]))
                continue
            if line:
                handle.seek(-len(line), 1)
            if not follow():
                yield from _entries(handle)
                return
            time.sleep(0.05)
