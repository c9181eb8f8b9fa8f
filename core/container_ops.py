"""Container operations beside the lifecycle: pause, unpause, rename and prune, as Docker does them.

Pausing freezes every process of the container through its isolation driver (the cgroup freezer)
and records the status `paused`; `ps` then says `Up ... (Paused)`. A paused container stays
active: `stop` and `kill` thaw it first (core/lifecycle.py), since a frozen process cannot act on
a signal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dockyard.core.containers import Container, ensure_name_free, valid_name
from dockyard.core.drivers import DriverKind
from dockyard.core.engine import Engine
from dockyard.core.errors import ConflictError, DockyardError, NotFoundError, UsageError

__all__ = [
    "PruneReport",
    "pause_container",
    "prune_containers",
    "rename_container",
    "thaw_if_paused",
    "unpause_container",
]


def _isolation(engine: Engine, container: Container) -> Any:
    return engine.driver(DriverKind.ISOLATION, container.config["Dockyard"]["IsolationDriver"])


def _spec(container: Container) -> Any:
    from dockyard.core.spec import ContainerSpec

    try:
        return ContainerSpec.from_json(container.path("spec.json").read_text())
    except FileNotFoundError:
        raise ConflictError(f"container {container.id} is not running") from None


def pause_container(engine: Engine, container: Container) -> None:
    """Freeze every process of a running container (`docker pause`)."""
    if container.status == "paused":
        raise ConflictError(f"container {container.id} is already paused")
    if container.status != "running":
        raise ConflictError(f"container {container.id} is not running")
    _isolation(engine, container).pause(_spec(container))
    if not engine.containers.transition(container, "running", "paused"):
        raise ConflictError(f"container {container.id} is not running")
    engine.hooks.container_paused(container_id=container.id)


def unpause_container(engine: Engine, container: Container) -> None:
    """Thaw a paused container (`docker unpause`)."""
    if container.status != "paused":
        raise ConflictError(f"container {container.id} is not paused")
    _isolation(engine, container).resume(_spec(container))
    if engine.containers.transition(container, "paused", "running"):
        engine.hooks.container_unpaused(container_id=container.id)


def thaw_if_paused(engine: Engine, container: Container) -> None:
    """Unpause a paused container so a signal just sent takes effect. A container that ended
    meanwhile (its cgroups may be gone already) needs no thawing."""
    if container.status != "paused":
        return
    try:
        unpause_container(engine, container)
    except DockyardError:
        try:
            active = engine.containers.load(container.id).running
        except NotFoundError:  # removed already (`--rm`)
            return
        if active:
            raise


def rename_container(engine: Engine, container: Container, new_name: str) -> None:
    """Give a container a new name (`docker rename`), refusing one in use."""
    name = valid_name(new_name)
    with engine.containers.locked():
        current = engine.containers.load(container.id)
        old = current.name
        if name == old:
            raise UsageError("Renaming a container with the same name as its current name")
        ensure_name_free(engine.containers, name)
        current.config["Name"] = name
        engine.containers.save_config(current)
    engine.hooks.container_renamed(container_id=container.id, old_name=old, new_name=name)


@dataclass
class PruneReport:
    """The ids of the removed containers and the bytes their layers held."""

    deleted: list[str] = field(default_factory=list)
    reclaimed: int = 0


def prune_containers(
    engine: Engine, *, until: float | None = None, labels: list[str] | None = None
) -> PruneReport:
    """Remove every stopped container (`docker container prune`), optionally only those created
    before `until` (a Unix time) or carrying every label in `labels` (`key` or `key=value`)."""
    from dockyard.core.lifecycle import remove_container
    from dockyard.core.timestamps import seconds_since

    report = PruneReport()
    for container in engine.containers.list():
        starting = container.status == "created" and container.state.get("MonitorPid")
        if container.running or starting or not _has_labels(container, labels or []):
            continue
        if until is not None:
            age = seconds_since(str(container.config.get("Created", "")))
            if age is None or time.time() - age >= until:
                continue
        try:
            size = engine.storage.diff_size(container.id)
        except DockyardError:
            size = 0
        remove_container(engine, container, force=False, volumes=False)
        report.deleted.append(container.id)
        report.reclaimed += size
    return report


def _has_labels(container: Container, wanted: list[str]) -> bool:
    labels = container.config["Config"].get("Labels") or {}
    for entry in wanted:
        key, sep, value = entry.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True
