"""What a COPY or ADD takes and where it puts it: sources resolved in a tree, a checksum the build
cache keys on, and the tar stream of the result.

    SourceTree(root, ignore)        the build context (with .dockerignore) or another stage's root
    destination(dest, workdir)      an instruction's destination as an image path, and whether it
                                    names a directory by its spelling (trailing `/`, `.`)
    plan_copy(tree, sources, dest, dest_is_dir=..., owner=..., chmod=..., unpack_archives=...)
                                    -> CopyPlan: `.checksum()` and `.write_tar(out)`
    parse_chmod(text)               `--chmod=0755` as a mode

Sources follow Docker's rules:
- Paths and globs (Go's `filepath.Match`, per component) are relative to the tree's root; `..`
  and absolute paths are confined to it (`../x` and `/x` are the root's `x`), and symlinks on the
  way are resolved inside the root, never out of it. Symlinks met inside a copied directory are
  copied as symlinks.
- Files .dockerignore excludes do not exist for a COPY; a literal source that is missing or
  excluded is an error, so is a glob that matches nothing.
- A directory source copies its contents, not itself. A file goes to `dest/<name>` when the
  destination is a directory, else to `dest` itself. More than one source (after globbing) needs a
  directory destination.
- Everything copied belongs to `owner` (0:0 unless `--chown`), keeps its mode unless `--chmod`, and
  its mtime. ADD unpacks local tar archives (`unpack_archives`) into the destination directory.

The stream names are image paths without the leading `/` ("app/main.py"). It holds the copied
entries only: the destination directory and its parents are not in it, so existing directories
keep their owner and mode; whoever extracts it creates missing ones.

The checksum covers what lands in the image: names as placed, type, mode, owner, symlink
targets and file contents; not mtimes, so touching a file does not invalidate the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from dockyard.core.build.archives import WHITEOUT_PREFIX, add_archive_entries, is_archive
from dockyard.core.build.dockerignore import IgnoreMatcher
from dockyard.core.build.globs import has_wildcards, match_component
from dockyard.core.errors import NotFoundError, UsageError
from dockyard.core.rootpath import split_inside

__all__ = ["CopyPlan", "PlannedEntry", "SourceTree", "destination", "parse_chmod", "plan_copy"]

_MAX_SYMLINKS = 40
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceTree:
    """A directory COPY reads from; `ignore` applies to paths relative to `root`."""

    root: str
    ignore: IgnoreMatcher = field(default_factory=IgnoreMatcher)


@dataclass(frozen=True)
class PlannedEntry:
    """One entry of the result: `name` in the image, `source` relative to the tree's root.

    `kind` is "dir", "file", "symlink" or "archive" (a file ADD unpacks below `name`).
    """

    name: str
    kind: str
    source: str
    mode: int
    uid: int
    gid: int
    mtime: float
    linkname: str = ""


def parse_chmod(text: str) -> int:
    """An octal `--chmod` value ("755", "0644") as a mode."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise UsageError(f"invalid chmod parameter: {text!r}: only octal modes are supported") from None
    if not 0 <= mode <= 0o7777:
        raise UsageError(f"invalid chmod parameter: {text!r}")
    return mode


def destination(dest: str, workdir: str = "/") -> tuple[str, bool]:
    """The image path `dest` names (relative to `workdir`) and whether its spelling makes it a
    directory (a trailing `/`, or `.`). The builder also treats an existing directory as one."""
    spelled_dir = dest.endswith("/") or dest == "." or dest.endswith("/.")
    path = posixpath.normpath(posixpath.join("/", workdir, dest))
    return "/" + path.lstrip("/"), spelled_dir


def _resolve(root: str, parts: Sequence[str]) -> tuple[str, ...] | None:
    """`parts` with every symlink resolved inside `root`, or None if the path does not exist."""
    pending = list(parts)
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            info = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISLNK(info.st_mode):
            if pending and not stat.S_ISDIR(info.st_mode):
                return None
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            return None
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending = target.split("/") + pending
    return tuple(resolved)


def _matches(tree: SourceTree, pattern: str) -> list[tuple[str, ...]]:
    """The resolved paths a source pattern names, excluded ones left out, sorted within each glob."""
    candidates: list[tuple[str, ...]] = [()]
    for part in split_inside(pattern):
        following: list[tuple[str, ...]] = []
        for base in candidates:
            if not has_wildcards(part):
                names = [part]
            else:
                try:
                    names = sorted(os.listdir(os.path.join(tree.root, *base)))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                names = [name for name in names if match_component(part, name)]
            for name in names:
                resolved = _resolve(tree.root, (*base, name))
                if resolved is not None:
                    following.append(resolved)
        candidates = following
    return [path for path in candidates if not path or not tree.ignore.excluded("/".join(path))]


