"""Process identity on Linux: is pid N still the process we started, or a recycled number?

A pid is reused after its process dies; its start time (field 22 of /proc/PID/stat, in clock
ticks since boot) is not, so the pair names one process for good.
"""

from __future__ import annotations

__all__ = ["alive", "start_time"]


def start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def alive(pid: int, started: int | None) -> bool:
    """Whether `pid` is running and is the process that started at `started` (and not a zombie)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return False
    return started is None or int(fields[19]) == started
