"""The `vfs` storage driver: every layer is a plain, full copy of its parent.

It works on any filesystem and needs no kernel feature, which makes it the last resort (priority 1)
and the reference the other drivers are compared with. Each layer or container costs a full copy.

Layout under the driver's home:

    dir/<id>/            the layer's whole tree; "mounting" is handing out this path
    meta/<id>.json       {"parent": <id> | null}, for diffs against the parent
    dir/.tmp-*/          scratch space of a running command (store.scratch_dir), with a held lock
    vfs.lock             serialises the renames that make a layer appear or disappear

and under its run directory `mounts.json` (reference counts) with `mounts.lock`. The crash-safe
bookkeeping is shared with btrfs in tree_layers.py; a killed command leaves at most scratch space
and an orphan record, which `cleanup()` removes.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path

from dockyard.core import store
from dockyard.core.drivers import Availability, DriverContext
from dockyard.core.errors import DriverFailed
from dockyard.plugins.storage.tree_layers import TreeLayersDriver

__all__ = ["VfsDriver"]


class VfsDriver(TreeLayersDriver):
    """Layers as full copies of their parents in plain directories (see the module docstring)."""

    name = "vfs"

    def __init__(self, context: DriverContext) -> None:
        super().__init__(context, trees=context.home / "dir")

    def available(self) -> Availability:
        """Always usable: plain directories work on every filesystem."""
        return Availability(True)

    def status(self) -> dict[str, str]:
        """The filesystem holding the layers and how many there are."""
        from dockyard.core.mountinfo import backing_filesystem

        return {"Backing Filesystem": backing_filesystem(self._trees), "Layers": str(self.layer_count())}

    def cleanup(self) -> None:
        """Remove what killed commands left: scratch space, records without a layer, and mount
        counts of layers that are gone. vfs holds nothing else (a mount is only a path)."""
        with self._failing("cleaning up"):
            store.clean_stale_scratch(self._trees)
            self._forget_orphans()

    def _scratch(self) -> AbstractContextManager[Path]:
        return store.scratch_dir(self._trees)

    def _populate(self, tree: Path, parent: Path | None) -> None:
        if parent is None:
            tree.mkdir()
            os.chmod(tree, 0o755)
        else:
            _copy_tree(parent, tree)


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
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise DriverFailed(f"cannot run cp to copy layer {source.name}: {exc}") from exc
    if result.returncode != 0:
        raise DriverFailed(f"copying layer {source.name} failed: {result.stderr.strip()}")
