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
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from dockyard.core import store
from dockyard.core.drivers import Availability, DriverContext
from dockyard.core.errors import (
    DriverPrerequisites,
)
from dockyard.plugins.storage.tree_layers import TreeLayersDriver

__all__ = ["BtrfsDriver"]

_RM_OPTION = "user_subvol_rm_allowed"


class BtrfsDriver(TreeLayersDriver):
    """Layers as btrfs subvolumes, children as snapshots (see the module docstring)."""

    name = "btrfs"

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context, trees=context.home / "subvolumes")

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

        return {"Backing Filesystem": backing_filesystem(self._home), "Layers": str(self.layer_count())}

    def cleanup(self) -> None:
        """Delete what killed commands left: subvolumes and scratch space, records without a
        layer, and mount counts of layers that are gone."""
        with self._failing("cleaning up"):
            if self._home.is_dir():
                for lock in self._home.glob(f"{store.TEMP_PREFIX}*.lock"):
                    with store.file_lock(lock, blocking=False) as abandoned:
                        if abandoned:
                            _delete_subvolumes(lock.with_name(lock.name.removesuffix(".lock")))
            store.clean_stale_scratch(self._home)
            self._forget_orphans()

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

    def _populate(self, tree: Path, parent: Path | None) -> None:
        btrfsutil = _btrfsutil()
        if parent is None:
            btrfsutil.create_subvolume(str(tree))
            os.chmod(tree, 0o755)
        else:
            btrfsutil.create_snapshot(str(parent), str(tree))


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
