"""A file tree to a tar stream and a tar stream into a directory, never leaving the directory:
the transport of `cp`, in both directions and to or from `-`.

    write_tree(out, parent_fd=..., name=..., arcname=...)   archive one entry (recursively)
    extract_tree(stream, into_fd=..., ownership=...)        unpack into a directory descriptor

Writing walks descriptors: each entry is looked up in its already-open parent without following
symlinks (O_NOFOLLOW, lstat on the directory descriptor), so a symlink in the tree is archived as
a link, never followed, and no entry can be swapped for a path elsewhere mid-walk. Hard links
within the tree stay hard links. Sockets and device nodes are left out: a device node copied out of
a container would hand the host whatever device the container named.

Extracting treats `into_fd` as the root of every name: each entry's parent is opened with
`dockyard.core.rootpath.open_in_root` (openat2 RESOLVE_IN_ROOT, or an O_NOFOLLOW walk), so neither
`..`, an absolute symlink already in the destination, nor one the same archive creates can lead out
of it; the last component is created with `*at` calls that never follow a symlink, replacing a
symlink found there rather than writing through it. Names with `..` are refused. Unlike layer
application (core/layer_apply.py) there are no whiteouts: a file named `.wh.x` is just a file.
"""

from __future__ import annotations

import enum
import os
import stat
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from dockyard.core.errors import DockyardError, UsageError
from dockyard.core.rootpath import open_in_root

__all__ = ["Ownership", "extract_tree", "write_tree"]

_CHUNK = 1 << 20
_NS = 1_000_000_000


class Ownership(enum.Enum):
    """Who owns what `extract_tree` creates."""

    CALLER = "caller"  # whoever extracts: `cp` to the host, as Docker's client does
    ROOT = "root"  # uid 0 and gid 0: `cp` into a container
    ARCHIVE = "archive"  # the ids the archive records: `cp -a`


