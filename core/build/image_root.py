"""An image's file tree, mounted for reading while a build looks into it.

COPY --from reads another stage's files, COPY --chown and USER names are looked up in the image's
/etc/passwd and /etc/group, and COPY decides whether an unspelled destination is an existing
directory: all of them need the image's merged tree, not a container.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from dockyard.core.digests import digest_hex
from dockyard.core.engine import Engine
from dockyard.core.images import Image

__all__ = ["mounted_image"]


@contextmanager
def mounted_image(engine: Engine, image: Image | None) -> Iterator[str]:
    """The merged tree of `image` (an empty directory for scratch); callers only read it."""
    if image is None or not image.layers:
        with tempfile.TemporaryDirectory(prefix="dockyard-empty-root-") as empty:
            yield empty
        return
    layer_id = digest_hex(image.layers[-1])
    root = engine.storage.mount(layer_id)
    try:
        yield str(root)
    finally:
        engine.storage.unmount(layer_id)
