"""`top`: the host's `ps` output, cut down to a container's processes, as Docker does it.

A container's processes are those in its pid namespace (found through /proc, whatever isolation
driver made it, and including `exec`'d ones). `ps` runs on the host with the user's arguments
(`-ef` by default: UID PID PPID C STIME TTY TIME CMD); its PID column picks the rows.
"""

from __future__ import annotations

import os

from dockyard.core.containers import Container
from dockyard.core.errors import ConflictError, DockyardError

__all__ = ["DEFAULT_PS_ARGS", "container_pids", "top"]

DEFAULT_PS_ARGS = ("-ef",)


def container_pids(pid: int) -> set[int]:
    """Every process in the pid namespace of process `pid`, as host pids."""
    try:
        target = os.stat(f"/proc/{pid}/ns/pid")
    except FileNotFoundError:
        return set()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            info = os.stat(f"/proc/{entry}/ns/pid")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # exited meanwhile, or not ours to see (then not the container's either)
        if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
            found.add(int(entry))
    return found


def top(container: Container, ps_args: tuple[str, ...] = ()) -> tuple[list[str], list[list[str]]]:
    """The column titles and the container's rows of `ps ARGS` (Docker's parsing: the last
    column takes the rest of the line, so commands keep their spaces)."""
    import subprocess

    if container.status not in ("running", "paused") or not container.pid:
        raise ConflictError(f"container {container.id} is not running")
    pids = container_pids(container.pid)
    try:
        result = subprocess.run(
            ["ps", *(ps_args or DEFAULT_PS_ARGS)], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise DockyardError(f"cannot run ps: {exc.strerror}") from exc
    if result.returncode != 0:
        raise DockyardError(f"ps: {result.stderr.strip() or result.stdout.strip()}")
    lines = result.stdout.splitlines()
    titles = lines[0].split() if lines else []
    if "PID" not in titles:
        raise DockyardError("Couldn't find PID field in ps output")
    column = titles.index("PID")
    rows = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            rows.append(fields)
    return titles, rows
