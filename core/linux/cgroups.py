"""cgroups: which hierarchies this host mounts (v1, v2 or both), and one container's cgroups in them.

Hosts come in three layouts, all read from /proc/self/mountinfo:

    pure v2   /sys/fs/cgroup is cgroup2; every controller lives there
    hybrid    v1 controllers at /sys/fs/cgroup/<name>, an extra cgroup2 at /sys/fs/cgroup/unified
              (often with no controller enabled: it only tracks processes)
    pure v1   v1 controllers only

A container's cgroups sit below the cgroup the calling process is in, in every mounted hierarchy
(its own path in each is read from /proc/self/cgroup), not at the hierarchy's root: a process
confined to a delegated subtree can only create cgroups there, and a container started from it
belongs there. A controller is used on v2 when the container's v2 cgroup can have it, else on the
v1 hierarchy that carries it; `controller()` says which, or None when the host has neither.

On a pure v2 host, v2 refuses to enable a controller below a non-root cgroup that holds
processes, so limits need Dockyard to run from a cgroup of its own (a delegated scope); the error
says so rather than dropping the limit.

Functions raise OSError (ValueError for a malformed record); the isolation drivers translate it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dockyard.core.drivers import ResourceUsage

__all__ = ["ContainerCgroups", "Hierarchy", "hierarchies", "own_cgroups", "read_value", "write"]

# cgroup v1 reports "no memory limit" as a huge page-aligned number, not "max".
_UNLIMITED = 1 << 62


@dataclass(frozen=True)
class Hierarchy:
    """A mounted cgroup hierarchy: where, which part of it (mountinfo's root), its controllers.

    `controllers` holds a v1 hierarchy's controllers and `name=X` if named; it is empty for v2.
    """

    version: int
    mount_point: str
    root: str
    controllers: frozenset[str] = frozenset()

    @property
    def mount_data(self) -> str:
        """The data argument that mounts this hierarchy again (inside a cgroup namespace)."""
        if self.version == 2:
            return ""
        names = sorted(self.controllers)
        if all(name.startswith("name=") for name in names):
            names.insert(0, "none")
        return ",".join(names)


def hierarchies(mountinfo: str = "/proc/self/mountinfo") -> list[Hierarchy]:
    """Every cgroup hierarchy mounted in this mount namespace, each once (its first mount)."""
    with open("/proc/cgroups", encoding="ascii") as file:
        known = {line.split()[0] for line in file if line.strip() and not line.startswith("#")}
    found: dict[frozenset[str] | None, Hierarchy] = {}
    with open(mountinfo, encoding="utf-8") as file:
        for line in file:
            fields = line.split()
            separator = fields.index("-")
            fstype, options = fields[separator + 1], fields[separator + 3]
            root, mount_point = _unescape(fields[3]), _unescape(fields[4])
            if fstype == "cgroup2":
                found.setdefault(None, Hierarchy(2, mount_point, root))
            elif fstype == "cgroup":
                controllers = frozenset(
                    word for word in options.split(",") if word in known or word.startswith("name=")
                )
                found.setdefault(controllers, Hierarchy(1, mount_point, root, controllers))
    return list(found.values())


def own_cgroups(path: str = "/proc/self/cgroup") -> dict[frozenset[str] | None, str]:
    """The calling process's cgroup in each hierarchy: None for v2, a v1 hierarchy's controllers."""
    own: dict[frozenset[str] | None, str] = {}
    with open(path, encoding="utf-8") as file:
        for line in file:
            hierarchy_id, controllers, cgroup = line.rstrip("\n").split(":", 2)
            if hierarchy_id == "0" and not controllers:
                own[None] = cgroup
            else:
                own[frozenset(controllers.split(","))] = cgroup
    return own


def read_value(path: str) -> str:
    """The stripped contents of a cgroup file."""
    with open(path, encoding="ascii") as file:
        return file.read().strip()


@dataclass(frozen=True)
class ContainerCgroups:
    """One container's cgroup directories: its v2 cgroup (if v2 is mounted) and one per v1
    hierarchy, keyed by the hierarchy's controllers joined with commas (`cpu,cpuacct`)."""

    unified: str | None = None
    v1: dict[str, str] = field(default_factory=dict)
    # The caller's own v2 cgroup, and the controllers available there (those its parent enabled):
    # the ones the container's v2 cgroup can be given.
    unified_base: str | None = None
    unified_controllers: frozenset[str] = frozenset()

    @classmethod
    def below_own(cls, relative: str) -> ContainerCgroups:
        """The cgroups at `relative` below the calling process's own cgroup in every hierarchy."""
        relative = _checked_relative(relative)
        own = own_cgroups()
        unified: str | None = None
        base: str | None = None
        available: frozenset[str] = frozenset()
        v1: dict[str, str] = {}
        for hierarchy in hierarchies():
            key = None if hierarchy.version == 2 else hierarchy.controllers
            if key not in own:
                continue
            directory = _directory(hierarchy, own[key], relative)
            if hierarchy.version == 2:
                unified = directory
                base = _directory(hierarchy, own[key], "")
                available = frozenset(read_value(os.path.join(base, "cgroup.controllers")).split())
            else:
                v1[",".join(sorted(hierarchy.controllers))] = directory
        return cls(unified, v1, base, available)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form, so later commands find the cgroups wherever they run from."""
        return {
            "unified": self.unified,
            "v1": dict(self.v1),
            "unified_base": self.unified_base,
            "unified_controllers": sorted(self.unified_controllers),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ContainerCgroups:
        """The inverse of `to_dict`."""
        unified, base = data.get("unified"), data.get("unified_base")
        v1, controllers = data.get("v1"), data.get("unified_controllers")
        if not isinstance(v1, dict) or not isinstance(controllers, list):
            raise ValueError("malformed cgroup record")
        return cls(
            None if unified is None else str(unified),
            {str(key): str(value) for key, value in v1.items()},
            None if base is None else str(base),
            frozenset(str(name) for name in controllers),
        )

    def directories(self) -> list[str]:
        """Every directory of the container, v2 first."""
        return ([self.unified] if self.unified else []) + list(dict.fromkeys(self.v1.values()))

    def controller(self, name: str) -> tuple[int, str] | None:
        """Where controller `name` is used: (2, v2 dir) when v2 can carry it, else (1, v1 dir)."""
        if self.unified and name in self.unified_controllers:
            return 2, self.unified
        for controllers, directory in self.v1.items():
            if name in controllers.split(","):
                return 1, directory
        return None

    def create(self) -> None:
        """Create every directory (a v1 cpuset cgroup gets its parent's cpus and mems)."""
        for controllers, directory in [("", self.unified or ""), *self.v1.items()]:
            if directory:
                _make(directory, cpuset="cpuset" in controllers.split(","))

    def enable_unified(self, names: set[str]) -> None:
        """Enable v2 controllers on every level from the caller's own cgroup down to the
        container's parent, so the container's cgroup has their files.

        cgroup v2 refuses (EBUSY) to enable a controller below a non-root cgroup that holds
        processes: the caller's error says so.
        """
        if not self.unified or not self.unified_base or not names:
            return
        levels = [self.unified_base]
        for part in posixpath.relpath(posixpath.dirname(self.unified), self.unified_base).split("/"):
            if part != ".":
                levels.append(posixpath.join(levels[-1], part))
        for level in levels:
            control = os.path.join(level, "cgroup.subtree_control")
            missing = sorted(names - set(read_value(control).split()))
            if missing:
                write(control, " ".join(f"+{name}" for name in missing))

    def join(self, pid: int = 0) -> None:
        """Move process `pid` (0: the caller) into every directory of the container."""
        for directory in self.directories():
            write(os.path.join(directory, "cgroup.procs"), str(pid))

    def pids(self) -> set[int]:
        """Every process in any of the container's cgroups."""
        found: set[int] = set()
        for directory in self.directories():
            with contextlib.suppress(FileNotFoundError):
                found.update(
                    int(line) for line in read_value(os.path.join(directory, "cgroup.procs")).split()
                )
        return found

    def usage(self) -> ResourceUsage:
        """CPU time, memory use and limit (0: none) and task count, from wherever each lives."""
        cpu = 0.0
        cpuacct = self.controller("cpuacct")
        if cpuacct is not None:
            cpu = int(read_value(os.path.join(cpuacct[1], "cpuacct.usage"))) / 1e9
        elif self.unified:
            stats = dict(
                line.split() for line in read_value(os.path.join(self.unified, "cpu.stat")).splitlines()
            )
            cpu = int(stats.get("usage_usec", 0)) / 1e6
        memory = limit = 0
        found = self.controller("memory")
        if found is not None:
            current, maximum = (
                ("memory.current", "memory.max")
                if found[0] == 2
                else ("memory.usage_in_bytes", "memory.limit_in_bytes")
            )
            memory = int(read_value(os.path.join(found[1], current)))
            value = read_value(os.path.join(found[1], maximum))
            limit = 0 if value == "max" or int(value) >= _UNLIMITED else int(value)
        pids = self.controller("pids")
        count = int(read_value(os.path.join(pids[1], "pids.current"))) if pids else len(self.pids())
        block_read, block_write = self._block_io()
        return ResourceUsage(
            cpu_seconds=cpu,
            memory_bytes=memory,
            memory_limit=limit,
            pids=count,
            block_read=block_read,
            block_write=block_write,
        )

    def _block_io(self) -> tuple[int, int]:
        """Bytes read and written: v2 `io.stat` (`rbytes=`, `wbytes=`) or v1 blkio's recursive
        `throttle.io_service_bytes` (`MAJ:MIN Read N`); (0, 0) without either."""
        read = written = 0
        found = self.controller("io") or self.controller("blkio")
        if found is None:
            return 0, 0
        version, directory = found
        name = "io.stat" if version == 2 else "blkio.throttle.io_service_bytes_recursive"
        try:
            lines = read_value(os.path.join(directory, name)).splitlines()
        except FileNotFoundError:  # a v2 controller not enabled for this cgroup
            return 0, 0
        for line in lines:
            fields = line.split()
            if version == 2:
                values = dict(field.partition("=")[::2] for field in fields[1:])
                read += int(values.get("rbytes", 0))
                written += int(values.get("wbytes", 0))
            elif len(fields) == 3 and fields[1] in ("Read", "Write"):
                if fields[1] == "Read":
                    read += int(fields[2])
                else:
                    written += int(fields[2])
        return read, written

    def freeze(self, frozen: bool, *, timeout: float = 5.0) -> None:
        """Freeze or thaw every process: the v1 freezer if mounted, else v2's cgroup.freeze."""
        v1 = self.controller("freezer")
        if v1 is not None:
            state = os.path.join(v1[1], "freezer.state")
            wanted = "FROZEN" if frozen else "THAWED"
            write(state, wanted)
            _wait(lambda: read_value(state) == wanted, timeout, "freezer.state")
        elif self.unified:
            write(os.path.join(self.unified, "cgroup.freeze"), "1" if frozen else "0")
            events = os.path.join(self.unified, "cgroup.events")
            wanted = f"frozen {int(frozen)}"
            _wait(lambda: wanted in read_value(events).splitlines(), timeout, "cgroup.events")
        else:
            raise OSError(errno.ENOTSUP, "no freezer: neither the v1 freezer nor cgroup v2 is mounted")

    def remove(self, *, timeout: float = 5.0) -> None:
        """Kill whatever is left in the cgroups and remove them; missing ones are already gone."""
        if self.pids():
            with contextlib.suppress(OSError):  # a thaw of a cgroup that was never frozen
                self.freeze(False, timeout=timeout)
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _wait(lambda: not self.pids(), timeout, "cgroup.procs to empty")
        for directory in reversed(self.directories()):
            for delay in _backoff(timeout):
                try:
                    os.rmdir(directory)
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY while the last task is still being torn down
                    if exc.errno != errno.EBUSY or delay is None:
                        raise
                    time.sleep(delay)
                else:
                    break


def write(path: str, value: str) -> None:
    """Write one value to a cgroup file, in a single write(2) as the kernel expects."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _directory(hierarchy: Hierarchy, cgroup: str, relative: str) -> str:
    inside = posixpath.relpath(cgroup, hierarchy.root) if cgroup.startswith(hierarchy.root) else cgroup
    return posixpath.normpath(posixpath.join(hierarchy.mount_point, inside.lstrip("/"), relative))


def _checked_relative(relative: str) -> str:
    parts = [part for part in relative.strip("/").split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(f"invalid cgroup path {relative!r}")
    return "/".join(parts)


def _make(directory: str, *, cpuset: bool) -> None:
    missing = []
    path = directory
    while not os.path.isdir(path):
        missing.append(path)
        path = posixpath.dirname(path)
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
        if cpuset:
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not read_value(os.path.join(path, name)):
                    write(os.path.join(path, name), read_value(os.path.join(posixpath.dirname(path), name)))


def _backoff(timeout: float) -> Iterator[float | None]:
    """Delays to sleep between tries for about `timeout` seconds; None marks the last try."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield 0.02
    yield None


def _wait(done: Callable[[], bool], timeout: float, what: str) -> None:
    for delay in _backoff(timeout):
        if done():
            return
        if delay is None:
            raise OSError(errno.ETIMEDOUT, f"timed out waiting for {what}")
        time.sleep(delay)


def _unescape(text: str) -> str:
    """Undo mountinfo's octal escapes (`\\040` for a space)."""
    out, index = [], 0
    while index < len(text):
        if text[index] == "\\" and text[index + 1 : index + 4].isdigit():
            out.append(chr(int(text[index + 1 : index + 4], 8)))
            index += 4
        else:
            out.append(text[index])
            index += 1
    return "".join(out)
