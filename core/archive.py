"""OCI layer archives: apply one to a directory safely, and write a tree's changes as one.

Driver-independent tooling every storage driver may reuse:

    apply_layer(root, archive, whiteouts=...)   unpack an uncompressed layer tar onto `root`
    changes(lower, upper)                       what `upper` changed against `lower`, path by path
    write_diff(lower, upper)                    those changes as an OCI layer tar stream
    diff_size(lower, upper)                     the bytes those changes add

The last three are the "naive diff" of containers/storage: compare two full trees, which is all a
copy-style driver (vfs, btrfs) can do.

Applying: nothing outside `root` is ever created, changed or removed, whatever the archive holds.
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
  whiteout behind such a path hides nothing in DELETE mode and is rejected in OVERLAY mode, which
  would have to create the directory to hold the whiteout.
- The last component is never followed: a file, directory, device, link or whiteout replaces or
  removes a symlink found there, never what it points to; metadata goes to the entry itself.
- Symlink targets are data, stored as they are (absolute and `..` targets included).
- Hard link targets follow the rules for names; the target must exist in the layer (else
  UnsafeLayerError) and a link to a symlink links the symlink itself.
- Whiteouts: `.wh.` alone, `.wh..` and `.wh...` (whose target would be the directory itself or its
  parent) and a `.wh.`-prefixed name used as a directory (`.wh.../x`) are UnsafeLayerError.
  `.wh..wh.`-prefixed aufs metadata (other than the opaque marker) is skipped, as Docker does.
- Extended attributes private to overlayfs (`trusted.overlay.*`, `user.overlay.*`) are never taken
  from an archive: they would let a layer steer lookups into other layers. Attributes the
  filesystem or kernel refuses (ENOTSUP, EPERM) are skipped with a warning.

Diffing: entries are compared on type, mode, owner, device number, mtime, size (not for
directories), symlink target and extended attributes (`security.selinux` and the overlay ones
excluded: they belong to the host, not the image). The archive keeps mtimes to the nanosecond (a
PAX record when there is a fraction), so applying it reproduces the tree exactly.

Backend errors become DriverFailed (an OSError), ContentError (not a tar, an unsupported entry)
or UnsafeLayerError (an entry that would escape or corrupt the layer), with `raise ... from exc`.
"""

from __future__ import annotations

import enum
import errno
import functools
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

from dockyard.core.digests import HashingReader
from dockyard.core.drivers import Change, ChangeKind, LayerDiff
from dockyard.core.errors import ContentError, DriverFailed, UnsafeLayerError
from dockyard.core.log import get_logger

__all__ = [
    "OPAQUE_MARKER",
    "OVERLAY_OPAQUE_XATTR",
    "WHITEOUT_PREFIX",
    "WhiteoutMode",
    "apply_layer",
    "changes",
    "diff_size",
    "write_diff",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_AUFS_META_PREFIX = ".wh..wh."
_XATTR_PAX_PREFIX = "SCHILY.xattr."
# Attributes that belong to the storage backend, not to the files: never applied from an archive,
# never written into one.
_PRIVATE_XATTRS = ("trusted.overlay.", "user.overlay.", "security.selinux")
_XATTR_REFUSED = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM)

_SYS_OPENAT2 = 437  # the same number on x86_64 and aarch64
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_MAX_SYMLINKS = 40  # as the kernel's own limit for one lookup
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

_CHUNK = 1 << 20
_HOLE = 1 << 16  # zero runs of this size and alignment are left as holes
_NS = 1_000_000_000

log = get_logger(__name__)


class WhiteoutMode(enum.Enum):
    """How a whiteout in a layer archive is carried out.

    DELETE suits copy-style drivers (vfs, btrfs), whose layer directory starts as a full copy of
    its parent: the whited-out path is deleted. OVERLAY suits overlayfs, whose layer directory holds
    only the layer's own entries: a whiteout becomes a 0:0 character device and an opaque directory
    gets the `trusted.overlay.opaque=y` attribute, as the kernel expects.
    """

    DELETE = "delete"
    OVERLAY = "overlay"


# --- resolving paths inside a root ---------------------------------------------------------------


