"""The `vfs` storage driver: every layer is a plain, full copy of its parent.

It works on any filesystem and needs no kernel feature, which makes it the last resort (priority 1)
and the reference the other drivers are compared with. Each layer or container costs a full copy.

Layout under the driver's home:

    dir/<id>/            the layer's whole tree; "mounting" is handing out this path
    meta/<id>.json       {"parent": <id> | null}, for diffs against the parent
    dir/.tmp-*/          scratch space of a running command (store.scratch_dir), with a held lock
    vfs.lock             serialises the renames that make a layer appear or disappear

and under its run directory `mounts.json` (reference counts) with `mounts.lock`.

Crash safety: a layer is built in scratch space and renamed into `dir/` whole (after its record),
and `apply_diff` moves the layer and its record into scratch space while it works and back when it
is done. Every such rename happens under `vfs.lock`, so under that lock a record exists exactly when
its tree does. A killed command leaves at most scratch space and an orphan record, which
`cleanup()` removes, and never a half-built or half-applied layer under a valid name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dockyard.core import store
from dockyard.core.drivers import Availability, Change, DriverContext, LayerDiff
from dockyard.core.errors import ConflictError, DriverFailed, NotFoundError, StoreError
from dockyard.core.hookspecs import hookimpl
from dockyard.core.storage_kit import LAYER_ID, MountCounts, check_id, failing

if TYPE_CHECKING:
    from dockyard.core.drivers import DriverRegistry

__all__ = ["VfsDriver", "dockyard_register_drivers"]


class VfsDriver:
    """Layers as full copies of their parents in plain directories (see the module docstring)."""

    name = "vfs"

    def __init__(self, context: DriverContext) -> None:
        self._layers = context.home / "dir"
        self._records = context.home / "meta"
        self._lock_path = context.home / "vfs.lock"
        self._counts = MountCounts(context.run_dir)
        self._rootless = context.rootless

    def available(self) -> Availability:
        """Always usable: plain directories work on every filesystem."""
        return Availability(True)

    def status(self) -> dict[str, str]:
        """The filesystem holding the layers and how many there are."""
        from dockyard.core.mountinfo import backing_filesystem

        count = 0
        with _failing("listing layers"):
            if self._layers.is_dir():
                count = sum(1 for entry in self._layers.iterdir() if LAYER_ID.fullmatch(entry.name))
        return {"Backing Filesystem": backing_filesystem(self._layers), "Layers": str(count)}

    def create_layer(self, layer_id: str, parent: str | None) -> None:
        """Create a layer holding a full copy of `parent` (an empty tree for a base layer)."""
        self._create(layer_id, parent)

    def create_rw(self, container_id: str, parent: str | None) -> None:
        """Create a container's layer: for vfs the same full copy as any layer."""
        self._create(container_id, parent)

    def exists(self, layer_id: str) -> bool:
        """Whether the layer is complete and in place."""
        return self._tree(layer_id).is_dir()

    def remove(self, layer_id: str) -> None:
        """Remove the layer; a mounted one is a ConflictError, a missing one is already removed."""
        tree = self._tree(layer_id)
        if not tree.is_dir():
            self._forget(layer_id)
            return
        # The tree is renamed into scratch space under the locks and deleted when the scratch
        # directory is left; a killed deletion is finished by cleanup().
        with (
            _failing(f"removing layer {layer_id}"),
            store.scratch_dir(self._layers) as trash,
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
        """Apply a layer tar to the (unmounted) layer; if that fails, the layer is gone.

        The tree and its record move into scratch space for the duration and back when the
        archive is applied, so neither a failure nor a killed process can leave a half-applied
        layer that looks complete, and no other command's `cleanup()` takes the record for an
        orphan meanwhile.
        """
        from dockyard.core.layer_apply import WhiteoutMode, apply_layer

        tree, record = self._tree(layer_id), self._record(layer_id)
        with (
            _failing(f"applying a diff to layer {layer_id}"),
            store.scratch_dir(self._layers) as scratch,
        ):
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

    def cleanup(self) -> None:
        """Remove what killed commands left: scratch space, records without a layer, and mount
        counts of layers that are gone. vfs holds nothing else (a mount is only a path)."""
        with _failing("cleaning up"):
            store.clean_stale_scratch(self._layers)
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
        with _failing(f"creating layer {layer_id}"), store.scratch_dir(self._layers) as scratch:
            if parent is None:
                (scratch / "tree").mkdir()
                os.chmod(scratch / "tree", 0o755)
            else:
                _copy_tree(self._tree(parent), scratch / "tree")
            store.write_json(scratch / "record.json", {"parent": parent})
            with self._locked():
                if tree.is_dir():
                    raise ConflictError(f"layer {layer_id} already exists")
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
        return self._layers / check_id(layer_id)

    def _record(self, layer_id: str) -> Path:
        return self._records / f"{layer_id}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with store.file_lock(self._lock_path):
            yield


def _failing(action: str) -> AbstractContextManager[None]:
    """Report an OSError from the filesystem as DriverFailed, saying what was being done."""
    return failing("vfs", action)


def _copy_tree(source: Path, destination: Path) -> None:
    """Copy a layer tree with `cp -a --reflink=auto`.

    GNU cp already keeps everything a layer holds (hard links within the copy, symlinks as they
    are, device nodes, fifos, owners, modes including setuid, nanosecond times, extended
    attributes), skips holes in sparse files and shares extents on filesystems that can (btrfs,
    xfs), all in C; a Python copier would be slower and longer for no gain. It never follows a
    symlink it copies (-a implies -d).
    """
    import subprocess

    try:
        result = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--no-target-directory", "--", source, destination],
            capture_output=True, text=True, check=False,
        )
    except OSError as exc:
        raise DriverFailed(f"cannot run cp to copy layer {source.name}: {exc}") from exc
    if result.returncode != 0:
        raise DriverFailed(f"copying layer {source.name} failed: {result.stderr.strip()}")


@hookimpl
def dockyard_register_drivers(register: DriverRegistry) -> None:
    """Register `vfs` as the last-resort storage driver."""
    register.storage(
        "vfs", VfsDriver, plugin=__name__, priority=1,
        description="plain copy: every layer a full copy of its parent",
    )
