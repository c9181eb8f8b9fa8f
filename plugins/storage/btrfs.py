"""The `btrfs` storage driver: one subvolume per layer, a snapshot for each child and container.

A snapshot costs the same whatever its parent holds and shares every extent with it until one of
them writes, so creating a container takes constant time and twenty containers of one image take
the disk of one. Diffs are the naive diff (the layer's subvolume compared with its parent's, the
`dockyard.core.layer_diff` tooling vfs uses too).

Usable only when the driver home is on btrfs ("not supported" otherwise); rootless use also needs
the filesystem mounted with `user_subvol_rm_allowed`, without which only root may delete a
subvolume ("prerequisites missing"). The `btrfsutil` bindings are imported by the methods that
call them, so importing this module stays cheap.

Layout under the driver's home:

    subvolumes/<id>      the layer's whole tree, a subvolume; "mounting" is handing out this path
    meta/<id>.json       {"parent": <id> | null}, for diffs against the parent
    .tmp-*/              scratch space of a running command (store.scratch_dir), with a held lock
    btrfs.lock           serialises the renames that make a layer appear or disappear

and under its run directory `mounts.json` (reference counts) with `mounts.lock`.

Crash safety, as in vfs: a snapshot is made in scratch space and renamed into `subvolumes/` after
its record, and `apply_diff` moves the subvolume and its record into scratch space while it works.
Subvolumes are deleted with btrfs's own call wherever scratch space is left, and `cleanup()`
deletes those of commands that were killed before it removes their scratch space.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, BinaryIO

from dockyard.core import store
from dockyard.core.drivers import Availability, Change, DriverContext, LayerDiff
from dockyard.core.errors import (
    ConflictError,
    DriverPrerequisites,
    NotFoundError,
    StoreError,
)
from dockyard.core.hookspecs import hookimpl
from dockyard.core.storage_kit import LAYER_ID, MountCounts, check_id, failing

if TYPE_CHECKING:
    from dockyard.core.drivers import DriverRegistry

__all__ = ["BtrfsDriver", "dockyard_register_drivers"]

_RM_OPTION = "user_subvol_rm_allowed"


class BtrfsDriver:
    """Layers as btrfs subvolumes, children as snapshots (see the module docstring)."""

    name = "btrfs"

    def __init__(self, context: DriverContext) -> None:
        self._home = context.home
        self._subvolumes = context.home / "subvolumes"
        self._records = context.home / "meta"
        self._lock_path = context.home / "btrfs.lock"
        self._counts = MountCounts(context.run_dir)
        self._rootless = context.rootless

    def available(self) -> Availability:
        """Usable when the home is on btrfs (and, rootless, subvolumes can be deleted)."""
        import importlib.util

        from dockyard.core.mountinfo import find_mount

        mount = find_mount(self._home)
        fstype = mount.fstype if mount is not None else "unknown"
        if mount is None or fstype != "btrfs":
            return Availability(False, f"not a btrfs filesystem: {self._home} is on {fstype}")
        if importlib.util.find_spec("btrfsutil") is None:
            return Availability(False, "the btrfsutil python module is not installed", missing=True)
        if self._rootless and _RM_OPTION not in mount.super_options:
            return Availability(
                False,
                f"rootless use needs the btrfs mount option {_RM_OPTION} on {mount.mount_point}",
                missing=True,
            )
        return Availability(True)

    def status(self) -> dict[str, str]:
        """The filesystem holding the subvolumes and how many layers there are."""
        from dockyard.core.mountinfo import backing_filesystem

        count = 0
        with _failing("listing layers"):
            if self._subvolumes.is_dir():
                count = sum(1 for entry in self._subvolumes.iterdir() if LAYER_ID.fullmatch(entry.name))
        return {"Backing Filesystem": backing_filesystem(self._home), "Layers": str(count)}

    def create_layer(self, layer_id: str, parent: str | None) -> None:
        """Create a layer: a snapshot of `parent`, or an empty subvolume for a base layer."""
        self._create(layer_id, parent)

    def create_rw(self, container_id: str, parent: str | None) -> None:
        """Create a container's layer: a writable snapshot of the image's top layer."""
        self._create(container_id, parent)

    def exists(self, layer_id: str) -> bool:
        """Whether the layer is complete and in place."""
        return self._tree(layer_id).is_dir()

    def remove(self, layer_id: str) -> None:
        """Delete the layer's subvolume; a mounted layer is a ConflictError, a missing one is
        already removed."""
        tree = self._tree(layer_id)
        if not tree.is_dir():
            self._forget(layer_id)
            return
        with (
            _failing(f"removing layer {layer_id}"),
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
        """Return the layer's subvolume and count one more user of it."""
        tree = self._tree(layer_id)
        with _failing(f"mounting layer {layer_id}"), self._counts.locked() as mounts:
            if not tree.is_dir():
                raise NotFoundError(f"no such layer: {layer_id}")
            mounts[layer_id] = mounts.get(layer_id, 0) + 1
        return tree

    def unmount(self, layer_id: str) -> None:
        """Count one user fewer; unmounting a layer nobody mounted does nothing."""
        self._tree(layer_id)  # validates the id
        with _failing(f"unmounting layer {layer_id}"), self._counts.locked() as mounts:
            count = mounts.pop(layer_id, 0)
            if count > 1:
                mounts[layer_id] = count - 1

    def apply_diff(self, layer_id: str, archive: BinaryIO) -> LayerDiff:
        """Apply a layer tar to the (unmounted) layer's subvolume; if that fails, the layer is
        gone. The subvolume and its record sit in scratch space meanwhile, as in vfs."""
        from dockyard.core.layer_apply import WhiteoutMode, apply_layer

        tree, record = self._tree(layer_id), self._record(layer_id)
        with _failing(f"applying a diff to layer {layer_id}"), self._scratch() as scratch:
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
            result = apply_layer(
                work, archive, whiteouts=WhiteoutMode.DELETE, ignore_chown=self._rootless
            )
            with self._locked():
                os.rename(work_record, record)
                os.rename(work, tree)
        return result

    def diff(self, layer_id: str) -> Iterator[bytes]:
        """The layer's changes against its parent as an OCI layer tar, found by comparing the
        two subvolumes."""
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

    def cleanup(self) -> None:
        """Delete what killed commands left: subvolumes and scratch space, records without a
        layer, and mount counts of layers that are gone."""
        with _failing("cleaning up"):
            if self._home.is_dir():
                for lock in self._home.glob(f"{store.TEMP_PREFIX}*.lock"):
                    with store.file_lock(lock, blocking=False) as abandoned:
                        if abandoned:
                            _delete_subvolumes(lock.with_name(lock.name.removesuffix(".lock")))
            store.clean_stale_scratch(self._home)
            if self._records.is_dir():
                with self._locked():
                    for record in self._records.glob("*.json"):
                        if LAYER_ID.fullmatch(record.stem) and not self.exists(record.stem):
                            record.unlink(missing_ok=True)
            if self._counts.exists():
                with self._counts.locked() as mounts:
                    for layer_id in [key for key in mounts if not self.exists(key)]:
                        del mounts[layer_id]

    # --- internals ---------------------------------------------------------------------------

    def _create(self, layer_id: str, parent: str | None) -> None:
        tree = self._tree(layer_id)
        if tree.is_dir():
            raise ConflictError(f"layer {layer_id} already exists")
        if parent is not None and not self.exists(parent):
            raise NotFoundError(f"parent layer {parent} of {layer_id} does not exist")
        btrfsutil = _btrfsutil()
        with _failing(f"creating layer {layer_id}"), self._scratch() as scratch:
            if parent is None:
                btrfsutil.create_subvolume(str(scratch / "tree"))
                os.chmod(scratch / "tree", 0o755)
            else:
                btrfsutil.create_snapshot(str(self._tree(parent)), str(scratch / "tree"))
            store.write_json(scratch / "record.json", {"parent": parent})
            with self._locked():
                if tree.is_dir():
                    raise ConflictError(f"layer {layer_id} already exists")
                self._subvolumes.mkdir(exist_ok=True)
                self._records.mkdir(exist_ok=True)
                # Record first, subvolume last: a crash in between leaves an orphan record,
                # never a layer without one.
                os.rename(scratch / "record.json", self._record(layer_id))
                os.rename(scratch / "tree", tree)

    def _pair(self, layer_id: str) -> tuple[Path | None, Path]:
        """The parent's subvolume (None for a base layer) and the layer's."""
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
        """Drop the record of a layer whose subvolume is gone (no lock file made if none)."""
        if self._record(layer_id).exists():
            with self._locked():
                self._record(layer_id).unlink(missing_ok=True)

    @contextmanager
    def _scratch(self) -> Iterator[Path]:
        """Scratch space next to the subvolumes; whatever subvolume is left in it is deleted
        with btrfs's own call when the block ends, before the directory is removed."""
        self._home.mkdir(parents=True, exist_ok=True)
        with store.scratch_dir(self._home) as scratch:
            try:
                yield scratch
            finally:
                _delete_subvolumes(scratch)

    def _tree(self, layer_id: str) -> Path:
        return self._subvolumes / check_id(layer_id)

    def _record(self, layer_id: str) -> Path:
        return self._records / f"{layer_id}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with store.file_lock(self._lock_path):
            yield


def _btrfsutil() -> ModuleType:
    """The btrfsutil bindings, imported on first use."""
    try:
        import btrfsutil
    except ImportError as exc:
        raise DriverPrerequisites("btrfs: the btrfsutil python module is not installed") from exc
    module: ModuleType = btrfsutil
    return module


def _delete_subvolumes(directory: Path) -> None:
    """Delete every subvolume directly inside `directory` (with any nested in it)."""
    if not directory.is_dir():
        return
    btrfsutil = _btrfsutil()
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink() and btrfsutil.is_subvolume(str(entry)):
            btrfsutil.delete_subvolume(str(entry), recursive=True)


def _failing(action: str) -> AbstractContextManager[None]:
    """Report a filesystem or btrfs error as DriverFailed (btrfsutil.BtrfsUtilError is an
    OSError, so one translation covers both)."""
    return failing("btrfs", action)


@hookimpl
def dockyard_register_drivers(register: DriverRegistry) -> None:
    """Register `btrfs`, preferred over vfs where the storage root is on btrfs."""
    register.storage(
        "btrfs", BtrfsDriver, plugin=__name__, priority=20,
        description="btrfs: a subvolume per layer, a snapshot per child layer and container",
    )