@functools.cache
def _openat2() -> Callable[[int, str, int], int] | None:
    """openat2(2) with RESOLVE_IN_ROOT, bound through ctypes; None where it cannot be used.

    Probed once: an old kernel answers ENOSYS, a container's seccomp filter often EPERM.
    """
    if os.uname().machine not in ("x86_64", "aarch64"):
        return None
    import ctypes

    class OpenHow(ctypes.Structure):
        _fields_ = [
            ("flags", ctypes.c_uint64),
            ("mode", ctypes.c_uint64),
            ("resolve", ctypes.c_uint64),
        ]

    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long

    def openat2(dirfd: int, path: str, flags: int) -> int:
        how = OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        for _ in range(64):  # EAGAIN: a rename raced the lookup; the kernel asks for a retry
            fd = syscall(
                ctypes.c_long(_SYS_OPENAT2), ctypes.c_long(dirfd),
                ctypes.c_char_p(os.fsencode(path)), ctypes.byref(how),
                ctypes.c_size_t(ctypes.sizeof(how)),
            )
            if fd >= 0:
                return int(fd)
            code = ctypes.get_errno()
            if code not in (errno.EAGAIN, errno.EINTR):
                raise OSError(code, os.strerror(code), path)
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)

    probe_dir = os.open("/", _DIR_FLAGS)
    try:
        os.close(openat2(probe_dir, ".", _DIR_FLAGS))
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
            return None
        raise
    finally:
        os.close(probe_dir)
    return openat2


def _walk_in_root(root_fd: int, parts: tuple[str, ...]) -> int:
    """Open the directory `parts` below `root_fd` as RESOLVE_IN_ROOT would, one O_NOFOLLOW step at
    a time: a symlink is read and its target resolved from the root (absolute) or from where it
    was met (relative), and ".." never climbs above the root.

    Every directory on the stack is a real directory, so popping it for ".." is the physical
    parent. The fallback for kernels without openat2.
    """
    pending = list(reversed(parts))
    stack = [os.dup(root_fd)]
    followed = 0
    try:
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                stack.append(os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=stack[-1]))
                continue
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                target = _symlink_target(stack[-1], name, exc)
            followed += 1
            if not target:
                raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), "/".join(parts))
            if followed > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/".join(parts))
            if target.startswith("/"):
                while len(stack) > 1:
                    os.close(stack.pop())
            pending.extend(reversed(target.split("/")))
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def _symlink_target(dirfd: int, name: str, refusal: OSError) -> str:
    """The target of symlink `name`; `refusal` again when `name` is not a symlink after all."""
    try:
        return os.readlink(name, dir_fd=dirfd)
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # a file, not a symlink: the walk cannot go through it
            raise refusal from None
        raise


def _open_in_root(root_fd: int, parts: tuple[str, ...]) -> int:
    """A descriptor of the directory `parts`, each symlink on the way resolved inside the root."""
    if not parts:
        return os.dup(root_fd)
    openat2 = _openat2()
    if openat2 is None:
        return _walk_in_root(root_fd, parts)
    return openat2(root_fd, "/".join(parts), _DIR_FLAGS)


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


def _proc_path(dirfd: int, name: str) -> str:
    """A path naming `name` in the directory `dirfd`, for calls that take no dir_fd (xattrs).

    The magic link lands on the directory itself; `name` is one component, looked up without
    following it when the call is made with follow_symlinks=False.
    """
    return f"/proc/self/fd/{dirfd}/{name}"


