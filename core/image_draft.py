"""An image under construction: how `commit` and the builder turn their steps into images.

    with ImageDraft.from_image(engine, base) as draft:      # or ImageDraft.from_scratch(engine)
        draft.add_layer_from_container(container_id, created_by="/bin/sh -c make")   # RUN
        draft.add_layer_from_tar(stream, created_by="/bin/sh -c #(nop) COPY file:... in /")
        draft.apply_changes(['CMD ["/app"]'])               # Dockerfile text, as `commit -c`
        draft.set_config("Healthcheck", {"Test": ["CMD", "true"]})   # or a structured value
        draft.add_history(created_by='/bin/sh -c #(nop)  CMD ["/app"]')  # an empty_layer step
        image_id = draft.commit(tags=["app:1"])            # tags may be empty

`commit` may be called again after more steps: the next image then has the previous one as its
parent, which is how the classic builder keeps one untagged image per step for its cache.

Layers. Each added layer is staged as an uncompressed tar in the draft's scratch directory while
its digest (the diff_id) is computed, then applied at once by the storage driver on top of the
draft's top layer through the layer store (`LayerStore.ensure`: the chain id names it, a layer
that already exists is reused, its lock is held until the draft closes). At `commit` the staged
tar becomes the layer's kept blob, as `import` keeps its tarball (push compresses it on demand).
The base image's layers are locked too, so a concurrent `rmi` cannot collect them meanwhile.

A container's layer is its storage diff against its image, without the mount points the runtime
created in it (see `dockyard.core.container_changes`, which stands in for Docker's init layer).

Empty diffs follow Docker (moby's `CommitImage`, which the classic builder's RUN uses too): a diff
with no entries adds no layer and no diff_id; only its history entry is recorded, with
`empty_layer: true`, so `history` shows the step with a size of 0B.

Crash safety: nothing is visible before `commit`, which writes the config blob, the image record
and its tags under the image store's lock, each atomically. A draft abandoned or killed halfway
leaves at most complete layers that no image uses (reused by the next attempt, collected by the
next `rmi` or `image prune`) and a scratch directory that the next command's recovery removes.
"""

from __future__ import annotations

import copy
import json
import shutil
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

from dockyard.core.engine import Engine
from dockyard.core.errors import ContentError, NotFoundError, UsageError
from dockyard.core.images import Image
from dockyard.core.layer_blobs import LayerBlob
from dockyard.core.layer_streams import Compression
from dockyard.core.timestamps import now_rfc3339

__all__ = ["CONFIG_KEYS", "AddedLayer", "ImageDraft"]

# The runtime settings an image config carries (the image spec's `config`, Docker's spelling).
CONFIG_KEYS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
    "ArgsEscaped",
)
_COPY_SIZE = 1 << 20


@dataclass(frozen=True)
class AddedLayer:
    """What adding a layer recorded: its diff_id, chain id and size on disk, or all None/0 when
    the diff was empty and only an `empty_layer` history entry was added."""

    diff_id: str | None
    chain_id: str | None
    size: int

    @property
    def empty(self) -> bool:
        """Whether the diff changed nothing (no layer was added)."""
        return self.diff_id is None


