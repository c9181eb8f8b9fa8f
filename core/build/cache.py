"""The build cache: which image a step produced on a given parent, so a rebuild can skip it.

A step's key is the parent image's id and the step's cache text (its `created_by` line, which
carries the substituted arguments and, for COPY and ADD, the checksum of what they copy). The
classic builder finds the same thing by scanning every image's parent and config; one small file
per key makes the lookup a single read. An entry whose image is gone or no longer has that
parent (removed, pruned) is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dockyard.core.engine import Engine
from dockyard.core.errors import NotFoundError

__all__ = ["BuildCache", "cache_key"]


def cache_key(parent: str | None, cache_text: str) -> str:
    """The key of a step: its parent image (None: scratch) and its cache text."""
    material = f"{parent or 'scratch'}\n{cache_text}".encode()
    return hashlib.sha256(material).hexdigest()


class BuildCache:
    """Step results under `<root>/build-cache`, one file per key holding the image id."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._directory: Path = engine.settings.root / "build-cache"

    def lookup(self, parent: str | None, cache_text: str) -> str | None:
        """The image a previous build made for this step on this parent, if it still exists."""
        path = self._directory / cache_key(parent, cache_text)
        try:
            image_id = path.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            image = self._engine.images.get(image_id)
        except NotFoundError:
            return None
        if image.parent != parent:
            return None
        os.utime(path)  # `system df -v` shows a record's LAST USED: the last build that reused it
        return image.id

    def store(self, parent: str | None, cache_text: str, image_id: str) -> None:
        """Remember that this step on this parent made `image_id`."""
        from dockyard.core.store import atomic_write

        self._directory.mkdir(parents=True, exist_ok=True)
        atomic_write(self._directory / cache_key(parent, cache_text), image_id.encode())