def _lstat(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove(dirfd: int, name: str) -> None:
    """Remove `name` from the directory (recursively for a directory); a missing one is fine.

    shutil.rmtree with dir_fd works on descriptors and refuses to follow symlinks.
    """
    found = _lstat(dirfd, name)
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
                found = _lstat(dirfd, name)
                if found is None or (found.st_dev, found.st_ino) != meta.inode:
                    continue
                os.chmod(name, meta.mode, dir_fd=dirfd, follow_symlinks=False)
                os.utime(
                    name, ns=(meta.atime_ns, meta.mtime_ns), dir_fd=dirfd, follow_symlinks=False
                )
            finally:
                os.close(dirfd)

    def _mark_seen(self, parts: tuple[str, ...]) -> None:
        for depth in range(1, len(parts) + 1):
            self.seen.add(parts[:depth])

    def _open_dir(self, parts: tuple[str, ...], *, create: bool) -> int:
        """Open the directory `parts` inside the root; with `create`, make missing ones (0755)."""
        try:
            return _open_in_root(self.root_fd, parts)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeLayerError(f"entry {self.current!r} meets a symlink loop") from exc
            raise
        try:
            for depth in range(1, len(parts) + 1):
                parent = _open_in_root(self.root_fd, parts[: depth - 1])
                try:
                    os.mkdir(parts[depth - 1], 0o755, dir_fd=parent)
                    os.chmod(parts[depth - 1], 0o755, dir_fd=parent, follow_symlinks=False)
                except FileExistsError:
                    pass
                finally:
                    os.close(parent)
            return _open_in_root(self.root_fd, parts)
        except FileNotFoundError:
            raise UnsafeLayerError(
                f"layer entry {self.current!r} goes through a symlink that leads nowhere "
                "inside the layer"
            ) from None

    def _create(
        self, dirfd: int, name: str, member: tarfile.TarInfo, tar: tarfile.TarFile
    ) -> bool:
        """Create the entry, replacing what was there; False when it takes no metadata."""
        existing = _lstat(dirfd, name)
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
            if _lstat(target_dir, target[-1]) is None:
                raise UnsafeLayerError(
                    f"hard link {member.name!r} points at {member.linkname!r}, not in the layer"
                )
            _remove(dirfd, name)
            os.link(
                target[-1], name, src_dir_fd=target_dir, dst_dir_fd=dirfd, follow_symlinks=False
            )
        finally:
            os.close(target_dir)
        return False

    def _set_metadata(
        self, dirfd: int, name: str, member: tarfile.TarInfo, parts: tuple[str, ...]
    ) -> None:
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
        hidden = base[len(WHITEOUT_PREFIX):]
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
        if self.whiteouts is WhiteoutMode.OVERLAY:
            self._mark_seen(directory)
            dirfd = self._open_dir(directory, create=True)
            try:
                os.setxattr(dirfd, OVERLAY_OPAQUE_XATTR, b"y")
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
                    found = _lstat(dirfd, name)
                    if found is not None and stat.S_ISDIR(found.st_mode):
                        pending.append(child)
            finally:
                os.close(dirfd)


def _check_type(member: tarfile.TarInfo) -> None:
    """Refuse entry types a layer cannot hold, and link targets that are not plain text."""
    if not (
        member.isreg() or member.isdir() or member.issym() or member.islnk()
        or member.ischr() or member.isblk() or member.isfifo()
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
        name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
        dir_fd=dirfd,
    )
    try:
        _copy_sparse(source, fd)
    finally:
        os.close(fd)


def _copy_sparse(source: IO[bytes], fd: int) -> None:
    offset = 0
    while chunk := source.read(_CHUNK):
        view = memoryview(chunk)
        for start in range(0, len(chunk), _HOLE):
            stop = min(start + _HOLE, len(chunk))
            if chunk.count(0, start, stop) != stop - start:
                _pwrite_all(fd, view[start:stop], offset + start)
        offset += len(chunk)
    os.ftruncate(fd, offset)


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
        if not key.startswith(_XATTR_PAX_PREFIX):
            continue
        attribute = key[len(_XATTR_PAX_PREFIX):]
        if attribute.startswith(_PRIVATE_XATTRS):
            log.warning("private extended attribute skipped", entry=member.name, xattr=attribute)
            continue
        try:
            os.setxattr(
                _proc_path(dirfd, name), attribute, value.encode("utf-8", "surrogateescape"),
                follow_symlinks=False,
            )
        except OSError as exc:
            if exc.errno not in _XATTR_REFUSED:
                raise
            log.warning(
                "extended attribute not kept", entry=member.name, xattr=attribute,
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
        # Stream mode only ever calls read(), all HashingReader offers.
        stream = cast("IO[bytes]", reader)
        with tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape") as tar:
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


# --- naive diff ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """One scanned entry: its lstat, symlink target and extended attributes."""

    st: os.stat_result
    target: str = ""
    xattrs: tuple[tuple[str, bytes], ...] = ()


def _scan(root: Path) -> dict[str, _Node]:
    """Every entry below `root` by relative path, read through directory descriptors opened with
    O_NOFOLLOW, so a tree changing underneath (a running container) never leads the scan out."""
    nodes: dict[str, _Node] = {}
    top = os.open(root, _DIR_FLAGS)
    stack: list[tuple[int, str, Iterator[str]]] = [(top, "", iter(sorted(os.listdir(top))))]
    try:
        while stack:
            dirfd, prefix, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(dirfd)
                stack.pop()
                continue
            found = _lstat(dirfd, name)
            if found is None:
                continue
            path = prefix + name
            nodes[path] = _Node(
                found,
                os.readlink(name, dir_fd=dirfd) if stat.S_ISLNK(found.st_mode) else "",
                _read_xattrs(dirfd, name),
            )
            if stat.S_ISDIR(found.st_mode):
                sub = _open_subdir(dirfd, name)
                if sub is not None:
                    stack.append((sub, path + "/", iter(sorted(os.listdir(sub)))))
    finally:
        for dirfd, _, _ in stack:
            os.close(dirfd)
    return nodes


def _open_subdir(dirfd: int, name: str) -> int | None:
    """Open a subdirectory without following a symlink; None if it vanished or was replaced."""
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dirfd)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_xattrs(dirfd: int, name: str) -> tuple[tuple[str, bytes], ...]:
    path = _proc_path(dirfd, name)
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ()
        raise
    found = []
    for attribute in sorted(names):
        if attribute.startswith(_PRIVATE_XATTRS):
            continue
        try:
            found.append((attribute, os.getxattr(path, attribute, follow_symlinks=False)))
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # removed since it was listed
                raise
    return tuple(found)


def _differs(old: _Node, new: _Node) -> bool:
    """Whether an entry changed: type, mode, owner, device, mtime, size (not for directories),
    symlink target or extended attributes."""
    a, b = old.st, new.st
    if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid):
        return True
    if a.st_mtime_ns != b.st_mtime_ns:
        return True
    if not stat.S_ISDIR(b.st_mode) and a.st_size != b.st_size:
        return True
    if (stat.S_ISCHR(b.st_mode) or stat.S_ISBLK(b.st_mode)) and a.st_rdev != b.st_rdev:
        return True
    return old.target != new.target or old.xattrs != new.xattrs


