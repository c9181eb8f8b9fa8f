"""`dockyard ps`: rows in Docker's shape, its STATUS wording, its filters."""

from __future__ import annotations

import shlex
from typing import Any

from dockyard.core.containers import Container
from dockyard.core.timestamps import seconds_since
from dockyard.core.units import human_duration, human_size

__all__ = ["PS_HEADERS", "PS_TABLE", "container_rows", "status_text"]

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_SIZE_TABLE = PS_TABLE + "\t{{.Size}}"
PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Status": "STATUS",
    "State": "STATE",
    "Ports": "PORTS",
    "Names": "NAMES",
    "Size": "SIZE",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
}
FILTER_KEYS = ("status", "name", "ancestor", "id", "label", "exited")


def status_text(container: Container) -> str:
    """Docker's STATUS column: `Up 3 minutes`, `Exited (0) 2 seconds ago`, `Created`..."""
    state = container.state
    status = container.status
    if status in ("running", "paused"):
        since = seconds_since(str(state.get("StartedAt", ""))) or 0.0
        return f"Up {human_duration(since)}" + (" (Paused)" if status == "paused" else "")
    if status == "restarting":
        since = seconds_since(str(state.get("FinishedAt", ""))) or 0.0
        return f"Restarting ({state.get('ExitCode', 0)}) {human_duration(since)} ago"
    if status == "exited":
        since = seconds_since(str(state.get("FinishedAt", ""))) or 0.0
        return f"Exited ({state.get('ExitCode', 0)}) {human_duration(since)} ago"
    return status.capitalize()


def _command(container: Container, no_trunc: bool) -> str:
    words = [str(container.config.get("Path", "")), *container.config.get("Args", [])]
    text = " ".join(shlex.quote(word) if " " in word else word for word in words if word)
    if not no_trunc and len(text) > 20:
        text = text[:19] + "…"
    return f'"{text}"'


def container_rows(containers: list[Container], *, no_trunc: bool, size: bool) -> list[dict[str, Any]]:
    """One row per container with every field `--format` may name."""
    rows = []
    for container in containers:
        created = str(container.config.get("Created", ""))
        labels = container.config["Config"].get("Labels") or {}
        rows.append(
            {
                "ID": container.id if no_trunc else container.id[:12],
                "Image": container.config["Config"].get("Image", ""),
                "Command": _command(container, no_trunc),
                "CreatedAt": created,
                "RunningFor": human_duration(seconds_since(created) or 0.0) + " ago",
                "Status": status_text(container),
                "State": container.status,
                "Ports": "",
                "Names": container.name,
                "Labels": ",".join(f"{key}={value}" for key, value in labels.items()),
                "Mounts": ",".join(
                    m.get("Name") or m["Source"] for m in container.config["HostConfig"].get("Mounts") or []
                ),
                "Networks": container.config["HostConfig"].get("NetworkMode", ""),
                "Size": human_size(int(container.state.get("SizeRw") or 0)) if size else "",
            }
        )
    return rows


def matches(container: Container, filters: list[tuple[str, str]], image_ids: dict[str, set[str]]) -> bool:
    """Docker's rule: values of one key are alternatives, different keys must all match."""
    by_key: dict[str, list[str]] = {}
    for key, value in filters:
        by_key.setdefault(key, []).append(value)
    for key, values in by_key.items():
        if key == "status" and container.status not in values:
            return False
        if key == "name" and not any(value.removeprefix("/") in container.name for value in values):
            return False
        if key == "id" and not any(container.id.startswith(value) for value in values):
            return False
        if key == "exited" and not (
            container.status == "exited" and str(container.state.get("ExitCode", 0)) in values
        ):
            return False
        if key == "ancestor" and not any(
            container.config["Image"] in image_ids.get(value, set()) for value in values
        ):
            return False
        if key == "label":
            labels = container.config["Config"].get("Labels") or {}
            for value in values:
                name, has_value, expected = value.partition("=")
                if name not in labels or (has_value and labels[name] != expected):
                    return False
    return True
