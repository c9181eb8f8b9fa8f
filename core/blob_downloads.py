"""Layer blobs on their way in: downloads that outlive a killed pull.

    layer-blobs/downloads/<hex>        the bytes received so far (a prefix of the blob), or all of it
    layer-blobs/downloads/<hex>.lock   held by the pull that claimed the blob (removed with the claim)

A pull claims each blob it downloads and holds the claim until its image is recorded; the commit then
moves the verified file into the layer blob store (layer_blobs.py). A pull killed on the way leaves
its files here, and the next pull that needs one of those blobs continues it: whatever is there is
hashed again, a blob already complete is not downloaded a second time, and a partial one continues
with an HTTP range. A pull that fails with an error removes what it claimed (nothing half-written);
`collect` (run by `rmi` and `prune`) removes whatever no running pull claims.
"""

from __future__ import annotations

import contextlib
from contextlib import ExitStack
from pathlib import Path

from dockyard.core.digests import digest_hex
from dockyard.core.store import file_lock

__all__ = ["BlobDownloads"]

_LOCK_SUFFIX = ".lock"


class BlobDownloads:
    """The download area of one layer blob store (see the module docstring)."""

    def __init__(self, home: Path) -> None:
        self.home = home

    def path(self, digest: str) -> Path:
        """Where the blob with this digest is downloaded to."""
        return self.home / digest_hex(digest)

    def claim(self, digest: str, *, hold: ExitStack) -> Path:
        """Claim the blob until `hold` closes, waiting for another pull that has it; returns its path."""
        path = self.path(digest)
        hold.enter_context(file_lock(path.with_name(path.name + _LOCK_SUFFIX), removable=True))
        return path

    def collect(self) -> int:
        """Remove downloads no running pull claims, and their lock files; returns the bytes freed."""
        freed = 0
        if not self.home.is_dir():
            return freed
        for name in {entry.name.removesuffix(_LOCK_SUFFIX) for entry in self.home.iterdir()}:
            download = self.home / name
            lock = self.home / (name + _LOCK_SUFFIX)
            with file_lock(lock, blocking=False, removable=True) as free:
                if not free:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    freed += download.stat().st_size
                    download.unlink()
        return freed
