"""`system df`: the space images, containers, volumes and the build cache take, and how much of it
could be reclaimed, in Docker's rows.

Images: their layers, each counted once however many images share it; active images are those a
container uses, and what only inactive images hold is reclaimable. Containers: their read-write
layers; a stopped container's is reclaimable. Local volumes: their data; an unused volume's is
reclaimable. Build cache: the hidden step images `build` keeps (see disk_usage_detail); a record
whose layer no listed image holds is reclaimable, and the row shows no share, as Docker's does.
"""

from __future__ import annotations

from typing import Any

from dockyard.core.engine import Engine
from dockyard.core.units import human_size

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
    from dockyard.core.disk_usage_detail import collect_disk_usage

    usage = collect_disk_usage(engine)
    used_images = set(usage.image_users)
    active_layers = {chain for image in usage.images if image.id in used_images for chain in image.layers}
    image_size = sum(usage.layer_sizes.values())
    image_used = sum(usage.layer_sizes[chain] for chain in active_layers)

    container_size = sum(usage.container_sizes.values())
    container_idle = sum(
        usage.container_sizes[container.id] for container in usage.containers if not container.running
    )
    volume_size = sum(usage.volume_sizes.values())
    volume_idle = sum(size for name, size in usage.volume_sizes.items() if name not in usage.volume_users)
    cache_size = sum(record.size for record in usage.build_cache)
    cache_idle = sum(record.size for record in usage.build_cache if not record.shared)
    return [
        _row(
            "Images",
            len(usage.images),
            sum(1 for image in usage.images if image.id in used_images),
            image_size,
            _reclaimable(image_size - image_used, image_size),
        ),
        _row(
            "Containers",
            len(usage.containers),
            sum(1 for container in usage.containers if container.status == "running"),
            container_size,
            _reclaimable(container_idle, container_size),
        ),
        _row(
            "Local Volumes",
            len(usage.volumes),
            sum(1 for name in usage.volume_sizes if name in usage.volume_users),
            volume_size,
            _reclaimable(volume_idle, volume_size),
        ),
        _row(
            "Build Cache",
            len(usage.build_cache),
            sum(1 for record in usage.build_cache if record.shared),
            cache_size,
            human_size(cache_idle),
        ),
    ]