def _compare(
    lower: Path | None, upper: Path
) -> tuple[dict[str, _Node], list[tuple[str, ChangeKind]]]:
    """Scan both trees; return upper's entries and the changes sorted by path components.

    A deleted directory is reported alone, not with its contents. Every directory above a change
    is reported changed, so a diff carries the metadata of the directories it writes into.
    """
    new = _scan(upper)
    old = _scan(lower) if lower is not None else {}
    kinds: dict[str, ChangeKind] = {}
    for path, node in new.items():
        before = old.get(path)
        if before is None:
            kinds[path] = ChangeKind.ADDED
        elif _differs(before, node):
            kinds[path] = ChangeKind.CHANGED
    for path in old:
        if path not in new and _parent_is_directory(path, new):
            kinds[path] = ChangeKind.DELETED
    for path in list(kinds):
        parent = path.rpartition("/")[0]
        while parent and parent not in kinds:
            kinds[parent] = ChangeKind.CHANGED
            parent = parent.rpartition("/")[0]
    return new, sorted(kinds.items(), key=lambda item: item[0].split("/"))


def _parent_is_directory(path: str, nodes: dict[str, _Node]) -> bool:
    """Whether `path`'s parent is the root or a directory in `nodes`: a deleted entry is reported
    only then, not when its parent went too (or became a file, which replaces it anyway)."""
    parent = path.rpartition("/")[0]
    return not parent or (parent in nodes and stat.S_ISDIR(nodes[parent].st.st_mode))


def changes(lower: Path | None, upper: Path) -> list[Change]:
    """What the tree `upper` changed against `lower` (None: against nothing), as `docker diff`
    reports it: paths absolute inside the container, sorted, a deleted directory only once."""
    try:
        _, found = _compare(lower, upper)
    except OSError as exc:
        raise DriverFailed(f"cannot compare {upper} with {lower}: {exc}") from exc
    return [Change("/" + path, kind) for path, kind in found]


