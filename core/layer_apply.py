"""Applying an OCI layer archive to a directory, safely.

    apply_layer(root, archive, whiteouts=...)   unpack an uncompressed layer tar onto `root`

Also the layer format's vocabulary the diff side (`dockyard.core.layer_diff`) writes back:
whiteout names, the opaque marker, overlayfs's opaque attributes and the attributes that belong
to the storage backend rather than to the files.

Nothing outside `root` is ever created, changed or removed, whatever the archive holds.
Every path is resolved *inside* the root, which acts as "/" for it: the parent directory of each
entry is opened with openat2(2) and RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS (or, where the kernel
or a seccomp filter refuses openat2, a component-by-component O_NOFOLLOW walk that resolves
symlinks the same way), and the last step is a `*at` call on that directory descriptor that never
follows a symlink. tarfile's own extraction and its filters are not used. Case by case:

- A leading "/" is stripped: an absolute name is relative to the root, as Docker and GNU tar do
  (contained). Empty and "." components are dropped; ".." removes the previous component, and a
  ".." with nothing left to remove would leave the root: UnsafeLayerError (rejected).
- A symlink met in a parent path is followed, inside the root: `a -> /` or `a -> ../../..` then
  `a/etc/x` writes `<root>/etc/x` (contained), however the symlink was swapped earlier in the same
  archive. A parent path that runs into a dangling symlink or a symlink loop is UnsafeLayerError
  (rejected): its target does not exist in the layer, so no directory can be created for it. A
  whiteout behind such a path hides nothing in DELETE mode and is rejected in the overlay modes,
  which would have to create the directory to hold the whiteout.
- The last component is never followed: a file, directory, device, link or whiteout replaces or
  removes a symlink found there, never what it points to; metadata goes to the entry itself.
- Symlink targets are data, stored as they are (absolute and `..` targets included).
- Hard link targets follow the rules for names; the target must exist in the layer (else
  UnsafeLayerError) and a link to a symlink links the symlink itself.
- Whiteouts: `.wh.` alone, `.wh..` and `.wh...` (whose target would be the directory itself or its
  parent) and a `.wh.`-prefixed name used as a directory (`.wh.../x`) are UnsafeLayerError.
  `.wh..wh.`-prefixed aufs metadata (other than the opaque marker) is skipped, as Docker does.
- Extended attributes private to overlayfs (`trusted.overlay.*`, `user.overlay.*`) and
  fuse-overlayfs (`user.fuseoverlayfs.*`) are never taken from an archive: they would let a layer
  steer lookups into other layers. Attributes the
  filesystem or kernel refuses (ENOTSUP, EPERM) are skipped with a warning.

Mtimes are kept to the nanosecond (PAX records), files are written sparse (aligned runs of zeros
stay holes), directories get their modes and times once everything inside them is written.

Backend errors become DriverFailed (an OSError), ContentError (not a tar, an unsupported entry)
or UnsafeLayerError (an entry that would escape or corrupt the layer), with `raise ... from exc`.
"""

from __future__ import annotations

import enum
import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

from dockyard.core.digests import HashingReader
from dockyard.core.drivers import LayerDiff
from dockyard.core.errors import ContentError, DriverFailed, UnsafeLayerError
from dockyard.core.linux.paths import fd_entry_path, lstat_at
from dockyard.core.log import get_logger
from dockyard.core.rootpath import open_in_root
from dockyard.core.tar_source import ForwardReader

