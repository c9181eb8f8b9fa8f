"""Computing a layer's changes: path by path, as a size, and as an OCI layer archive.

Two ways to find them, both driver-independent:

    changes(lower, upper)          the "naive diff" of containers/storage: compare two full
    diff_size(lower, upper)        trees, which is all a copy-style driver (vfs, btrfs) can do
    write_diff(lower, upper)

    upper_changes(upper, lowers)   the native diff of an overlay-style upper directory: walk only
    upper_diff_size(upper)         the upper, where a 0:0 character device is a whiteout and a
    write_upper_diff(upper, lowers)  directory with an opaque attribute hides what lies below it

Entries are compared on type, mode, owner, device number, mtime, size (not for directories),
symlink target and extended attributes (`security.selinux` and the storage backend's own ones
excluded: they belong to the host, not the image). Archives keep mtimes to the nanosecond (a PAX
record when there is a fraction), so applying one (`dockyard.core.layer_apply`) reproduces the
tree exactly. Trees are read through directory descriptors opened with O_NOFOLLOW, so a tree that
changes underneath (a running container) never leads a scan or a read out of it.

Backend errors become DriverFailed with `raise ... from exc`.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard.core.drivers import Change, ChangeKind
from dockyard.core.errors import DriverFailed
from dockyard.core.layer_apply import (
    OPAQUE_MARKER,
    OVERLAY_OPAQUE_XATTR,
    OVERLAY_USER_OPAQUE_XATTR,
    PRIVATE_XATTRS,
    WHITEOUT_PREFIX,
    XATTR_PAX_PREFIX,
)
from dockyard.core.linux.paths import fd_entry_path, lstat_at

__all__ = [
    "changes",
    "diff_size",
    "upper_changes",
    "upper_diff_size",
    "write_diff",
    "write_upper_diff",
]

# Every attribute that marks a directory opaque: the kernel's (privileged and `userxattr`
# mounts) and fuse-overlayfs's own; and the entries fuse-overlayfs also marks one with.
_OPAQUE_XATTRS = (OVERLAY_OPAQUE_XATTR, OVERLAY_USER_OPAQUE_XATTR, "user.fuseoverlayfs.opaque")
_OPAQUE_ENTRIES = (OPAQUE_MARKER, WHITEOUT_PREFIX + ".opq")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CHUNK = 1 << 20
_NS = 1_000_000_000

Plan = list[tuple[str, ChangeKind]]


@dataclass(frozen=True)
class _Node:
    """One scanned entry: its lstat, symlink target, extended attributes and whether it carries
    an opaque attribute."""

    st: os.stat_result
    target: str = ""
    xattrs: tuple[tuple[str, bytes], ...] = ()
    opaque: bool = False


# --- reading trees -------------------------------------------------------------------------------




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
            found = lstat_at(dirfd, name)
            if found is None:
                continue
            path = prefix + name
            xattrs, opaque = _read_xattrs(fd_entry_path(dirfd, name))
            nodes[path] = _Node(
                found,
                os.readlink(name, dir_fd=dirfd) if stat.S_ISLNK(found.st_mode) else "",
                xattrs,
                opaque and stat.S_ISDIR(found.st_mode),
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


def _read_xattrs(path: str) -> tuple[tuple[tuple[str, bytes], ...], bool]:
    """The entry's own extended attributes (the backend's left out), and whether one of the
    backend's marks it opaque."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return (), False
        raise
    found = []
    opaque = False
    for attribute in sorted(names):
        try:
            value = os.getxattr(path, attribute, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # removed since it was listed
                raise
            continue
        if attribute in _OPAQUE_XATTRS:
            opaque = opaque or value == b"y"
        if not attribute.startswith(PRIVATE_XATTRS):
            found.append((attribute, value))
    return tuple(found), opaque


def _is_whiteout(st: os.stat_result) -> bool:
    """Whether an entry of an overlay-style directory is a whiteout (a 0:0 character device)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _by_components(plan: dict[str, ChangeKind]) -> Plan:
    return sorted(plan.items(), key=lambda item: item[0].split("/"))


# --- the naive diff ------------------------------------------------------------------------------


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


def _compare(lower: Path | None, upper: Path) -> tuple[dict[str, _Node], Plan]:
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
    return new, _by_components(kinds)


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
    return _file_bytes(nodes, [path for path, kind in found if kind is not ChangeKind.DELETED])


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
    except OSError as exc:
        raise DriverFailed(f"cannot compare {upper} with {lower}: {exc}") from exc
    yield from _write(upper, nodes, found, opaque=set())


# --- the native diff of an overlay-style upper directory -----------------------------------------


def _read_upper(upper: Path) -> tuple[dict[str, _Node], Plan, set[str]]:
    """The upper's entries, its plan (whiteouts as deletions, every other entry as an addition)
    and its opaque directories ("" for the upper itself).

    Whiteouts are 0:0 character devices (the kernel's) or `.wh.NAME` files, and a directory is
    opaque by attribute or by a `.wh..wh..opq` or `.wh..opq` entry in it (fuse-overlayfs marks
    each directory it makes in all three ways)."""
    nodes = _scan(upper)
    plan: dict[str, ChangeKind] = {}
    opaque = {path for path, node in nodes.items() if node.opaque}
    for path, node in nodes.items():
        parent, _, name = path.rpartition("/")
        if name.startswith(WHITEOUT_PREFIX) and not stat.S_ISDIR(node.st.st_mode):
            if name in _OPAQUE_ENTRIES:
                opaque.add(parent)
            else:
                hidden = name[len(WHITEOUT_PREFIX) :]
                plan[f"{parent}/{hidden}" if parent else hidden] = ChangeKind.DELETED
        elif _is_whiteout(node.st):
            plan[path] = ChangeKind.DELETED
        else:
            plan[path] = ChangeKind.ADDED
    if _read_xattrs(str(upper))[1]:
        opaque.add("")
    return nodes, _by_components(plan), opaque


def upper_changes(upper: Path, lowers: Sequence[Path]) -> list[Change]:
    """What the upper directory changes in the tree its `lowers` (nearest first) make, as
    `changes` reports it: an entry the lowers show is changed, any other added; a whiteout is a
    deletion of what the lowers show there, an opaque directory one of every entry they show in
    it that the upper does not hold."""
    view = _LowerView(lowers)
    kinds: dict[str, ChangeKind] = {}
    try:
        _, plan, opaque = _read_upper(upper)
        for path, kind in plan:
            shown = view.lookup(tuple(path.split("/")))
            if kind is ChangeKind.DELETED:
                if shown:
                    kinds[path] = ChangeKind.DELETED
            else:
                kinds[path] = ChangeKind.CHANGED if shown else ChangeKind.ADDED
        for directory in opaque:
            parts = tuple(directory.split("/")) if directory else ()
            prefix = f"{directory}/" if directory else ""
            for name in view.listdir(parts):
                kinds.setdefault(prefix + name, ChangeKind.DELETED)
    except OSError as exc:
        raise DriverFailed(f"cannot read the changes in {upper}: {exc}") from exc
    return [Change("/" + path, kind) for path, kind in _by_components(kinds)]


def upper_diff_size(upper: Path) -> int:
    """The bytes of regular files the upper directory holds, each inode once."""
    try:
        nodes, plan, _ = _read_upper(upper)
    except OSError as exc:
        raise DriverFailed(f"cannot read the changes in {upper}: {exc}") from exc
    return _file_bytes(nodes, [path for path, kind in plan if kind is not ChangeKind.DELETED])


def write_upper_diff(upper: Path, lowers: Sequence[Path]) -> Iterator[bytes]:
    """The upper directory as an OCI layer tar, in chunks, as `write_diff` writes one: a whiteout
    becomes a `.wh.` entry, an opaque directory is followed by its `.wh..wh..opq` marker. Only the
    upper is walked; the lowers are asked only whether an opaque directory hides anything (a
    directory the lowers do not show needs no marker). Applying the result on the lowers
    reproduces the merged tree."""
    view = _LowerView(lowers)
    try:
        nodes, plan, opaque = _read_upper(upper)
        hiding = {
            directory for directory in opaque if not directory or view.lookup(tuple(directory.split("/")))
        }
    except OSError as exc:
        raise DriverFailed(f"cannot read the changes in {upper}: {exc}") from exc
    yield from _write(upper, nodes, plan, opaque=hiding)


class _LowerView:
    """The tree overlay lower directories make (nearest first), looked up without mounting them:
    a whiteout or a non-directory hides the same path in the layers below, an opaque directory
    hides everything the layers below hold in it. The lowers are the directories themselves, not
    symlinks to them."""

    def __init__(self, lowers: Sequence[Path]) -> None:
        self._lowers = lowers

    def lookup(self, parts: tuple[str, ...]) -> bool:
        """Whether the tree shows an entry at `parts`."""
        for directory in self._directories(parts[:-1]):
            found = _lstat_path(directory / parts[-1])
            if found is not None:
                return not _is_whiteout(found)
        return False

    def listdir(self, parts: tuple[str, ...]) -> set[str]:
        """The names the tree shows in the directory `parts`."""
        seen: set[str] = set()
        shown: set[str] = set()
        for directory in self._directories(parts):
            for name in os.listdir(directory):
                if name in seen:
                    continue
                seen.add(name)
                found = _lstat_path(directory / name)
                if found is not None and not _is_whiteout(found):
                    shown.add(name)
        return shown

    def _directories(self, parts: tuple[str, ...]) -> list[Path]:
        """The layers' directories that make up the directory `parts`, nearest first."""
        found: list[Path] = []
        for lower in self._lowers:
            directory, present = lower, True
            stop = _read_xattrs(str(lower))[1]
            for part in parts:
                directory = directory / part
                st = _lstat_path(directory)
                if st is None:
                    present = False
                    break
                if not stat.S_ISDIR(st.st_mode):
                    return found
                stop = stop or _read_xattrs(str(directory))[1]
            if present:
                found.append(directory)
            if stop:
                break
        return found


def _lstat_path(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


# --- writing archives ----------------------------------------------------------------------------


def _file_bytes(nodes: dict[str, _Node], paths: list[str]) -> int:
    """The bytes of the regular files among `paths`, each inode once."""
    inodes: set[tuple[int, int]] = set()
    total = 0
    for path in paths:
        st = nodes[path].st
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in inodes:
            inodes.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def _write(upper: Path, nodes: dict[str, _Node], plan: Plan, *, opaque: set[str]) -> Iterator[bytes]:
    """The archive of a plan: a whiteout per deletion, every other entry with its content, and
    an opaque marker after each directory in `opaque`."""
    try:
        root_fd = os.open(upper, _DIR_FLAGS)
    except OSError as exc:
        raise DriverFailed(f"cannot write the diff of {upper}: {exc}") from exc
    try:
        links: dict[tuple[int, int], str] = {}
        if "" in opaque:
            yield _header(_marker_info(OPAQUE_MARKER))
        for path, kind in plan:
            if kind is ChangeKind.DELETED:
                yield _header(_whiteout_info(path))
                continue
            info = _tar_info(path, nodes[path], links)
            if info is None:
                continue
            yield _header(info)
            if info.isreg() and info.size:
                yield from _file_chunks(root_fd, path, info.size)
            if path in opaque:
                yield _header(_marker_info(f"{path}/{OPAQUE_MARKER}"))
        yield bytes(2 * tarfile.BLOCKSIZE)
    except OSError as exc:
        raise DriverFailed(f"cannot write the diff of {upper}: {exc}") from exc
    finally:
        os.close(root_fd)


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _marker_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0
    return info


def _whiteout_info(path: str) -> tarfile.TarInfo:
    parent, _, name = path.rpartition("/")
    return _marker_info(f"{parent}/{WHITEOUT_PREFIX}{name}".removeprefix("/"))


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
    pax = {XATTR_PAX_PREFIX + name: value.decode("utf-8", "surrogateescape") for name, value in node.xattrs}
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


def _open_directory(root_fd: int, parts: tuple[str, ...]) -> int:
    """Open the directory `parts` below `root_fd` one component at a time, never following a
    symlink: the diff reads only what the scan saw, so a symlink met now means the tree changed
    underneath, and the read fails rather than go where the symlink leads."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            sub = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def _file_chunks(root_fd: int, path: str, size: int) -> Iterator[bytes]:
    """The content of regular file `path`, exactly `size` bytes, then padding to a tar block."""
    parts = tuple(path.split("/"))
    dirfd = _open_directory(root_fd, parts[:-1])
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
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
