"""Volumes seen together with the containers that mount them: who uses which, how big they are,
and removing the unused ones (`volume prune`, `system prune --volumes`)."""

from __future__ import annotations

import os

from dockyard.core.engine import Engine

__all__ = ["directory_size", "prune_volumes", "volume_users"]


def directory_size(path: str) -> int:
    """Bytes allocated to the files below `path` (symlinks not followed)."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def volume_users(engine: Engine) -> dict[str, list[str]]:
    """Volume name -> ids of the containers that mount it."""
    users: dict[str, list[str]] = {}
    for container in engine.containers.list():
        for mount in container.config["HostConfig"].get("Mounts") or []:
            if mount["Type"] == "volume":
                users.setdefault(mount["Name"], []).append(container.id)
    return users


def prune_volumes(engine: Engine, *, all_volumes: bool) -> tuple[list[str], int]:
    """Remove volumes no container uses: anonymous ones, or every one with `all_volumes`;
    returns their names and the bytes they held."""
    users = volume_users(engine)
    removed: list[str] = []
    reclaimed = 0
    for record in engine.volumes.all():
        if record["Name"] in users or not (all_volumes or record.get("Anonymous")):
            continue
        reclaimed += directory_size(record["Mountpoint"])
        engine.volumes.remove(record["Name"], in_use_by=[])
        removed.append(record["Name"])
    return removed, reclaimed
