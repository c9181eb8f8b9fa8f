"""Process identity on Linux: is pid N still the process we started, or a recycled number?

A pid is reused after its process dies; its start time (field 22 of /proc/PID/stat, in clock
ticks since boot) is not, so the pair names one process for good.
"""

from __future__ import annotations

__all__ = ["alive", "start_time"]


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat from the state on (field 3), or None when there is no such process."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    return data[data.rindex(b")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None when there is no such process."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def alive(pid: int, started: int | None) -> bool:
    """Whether `pid` is running and is the process that started at `started` (and not a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == b"Z":
        return False
    return started is None or int(fields[19]) == started
