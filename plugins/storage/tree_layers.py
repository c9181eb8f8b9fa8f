"""What vfs and btrfs share: layers that are whole directory trees, with records and counted mounts.

A subclass says how a layer's tree comes to be (`_populate`: a copy, a snapshot) and where scratch
space lives (`_scratch`); this base keeps the rest crash-safe in one place. A layer is built in
scratch space and renamed into place after its record, and `apply_diff` moves the tree and its
record into scratch space while it works, all renames under the driver's lock, so a killed
command never leaves a half-built or half-applied layer under a valid name.

Layout under the driver's home: `<trees>/<id>` (the layer's whole tree; "mounting" is handing out
this path), `meta/<id>.json` ({"parent": <id> | null}, for diffs) and `<name>.lock`; reference
counts of mounts live under the run directory.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from dockyard.core import store
from dockyard.core.drivers import Change, DriverContext, LayerDiff
from dockyard.core.errors import ConflictError, NotFoundError, StoreError
from dockyard.core.storage_kit import LAYER_ID, MountCounts, check_id, failing

__all__ = ["TreeLayersDriver"]


class TreeLayersDriver(ABC):
    """Base of the drivers whose layers are plain directory trees (see the module docstring)."""

    name = "tree"

    def __init__(self, context: DriverContext, *, trees: Path) -> None:
        self._home = context.home
        self._trees = trees
        self._records = context.home / "meta"
        self._lock_path = context.home / f"{self.name}.lock"
        self._counts = MountCounts(context.run_dir)
        self._rootless = context.rootless

    # --- what a subclass provides -------------------------------------------------------------

    @abstractmethod
    def _scratch(self) -> AbstractContextManager[Path]:
        """Scratch space on the same filesystem as the trees (renames must not cross devices)."""

    @abstractmethod
    def _populate(self, tree: Path, parent: Path | None) -> None:
        """Make `tree` (which does not exist yet) hold `parent`'s tree, or nothing for a base."""

    # --- the contract ------------------------------------------------------------------------

    def layer_count(self) -> int:
        """How many layers and containers exist, for `status()`."""
        with self._failing("listing layers"):
            if not self._trees.is_dir():
                return 0
            return sum(1 for entry in self._trees.iterdir() if LAYER_ID.fullmatch(entry.name))

    def create_layer(self, layer_id: str, parent: str | None) -> None:
        """Create a layer holding `parent`'s tree (an empty tree for a base layer)."""
        self._create(layer_id, parent)

    def create_rw(self, container_id: str, parent: str | None) -> None:
        """Create a container's layer: the same as any layer for tree drivers."""
        self._create(container_id, parent)

    def exists(self, layer_id: str) -> bool:
        """Whether the layer is complete and in place."""
        return self._tree(layer_id).is_dir()

    def remove(self, layer_id: str) -> None:
        """Remove the layer; a mounted one is a ConflictError, a missing one is already removed.

        The tree is renamed into scratch space under the locks and deleted when the scratch space
        is left; a killed deletion is finished by cleanup()."""
        tree = self._tree(layer_id)
        if not tree.is_dir():
            self._forget(layer_id)
            return
        with (
            self._failing(f"removing layer {layer_id}"),
            self._scratch() as trash,
            self._locked(),
            self._counts.locked() as mounts,
        ):
            if mounts.get(layer_id, 0):
                raise ConflictError(f"layer {layer_id} is mounted")
            with suppress(FileNotFoundError):
                os.rename(tree, trash / "tree")
            self._record(layer_id).unlink(missing_ok=True)

    def mount(self, layer_id: str) -> Path:
        """Return the layer's tree and count one more user of it."""
        tree = self._tree(layer_id)
        with self._failing(f"mounting layer {layer_id}"), self._counts.locked() as mounts:
            if not tree.is_dir():
                raise NotFoundError(f"no such layer: {layer_id}")
            mounts[layer_id] = mounts.get(layer_id, 0) + 1
        return tree

    def unmount(self, layer_id: str) -> None:
        """Count one user fewer; unmounting a layer nobody mounted does nothing."""
        self._tree(layer_id)  # validates the id
        with self._failing(f"unmounting layer {layer_id}"), self._counts.locked() as mounts:
            count = mounts.pop(layer_id, 0)
            if count > 1:
                mounts[layer_id] = count - 1

    def apply_diff(self, layer_id: str, archive: BinaryIO) -> LayerDiff:
        """Apply a layer tar to the (unmounted) layer; if that fails, the layer is gone.

        The tree and its record sit in scratch space meanwhile, so neither a failure nor a killed
        process leaves a half-applied layer that looks complete, and no other command's
        cleanup() takes the record for an orphan."""
        from dockyard.core.layer_apply import WhiteoutMode, apply_layer

        tree, record = self._tree(layer_id), self._record(layer_id)
        with self._failing(f"applying a diff to layer {layer_id}"), self._scratch() as scratch:
            work, work_record = scratch / "tree", scratch / "record.json"
            with self._locked(), self._counts.locked() as mounts:
                if mounts.get(layer_id, 0):
                    raise ConflictError(f"layer {layer_id} is mounted")
                try:
                    os.rename(tree, work)
                except FileNotFoundError:
                    raise NotFoundError(f"no such layer: {layer_id}") from None
                try:
                    os.rename(record, work_record)
                except FileNotFoundError:  # cannot happen short of tampering: drop the layer
                    raise StoreError(f"layer {layer_id} has no record") from None
            result = apply_layer(work, archive, whiteouts=WhiteoutMode.DELETE, ignore_chown=self._rootless)
            with self._locked():
                os.rename(work_record, record)
                os.rename(work, tree)
        return result

    def diff(self, layer_id: str) -> Iterator[bytes]:
        """The layer's changes against its parent as an OCI layer tar, found by comparing trees."""
        from dockyard.core.layer_diff import write_diff

        return write_diff(*self._pair(layer_id))

    def changes(self, layer_id: str) -> list[Change]:
        """The layer's changes against its parent, path by path."""
        from dockyard.core.layer_diff import changes

        return changes(*self._pair(layer_id))

    def diff_size(self, layer_id: str) -> int:
        """The bytes of files the layer adds or changes against its parent."""
        from dockyard.core.layer_diff import diff_size

        return diff_size(*self._pair(layer_id))

    # --- internals ---------------------------------------------------------------------------

    def _forget_orphans(self) -> None:
        """Drop records without a tree and mount counts of layers that are gone (cleanup)."""
        if self._records.is_dir():
            with self._locked():
                for record in self._records.glob("*.json"):
                    if LAYER_ID.fullmatch(record.stem) and not self.exists(record.stem):
                        record.unlink(missing_ok=True)
        if self._counts.exists():
            with self._counts.locked() as mounts:
                for layer_id in [key for key in mounts if not self.exists(key)]:
                    del mounts[layer_id]

    def _create(self, layer_id: str, parent: str | None) -> None:
        tree = self._tree(layer_id)
        if tree.is_dir():
            raise ConflictError(f"layer {layer_id} already exists")
        if parent is not None and not self.exists(parent):
            raise NotFoundError(f"parent layer {parent} of {layer_id} does not exist")
        with self._failing(f"creating layer {layer_id}"), self._scratch() as scratch:
            self._populate(scratch / "tree", self._tree(parent) if parent is not None else None)
            store.write_json(scratch / "record.json", {"parent": parent})
            with self._locked():
                if tree.is_dir():
                    raise ConflictError(f"layer {layer_id} already exists")
                self._trees.mkdir(exist_ok=True)
                self._records.mkdir(exist_ok=True)
                # Record first, tree last: a crash in between leaves an orphan record, never a
                # layer without one.
                os.rename(scratch / "record.json", self._record(layer_id))
                os.rename(scratch / "tree", tree)

    def _pair(self, layer_id: str) -> tuple[Path | None, Path]:
        """The parent's tree (None for a base layer) and the layer's tree."""
        tree = self._tree(layer_id)
        if not tree.is_dir():
            raise NotFoundError(f"no such layer: {layer_id}")
        try:
            parent = store.read_json(self._record(layer_id))["parent"]
        except (FileNotFoundError, KeyError, TypeError) as exc:
            raise StoreError(f"layer {layer_id} has no valid record") from exc
        if parent is None:
            return None, tree
        if not self.exists(parent):
            raise NotFoundError(f"parent layer {parent} of {layer_id} was removed")
        return self._tree(parent), tree

    def _forget(self, layer_id: str) -> None:
        """Drop the record of a layer whose tree is gone (no lock file made if there is none)."""
        if self._record(layer_id).exists():
            with self._locked():
                self._record(layer_id).unlink(missing_ok=True)

    def _tree(self, layer_id: str) -> Path:
        return self._trees / check_id(layer_id)

    def _record(self, layer_id: str) -> Path:
        return self._records / f"{layer_id}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with store.file_lock(self._lock_path):
            yield

    def _failing(self, action: str) -> AbstractContextManager[None]:
        """Report an OSError from the filesystem as DriverFailed, saying what was being done."""
        return failing(self.name, action)