def write_tree(out: BinaryIO, *, parent_fd: int, name: str, arcname: str) -> None:
    """Archive the entry `name` of the directory `parent_fd` (recursively) as `arcname`."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _Writer(tar).add(parent_fd, name, arcname)


@dataclass
class _Writer:
    tar: tarfile.TarFile
    links: dict[tuple[int, int], str] = field(default_factory=dict)

    def add(self, parent_fd: int, name: str, arcname: str) -> None:
        info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        entry = tarfile.TarInfo(arcname)
        entry.mode = stat.S_IMODE(info.st_mode)
        entry.uid, entry.gid = info.st_uid, info.st_gid
        entry.mtime = info.st_mtime_ns / _NS
        if stat.S_ISDIR(info.st_mode):
            self._directory(parent_fd, name, entry)
        elif stat.S_ISREG(info.st_mode):
            self._file(parent_fd, name, entry, info)
        elif stat.S_ISLNK(info.st_mode):
            entry.type, entry.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=parent_fd)
            self.tar.addfile(entry)
        elif stat.S_ISFIFO(info.st_mode):
            entry.type = tarfile.FIFOTYPE
            self.tar.addfile(entry)

    def _directory(self, parent_fd: int, name: str, entry: tarfile.TarInfo) -> None:
        entry.type = tarfile.DIRTYPE
        self.tar.addfile(entry)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            for child in sorted(os.listdir(fd)):
                self.add(fd, child, f"{entry.name}/{child}")
        finally:
            os.close(fd)

    def _file(self, parent_fd: int, name: str, entry: tarfile.TarInfo, info: os.stat_result) -> None:
        key = (info.st_dev, info.st_ino)
        if info.st_nlink > 1 and key in self.links:
            entry.type, entry.linkname = tarfile.LNKTYPE, self.links[key]
            self.tar.addfile(entry)
            return
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=parent_fd)
        with os.fdopen(fd, "rb") as source:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                return  # swapped for something else since the lstat: leave it out
            entry.size = opened.st_size
            self.tar.addfile(entry, source)
        if info.st_nlink > 1:
            self.links[key] = entry.name


def extract_tree(stream: BinaryIO, *, into_fd: int, ownership: Ownership) -> None:
    """Unpack a tar stream into the directory `into_fd`, which every name is confined to."""
    extractor = _Extractor(into_fd, ownership)
    try:
        with tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape") as tar:
            for member in tar:
                extractor.extract(member, tar)
        extractor.finish()
    except tarfile.TarError as exc:
        raise UsageError(f"not a valid tar archive: {exc}") from exc
    except OSError as exc:
        where = f" {extractor.current}" if extractor.current else ""
        raise DockyardError(f"cannot copy{where}: {exc.strerror or exc}") from exc


def _parts(name: str) -> tuple[str, ...]:
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if ".." in parts or "\0" in name:
        raise UsageError(f"archive entry {name!r} is not a plain relative path")
    return parts


@dataclass
class _Extractor:
    into_fd: int
    ownership: Ownership
    current: str = ""
    # Directories get their mode and times once nothing more is written inside them.
    directories: list[tuple[tuple[str, ...], int, int]] = field(default_factory=list)

    def extract(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        self.current = member.name
        parts = _parts(member.name)
        if not parts or not (
            member.isreg() or member.isdir() or member.issym() or member.islnk() or member.isfifo()
        ):
            return  # the destination itself, or a device or socket: not copied
        parent = self._parent(parts[:-1])
        try:
            self._create(parent, parts, member, tar)
        finally:
            os.close(parent)

    def _parent(self, parts: tuple[str, ...]) -> int:
        """Open (creating, 0755) the directory `parts` inside the destination."""
        for depth in range(len(parts)):
            step = open_in_root(self.into_fd, "/".join(parts[:depth]))
            try:
                os.mkdir(parts[depth], 0o755, dir_fd=step)
            except FileExistsError:
                pass
            finally:
                os.close(step)
        return open_in_root(self.into_fd, "/".join(parts))

    def _create(
        self, parent: int, parts: tuple[str, ...], member: tarfile.TarInfo, tar: tarfile.TarFile
    ) -> None:
        name = parts[-1]
        try:
            existing: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        is_dir = existing is not None and stat.S_ISDIR(existing.st_mode)
        if member.isdir():
            if existing is not None and not is_dir:
                raise UsageError(f"cannot overwrite non-directory {member.name!r} with a directory")
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent)
            self._own(parent, name, member)
            self.directories.append((parts, self._mode(member), int(member.mtime * _NS)))
            return
        if is_dir:
            raise UsageError(f"cannot overwrite directory {member.name!r} with a non-directory")
        if existing is not None:
            os.unlink(name, dir_fd=parent)  # a symlink there is replaced, never written through
        if member.islnk():
            self._hardlink(parent, name, member)
            return
        mtime = int(member.mtime * _NS)
        if member.isreg():
            self._write(parent, name, member, tar)
            return
        if member.issym():
            os.symlink(member.linkname, name, dir_fd=parent)
        else:
            os.mkfifo(name, 0o600, dir_fd=parent)
            os.chmod(name, self._mode(member), dir_fd=parent, follow_symlinks=False)
        self._own(parent, name, member)
        os.utime(name, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)

    def _write(self, parent: int, name: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        """Write a file, then set its owner, mode and times through its descriptor (a path could
        be swapped for a symlink meanwhile by a running container)."""
        source = tar.extractfile(member)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(name, flags, 0o600, dir_fd=parent), "wb") as target:
            while source is not None and (chunk := source.read(_CHUNK)):
                target.write(chunk)
            target.flush()
            owner = self._owner(member)
            if owner is not None:
                os.fchown(target.fileno(), *owner)
            os.fchmod(target.fileno(), self._mode(member))
            mtime = int(member.mtime * _NS)
            os.utime(target.fileno(), ns=(mtime, mtime))

    def _hardlink(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        target = _parts(member.linkname)
        if not target:
            raise UsageError(f"hard link {member.name!r} points at the destination itself")
        source_dir = open_in_root(self.into_fd, "/".join(target[:-1]))
        try:
            os.link(target[-1], name, src_dir_fd=source_dir, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(source_dir)

    def _owner(self, member: tarfile.TarInfo) -> tuple[int, int] | None:
        if self.ownership is Ownership.CALLER:
            return None
        return (member.uid, member.gid) if self.ownership is Ownership.ARCHIVE else (0, 0)

    def _own(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        """Set the owner without following a symlink; before the mode, since chown clears
        setuid bits."""
        owner = self._owner(member)
        if owner is not None:
            os.chown(name, *owner, dir_fd=parent, follow_symlinks=False)

    def _mode(self, member: tarfile.TarInfo) -> int:
        """The member's permission bits; setuid and setgid only where the owner is kept, so a file
        copied out of a container never becomes setuid for the user who copied it."""
        mode = stat.S_IMODE(member.mode)
        if self.ownership is Ownership.CALLER:
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        return mode

    def finish(self) -> None:
        """Set the directories' modes and times, deepest first."""
        self.current = ""
        for parts, mode, mtime in reversed(self.directories):
            fd = open_in_root(self.into_fd, "/".join(parts))
            try:
                os.chmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
