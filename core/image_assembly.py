"""Assembling an image from verified layer blobs: layers bottom-up, then one locked commit.

`pull` and `load` both end here. Each layer is applied by the storage driver straight from its blob
through decompression (capped against bombs) and must expand to the config's diff_id, or it is
removed again. Layers stay locked until the image that uses them is recorded. The commit then takes
the image store's lock once: the layer blobs move into the layer blob store, the manifest is stored,
the image is recorded and tagged. A failure or a kill at any point before that leaves no image and
no half-built layer; finished layers without an image are reused by the next attempt or collected by
the next `rmi`/`prune`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from dockyard.core.blob_downloads import BlobDownloads
from dockyard.core.drivers import DetachedDiffs
from dockyard.core.engine import Engine
from dockyard.core.errors import ContentError, NotFoundError
from dockyard.core.layer_blobs import LayerBlob, LayerBlobStore
from dockyard.core.layer_streams import Compression, open_layer
from dockyard.core.layers import LayerRecord, chain_id
from dockyard.core.timestamps import now_rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.core.deferred_flush import FlushNotes
    from dockyard.core.images import ImageStore

__all__ = [
    "CommitResult",
    "ImageAssembler",
    "LayerSource",
    "blob_downloads",
    "collect_layer_blobs",
    "config_diff_ids",
    "discard_unused_layers",
    "keep_layer_tar",
    "layer_blobs",
    "write_off_layers",
]


def layer_blobs(engine: Engine) -> LayerBlobStore:
    """The layer blob store of the storage driver in use."""
    return LayerBlobStore(engine.image_home / "layer-blobs")


def blob_downloads(engine: Engine) -> BlobDownloads:
    """Where pulls download the layer blobs of the storage driver in use."""
    return BlobDownloads(engine.image_home / "layer-blobs" / "downloads")


def keep_layer_tar(engine: Engine, staged: Path, *, diff_id: str, size: int) -> None:
    """Keep an uncompressed layer tar (already applied) as the layer's blob; image store lock held."""
    layer_blobs(engine).adopt(staged, LayerBlob(diff_id, size, Compression.NONE, diff_id))


def write_off_layers(engine: Engine, images: ImageStore, torn: set[str]) -> None:
    """After a crash cut a flush short: remove every image using one of the `torn` layers (their
    files may be empty), then those layers and the blobs no layer needs (core/deferred_flush.py)."""
    with images.locked():
        for image_id in images.ids():
            if torn.intersection(images.layers_of(image_id)):
                images.delete(image_id)
        engine.layers.remove_unused(images.used_layers(), also=torn)
        collect_layer_blobs(engine)


def discard_unused_layers(engine: Engine) -> None:
    """After a failed pull or load: remove the layers no image uses (ours are unlocked by now).

    Layers other commands are still building are locked, and `remove_unused` leaves them alone.
    """
    with engine.images.locked():
        engine.layers.remove_unused(engine.images.used_layers())
        collect_layer_blobs(engine)


def collect_layer_blobs(engine: Engine) -> int:
    """Drop the blobs of layers that are gone and downloads no pull claims (image store lock
    held); returns the bytes freed."""
    records = (engine.layers.get(chain) for chain in engine.layers.chain_ids())
    freed = layer_blobs(engine).collect({record.diff_id for record in records if record is not None})
    return freed + blob_downloads(engine).collect()


def config_diff_ids(config: bytes) -> list[str]:
    """The diff_ids an image config lists, checked to be a list of strings."""
    try:
        parsed = json.loads(config)
    except ValueError as exc:
        raise ContentError(f"image config is not JSON: {exc}") from exc
    diff_ids = parsed.get("rootfs", {}).get("diff_ids") if isinstance(parsed, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(item, str) for item in diff_ids):
        raise ContentError("image config has no rootfs.diff_ids list")
    return diff_ids


@dataclass(frozen=True)
class LayerSource:
    """Where a layer comes from: its blob, and the verified file in scratch space (None if stored)."""

    blob: LayerBlob
    staged: Path | None = None


@dataclass(frozen=True)
class CommitResult:
    """What a commit recorded: the image id and, per tag, the image the tag pointed at before."""

    image_id: str
    previous: dict[str, str | None]


