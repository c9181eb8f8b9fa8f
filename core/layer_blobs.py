"""The exact blobs behind the layers: what push and save need and a storage driver cannot give back.

A layer's tar regenerated from a storage driver is not byte-for-byte the tar it was made from, so
its digest would no longer match the config's diff_id. Dockyard therefore keeps, for every layer an
image uses, the blob it came from: the compressed blob a pull downloaded (its digest is the one in
the manifest), the uncompressed tar `import` and `load` were given, or the reproducible gzip that a
push made of such a tar (cached, so a second push sends the same digest). Layout, under the image
home of the storage driver in use:

    layer-blobs/sha256/<hex>             blob content, named by its own digest
    layer-blobs/digests/<hex>.json       {"diff_id", "size", "compression", "sources"} for that blob
    layer-blobs/diff-ids/<hex>.json      {"blobs": [digest, ...]}: the blobs known for a diff_id
    layer-blobs/lock                     held around every read-modify-write of the records

`sources` lists repositories (`registry/path`) known to hold the blob, for cross-repository mounts.

Crash safety: a blob is verified in scratch space and renamed into place, then its digest record is
written, then the diff_id record, each atomically; readers skip a record whose blob is missing, so a
killed command leaves at most an unreferenced file, which `collect` removes. Callers adopt blobs
with the image store's lock held and record the image under that same lock, and `collect` runs with
it held, so garbage collection never sees a blob between its adoption and its image.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dockyard.core.digests import digest_hex
from dockyard.core.layer_streams import Compression
from dockyard.core.store import TEMP_PREFIX, file_lock, read_json, write_json

__all__ = ["LayerBlob", "LayerBlobStore"]

_PREFERENCE = (Compression.GZIP, Compression.ZSTD, Compression.NONE)


@dataclass(frozen=True)
class LayerBlob:
    """A stored layer blob: its digest and size, its compression, and the diff_id it expands to."""

    digest: str
    size: int
    compression: Compression
    diff_id: str


class LayerBlobStore:
    """Layer blobs of one image home (see the module docstring)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._blobs = home / "sha256"
        self._digests = home / "digests"
        self._diff_ids = home / "diff-ids"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with file_lock(self.home / "lock"):
            yield

    def path(self, blob: LayerBlob) -> Path:
        """Where the blob's content is."""
        return self._blobs / digest_hex(blob.digest)

    def get(self, digest: str) -> LayerBlob | None:
        """The blob with this digest, if it is stored."""
        record = read_json(self._digests / f"{digest_hex(digest)}.json", default={})
        if not record or not (self._blobs / digest_hex(digest)).exists():
            return None
        return LayerBlob(digest, int(record["size"]), Compression(record["compression"]), record["diff_id"])

    def for_diff_id(self, diff_id: str) -> list[LayerBlob]:
        """Every stored blob of a layer, compressed ones first (gzip, zstd, then the plain tar)."""
        record = read_json(self._diff_ids / f"{digest_hex(diff_id)}.json", default={})
        found = [blob for blob in (self.get(digest) for digest in record.get("blobs", [])) if blob]
        return sorted(found, key=lambda blob: _PREFERENCE.index(blob.compression))

    def sources(self, digest: str) -> list[str]:
        """Repositories (`registry/path`) known to hold this blob."""
        record = read_json(self._digests / f"{digest_hex(digest)}.json", default={})
        return list(record.get("sources", []))

    def adopt(
        self, staged: Path, blob: LayerBlob, *, source: str | None = None, durable: bool = True
    ) -> None:
        """Move a verified blob file into the store and record it (a no-op if it is there).

        Call with the image store's lock held when an image will use the blob (see the docstring).
        Without `durable`, a flush note (core/deferred_flush.py) covers the blob.
        """
        target = self.path(blob)
        with self._locked():
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                _move(staged, target, durable=durable)
            record_path = self._digests / f"{digest_hex(blob.digest)}.json"
            record = read_json(record_path, default={})
            sources = list(record.get("sources", []))
            if source and source not in sources:
                sources.append(source)
            write_json(
                record_path,
                {
                    "diff_id": blob.diff_id,
                    "size": blob.size,
                    "compression": str(blob.compression),
                    "sources": sources,
                },
                durable=durable,
            )
            index_path = self._diff_ids / f"{digest_hex(blob.diff_id)}.json"
            index = read_json(index_path, default={})
            digests = list(index.get("blobs", []))
            if blob.digest not in digests:
                write_json(index_path, {"blobs": [*digests, blob.digest]}, durable=durable)

    def add_source(self, digest: str, source: str) -> None:
        """Remember that the repository `source` holds this blob."""
        with self._locked():
            record_path = self._digests / f"{digest_hex(digest)}.json"
            record = read_json(record_path, default={})
            if not record or source in record.get("sources", []):
                return
            record["sources"] = [*record.get("sources", []), source]
            write_json(record_path, record)

    def collect(self, used_diff_ids: set[str]) -> int:
        """Remove every blob of a layer no image uses, and leftovers; returns the bytes freed.

        Call with the image store's lock held, `used_diff_ids` read under it.
        """
        freed = 0
        with self._locked():
            keep: set[str] = set()
            for index_path in _records(self._diff_ids):
                diff_id = _digest_of(index_path.name.removesuffix(".json"))
                digests = read_json(index_path, default={}).get("blobs", [])
                if diff_id in used_diff_ids:
                    keep.update(digests)
                    continue
                index_path.unlink(missing_ok=True)
            for record_path in _records(self._digests):
                if _digest_of(record_path.name.removesuffix(".json")) not in keep:
                    record_path.unlink(missing_ok=True)
            if self._blobs.is_dir():
                for entry in self._blobs.iterdir():
                    if _digest_of(entry.name) not in keep:
                        with contextlib.suppress(FileNotFoundError):
                            freed += entry.stat().st_size
                            entry.unlink()
        return freed


def _digest_of(hexpart: str) -> str:
    """The digest a file is named after: sha512 hex is twice as long as sha256's."""
    return ("sha512:" if len(hexpart) == 128 else "sha256:") + hexpart


def _records(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if p.name.endswith(".json") and not p.name.startswith(TEMP_PREFIX)]


def _move(source: Path, target: Path, *, durable: bool) -> None:
    """Rename a file into place (flushed first if `durable`), copying when it is on another
    filesystem."""
    if durable:
        with open(source, "rb") as handle:
            os.fsync(handle.fileno())
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temp = target.with_name(TEMP_PREFIX + target.name)
        shutil.copyfile(source, temp)
        if durable:
            with open(temp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(temp, target)
        source.unlink()
