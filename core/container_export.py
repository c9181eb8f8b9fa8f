"""`export`: a container's root filesystem as one tar stream, the inverse of `import`.

The tree is read through the storage driver's mount (counted, so a running container's mount is
shared and kept), not through the container's own view: volumes and tmpfs mounts are not part of
the container's filesystem, as in Docker.
"""

from __future__ import annotations

from typing import BinaryIO

from dockyard.core.containers import Container
from dockyard.core.engine import Engine

__all__ = ["export_container"]


def export_container(engine: Engine, container: Container, out: BinaryIO) -> None:
    """Write the container's whole filesystem to `out` as a tar archive."""
    from dockyard.core.layer_diff import write_diff

    root = engine.storage.mount(container.id)
    try:
        for chunk in write_diff(None, root):
            out.write(chunk)
        out.flush()
    finally:
        engine.storage.unmount(container.id)
