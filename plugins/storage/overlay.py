"""The `overlay` storage driver: image layers as overlayfs lower directories, a container as an
upper and a work directory on top of them.

Creating a layer or a container costs a few empty directories whatever the image's size, and a
container's changes are exactly its upper directory, so its diff reads only that (the native
diff). The kernel mounts the overlays, or fuse-overlayfs where the kernel refuses (see
`overlay_probe`); rootless use mounts with `userxattr` in a user namespace (Linux 5.11 and later)
and marks opaque directories with `user.overlay.opaque`.

Layout under the driver's home:

    layers/<id>/diff/       the layer's own entries (a container's upper directory)
    layers/<id>/work/       overlayfs's work directory (containers with a parent)
    layers/<id>/merged/     where the layer is mounted (layers and containers with a parent)
    layers/<id>/layer.json  {"parent": <id> | null, "link": <short>, "lowers": [<short>, ...],
                             "container": bool}; `lowers` lists the parents' links, nearest first
    l/<short>               -> ../layers/<id>/diff: a 12-character name per layer
    .tmp-*/                 scratch space of a running command, with a held lock
    overlay.lock            serialises link names and the renames that make a layer appear
                            or disappear

and under its run directory `mounts.json` (reference counts, locked by `mounts.lock`) and
`probe.json` (the cached verdict of `available()`).

Mounting: `lowerdir` lists the short links (`l/ABC:l/DEF`), relative to the home, so an image of
250 layers still fits the page of options the kernel reads. A layer without a parent needs no
mount: its directory is its whole tree (a base layer is applied with its whiteouts carried out,
as there is nothing below it to hide). An image layer with a parent is mounted read-only from
lowers alone, a container read-write with its upper and work directories. Mounts are counted
across processes and unmounted when the count drops to zero, before a layer is removed or
rewritten, and by `cleanup()` when a killed command left one uncounted.

Crash safety, as in vfs: a layer is built in scratch space and renamed into `layers/` whole, its
link made under the lock just before; `apply_diff` moves the layer and its link into scratch space
while it works and back when it is done. A killed command leaves at most scratch space and a
dangling link, which `cleanup()` removes, and never a half-applied layer under a valid name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dockyard.core import store
from dockyard.core.drivers import Availability, Change, DriverContext, LayerDiff, StagedDiff
from dockyard.core.errors import ConflictError, DriverFailed, NotFoundError, StoreError
from dockyard.core.storage_kit import LAYER_ID, MountCounts, check_id, failing

if TYPE_CHECKING:
    from dockyard.plugins.storage.overlay_mounts import Stack
    from dockyard.plugins.storage.overlay_probe import Verdict

__all__ = ["OverlayDriver"]

_LINK_LENGTH = 12
_LINK_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # 32 symbols: each random byte maps evenly
_RECORD = "layer.json"


class OverlayDriver:
    """Layers as overlayfs lower directories, containers as upper directories on top of them
    (see the module docstring). Option `mount_program`: "" (the kernel, else fuse-overlayfs),
    "kernel", or the FUSE program to use instead of the kernel."""

    name = "overlay"

    def __init__(self, context: DriverContext) -> None:
        self._home = context.home
        self._layers = context.home / "layers"
        self._links = context.home / "l"
        self._lock_path = context.home / "overlay.lock"
        self._run_dir = context.run_dir
        self._counts = MountCounts(context.run_dir)
        self._rootless = context.rootless
        self._mount_program = context.options.get("mount_program", "")
        self._verdict: Verdict | None = None

    def available(self) -> Availability:
        """Whether overlays can be mounted where the layers live (probed once, then cached)."""
        return self._probe().availability

    def status(self) -> dict[str, str]:
        """The backing filesystem, what mounts the overlays, and how many layers there are."""
        from dockyard.core.mountinfo import backing_filesystem

        count = 0
        with _failing("listing layers"):
            if self._layers.is_dir():
                count = sum(1 for entry in self._layers.iterdir() if LAYER_ID.fullmatch(entry.name))
        return {
            "Backing Filesystem": backing_filesystem(self._home),
            "Mount Program": self._probe().program or "none usable",
            "Native Diff": "true",
            "Layers": str(count),
        }

    def create_layer(self, layer_id: str, parent: str | None) -> None:
        """Create an empty layer on `parent`: a few directories, whatever the parent holds."""
        self._create(layer_id, parent, container=False)

    def create_rw(self, container_id: str, parent: str | None) -> None:
        """Create a container's layer: an empty upper directory and a work directory."""
        self._create(container_id, parent, container=True)

    def exists(self, layer_id: str) -> bool:
        """Whether the layer is complete and in place."""
        return self._dir(layer_id).is_dir()

    def remove(self, layer_id: str) -> None:
        """Remove the layer; a mounted one is a ConflictError, a missing one is already removed.

        A mount nobody counts (left by a killed command) is undone first, so the deletion never
        reaches through a mount.
        """
        from dockyard.plugins.storage.overlay_mounts import make_work_removable

        directory = self._dir(layer_id)
        if not directory.is_dir():
            return
        with (
            _failing(f"removing layer {layer_id}"),
            store.scratch_dir(self._home) as trash,
            self._locked(),
            self._counts.locked() as mounts,
        ):
            if mounts.get(layer_id, 0):
                raise ConflictError(f"layer {layer_id} is mounted")
            if not directory.is_dir():
                return
            link = self._link_of(directory)
            self._release(directory)
            os.rename(directory, trash / "layer")
            if link is not None:
                (self._links / link).unlink(missing_ok=True)
            make_work_removable(trash / "layer" / "work")

    def mount(self, layer_id: str) -> Path:
        """Mount the layer (once, however many users) and return its tree: the merged view of
        a layer with a parent, the layer's own directory otherwise."""
        directory = self._dir(layer_id)
        with _failing(f"mounting layer {layer_id}"), self._counts.locked() as mounts:
            record = self._record(layer_id)
            if record["lowers"]:
                view = directory / "merged"
                if not _is_mounted(view):
                    self._mount(layer_id, record)
            else:
                view = directory / "diff"
            mounts[layer_id] = mounts.get(layer_id, 0) + 1
        return view

    def unmount(self, layer_id: str) -> None:
        """Drop one reference, unmounting with the last; unmounting an unmounted layer does
        nothing."""
        directory = self._dir(layer_id)
        with _failing(f"unmounting layer {layer_id}"), self._counts.locked() as mounts:
            count = mounts.pop(layer_id, 0)
            if count > 1:
                mounts[layer_id] = count - 1
                return
            self._release(directory)

    def apply_diff(self, layer_id: str, archive: BinaryIO) -> LayerDiff:
        """Apply a layer tar to the layer's own directory, OCI whiteouts turned into overlay
        ones; if that fails, the layer is gone.

        The layer and its link move into scratch space for the duration and back when the
        archive is applied, so neither a failure nor a killed process can leave a half-applied
        layer that looks complete.
        """
        from dockyard.core.layer_apply import WhiteoutMode, apply_layer

        directory = self._dir(layer_id)
        if not directory.is_dir():
            raise NotFoundError(f"no such layer: {layer_id}")
        with (
            _failing(f"applying a diff to layer {layer_id}"),
            store.scratch_dir(self._home) as scratch,
        ):
            work, link = scratch / "layer", scratch / "link"
            with self._locked(), self._counts.locked() as mounts:
                if mounts.get(layer_id, 0):
                    raise ConflictError(f"layer {layer_id} is mounted")
                record = self._record(layer_id)
                self._release(directory)
                os.rename(directory, work)
                os.rename(self._links / record["link"], link)
            if record["parent"] is None:
                mode = WhiteoutMode.DELETE  # nothing below to hide: carry the whiteouts out
            else:
                mode = WhiteoutMode.OVERLAY_USERXATTR if self._rootless else WhiteoutMode.OVERLAY
            result = apply_layer(work / "diff", archive, whiteouts=mode, ignore_chown=self._rootless)
            with self._locked():
                if os.path.lexists(self._links / record["link"]):
                    raise DriverFailed(f"overlay: link name {record['link']} was taken meanwhile")
                os.rename(link, self._links / record["link"])
                os.rename(work, directory)
        return result

    @contextmanager
    def stage_diff(self, archive: BinaryIO, *, base: bool) -> Iterator[StagedDiff]:
        """Apply a layer tar into a new layer directory in scratch space (DetachedDiffs): a layer's
        own directory never depends on its parent's, so an image's layers stage side by side; a
        base layer carries its whiteouts out, as `apply_diff` does. Discarded unless committed."""
        from dockyard.core.layer_apply import WhiteoutMode, apply_layer

        if base:
            mode = WhiteoutMode.DELETE
        else:
            mode = WhiteoutMode.OVERLAY_USERXATTR if self._rootless else WhiteoutMode.OVERLAY
        with _failing("creating scratch space"):
            self._home.mkdir(parents=True, exist_ok=True)
        with store.scratch_dir(self._home) as scratch:
            with _failing("staging a layer diff"):
                staged = _empty_layer(scratch)
            result = apply_layer(staged / "diff", archive, whiteouts=mode, ignore_chown=self._rootless)
            yield StagedDiff(result, staged)

    def commit_diff(self, staged: StagedDiff, layer_id: str, parent: str | None) -> None:
        """Make a staged diff the layer `layer_id` on `parent`: its link and record, one rename.
        The record is not flushed here: the core flushes the filesystem (core/deferred_flush.py)."""
        with _failing(f"committing layer {layer_id}"):
            self._place(staged.location, layer_id, parent, container=False, durable=False)

    def diff(self, layer_id: str) -> Iterator[bytes]:
        """The layer's own directory as an OCI layer tar, overlay whiteouts turned back into
        OCI ones (the native diff: nothing below the layer is read)."""
        from dockyard.core.layer_diff import write_upper_diff

        return write_upper_diff(self._own_tree(layer_id), self._lowers(layer_id))

    def changes(self, layer_id: str) -> list[Change]:
        """The layer's changes against its parent, path by path."""
        from dockyard.core.layer_diff import upper_changes

        return upper_changes(self._own_tree(layer_id), self._lowers(layer_id))

    def diff_size(self, layer_id: str) -> int:
        """The bytes of files the layer's own directory holds."""
        from dockyard.core.layer_diff import upper_diff_size

        return upper_diff_size(self._own_tree(layer_id))

    def cleanup(self) -> None:
        """Remove what killed commands left: scratch space, dangling links, counts of layers
        that are gone, and mounts nobody counts."""
        from dockyard.core.mountinfo import mounts as mount_table

        with _failing("cleaning up"):
            store.clean_stale_scratch(self._home)
            if self._links.is_dir():
                with self._locked():
                    for link in self._links.iterdir():
                        if not link.exists():
                            link.unlink(missing_ok=True)
            prefix = os.path.realpath(self._layers) + "/"
            mounted = [
                Path(mount.mount_point)
                for mount in mount_table()
                if mount.mount_point.startswith(prefix) and mount.mount_point.endswith("/merged")
            ]
            if not mounted and not self._counts.exists():
                return
            with self._counts.locked() as counts:
                for layer_id in [key for key in counts if not self.exists(key)]:
                    del counts[layer_id]
                for point in mounted:
                    if not counts.get(point.parent.name):
                        self._release(point.parent)

    # --- internals ---------------------------------------------------------------------------

    def _probe(self) -> Verdict:
        if self._verdict is None:
            from dockyard.plugins.storage.overlay_probe import probe

            self._verdict = probe(
                self._home,
                self._run_dir,
                rootless=self._rootless,
                mount_program=self._mount_program,
            )
        return self._verdict

    def _create(self, layer_id: str, parent: str | None, *, container: bool) -> None:
        if self._dir(layer_id).is_dir():
            raise ConflictError(f"layer {layer_id} already exists")
        if parent is not None and not self.exists(parent):
            raise NotFoundError(f"parent layer {parent} of {layer_id} does not exist")
        with _failing(f"creating layer {layer_id}"):
            self._home.mkdir(parents=True, exist_ok=True)
            with store.scratch_dir(self._home) as scratch:
                staged = _empty_layer(scratch)
                if container and parent is not None:
                    (staged / "work").mkdir()
                self._place(staged, layer_id, parent, container=container, durable=True)

    def _place(
        self, staged: Path, layer_id: str, parent: str | None, *, container: bool, durable: bool
    ) -> None:
        """Give a layer built in scratch space its link and record, and rename it into place."""
        directory = self._dir(layer_id)
        lowers: list[str] = []
        if parent is not None:
            if not self.exists(parent):
                raise NotFoundError(f"parent layer {parent} of {layer_id} does not exist")
            above = self._record(parent)
            lowers = [above["link"], *above["lowers"]]
            (staged / "merged").mkdir(exist_ok=True)
        with self._locked():
            if directory.is_dir():
                raise ConflictError(f"layer {layer_id} already exists")
            link = self._new_link(layer_id)
            store.write_json(
                staged / _RECORD,
                {"parent": parent, "link": link, "lowers": lowers, "container": container},
                durable=durable,
            )
            self._layers.mkdir(exist_ok=True)
            os.rename(staged, directory)

    def _new_link(self, layer_id: str) -> str:
        """Make a fresh short link to the layer's directory (it dangles until the layer is
        renamed into place); the caller holds the lock."""
        self._links.mkdir(exist_ok=True)
        while True:
            name = "".join(_LINK_ALPHABET[byte % 32] for byte in os.urandom(_LINK_LENGTH))
            try:
                os.symlink(f"../layers/{layer_id}/diff", self._links / name)
            except FileExistsError:
                continue
            return name

    def _mount(self, layer_id: str, record: dict[str, Any]) -> None:
        """Mount the layer's merged view: read-only from lowers alone for an image layer,
        read-write with upper and work directories for a container."""
        from dockyard.plugins.storage.overlay_mounts import KERNEL, Stack, mount, option_string

        verdict = self._probe()
        verdict.availability.raise_if_unusable(self.name)
        below = tuple(f"l/{link}" for link in record["lowers"])
        if record["container"]:
            stack = Stack(below, f"layers/{layer_id}/diff", f"layers/{layer_id}/work")
        else:
            stack = Stack((f"l/{record['link']}", *below))
        if verdict.program == KERNEL:
            _check_length(stack, option_string(stack, program=KERNEL, rootless=self._rootless))
        mount(
            stack,
            self._dir(layer_id) / "merged",
            cwd=self._home,
            program=verdict.program,
            rootless=self._rootless,
        )

    def _release(self, directory: Path) -> None:
        """Unmount the layer's merged view if anything is mounted there."""
        from dockyard.core.mountinfo import find_mount
        from dockyard.plugins.storage.overlay_mounts import unmount

        merged = directory / "merged"
        if not _is_mounted(merged):
            return
        found = find_mount(merged)
        unmount(merged, fuse=found is not None and found.fstype.startswith("fuse"))

    def _own_tree(self, layer_id: str) -> Path:
        directory = self._dir(layer_id)
        if not directory.is_dir():
            raise NotFoundError(f"no such layer: {layer_id}")
        return directory / "diff"

    def _lowers(self, layer_id: str) -> list[Path]:
        """The directories of the layer's parents, nearest first, read through their links."""
        lowers = []
        with _failing(f"reading the parents of layer {layer_id}"):
            for link in self._record(layer_id)["lowers"]:
                try:
                    target = os.readlink(self._links / link)
                except FileNotFoundError:
                    raise NotFoundError(f"a parent layer of {layer_id} was removed") from None
                lowers.append(Path(os.path.normpath(self._links / target)))
        return lowers

    def _record(self, layer_id: str) -> dict[str, Any]:
        """The layer's record, checked for the keys the driver reads."""
        try:
            record = store.read_json(self._dir(layer_id) / _RECORD)
        except FileNotFoundError:
            raise NotFoundError(f"no such layer: {layer_id}") from None
        if not isinstance(record, dict) or not {"parent", "link", "lowers", "container"} <= set(record):
            raise StoreError(f"layer {layer_id} has no valid record")
        return record

    def _link_of(self, directory: Path) -> str | None:
        """The layer's link name, or None when its record is unreadable (cleanup() then removes
        the dangling link)."""
        try:
            record = store.read_json(directory / _RECORD)
        except (FileNotFoundError, StoreError):
            return None
        link = record.get("link") if isinstance(record, dict) else None
        return link if isinstance(link, str) and LAYER_ID.fullmatch(link) else None

    def _dir(self, layer_id: str) -> Path:
        return self._layers / check_id(layer_id)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with store.file_lock(self._lock_path):
            yield


def _empty_layer(scratch: Path) -> Path:
    """A new layer directory in scratch space with its empty `diff` (mode 0755, like mkdir -p)."""
    staged = scratch / "layer"
    staged.mkdir()
    (staged / "diff").mkdir()
    os.chmod(staged / "diff", 0o755)
    return staged


def _is_mounted(path: Path) -> bool:
    from dockyard.core.mountinfo import is_mount_point

    return is_mount_point(path)


def _check_length(stack: Stack, options: str) -> None:
    """Refuse a stack whose options the kernel would cut: mount(2) reads one page, NUL included."""
    limit = os.sysconf("SC_PAGE_SIZE") - 1
    if len(options) > limit:
        raise DriverFailed(
            f"overlay: {len(stack.lowers)} lower layers need {len(options)} bytes of mount "
            f"options, more than the kernel's {limit}"
        )


def _failing(action: str) -> AbstractContextManager[None]:
    """Report an OSError from the filesystem or a mount as DriverFailed."""
    return failing("overlay", action)