class ImageDraft:
    """An image being assembled from a base (or nothing); use it as a context manager."""

    def __init__(self, engine: Engine, *, config: dict[str, Any], layers: Sequence[str], parent: str | None):
        """Prefer `from_image` and `from_scratch`; `config` is a whole image config, `layers`
        the chain ids of its diff_ids, `parent` the image it derives from."""
        self._engine = engine
        self._config = config
        self._config.setdefault("config", {})
        self._config.setdefault("history", [])
        self._config["rootfs"] = {
            "type": "layers",
            "diff_ids": list(config.get("rootfs", {}).get("diff_ids", [])),
        }
        self._chains = list(layers)
        self._parent = parent
        self._size = 0
        self._staged: list[tuple[Path, LayerBlob]] = []
        self._hold: ExitStack | None = None
        self._scratch: Path | None = None
        self._count = 0

    @classmethod
    def from_image(cls, engine: Engine, image: Image) -> ImageDraft:
        """A draft starting from `image`: its layers, config and history; its id is the parent."""
        if len(image.diff_ids) != len(image.layers):
            raise ContentError(
                f"image {image.id} lists {len(image.diff_ids)} diff_ids for {len(image.layers)} layers"
            )
        config = copy.deepcopy(image.config)
        if not config.get("history"):
            # One entry per layer, so that `history` keeps matching entries to layers.
            config["history"] = [{"created": image.created} for _ in image.layers]
        return cls(engine, config=config, layers=image.layers, parent=image.id)

    @classmethod
    def from_scratch(cls, engine: Engine) -> ImageDraft:
        """A draft with no layer and an empty config for this host's platform (`FROM scratch`)."""
        from dockyard.core.platforms import host_architecture, host_os

        config = {"architecture": host_architecture(), "os": host_os(), "config": {}, "history": []}
        return cls(engine, config=config, layers=(), parent=None)

    def __enter__(self) -> ImageDraft:
        from dockyard.core.store import scratch_dir

        self._engine.recover()
        self._hold = ExitStack()
        try:
            self._scratch = self._hold.enter_context(scratch_dir(self._engine.scratch_parent))
            self._lock_base_layers()
        except BaseException:
            self._hold.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        hold, self._hold, self._scratch = self._hold, None, None
        if hold is not None:
            hold.close()

    # --- what the image will be ----------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """The runtime config (`Cmd`, `Env`, ... see CONFIG_KEYS); edit it in place or through
        `apply_changes` and `set_config`."""
        runtime: dict[str, Any] = self._config["config"]
        return runtime

    @property
    def diff_ids(self) -> list[str]:
        """The diff_ids of the layers so far, bottom first."""
        return list(self._config["rootfs"]["diff_ids"])

    @property
    def top_layer(self) -> str | None:
        """The chain id of the top layer (None for no layer): what a container for the next
        step is created on."""
        return self._chains[-1] if self._chains else None

    @property
    def parent(self) -> str | None:
        """The image this draft derives from: the base, or the draft's last commit."""
        return self._parent

    def apply_changes(self, changes: Sequence[str]) -> None:
        """Apply Dockerfile instructions given as text (`CMD ["sh"]`, `ENV A=1`, ...), the
        ones `commit -c` and `import -c` accept; a bad one raises UsageError, changing nothing."""
        from dockyard.core.config_changes import apply_changes

        self._config["config"] = apply_changes(self.config, list(changes))

    def set_config(self, key: str, value: Any) -> None:
        """Set one runtime setting to an already parsed value (None removes it)."""
        if key not in CONFIG_KEYS:
            raise UsageError(f"unknown image config key {key!r} (known: {', '.join(CONFIG_KEYS)})")
        if value is None:
            self.config.pop(key, None)
        else:
            self.config[key] = value

    def add_history(
        self, *, created_by: str = "", comment: str = "", author: str = "", empty_layer: bool = True
    ) -> None:
        """Record a step in the history; by default one that changed only the config (ENV,
        CMD, LABEL ...), marked `empty_layer` as Docker does. A step that adds a layer gets its
        entry from `add_layer_from_*`."""
        entry: dict[str, Any] = {"created": now_rfc3339()}
        if author:
            entry["author"] = author
        if created_by:
            entry["created_by"] = created_by
        if comment:
            entry["comment"] = comment
        if empty_layer:
            entry["empty_layer"] = True
        self._config["history"].append(entry)

    # --- layers --------------------------------------------------------------------------------

    def add_layer_from_container(
        self, container_id: str, *, created_by: str = "", comment: str = "", author: str = ""
    ) -> AddedLayer:
        """Add the changes of a container's read-write layer as the next layer (see the module
        docstring for what is left out and for empty diffs). Pause or stop the container first:
        files changing while they are read are recorded as they were when the diff began."""
        from dockyard.core.container_changes import write_visible_diff
        from dockyard.core.digests import HashingWriter

        staged = self._next_staged()
        with staged.open("wb") as out:
            writer = HashingWriter(out)
            entries = write_visible_diff(self._engine.storage.diff(container_id), cast(BinaryIO, writer))
        return self._add_staged(
            staged,
            writer.digest,
            writer.size,
            empty=entries == 0,
            history={"created_by": created_by, "comment": comment, "author": author},
        )

    def add_layer_from_tar(
        self, stream: BinaryIO, *, created_by: str = "", comment: str = "", author: str = ""
    ) -> AddedLayer:
        """Add an uncompressed OCI layer tar (whiteouts allowed) as the next layer; a tar with
        no entries adds only an `empty_layer` history entry."""
        from dockyard.core.digests import HashingReader

        staged = self._next_staged()
        reader = HashingReader(stream)
        with staged.open("wb") as out:
            shutil.copyfileobj(reader, out, _COPY_SIZE)
        return self._add_staged(
            staged,
            reader.digest,
            reader.size,
            empty=_has_no_entries(staged),
            history={"created_by": created_by, "comment": comment, "author": author},
        )

    # --- the result ----------------------------------------------------------------------------

    def commit(
        self, *, tags: Sequence[str] = (), author: str = "", comment: str = "", container_id: str = ""
    ) -> str:
        """Record the image and point `tags` at it (a tag moves from the image it named); returns
        the image id. `author`, `comment` and `container_id` become the config's top-level
        `author`, `comment` and `container` (Docker's fields; left out when empty)."""
        from dockyard.core.image_assembly import layer_blobs
        from dockyard.core.reference import parse_reference

        references = [str(parse_reference(tag)) for tag in tags]
        self._require_open()
        created = now_rfc3339()
        config = copy.deepcopy(self._config)
        config["created"] = created
        for key, value in (("author", author), ("comment", comment), ("container", container_id)):
            if value:
                config[key] = value
            else:
                config.pop(key, None)
        data = json.dumps(config, separators=(",", ":")).encode()
        engine = self._engine
        with engine.images.locked():
            blobs = layer_blobs(engine)
            for staged, blob in self._staged:
                blobs.adopt(staged, blob)
            image_id = engine.images.add(
                config=data, layers=list(self._chains), size=self._size, parent=self._parent
            )
            for reference in references:
                engine.images.tag(image_id, reference, when=created)
        self._staged.clear()
        self._parent = image_id
        for reference in references:
            engine.hooks.image_tagged(image_id=image_id, reference=reference)
        return image_id

    # --- internals -----------------------------------------------------------------------------

    def _require_open(self) -> tuple[ExitStack, Path]:
        if self._hold is None or self._scratch is None:
            raise RuntimeError("an ImageDraft is used inside a `with` block")
        return self._hold, self._scratch

    def _next_staged(self) -> Path:
        _, scratch = self._require_open()
        self._count += 1
        return scratch / f"layer-{self._count}.tar"

    def _lock_base_layers(self) -> None:
        """Hold the base layers' locks (and learn their sizes) as if they were being created."""
        hold, _ = self._require_open()
        parent = None
        for chain, diff_id in zip(self._chains, self.diff_ids, strict=True):
            record = self._engine.layers.ensure(
                parent=parent, diff_id=diff_id, archive=_gone(diff_id), hold=hold
            )
            if record.chain_id != chain:
                raise ContentError(f"layer {chain} does not match the image's diff_ids")
            self._size += record.size
            parent = chain

    def _add_staged(
        self, staged: Path, diff_id: str, size: int, *, empty: bool, history: dict[str, str]
    ) -> AddedLayer:
        hold, _ = self._require_open()
        if empty:
            staged.unlink()
            self.add_history(**history, empty_layer=True)
            return AddedLayer(None, None, 0)

        @contextmanager
        def archive() -> Iterator[BinaryIO]:
            with staged.open("rb") as stream:
                yield stream

        record = self._engine.layers.ensure(
            parent=self.top_layer, diff_id=diff_id, archive=archive, hold=hold
        )
        self._chains.append(record.chain_id)
        self._config["rootfs"]["diff_ids"].append(diff_id)
        self._size += record.size
        self._staged.append((staged, LayerBlob(diff_id, size, Compression.NONE, diff_id)))
        self.add_history(**history, empty_layer=False)
        return AddedLayer(diff_id, record.chain_id, record.size)


def _gone(diff_id: str) -> Any:
    """The `archive` for a layer that must exist already: asked for, it was removed meanwhile."""

    def missing() -> AbstractContextManager[BinaryIO]:
        raise NotFoundError(f"layer {diff_id} of the base image is gone (removed concurrently?)")

    return missing


def _has_no_entries(staged: Path) -> bool:
    """Whether a staged tar holds no entry (an empty stream counts as an empty tar)."""
    if staged.stat().st_size == 0:
        return True
    try:
        with tarfile.open(staged, mode="r:") as archive:
            return archive.next() is None
    except tarfile.ReadError as exc:
        raise ContentError(f"layer is not an uncompressed tar archive: {exc}") from exc
