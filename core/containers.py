"""The container store: one directory per container holding its configuration and its state.

    containers/<id>/config.json   what was asked for: image, command, host settings, drivers
    containers/<id>/state.json    what is true now: status, pids, exit code, times
    containers/<id>/...           files the container mounts (hostname, hosts, resolv.conf), logs
    containers/lock               held while names are chosen and records are created or removed

The monitor process rewrites state.json as the container runs; every other command reads it and
corrects it when the processes it names are gone (a monitor killed with SIGKILL cannot record an
exit), so `ps` never shows a dead container as running.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dockyard.core.errors import AmbiguousIdError, ConflictError, NotFoundError, UsageError
from dockyard.core.procs import alive, start_time
from dockyard.core.store import TEMP_PREFIX, file_lock, read_json, write_json

__all__ = [
    "ACTIVE_STATUSES",
    "Container",
    "ContainerStore",
    "ensure_name_free",
    "running_state",
    "valid_name",
]

ACTIVE_STATUSES = ("running", "paused", "restarting")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def valid_name(name: str) -> str:
    """Docker's container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, an optional leading `/`."""
    bare = name.removeprefix("/")
    if len(bare) < 2 or not bare[0].isalnum() or not set(bare) <= _NAME_CHARS:
        raise UsageError(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return bare


class Container:
    """A container's configuration and state as read from its directory."""

    def __init__(self, directory: Path, config: dict[str, Any], state: dict[str, Any]) -> None:
        self.directory = directory
        self.config = config
        self.state = state

    @property
    def id(self) -> str:
        """The 64-hex container id."""
        return str(self.config["Id"])

    @property
    def name(self) -> str:
        """The container's name, without Docker's leading slash."""
        return str(self.config["Name"])

    @property
    def status(self) -> str:
        """created, running, paused, restarting, exited, removing or dead."""
        return str(self.state.get("Status", "created"))

    @property
    def pid(self) -> int:
        """The host pid of the container's first process, 0 when not running."""
        return int(self.state.get("Pid") or 0)

    @property
    def running(self) -> bool:
        """Whether the container has live processes."""
        return self.status in ACTIVE_STATUSES

    def path(self, name: str) -> Path:
        """A file in the container's directory."""
        return self.directory / name


class ContainerStore:
    """Containers under one storage root."""

    def __init__(self, home: Path) -> None:
        self.home = home

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store lock: names and the set of containers do not change meanwhile."""
        with file_lock(self.home / "lock"):
            yield

    def ids(self) -> list[str]:
        """Every container id."""
        if not self.home.is_dir():
            return []
        return [
            entry.name
            for entry in self.home.iterdir()
            if len(entry.name) == 64 and (entry / "config.json").exists()
        ]

    def load(self, container_id: str) -> Container:
        """The container with this exact id, its state corrected if its processes died unseen."""
        directory = self.home / container_id
        try:
            config = read_json(directory / "config.json")
        except FileNotFoundError:
            raise NotFoundError(f"No such container: {container_id[:12]}") from None
        state = read_json(directory / "state.json", default={"Status": "created"})
        container = Container(directory, config, state)
        self._correct_state(container)
        return container

    def _correct_state(self, container: Container) -> None:
        state = container.state
        if state.get("Status") not in ACTIVE_STATUSES:
            return
        monitor_alive = alive(int(state.get("MonitorPid") or 0), state.get("MonitorStart"))
        process_alive = alive(int(state.get("Pid") or 0), state.get("PidStart"))
        if monitor_alive or process_alive:
            return
        with file_lock(container.path("state.lock")):
            fresh = read_json(container.path("state.json"), default={})
            if fresh.get("Status") not in ACTIVE_STATUSES:
                container.state = fresh
                return
            from dockyard.core.timestamps import now_rfc3339

            fresh.update(
                Status="exited",
                Pid=0,
                ExitCode=fresh.get("ExitCode") or 255,
                FinishedAt=now_rfc3339(),
                Error="the container's monitor died before the container exited",
            )
            write_json(container.path("state.json"), fresh)
            container.state = fresh

    def update_state(self, container: Container, *, durable: bool = True, **changes: Any) -> dict[str, Any]:
        """Merge `changes` into the container's state record atomically.

        `durable=False` skips the fsyncs (about 1 ms each, far more on a busy disk) for runtime
        details a power cut makes moot, since the container's processes, mounts and network end
        with it: its network settings, the monitor's bookkeeping before a start. What `ps -a` must
        tell after a crash (running with its pids, then the exit) stays durable; a killed process
        loses nothing either way, the kernel keeps what was written.
        """
        with file_lock(container.path("state.lock")):
            state: dict[str, Any] = read_json(container.path("state.json"), default={"Status": "created"})
            state.update(changes)
            write_json(container.path("state.json"), state, durable=durable)
        container.state = state
        return state

    def transition(self, container: Container, old: str, new: str) -> bool:
        """Change the status from `old` to `new` atomically; False (nothing written) when the
        status is no longer `old`, e.g. the monitor recorded an exit meanwhile."""
        with file_lock(container.path("state.lock")):
            state: dict[str, Any] = read_json(container.path("state.json"), default={"Status": "created"})
            if state.get("Status") != old:
                container.state = state
                return False
            state["Status"] = new
            write_json(container.path("state.json"), state)
        container.state = state
        return True

    def list(self) -> list[Container]:
        """Every container, newest first."""
        found = []
        for container_id in self.ids():
            try:
                found.append(self.load(container_id))
            except NotFoundError:
                continue
        return sorted(found, key=lambda c: str(c.config.get("Created", "")), reverse=True)

    def names(self) -> set[str]:
        """The names in use."""
        return {container.name for container in self.list()}

    def resolve(self, text: str) -> Container:
        """A container by full id, exact name, or unique id prefix (Docker's order)."""
        name = text.removeprefix("/")
        containers = self.list()
        for container in containers:
            if container.id == text or container.name == name:
                return container
        matches = [container for container in containers if container.id.startswith(text)] if text else []
        if len(matches) > 1:
            raise AmbiguousIdError(f"multiple containers found with provided prefix: {text}")
        if not matches:
            raise NotFoundError(f"No such container: {text}")
        return matches[0]

    def create(self, config: dict[str, Any]) -> Container:
        """Record a new container; the caller holds the lock and has checked the name."""
        directory = self.home / str(config["Id"])
        if directory.exists():
            raise ConflictError(f"container {config['Id']} already exists")
        directory.mkdir(parents=True)
        # A state record lost to a power cut reads as this one (see `load`): no fsync needed.
        write_json(directory / "state.json", {"Status": "created"}, durable=False)
        write_json(directory / "config.json", config)
        return Container(directory, config, {"Status": "created"})

    def save_config(self, container: Container) -> None:
        """Rewrite a container's configuration (rename, restart count...)."""
        write_json(container.path("config.json"), container.config)

    def delete(self, container: Container) -> None:
        """Remove a container's directory; the caller has released its layer and network."""
        staging = self.home / f"{TEMP_PREFIX}removed-{container.id}"
        os.replace(container.directory, staging)
        shutil.rmtree(staging, ignore_errors=True)


def ensure_name_free(store: ContainerStore, name: str) -> None:
    """Docker's conflict message when a name is taken."""
    for container in store.list():
        if container.name == name:
            raise ConflictError(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{container.id}". You have to remove (or rename) that container to be able to '
                "reuse that name."
            )


def running_state(pid: int) -> dict[str, Any]:
    """The state of a container whose first process `pid` has just started."""
    from dockyard.core.timestamps import now_rfc3339

    return {
        "Status": "running",
        "Pid": pid,
        "PidStart": start_time(pid),
        "StartedAt": now_rfc3339(),
        "ExitCode": 0,
        "Error": "",
        "StopRequested": False,
    }
