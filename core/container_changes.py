"""A container's own changes, as `diff` lists them and `commit` records them.

Starting a container mounts /proc, /sys, /dev and the container's /etc/hostname, /etc/hosts and
/etc/resolv.conf over the image; where the image lacks one of these, the isolation driver creates
an empty mount point (and any missing parent directory) in the container's read-write layer.
Docker keeps such mount points in a separate "init" layer between the image and the read-write
layer, so they never show in `docker diff` and never end up in a committed image. Dockyard has no
init layer; instead the storage driver's changes are filtered here the same way:

    visible_changes(changes)        the driver's change list without the mount points
    write_visible_diff(chunks, out)  the driver's diff tar, re-written without them

A hidden entry is a path in `RUNTIME_MOUNT_POINTS`; a directory above one is dropped with it
unless something else below it changed, and is then reported as changed rather than added (in
Docker the init layer already holds it). Changes under a user's volume or bind mount point are
not hidden: Docker shows those too.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO, cast

from dockyard.core.container_spec import ETC_FILES
from dockyard.core.defaults import DEFAULT_MOUNTS
from dockyard.core.drivers import Change, ChangeKind

__all__ = ["RUNTIME_MOUNT_POINTS", "visible_changes", "write_visible_diff"]

RUNTIME_MOUNT_POINTS = frozenset(
    [mount.destination for mount in DEFAULT_MOUNTS] + [f"/etc/{name}" for name in ETC_FILES]
)
_ABOVE_MOUNT_POINTS = frozenset(
    parent
    for point in RUNTIME_MOUNT_POINTS
    for parent in (point[:index] for index in range(1, len(point)) if point[index] == "/")
)
_READ_SIZE = 1 << 20


def visible_changes(changes: Iterable[Change]) -> list[Change]:
    """`changes` (sorted by path, as drivers report them) without the runtime's mount points."""
    kept: list[Change] = []
    pending: list[Change] = []
    for change in changes:
        if change.path in RUNTIME_MOUNT_POINTS and change.kind is ChangeKind.ADDED:
            continue
        while pending and not change.path.startswith(pending[-1].path + "/"):
            pending.pop()
        if change.path in _ABOVE_MOUNT_POINTS:
            pending.append(change)
            continue
        kept.extend(Change(held.path, ChangeKind.CHANGED) for held in pending)
        pending.clear()
        kept.append(change)
    return kept


def write_visible_diff(chunks: Iterable[bytes], out: BinaryIO) -> int:
    """Copy a driver's diff tar to `out` without the runtime's mount points; returns how many
    entries were written (0: the container changed nothing, an empty layer)."""
    reader = cast(BinaryIO, _ChunkReader(iter(chunks)))
    written = 0
    pending: list[tarfile.TarInfo] = []
    with (
        tarfile.open(fileobj=reader, mode="r|", errors="surrogateescape", bufsize=_READ_SIZE) as source,
        tarfile.open(
            fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, errors="surrogateescape", bufsize=_READ_SIZE
        ) as sink,
    ):
        for member in source:
            path = "/" + member.name.strip("/")
            if path in RUNTIME_MOUNT_POINTS:
                continue
            while pending and not path.startswith("/" + pending[-1].name.strip("/") + "/"):
                pending.pop()
            if member.isdir() and path in _ABOVE_MOUNT_POINTS:
                pending.append(member)
                continue
            for held in pending:
                sink.addfile(held)
            written += len(pending) + 1
            pending.clear()
            sink.addfile(member, source.extractfile(member) if member.isreg() else None)
    return written


class _ChunkReader:
    """A read-only file over an iterator of byte chunks (a driver's diff stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative); b"" at the end."""
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0 or size >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
        return data
