"""`system prune`: stopped containers, then (with `--volumes`) unused anonymous volumes, then
dangling images (every unused image with `-a`), in Docker's order, so what the removed
containers held becomes removable in the same run. There is no build cache and there are no
user-defined networks yet, so nothing else is pruned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.core.container_ops import prune_containers
from dockyard.core.engine import Engine
from dockyard.core.image_ops import RemovalReport, prune_images
from dockyard.core.volume_usage import prune_volumes

__all__ = ["SystemPruneReport", "prune_system"]


@dataclass
class SystemPruneReport:
    """What `system prune` removed, section by section."""

    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    images: RemovalReport = field(default_factory=RemovalReport)
    reclaimed: int = 0


def prune_system(engine: Engine, *, all_images: bool, volumes: bool) -> SystemPruneReport:
    """Prune containers, volumes (with `volumes`) and images (all unused ones with `all_images`)."""
    report = SystemPruneReport()
    containers = prune_containers(engine)
    report.containers, report.reclaimed = containers.deleted, containers.reclaimed
    if volumes:
        report.volumes, reclaimed = prune_volumes(engine, all_volumes=False)
        report.reclaimed += reclaimed
    report.images = prune_images(engine, all_unused=all_images)
    report.reclaimed += report.images.reclaimed
    return report