def diff_size(lower: Path | None, upper: Path) -> int:
    """The bytes of regular files `upper` adds or changes against `lower`, each inode once."""
    try:
        nodes, found = _compare(lower, upper)
    except OSError as exc:
        raise DriverFailed(f"cannot compare {upper} with {lower}: {exc}") from exc
    inodes: set[tuple[int, int]] = set()
    total = 0
    for path, kind in found:
        st = nodes[path].st if kind is not ChangeKind.DELETED else None
        if st is not None and stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in inodes:
            inodes.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def write_diff(lower: Path | None, upper: Path) -> Iterator[bytes]:
    """`upper`'s changes against `lower` as an OCI layer tar (PAX), in chunks.

    Deletions become `.wh.` whiteouts; entries that share an inode become hard links to the first
    of them; extended attributes go in `SCHILY.xattr.*` records; owners, modes, device numbers
    and nanosecond mtimes are kept; names carry no user or group name. The order is sorted by path
    components, so equal trees give byte-identical archives. Sockets cannot be archived and are
    left out. A file that changes size while it is read is cut or padded with zeros to the size
    it had when the trees were compared (run the diff on a stopped container).
    Applying the result to a copy of `lower` reproduces `upper`.
    """
    try:
        nodes, found = _compare(lower, upper)
        root_fd = os.open(upper, _DIR_FLAGS)
    except OSError as exc:
        raise DriverFailed(f"cannot compare {upper} with {lower}: {exc}") from exc
    try:
        links: dict[tuple[int, int], str] = {}
        for path, kind in found:
            if kind is ChangeKind.DELETED:
                yield _header(_whiteout_info(path))
                continue
            info = _tar_info(path, nodes[path], links)
            if info is None:
                continue
            yield _header(info)
            if info.isreg() and info.size:
                yield from _file_chunks(root_fd, path, info.size)
        yield bytes(2 * tarfile.BLOCKSIZE)
    except OSError as exc:
        raise DriverFailed(f"cannot write the diff of {upper}: {exc}") from exc
    finally:
        os.close(root_fd)


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _whiteout_info(path: str) -> tarfile.TarInfo:
    parent, _, name = path.rpartition("/")
    info = tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{name}".removeprefix("/"))
    info.mode = 0
    return info


def _tar_info(path: str, node: _Node, links: dict[tuple[int, int], str]) -> tarfile.TarInfo | None:
    """The tar header of one entry; None for a socket."""
    st = node.st
    info = tarfile.TarInfo(path)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISSOCK(st.st_mode):
        return None
    if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
        first = links.setdefault((st.st_dev, st.st_ino), path)
        if first != path:
            info.type, info.linkname = tarfile.LNKTYPE, first
            return info
    seconds, fraction = divmod(st.st_mtime_ns, _NS)
    info.mtime = seconds
    pax = {
        _XATTR_PAX_PREFIX + name: value.decode("utf-8", "surrogateescape")
        for name, value in node.xattrs
    }
    if fraction:
        pax["mtime"] = _format_ns(st.st_mtime_ns)
    info.pax_headers = pax
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, node.target
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def _format_ns(ns: int) -> str:
    seconds, fraction = divmod(abs(ns), _NS)
    return f"{'-' if ns < 0 else ''}{seconds}.{fraction:09d}"


def _file_chunks(root_fd: int, path: str, size: int) -> Iterator[bytes]:
    """The content of regular file `path`, exactly `size` bytes, then padding to a tar block."""
    parts = tuple(path.split("/"))
    dirfd = _open_in_root(root_fd, parts[:-1])
    try:
        fd = os.open(
            parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd
        )
    finally:
        os.close(dirfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DriverFailed(f"{path} stopped being a regular file while the diff was written")
        remaining = size
        while remaining:
            chunk = os.read(fd, min(remaining, _CHUNK)) or bytes(min(remaining, _CHUNK))
            remaining -= len(chunk)
            yield chunk
    finally:
        os.close(fd)
    if size % tarfile.BLOCKSIZE:
        yield bytes(tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
