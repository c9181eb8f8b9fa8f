"""`system df`: the space images, containers, volumes and the build cache take, and how much of it
could be reclaimed, in Docker's rows.

Images: their layers, each counted once however many images share it; active images are those a
container uses, and what only inactive images hold is reclaimable. Containers: their read-write
layers; a stopped container's is reclaimable. Local volumes: their data; an unused volume's is
reclaimable. Build cache: Dockyard has none yet, so it shows zeros.
"""

from __future__ import annotations

from typing import Any

from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError
from dockyard.core.units import human_size
from dockyard.core.volume_usage import directory_size, volume_users

__all__ = ["DF_HEADERS", "DF_TABLE", "disk_usage_rows"]

DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}


def _reclaimable(reclaimable: int, total: int) -> str:
    """Docker's RECLAIMABLE cell: `1.2MB (40%)`, without the share when there is nothing."""
    if total > 0:
        return f"{human_size(reclaimable)} ({reclaimable * 100 // total}%)"
    return human_size(reclaimable)


def _row(kind: str, total: int, active: int, size: int, reclaimable: str) -> dict[str, Any]:
    return {
        "Type": kind,
        "TotalCount": str(total),
        "Active": str(active),
        "Size": human_size(size),
        "Reclaimable": reclaimable,
    }


def disk_usage_rows(engine: Engine) -> list[dict[str, Any]]:
    """The four rows of `docker system df`, with the fields `--format` may name."""
    containers = engine.containers.list()
    used_images = {container.config["Image"] for container in containers}
    images = engine.images.list()
    layer_sizes: dict[str, int] = {}
    active_layers: set[str] = set()
    for image in images:
        for chain in image.layers:
            record = engine.layers.get(chain)
            layer_sizes[chain] = record.size if record else 0
            if image.id in used_images:
                active_layers.add(chain)
    image_size = sum(layer_sizes.values())
    image_used = sum(layer_sizes[chain] for chain in active_layers)

    container_size = container_idle = 0
    for container in containers:
        try:
            size = engine.storage.diff_size(container.id)
        except DockyardError:
            size = 0
        container_size += size
        container_idle += 0 if container.running else size

    users = volume_users(engine)
    volumes = engine.volumes.all()
    volume_sizes = {record["Name"]: directory_size(record["Mountpoint"]) for record in volumes}
    volume_idle = sum(size for name, size in volume_sizes.items() if name not in users)
    volume_size = sum(volume_sizes.values())
    return [
        _row(
            "Images",
            len(images),
            sum(1 for image in images if image.id in used_images),
            image_size,
            _reclaimable(image_size - image_used, image_size),
        ),
        _row(
            "Containers",
            len(containers),
            sum(1 for container in containers if container.status == "running"),
            container_size,
            _reclaimable(container_idle, container_size),
        ),
        _row(
            "Local Volumes",
            len(volumes),
            sum(1 for name in volume_sizes if name in users),
            volume_size,
            _reclaimable(volume_idle, volume_size),
        ),
        _row("Build Cache", 0, 0, 0, _reclaimable(0, 0)),
    ]
