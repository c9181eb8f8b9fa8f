"""ADD's local archives: recognising a (compressed) tar file and re-rooting its entries under a
destination directory without letting any of them out.

    is_archive(path)                          whether ADD unpacks this file (Docker: any tar it can read,
                                              gzip, bzip2, xz or zstd compressed or not)
    add_archive_entries(tar, path, dest=...)  append the archive's entries to `tar` below `dest`

Each entry's name is cleaned (a leading `/` and `.` components dropped) and must stay inside the
destination: a `..` that would climb out of it, or a hard link pointing out of it, is refused
with UnsafeLayerError, as is a `.wh.` name, which a layer store would take for a whiteout. Entries
keep their owners and modes, as Docker's ADD keeps them; symlink targets are data.
"""

from __future__ import annotations

import os
import tarfile

from dockyard.core.compression import open_decompressed
from dockyard.core.errors import ContentError, UnsafeLayerError

__all__ = ["WHITEOUT_PREFIX", "add_archive_entries", "inside", "is_archive"]

WHITEOUT_PREFIX = ".wh."  # the layer format's whiteout marker (see core/layer_apply.py)


def is_archive(path: str) -> bool:
    """Whether the file at `path` is a tar archive, compressed or not, with at least one entry."""
    try:
        with (
            open(path, "rb") as raw,
            open_decompressed(raw) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            return tar.next() is not None
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return False


def inside(dest: str, name: str, *, what: str) -> str:
    """`name` (an archive path) placed below the image path `dest`, refusing any escape."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeLayerError(f"{what}: entry {name!r} points outside the destination")
            parts.pop()
            continue
        parts.append(part)
    if (parts and parts[-1].startswith(WHITEOUT_PREFIX)) or "\0" in name:
        raise UnsafeLayerError(f"{what}: entry name {name!r} is reserved for layer whiteouts")
    return "/".join([part for part in dest.split("/") if part] + parts)


def add_archive_entries(tar: tarfile.TarFile, path: str, *, dest: str) -> None:
    """Append every entry of the archive at `path` to `tar`, re-rooted below `dest` (an image path)."""
    what = os.path.basename(path)
    try:
        with (
            open(path, "rb") as raw,
            open_decompressed(raw) as stream,
            tarfile.open(fileobj=stream, mode="r|") as source,
        ):
            for member in source:
                member.name = inside(dest, member.name, what=what)
                if not member.name:
                    continue  # "./" placed at the root: the root keeps its own metadata
                if member.islnk():
                    member.linkname = inside(dest, member.linkname, what=what)
                data = source.extractfile(member) if member.isreg() else None
                tar.addfile(member, data)
    except (tarfile.TarError, EOFError) as exc:
        raise ContentError(f"cannot unpack {what}: {exc}") from exc
