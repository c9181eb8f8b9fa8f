"""`system df -v`: the space usage behind each `system df` row, item by item, in Docker's tables.

Images are those `images` lists (tagged ones, and untagged ones no other image builds on): SIZE
is the image's layers, SHARED SIZE the part of it other listed images hold too, UNIQUE SIZE the
rest. The build cache is what `build` keeps to skip steps: the hidden step images (untagged, the
parent of another image) a `<root>/build-cache` entry points at, one record each. A record's size
is the layer its step added (0 for a step that only changed the config); it is SHARED when a
listed image holds that layer too, so removing the record frees nothing; LAST USED is the last
build that reused it. These hidden images are not counted under Images, as Docker leaves
intermediate images out of `system df` too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.core.containers import Container
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError
from dockyard.core.images import Image
from dockyard.core.units import human_size

__all__ = ["DiskUsage", "collect_disk_usage", "render_verbose"]

IMAGE_TABLE = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}"
    "\t{{.UniqueSize}}\t{{.Containers}}"
)
CONTAINER_TABLE = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}"
    "\t{{.Status}}\t{{.Names}}"
)
VOLUME_TABLE = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
BUILD_CACHE_TABLE = (
    "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}"
    "\t{{.UsageCount}}\t{{.Shared}}"
)
HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "ID": "ID",
    "CreatedSince": "CREATED",
    "Size": "SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "Containers": "CONTAINERS",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "LocalVolumes": "LOCAL VOLUMES",
    "RunningFor": "CREATED",
    "Status": "STATUS",
    "Names": "NAMES",
    "Name": "VOLUME NAME",
    "Links": "LINKS",
    "CacheType": "CACHE TYPE",
    "LastUsedSince": "LAST USED",
    "UsageCount": "USAGE",
    "Shared": "SHARED",
}
_SECTION_ID_HEADERS = {"Images": "IMAGE ID", "Containers": "CONTAINER ID", "BuildCache": "CACHE ID"}


@dataclass
class CacheRecord:
    """One build-cache entry: its key, the step image it names and the layer that step added."""

    key: str
    image: Image
    layer: str | None
    size: int
    last_used: float
    shared: bool


@dataclass
class DiskUsage:
    """Everything `system df` counts, gathered once."""

    images: list[Image]
    layer_sizes: dict[str, int]
    image_users: dict[str, int]
    containers: list[Container]
    container_sizes: dict[str, int]
    volumes: list[dict[str, Any]]
    volume_sizes: dict[str, int]
    volume_users: dict[str, list[str]]
    build_cache: list[CacheRecord] = field(default_factory=list)


def _layer_size(engine: Engine, chain: str) -> int:
    record = engine.layers.get(chain)
    return record.size if record else 0


def _cache_records(engine: Engine, hidden: dict[str, Image], listed_layers: set[str]) -> list[CacheRecord]:
    """The build-cache entries whose step image still exists and is hidden from `images`."""
    directory = engine.settings.root / "build-cache"
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    by_id = {image.id: image for image in engine.images.list()}
    records = []
    for entry in entries:
        try:
            image_id = Path(entry.path).read_text(encoding="ascii").strip()
            last_used = entry.stat().st_mtime
        except FileNotFoundError:
            continue
        image = hidden.get(image_id)
        if image is None:
            continue
        parent = by_id.get(image.parent or "")
        parent_layers = parent.layers if parent else ()
        layer = image.layers[-1] if len(image.layers) > len(parent_layers) else None
        size = _layer_size(engine, layer) if layer else 0
        records.append(CacheRecord(entry.name, image, layer, size, last_used, layer in listed_layers))
    return records


def collect_disk_usage(engine: Engine) -> DiskUsage:
    """Gather images, containers, volumes and the build cache with their sizes and users."""
    from dockyard.core.volume_usage import directory_size, volume_users

    stored = engine.images.list()
    parents = {image.parent for image in stored if image.parent}
    images = [image for image in stored if image.repo_tags or image.id not in parents]
    hidden = {image.id: image for image in stored if not image.repo_tags and image.id in parents}
    layer_sizes = {chain: _layer_size(engine, chain) for image in images for chain in image.layers}
    containers = engine.containers.list()
    image_users: dict[str, int] = {}
    container_sizes: dict[str, int] = {}
    for container in containers:
        image_users[container.config["Image"]] = image_users.get(container.config["Image"], 0) + 1
        try:
            container_sizes[container.id] = engine.storage.diff_size(container.id)
        except DockyardError:
            container_sizes[container.id] = 0
    volumes = engine.volumes.all()
    return DiskUsage(
        images=images,
        layer_sizes=layer_sizes,
        image_users=image_users,
        containers=containers,
        container_sizes=container_sizes,
        volumes=volumes,
        volume_sizes={record["Name"]: directory_size(record["Mountpoint"]) for record in volumes},
        volume_users=volume_users(engine),
        build_cache=_cache_records(engine, hidden, set(layer_sizes)),
    )


def _image_rows(usage: DiskUsage, *, trunc: bool) -> list[dict[str, Any]]:
    from dockyard.core.image_listing import display_id, go_time, since
    from dockyard.core.reference import parse_reference

    holders: dict[str, int] = {}
    for image in usage.images:
        for chain in set(image.layers):
            holders[chain] = holders.get(chain, 0) + 1
    rows = []
    for image in usage.images:
        repository = tag = "<none>"
        if image.repo_tags:
            first = parse_reference(image.repo_tags[0])
            repository, tag = first.familiar_name(), first.tag or "<none>"
        size = sum(usage.layer_sizes[chain] for chain in set(image.layers))
        shared = sum(usage.layer_sizes[chain] for chain in set(image.layers) if holders[chain] > 1)
        rows.append(
            {
                "Repository": repository,
                "Tag": tag,
                "ID": display_id(image.id, not trunc),
                "CreatedAt": go_time(image.created),
                "CreatedSince": since(image.created),
                "Size": human_size(size),
                "SharedSize": human_size(shared),
                "UniqueSize": human_size(size - shared),
                "Containers": str(usage.image_users.get(image.id, 0)),
            }
        )
    return rows


def _container_rows(usage: DiskUsage, *, trunc: bool) -> list[dict[str, Any]]:
    from dockyard.core.container_listing import container_rows

    rows = container_rows(usage.containers, no_trunc=not trunc, size=False)
    for row, container in zip(rows, usage.containers, strict=True):
        mounts = container.config["HostConfig"].get("Mounts") or []
        row["LocalVolumes"] = str(sum(1 for mount in mounts if mount["Type"] == "volume"))
        row["Size"] = human_size(usage.container_sizes[container.id])
    return rows


def _volume_rows(usage: DiskUsage) -> list[dict[str, Any]]:
    return [
        {
            "Name": record["Name"],
            "Driver": record.get("Driver", "local"),
            "Mountpoint": record["Mountpoint"],
            "Links": str(len(usage.volume_users.get(record["Name"], []))),
            "Size": human_size(usage.volume_sizes[record["Name"]]),
        }
        for record in usage.volumes
    ]


def _build_cache_rows(usage: DiskUsage, *, trunc: bool) -> list[dict[str, Any]]:
    import time

    from dockyard.core.image_listing import since
    from dockyard.core.units import human_duration_ago

    rows = []
    for record in sorted(usage.build_cache, key=lambda item: item.last_used, reverse=True):
        history = record.image.config.get("history") or [{}]
        rows.append(
            {
                "ID": record.key[:12] if trunc else record.key,
                "CacheType": "regular",
                "Size": human_size(record.size),
                "CreatedSince": since(record.image.created),
                "LastUsedSince": human_duration_ago(max(time.time() - record.last_used, 0.0)),
                "UsageCount": "N/A",
                "Shared": "true" if record.shared else "false",
                "Description": str(history[-1].get("created_by", "")),
            }
        )
    return rows


def _table(section: str, rows: list[dict[str, Any]], default: str) -> str:
    from dockyard.core.formatting import format_rows

    headers = {**HEADERS, "ID": _SECTION_ID_HEADERS.get(section, "ID")}
    return format_rows("", rows, headers=headers, default=default)


def render_verbose(engine: Engine, template: str | None) -> str:
    """The whole output of `system df -v`: four tables, or the user's template run once against
    {Images, Containers, Volumes, BuildCache} (lists of the rows the tables show), as Docker does."""
    usage = collect_disk_usage(engine)
    trunc = template in (None, "", "table")
    images = _image_rows(usage, trunc=trunc)
    containers = _container_rows(usage, trunc=trunc)
    volumes = _volume_rows(usage)
    cache = _build_cache_rows(usage, trunc=trunc)
    if not trunc:
        from dockyard.core.formatting import format_once

        data = {"Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": cache}
        return format_once(template or "", data)
    cache_size = sum(record.size for record in usage.build_cache)
    return (
        "Images space usage:\n\n"
        + _table("Images", images, IMAGE_TABLE)
        + "\nContainers space usage:\n\n"
        + _table("Containers", containers, CONTAINER_TABLE)
        + "\nLocal Volumes space usage:\n\n"
        + _table("Volumes", volumes, VOLUME_TABLE)
        + f"\nBuild cache usage: {human_size(cache_size)}\n\n"
        + _table("BuildCache", cache, BUILD_CACHE_TABLE)
    )