@dataclass
class _Planner:
    tree: SourceTree
    owner: tuple[int, int]
    chmod: int | None
    unpack_archives: bool
    entries: list[PlannedEntry] = field(default_factory=list)

    def _entry(self, name: str, kind: str, source: str, info: os.stat_result, linkname: str = "") -> None:
        if posixpath.basename(name).startswith(WHITEOUT_PREFIX):
            raise UsageError(f"cannot copy {source!r}: names starting with .wh. are reserved for whiteouts")
        mode = stat.S_IMODE(info.st_mode)
        if self.chmod is not None and kind != "symlink":
            mode = self.chmod
        uid, gid = self.owner
        self.entries.append(PlannedEntry(name, kind, source, mode, uid, gid, info.st_mtime, linkname))

    def add(self, path: tuple[str, ...], target: str, *, into_dir: bool) -> None:
        """Plan the resolved source `path` copied to the image path `target`."""
        source = "/".join(path)
        info = os.lstat(os.path.join(self.tree.root, *path))
        if stat.S_ISDIR(info.st_mode):
            self.walk(path, target)
            return
        if not stat.S_ISREG(info.st_mode):
            return  # a device, socket or fifo: not copied
        full = os.path.join(self.tree.root, *path)
        if self.unpack_archives and is_archive(full):
            self._entry(target, "archive", source, info)
            return
        name = posixpath.join(target, path[-1]) if into_dir and path else target
        self._entry(name, "file", source, info)

    def walk(self, path: tuple[str, ...], target: str) -> bool:
        """Plan the contents of the directory `path` below `target`; say whether anything was planned."""
        planned = False
        directory = os.path.join(self.tree.root, *path)
        for name in sorted(os.listdir(directory)):
            child = (*path, name)
            relative = "/".join(child)
            info = os.lstat(os.path.join(directory, name))
            is_dir = stat.S_ISDIR(info.st_mode)
            excluded = self.tree.ignore.excluded(relative)
            if excluded and not (is_dir and self.tree.ignore.must_descend(relative)):
                continue
            placed = posixpath.join(target, name)
            if is_dir:
                position = len(self.entries)
                self._entry(placed, "dir", relative, info)
                if not self.walk(child, placed) and excluded:
                    del self.entries[position]  # walked only for exceptions, none matched
                    continue
            elif stat.S_ISLNK(info.st_mode):
                self._entry(placed, "symlink", relative, info, os.readlink(os.path.join(directory, name)))
            elif stat.S_ISREG(info.st_mode):
                self._entry(placed, "file", relative, info)
            else:
                continue
            planned = True
        return planned


@dataclass(frozen=True)
class CopyPlan:
    """The entries one COPY or ADD puts into the image, in a stable order; `label` is what the
    classic builder's history calls the sources: "file" or "dir" for one, "multi" for several."""

    tree: SourceTree
    entries: tuple[PlannedEntry, ...]
    label: str = "multi"

    def _path(self, entry: PlannedEntry) -> str:
        return os.path.join(self.tree.root, entry.source)

    def _content_digest(self, entry: PlannedEntry) -> str:
        digest = hashlib.sha256()
        fd = os.open(self._path(entry), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def checksum(self) -> str:
        """`sha256:<hex>` over names, types, modes, owners, link targets and contents (not mtimes)."""
        digest = hashlib.sha256()
        for entry in self.entries:
            content = self._content_digest(entry) if entry.kind in ("file", "archive") else ""
            record = [entry.name, entry.kind, entry.mode, entry.uid, entry.gid, entry.linkname, content]
            digest.update(json.dumps(record).encode() + b"\n")
        return f"sha256:{digest.hexdigest()}"

    def write_tar(self, out: BinaryIO) -> None:
        """Write the result as an uncompressed tar stream (PAX) to `out`."""
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for entry in self.entries:
                if entry.kind == "archive":
                    add_archive_entries(tar, self._path(entry), dest=entry.name)
                    continue
                info = tarfile.TarInfo(entry.name.lstrip("/"))
                info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, entry.mtime
                if entry.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif entry.kind == "symlink":
                    info.type, info.linkname = tarfile.SYMTYPE, entry.linkname
                    tar.addfile(info)
                else:
                    self._add_file(tar, info, entry)

    def _add_file(self, tar: tarfile.TarFile, info: tarfile.TarInfo, entry: PlannedEntry) -> None:
        fd = os.open(self._path(entry), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as source:
            info.size = os.fstat(fd).st_size
            tar.addfile(info, source)

    def names(self) -> Iterator[str]:
        """The image paths the plan writes (archives: their destination directory)."""
        return (entry.name for entry in self.entries)


def plan_copy(
    tree: SourceTree,
    sources: Sequence[str],
    dest: str,
    *,
    dest_is_dir: bool,
    owner: tuple[int, int] = (0, 0),
    chmod: int | None = None,
    unpack_archives: bool = False,
    keyword: str = "COPY",
) -> CopyPlan:
    """Resolve `sources` in `tree` and plan their copy to the image path `dest` (absolute, already
    joined with WORKDIR: see `destination`); `dest_is_dir` when it is spelled as or exists as a
    directory. Raises NotFoundError for a missing source, UsageError for several sources into a
    file destination."""
    resolved: list[tuple[str, ...]] = []
    for source in sources:
        matches = _matches(tree, source)
        if not matches and has_wildcards(source):
            raise NotFoundError(f"{keyword} failed: no source files were specified")
        if not matches:
            raise NotFoundError(
                f"{keyword} failed: file not found in build context or excluded by .dockerignore: "
                f"stat {source}: file does not exist"
            )
        resolved.extend(matches)
    if len(resolved) > 1 and not dest_is_dir:
        raise UsageError(
            f"When using {keyword} with more than one source file, the destination must be a directory "
            "and end with a /"
        )
    target = "/" + "/".join(split_inside(dest))
    planner = _Planner(tree, owner, chmod, unpack_archives)
    for path in resolved:
        planner.add(path, target, into_dir=dest_is_dir)
    label = "multi"
    if len(resolved) == 1:
        label = "dir" if os.path.isdir(os.path.join(tree.root, *resolved[0])) else "file"
    return CopyPlan(tree, tuple(planner.entries), label)