__all__ = [
    "OPAQUE_MARKER",
    "OVERLAY_OPAQUE_XATTR",
    "OVERLAY_USER_OPAQUE_XATTR",
    "PRIVATE_XATTRS",
    "WHITEOUT_PREFIX",
    "XATTR_PAX_PREFIX",
    "WhiteoutMode",
    "apply_layer",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_USER_OPAQUE_XATTR = "user.overlay.opaque"
XATTR_PAX_PREFIX = "SCHILY.xattr."
# Attributes that belong to the storage backend, not to the files: never applied from an archive,
# never written into one.
PRIVATE_XATTRS = ("trusted.overlay.", "user.overlay.", "user.fuseoverlayfs.", "security.selinux")
_AUFS_META_PREFIX = ".wh..wh."
_XATTR_REFUSED = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

_CHUNK = 1 << 20
_HOLE = 1 << 16  # zero runs of this size and alignment are left as holes
_ZERO_PAGE = bytes(4096)  # no run of these, no hole: searching for it is ~6x cheaper than for a hole
_NS = 1_000_000_000

log = get_logger(__name__)


class WhiteoutMode(enum.Enum):
    """How a whiteout in a layer archive is carried out.

    DELETE suits copy-style drivers (vfs, btrfs), whose layer directory starts as a full copy of
    its parent: the whited-out path is deleted. OVERLAY suits overlayfs, whose layer directory holds
    only the layer's own entries: a whiteout becomes a 0:0 character device and an opaque directory
    gets the `trusted.overlay.opaque=y` attribute, as the kernel expects. OVERLAY_USERXATTR is
    OVERLAY for rootless use, where `trusted.*` cannot be written: the opaque attribute is
    `user.overlay.opaque`, which overlayfs reads when mounted with `userxattr` (and
    fuse-overlayfs reads too).
    """

    DELETE = "delete"
    OVERLAY = "overlay"
    OVERLAY_USERXATTR = "overlay-userxattr"

    @property
    def opaque_xattr(self) -> str:
        """The attribute that marks a directory opaque in this mode (overlay modes only)."""
        if self is WhiteoutMode.OVERLAY_USERXATTR:
            return OVERLAY_USER_OPAQUE_XATTR
        return OVERLAY_OPAQUE_XATTR


# --- resolving paths inside a root: core/rootpath.py ----------------------------------------------


def _split_name(name: str) -> tuple[str, ...]:
    """The components of an archive path, normalised lexically inside the root (see module doc)."""
    if "\0" in name:
        raise UnsafeLayerError(f"layer entry name {name!r} contains a NUL byte")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts:
            parts.pop()
        else:
            raise UnsafeLayerError(f"layer entry {name!r} climbs out of the layer")
    return tuple(parts)




def _remove(dirfd: int, name: str) -> None:
    """Remove `name` from the directory (recursively for a directory); a missing one is fine.

    shutil.rmtree with dir_fd works on descriptors and refuses to follow symlinks.
    """
    found = lstat_at(dirfd, name)
    if found is None:
        return
    if stat.S_ISDIR(found.st_mode):
        shutil.rmtree(name, dir_fd=dirfd)
    else:
        os.unlink(name, dir_fd=dirfd)


# --- applying ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DirMeta:
    """A directory's mode and times, set once everything inside it has been written, and its
    inode, so they go to the same directory even if a later entry moved a path around."""

    mode: int
    atime_ns: int
    mtime_ns: int
    inode: tuple[int, int]


@dataclass
class _Applier:
    """Applies tar members one by one onto the directory `root_fd`."""

    root_fd: int
    whiteouts: WhiteoutMode
    ignore_chown: bool
    current: str = ""
    # Every path this layer wrote, with its ancestors: an opaque marker or a whiteout hides only
    # what lower layers hold, never the layer's own entries.
    seen: set[tuple[str, ...]] = field(default_factory=set)
    dirs: dict[tuple[str, ...], _DirMeta] = field(default_factory=dict)

    def apply(self, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        """Apply one member: a whiteout, the root's own metadata, or a new entry."""
        self.current = member.name
        parts = _split_name(member.name)
        if any(part.startswith(_AUFS_META_PREFIX) and part != OPAQUE_MARKER for part in parts):
            log.debug("aufs metadata skipped", entry=member.name)
            return
        if any(part.startswith(WHITEOUT_PREFIX) for part in parts[:-1]):
            raise UnsafeLayerError(f"layer entry {member.name!r} uses a whiteout as a directory")
        if parts and parts[-1].startswith(WHITEOUT_PREFIX):
            self._whiteout(parts)
            return
        if not parts:
            if not member.isdir():
                raise UnsafeLayerError(f"layer entry {member.name!r} would replace the layer root")
            self._set_metadata(self.root_fd, ".", member, ())
            return
        _check_type(member)
        self._mark_seen(parts)
        dirfd = self._open_dir(parts[:-1], create=True)
        try:
            if self._create(dirfd, parts[-1], member, tar):
                self._set_metadata(dirfd, parts[-1], member, parts)
        finally:
            os.close(dirfd)

    def finish(self) -> None:
        """Set directory modes and times, now that nothing will be written inside them."""
        self.current = ""
        for parts, meta in self.dirs.items():
            parent, name = (parts[:-1], parts[-1]) if parts else ((), ".")
            try:
                dirfd = self._open_dir(parent, create=False)
            except (FileNotFoundError, NotADirectoryError):
                continue  # replaced by a later entry
            try:
                found = lstat_at(dirfd, name)
                if found is None or (found.st_dev, found.st_ino) != meta.inode:
                    continue
                os.chmod(name, meta.mode, dir_fd=dirfd, follow_symlinks=False)
                os.utime(name, ns=(meta.atime_ns, meta.mtime_ns), dir_fd=dirfd, follow_symlinks=False)
            finally:
                os.close(dirfd)

    def _mark_seen(self, parts: tuple[str, ...]) -> None:
        for depth in range(1, len(parts) + 1):
            self.seen.add(parts[:depth])

    def _open_dir(self, parts: tuple[str, ...], *, create: bool) -> int:
        """Open the directory `parts` inside the root; with `create`, make missing ones (0755)."""
        try:
            return open_in_root(self.root_fd, "/".join(parts))
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeLayerError(f"entry {self.current!r} meets a symlink loop") from exc
            raise
        try:
            for depth in range(1, len(parts) + 1):
                parent = open_in_root(self.root_fd, "/".join(parts[: depth - 1]))
                try:
                    os.mkdir(parts[depth - 1], 0o755, dir_fd=parent)
                    os.chmod(parts[depth - 1], 0o755, dir_fd=parent, follow_symlinks=False)
                except FileExistsError:
                    pass
                finally:
                    os.close(parent)
            return open_in_root(self.root_fd, "/".join(parts))
        except FileNotFoundError:
            raise UnsafeLayerError(
                f"layer entry {self.current!r} goes through a symlink that leads nowhere inside the layer"
            ) from None

    def _create(self, dirfd: int, name: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> bool:
        """Create the entry, replacing what was there; False when it takes no metadata."""
        existing = lstat_at(dirfd, name)
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                _remove(dirfd, name)
                os.mkdir(name, 0o700, dir_fd=dirfd)
            return True
        if member.islnk():
            return self._hardlink(dirfd, name, member)
        _remove(dirfd, name)
        if member.isreg():
            _write_file(dirfd, name, member, tar)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=dirfd)
        elif member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=dirfd)
        else:
            return _make_device(dirfd, name, member)
        return True

    def _hardlink(self, dirfd: int, name: str, member: tarfile.TarInfo) -> bool:
        """Link `name` to an entry already in the layer; the link shares its metadata."""
        target = _split_name(member.linkname)
        if not target:
            raise UnsafeLayerError(f"hard link {member.name!r} points at the layer root")
        try:
            target_dir = self._open_dir(target[:-1], create=False)
        except (FileNotFoundError, NotADirectoryError):
            raise UnsafeLayerError(
                f"hard link {member.name!r} points at {member.linkname!r}, not in the layer"
            ) from None
        try:
            if lstat_at(target_dir, target[-1]) is None:
                raise UnsafeLayerError(
                    f"hard link {member.name!r} points at {member.linkname!r}, not in the layer"
                )
            _remove(dirfd, name)
            os.link(target[-1], name, src_dir_fd=target_dir, dst_dir_fd=dirfd, follow_symlinks=False)
        finally:
            os.close(target_dir)
        return False

    def _set_metadata(self, dirfd: int, name: str, member: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        """Owner, mode, extended attributes and times, in the order that keeps them all.

        chown clears setuid bits and file capabilities, so it goes first; a directory's mode and
        times wait for `finish` so that writing inside it neither fails nor bumps its mtime.
        """
        self._chown(dirfd, name, member)
        mtime = _mtime_ns(member, "mtime")
        atime = _mtime_ns(member, "atime", default=mtime)
        if member.isdir():
            found = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            inode = (found.st_dev, found.st_ino)
            self.dirs[parts] = _DirMeta(stat.S_IMODE(member.mode), atime, mtime, inode)
        elif not member.issym():
            os.chmod(name, stat.S_IMODE(member.mode), dir_fd=dirfd, follow_symlinks=False)
        _set_xattrs(dirfd, name, member)
        if not member.isdir():
            os.utime(name, ns=(atime, mtime), dir_fd=dirfd, follow_symlinks=False)

    def _chown(self, dirfd: int, name: str, member: tarfile.TarInfo) -> None:
        try:
            os.chown(name, member.uid, member.gid, dir_fd=dirfd, follow_symlinks=False)
        except OSError as exc:
            if not (self.ignore_chown and exc.errno in (errno.EPERM, errno.EINVAL)):
                raise
            log.debug("ownership not kept", entry=member.name, uid=member.uid, gid=member.gid)

    def _whiteout(self, parts: tuple[str, ...]) -> None:
        base, directory = parts[-1], parts[:-1]
        if base == OPAQUE_MARKER:
            self._opaque(directory)
            return
        hidden = base[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise UnsafeLayerError(f"whiteout {self.current!r} names no entry")
        if (*directory, hidden) in self.seen:
            return  # a whiteout never hides its own layer's entries
        if self.whiteouts is WhiteoutMode.DELETE:
            try:
                dirfd = self._open_dir(directory, create=False)
            except (FileNotFoundError, NotADirectoryError):
                return  # nothing there to hide
            try:
                _remove(dirfd, hidden)
            finally:
                os.close(dirfd)
            return
        self._mark_seen((*directory, hidden))
        dirfd = self._open_dir(directory, create=True)
        try:
            _remove(dirfd, hidden)
            os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dirfd)
        finally:
            os.close(dirfd)

    def _opaque(self, directory: tuple[str, ...]) -> None:
        if self.whiteouts is not WhiteoutMode.DELETE:
            self._mark_seen(directory)
            dirfd = self._open_dir(directory, create=True)
            try:
                os.setxattr(dirfd, self.whiteouts.opaque_xattr, b"y")
            finally:
                os.close(dirfd)
            return
        pending = [directory]
        while pending:
            parts = pending.pop()
            try:
                dirfd = self._open_dir(parts, create=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                for name in os.listdir(dirfd):
                    child = (*parts, name)
                    if child not in self.seen:
                        _remove(dirfd, name)
                        continue
                    found = lstat_at(dirfd, name)
                    if found is not None and stat.S_ISDIR(found.st_mode):
                        pending.append(child)
            finally:
                os.close(dirfd)


def _check_type(member: tarfile.TarInfo) -> None:
    """Refuse entry types a layer cannot hold, and link targets that are not plain text."""
    if not (
        member.isreg()
        or member.isdir()
        or member.issym()
        or member.islnk()
        or member.ischr()
        or member.isblk()
        or member.isfifo()
    ):
        raise ContentError(f"layer entry {member.name!r} has unsupported type {member.type!r}")
    if "\0" in member.linkname:
        raise UnsafeLayerError(f"layer entry {member.name!r} has a link target with a NUL byte")


def _write_file(dirfd: int, name: str, member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
    """Write a regular file's content, leaving aligned runs of zeros as holes (sparse output)."""
    source = tar.extractfile(member)
    if source is None:
        raise ContentError(f"layer entry {member.name!r} has no content")
    fd = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dirfd,
    )
    try:
        _copy_sparse(source, fd)
    finally:
        os.close(fd)


def _copy_sparse(source: IO[bytes], fd: int) -> None:
    offset = 0
    while chunk := source.read(_CHUNK):
        _write_sparse(fd, chunk, offset)
        offset += len(chunk)
    os.ftruncate(fd, offset)


def _write_sparse(fd: int, chunk: bytes, offset: int) -> None:
    """Write `chunk` at `offset` in as few calls as its aligned all-zero blocks allow.

    A chunk without a single block's worth of zeros in a row (the common case, found by a fast
    substring search) is one write; otherwise each run of data between zero blocks is one write.
    """
    view = memoryview(chunk)
    if _ZERO_PAGE not in chunk:
        _pwrite_all(fd, view, offset)
        return
    pending = 0  # where the data not yet written starts
    for start in range(0, len(chunk), _HOLE):
        stop = min(start + _HOLE, len(chunk))
        if chunk.count(0, start, stop) == stop - start:
            if pending < start:
                _pwrite_all(fd, view[pending:start], offset + pending)
            pending = stop
    if pending < len(chunk):
        _pwrite_all(fd, view[pending:], offset + pending)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = os.pwrite(fd, data, offset)
        data = data[written:]
        offset += written


def _make_device(dirfd: int, name: str, member: tarfile.TarInfo) -> bool:
    """mknod a character or block device; without root it is skipped with a warning."""
    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
    try:
        os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=dirfd)
    except PermissionError:
        if os.geteuid() == 0:
            raise
        log.warning("device node skipped: creating devices needs root", entry=member.name)
        return False
    return True


def _set_xattrs(dirfd: int, name: str, member: tarfile.TarInfo) -> None:
    """Set the `SCHILY.xattr.*` attributes; ones the filesystem or kernel refuses are skipped."""
    for key, value in member.pax_headers.items():
        if not key.startswith(XATTR_PAX_PREFIX):
            continue
        attribute = key[len(XATTR_PAX_PREFIX) :]
        if attribute.startswith(PRIVATE_XATTRS):
            log.warning("private extended attribute skipped", entry=member.name, xattr=attribute)
            continue
        try:
            os.setxattr(
                fd_entry_path(dirfd, name),
                attribute,
                value.encode("utf-8", "surrogateescape"),
                follow_symlinks=False,
            )
        except OSError as exc:
            if exc.errno not in _XATTR_REFUSED:
                raise
            log.warning(
                "extended attribute not kept",
                entry=member.name,
                xattr=attribute,
                reason=os.strerror(exc.errno),
            )


def _mtime_ns(member: tarfile.TarInfo, key: str, *, default: int | None = None) -> int:
    """A PAX time (exact to the nanosecond, unlike tarfile's float) or the header's seconds."""
    raw = member.pax_headers.get(key)
    if raw is None:
        return int(member.mtime) * _NS if default is None else default
    negative = raw.startswith("-")
    whole, _, fraction = raw.removeprefix("-").partition(".")
    if not whole.isdigit() or not (fraction.isdigit() or fraction == ""):
        raise ContentError(f"layer entry {member.name!r} has a malformed {key} {raw!r}")
    value = int(whole) * _NS + int((fraction + "000000000")[:9])
    return -value if negative else value


def apply_layer(
    root: Path, archive: BinaryIO, *, whiteouts: WhiteoutMode, ignore_chown: bool = False
) -> LayerDiff:
    """Apply an uncompressed OCI layer tar onto the directory `root`; return its digest and size.

    The digest and size cover the whole stream, end-of-archive padding included. `ignore_chown`
    makes EPERM and EINVAL from chown non-fatal (rootless use). See the module docstring for how
    each kind of hostile entry is contained or rejected.
    """
    reader = HashingReader(archive)
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise DriverFailed(f"cannot open layer directory {root}: {exc}") from exc
    applier = _Applier(root_fd, whiteouts, ignore_chown)
    try:
        # Random-access mode over a forward-only reader: one read per header and per member.
        stream = cast("IO[bytes]", ForwardReader(cast(BinaryIO, reader)))
        with tarfile.open(fileobj=stream, mode="r:", errors="surrogateescape") as tar:
            for member in tar:
                applier.apply(member, tar)
        applier.finish()
        reader.drain()
    except tarfile.TarError as exc:
        raise ContentError(f"layer archive is not a valid tar: {exc}") from exc
    except (ValueError, OverflowError) as exc:  # NUL bytes, numbers out of range
        raise ContentError(f"layer entry {applier.current!r} is malformed: {exc}") from exc
    except OSError as exc:
        where = f" at {applier.current!r}" if applier.current else ""
        raise DriverFailed(f"applying layer to {root} failed{where}: {exc}") from exc
    finally:
        os.close(root_fd)
    return LayerDiff(reader.digest, reader.size)