class _CountingReader:
    """Reports how many (compressed) bytes have been read, for the Extracting progress bar."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None]) -> None:
        self._raw = raw
        self._progress = progress
        self._count = 0

    def read(self, size: int = -1) -> bytes:
        """Read and report the running total."""
        chunk = self._raw.read(size)
        self._count += len(chunk)
        self._progress(self._count)
        return chunk

    def readable(self) -> bool:
        """Always True: this is a reader."""
        return True


class ImageAssembler:
    """Applies an image's layers in order, then records the image; use inside `with ExitStack()`."""

    def __init__(self, engine: Engine, *, hold: ExitStack) -> None:
        self._engine = engine
        self._hold = hold
        self._blobs = layer_blobs(engine)
        self._parent: str | None = None
        self._chains: list[str] = []
        self._sources: list[LayerSource] = []
        self._size = 0
        self._notes: FlushNotes | None = None

    @property
    def hold(self) -> ExitStack:
        """What keeps the layers locked until the commit."""
        return self._hold

    def detached_driver(self) -> DetachedDiffs | None:
        """The storage driver when it can stage layers concurrently (see layer_staging.py)."""
        driver = self._engine.layers.driver
        return driver if isinstance(driver, DetachedDiffs) else None

    def blob_path(self, source: LayerSource) -> Path:
        """The file a layer's blob is read from: its download, or the stored blob."""
        return source.staged or self._blobs.path(source.blob)

    def add_record(self, record: LayerRecord, source: LayerSource) -> None:
        """Append a layer put in place elsewhere (layer_staging.py), locked until the commit."""
        self._parent = record.chain_id
        self._chains.append(record.chain_id)
        self._sources.append(source)
        self._size += record.size

    def stored_blob(self, diff_ids: list[str], index: int) -> LayerBlob | None:
        """A kept blob for layer `index` if that layer (on the layers below it) already exists."""
        parent = None
        for diff_id in diff_ids[:index]:
            parent = chain_id(parent, diff_id)
        record = self._engine.layers.get(chain_id(parent, diff_ids[index]))
        if record is None:
            return None
        blobs = self._blobs.for_diff_id(diff_ids[index])
        return blobs[0] if blobs else None

    def add_layer(self, source: LayerSource, *, progress: Callable[[int], None] | None = None) -> None:
        """Apply the next layer (bottom first) unless it exists; it stays locked until the commit."""
        blob = source.blob
        path = source.staged or self._blobs.path(blob)

        @contextmanager
        def archive() -> Iterator[BinaryIO]:
            try:
                raw = path.open("rb")
            except FileNotFoundError:
                raise NotFoundError(f"layer blob {blob.digest} disappeared (removed concurrently?)") from None
            with raw:
                reader = raw if progress is None else cast(BinaryIO, _CountingReader(raw, progress))
                yield open_layer(reader, blob.compression, compressed_size=blob.size)

        layer = self._engine.layers.ensure(
            parent=self._parent,
            diff_id=blob.diff_id,
            archive=archive,
            hold=self._hold,
            before_build=lambda chain: self.owe_flush([chain]),
        )
        self.add_record(layer, source)

    def commit(
        self,
        *,
        config: bytes,
        manifest: bytes | None = None,
        manifest_digest: str | None = None,
        tags: Sequence[str] = (),
        digests: Sequence[str] = (),
        source: str | None = None,
    ) -> CommitResult:
        """Record the image: adopt the layer blobs, store the manifest, add the image, tag it.

        The layers built for it, and their blobs, reach the disk after the command under flush
        notes (`owe_flush`); the image's records and the tags, which other images share, are
        fsync'd as they are written. A blob downloaded for a layer that already existed is
        fsync'd too: no note covers it.
        """
        engine = self._engine
        when = now_rfc3339()
        previous: dict[str, str | None] = {}
        owed = self._notes.layers if self._notes is not None else set()
        with engine.images.locked():
            for chain, layer in zip(self._chains, self._sources, strict=True):
                if layer.staged is not None:
                    self._blobs.adopt(layer.staged, layer.blob, source=source, durable=chain not in owed)
                elif source is not None:
                    self._blobs.add_source(layer.blob.digest, source)
            if manifest is not None:
                engine.images.put_blob(manifest, expected=manifest_digest)
            image_id = engine.images.add(
                config=config, layers=self._chains, size=self._size, manifest=manifest_digest
            )
            for tag in tags:
                previous[tag] = engine.images.tag(image_id, tag, when=when)
            for digest in digests:
                engine.images.add_digest(image_id, digest)
        return CommitResult(image_id, previous)

    def owe_flush(self, chains: Sequence[str]) -> None:
        """Note durably that the layers `chains` are about to be built and will reach the disk
        after the command (core/deferred_flush.py); the flush starts when `hold` closes,
        whether the image was recorded or not."""
        if not chains:
            return
        if self._notes is None:
            from dockyard.core.deferred_flush import FlushNotes

            self._notes = FlushNotes(self._engine.image_home, self._engine.image_homes())
            self._hold.callback(self._notes.pay_later)
        self._notes.add(chains)
