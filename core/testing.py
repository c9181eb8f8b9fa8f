"""The storage-driver conformance suite, shipped for plugin authors (pytest plugin
`dockyard_conformance`).

Passing it is what "works" means for a storage driver. A plugin runs it against its own driver by
subclassing `StorageDriverConformance` in its tests and providing a `storage_driver` fixture built
on the `dockyard_storage_context` fixture (both the canary checks and the leftover checks rely on
the driver keeping its state under that context's home):

    import pytest
    from dockyard.core.testing import StorageDriverConformance

    class TestMyDriver(StorageDriverConformance):
        @pytest.fixture
        def storage_driver(self, dockyard_storage_context):
            return MyDriver(dockyard_storage_context)

A driver that only works on some filesystem (btrfs, zfs) says where its home must live by
overriding `dockyard_storage_home` (a fresh directory per test, on that filesystem), and one that
takes options overrides `dockyard_storage_options`; the canary stays under `tmp_path`, outside.

Installing Dockyard registers this module with pytest, which only makes the `dockyard_*` fixtures
available: nothing runs unless a test class subclasses the suite. The module imports nothing heavy
(tarfile is imported by the helpers that need it).

Also here, for tests of layer tooling: `LayerBuilder` (crafted layer tars, hostile ones included),
`tree_snapshot` (everything a layer must preserve, as a comparable value) and `EXTRACTION_ATTACKS`,
the hostile archives with the outcome a safe extraction must have.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, cast

import pytest

from dockyard.core.drivers import Availability, ChangeKind, DriverContext, StorageDriver
from dockyard.core.errors import ConflictError, NotFoundError, UnsafeLayerError

if TYPE_CHECKING:
    import tarfile

__all__ = [
    "EXTRACTION_ATTACKS",
    "AttackPlan",
    "Canary",
    "ExtractionAttack",
    "LayerBuilder",
    "StorageDriverConformance",
    "check_attack_outcome",
    "dockyard_canary",
    "dockyard_storage_context",
    "dockyard_storage_home",
    "dockyard_storage_options",
    "layer_id",
    "tree_snapshot",
]

DEFAULT_MTIME = 1_600_000_000
_IS_ROOT = os.geteuid() == 0
_needs_root = pytest.mark.skipif(not _IS_ROOT, reason="needs root")


def layer_id(name: str) -> str:
    """A stable 64-hex layer id for a readable name, the shape the core hands drivers."""
    return hashlib.sha256(name.encode()).hexdigest()


# --- building layer archives ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One archive entry as the builder records it; made into a TarInfo when built."""

    name: str
    kind: str
    data: bytes = b""
    size: int = 0
    chunks: Mapping[int, bytes] = field(default_factory=dict)
    linkname: str = ""
    device: tuple[int, int] = (0, 0)
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = DEFAULT_MTIME
    pax: Mapping[str, str] = field(default_factory=dict)


class _SparseSource:
    """`size` bytes of zeros with `chunks` ({offset: data}) laid over them, produced as read."""

    def __init__(self, size: int, chunks: Mapping[int, bytes]) -> None:
        self._size, self._chunks, self._position = size, chunks, 0

    def read(self, size: int = -1) -> bytes:
        """The next bytes of the file."""
        start = self._position
        stop = self._size if size < 0 else min(self._size, start + size)
        block = bytearray(stop - start)
        for offset, data in self._chunks.items():
            low, high = max(offset, start), min(offset + len(data), stop)
            if low < high:
                block[low - start : high - start] = data[low - offset : high - offset]
        self._position = stop
        return bytes(block)


class LayerBuilder:
    """Builds an uncompressed layer tar (PAX) in memory, entries in the order they are added.

    Names are written exactly as given, so hostile ones (`../x`, `/abs`, `.wh.`) can be made.
    Every method returns the builder, for chaining.
    """

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def _add(self, entry: _Entry, xattrs: Mapping[str, bytes] | None) -> LayerBuilder:
        if xattrs:
            pax = dict(entry.pax)
            for key, value in xattrs.items():
                pax["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
            entry = replace(entry, pax=pax)
        self._entries.append(entry)
        return self

    def file(
        self,
        name: str,
        data: bytes = b"",
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: float = DEFAULT_MTIME,
        xattrs: Mapping[str, bytes] | None = None,
        pax: Mapping[str, str] | None = None,
    ) -> LayerBuilder:
        """A regular file; `pax` adds raw PAX records (an exact `mtime`, say)."""
        entry = _Entry(
            name, "file", data, len(data), mode=mode, uid=uid, gid=gid, mtime=mtime, pax=dict(pax or {})
        )
        return self._add(entry, xattrs)

    def sparse_file(
        self, name: str, size: int, chunks: Mapping[int, bytes], *, mode: int = 0o644
    ) -> LayerBuilder:
        """A large file of zeros with `chunks` ({offset: data}) in it, streamed when built."""
        return self._add(_Entry(name, "file", size=size, chunks=dict(chunks), mode=mode), None)

    def dir(
        self,
        name: str,
        *,
        mode: int = 0o755,
        uid: int = 0,
        gid: int = 0,
        mtime: float = DEFAULT_MTIME,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> LayerBuilder:
        """A directory."""
        return self._add(_Entry(name, "dir", mode=mode, uid=uid, gid=gid, mtime=mtime), xattrs)

    def symlink(
        self,
        name: str,
        target: str,
        *,
        mode: int = 0o777,
        uid: int = 0,
        gid: int = 0,
        mtime: float = DEFAULT_MTIME,
    ) -> LayerBuilder:
        """A symbolic link to `target`, stored as it is."""
        entry = _Entry(name, "symlink", linkname=target, mode=mode, uid=uid, gid=gid, mtime=mtime)
        return self._add(entry, None)

    def hardlink(self, name: str, target: str) -> LayerBuilder:
        """A hard link to the earlier entry `target`."""
        return self._add(_Entry(name, "hardlink", linkname=target), None)

    def char_device(self, name: str, major: int, minor: int, *, mode: int = 0o666) -> LayerBuilder:
        """A character device node."""
        return self._add(_Entry(name, "char", device=(major, minor), mode=mode), None)

    def block_device(self, name: str, major: int, minor: int, *, mode: int = 0o660) -> LayerBuilder:
        """A block device node."""
        return self._add(_Entry(name, "block", device=(major, minor), mode=mode), None)

    def fifo(self, name: str, *, mode: int = 0o644) -> LayerBuilder:
        """A named pipe."""
        return self._add(_Entry(name, "fifo", mode=mode), None)

    def whiteout(self, path: str) -> LayerBuilder:
        """Hide `path` of lower layers (a `.wh.` entry next to it)."""
        parent, _, name = path.rpartition("/")
        return self.file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", mode=0o600)

    def opaque(self, directory: str) -> LayerBuilder:
        """Hide everything lower layers hold in `directory` (its `.wh..wh..opq` entry)."""
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq", mode=0o600)

    def write_to(self, stream: BinaryIO) -> None:
        """Write the archive to a binary stream."""
        import tarfile

        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for entry in self._entries:
                source = None
                if entry.kind == "file":
                    source = _SparseSource(entry.size, entry.chunks or {0: entry.data})
                # addfile only ever read()s the source
                tar.addfile(_tar_info(entry), cast("IO[bytes] | None", source))

    def build(self) -> bytes:
        """The archive as bytes."""
        buffer = io.BytesIO()
        self.write_to(buffer)
        return buffer.getvalue()

    def stream(self) -> BinaryIO:
        """The archive as a readable stream."""
        return io.BytesIO(self.build())


def _tar_info(entry: _Entry) -> tarfile.TarInfo:
    import tarfile

    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "char": tarfile.CHRTYPE,
        "block": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    info = tarfile.TarInfo(entry.name)
    info.type = types[entry.kind]
    info.size = entry.size
    info.linkname = entry.linkname
    info.devmajor, info.devminor = entry.device
    info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, entry.mtime
    info.pax_headers = dict(entry.pax)
    return info


# --- comparing trees -----------------------------------------------------------------------------


def tree_snapshot(root: Path, *, root_times: bool = True) -> dict[str, tuple[object, ...]]:
    """Everything a layer must preserve, path by path, read without following any symlink.

    Per entry: type and mode bits, owner, size (not for directories), mtime in nanoseconds, device
    number, symlink target, extended attributes, a digest of a file's content, and the first path
    of the entry's inode when it has several links. `root_times=False` leaves out the root's own
    mtime, which changes whenever an entry directly inside it is created or removed.
    """
    found: dict[str, os.stat_result] = {"": os.lstat(root)}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            entry = os.path.join(directory, name)
            found[os.path.relpath(entry, root)] = os.lstat(entry)
    inodes: dict[tuple[int, int], str] = {}
    snapshot: dict[str, tuple[object, ...]] = {}
    for path in sorted(found):
        st = found[path]
        full = root / path
        is_dir = stat.S_ISDIR(st.st_mode)
        link = ""
        if not is_dir and st.st_nlink > 1:
            link = inodes.setdefault((st.st_dev, st.st_ino), path)
        snapshot[path] = (
            stat.filemode(st.st_mode),
            st.st_uid,
            st.st_gid,
            None if is_dir else st.st_size,
            None if (path == "" and not root_times) else st.st_mtime_ns,
            st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else None,
            os.readlink(full) if stat.S_ISLNK(st.st_mode) else None,
            _xattrs(full),
            _content_digest(full) if stat.S_ISREG(st.st_mode) else None,
            link,
        )
    return snapshot


def _xattrs(path: Path) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ()
        raise
    return tuple(
        (name, os.getxattr(path, name, follow_symlinks=False))
        for name in sorted(names)
        if name != "security.selinux"
    )


def _content_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Canary:
    """A tree outside the driver's home that no layer may touch, and its snapshot."""

    path: Path
    before: dict[str, tuple[object, ...]] = field(default_factory=dict)
    neighbours: list[str] = field(default_factory=list)

    def assert_intact(self) -> None:
        """Fail if anything in the canary tree, or next to it, was created, changed or removed."""
        assert tree_snapshot(self.path) == self.before, "a layer changed the canary tree"
        assert sorted(os.listdir(self.path.parent)) == self.neighbours, (
            "a layer created something next to the canary tree"
        )


@pytest.fixture
def dockyard_canary(tmp_path: Path) -> Canary:
    """A canary tree (a file, a directory, a symlink) at `<tmp>/outside/canary`."""
    path = tmp_path / "outside" / "canary"
    (path / "dir").mkdir(parents=True)
    (path / "secret").write_bytes(b"canary secret\n")
    (path / "dir" / "file").write_bytes(b"canary file\n")
    (path / "link").symlink_to("secret")
    for entry in ("dir/file", "secret", "dir", ""):
        os.utime(path / entry, ns=(DEFAULT_MTIME * 10**9,) * 2)
    return Canary(path, tree_snapshot(path), sorted(os.listdir(path.parent)))


@pytest.fixture
def dockyard_storage_home(tmp_path: Path) -> Path:
    """Where the driver's home is: `<tmp>/home` (not created). Override it for a driver that
    needs a particular filesystem; the directory must be fresh for each test."""
    return tmp_path / "home"


@pytest.fixture
def dockyard_storage_options() -> dict[str, str]:
    """The driver's options (none). Override it to run the suite with other settings."""
    return {}


@pytest.fixture
def dockyard_storage_context(
    tmp_path: Path, dockyard_storage_home: Path, dockyard_storage_options: dict[str, str]
) -> DriverContext:
    """A DriverContext with the home above, a fresh run directory under the test's tmp_path and
    the options above (rootless when not root)."""
    return DriverContext(
        home=dockyard_storage_home,
        run_dir=tmp_path / "run",
        rootless=not _IS_ROOT,
        options=dockyard_storage_options,
    )


# --- hostile archives ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AttackPlan:
    """A hostile layer (`upper`), an optional layer applied below it first, and where the hostile
    entries must land inside the layer when extraction contains them ({path: content}, None for
    "exists")."""

    upper: LayerBuilder
    lower: LayerBuilder | None = None
    inside: Mapping[str, bytes | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ExtractionAttack:
    """A hostile archive aimed at a canary directory, and the outcome a safe extraction has.

    `rejected`: True means applying raises UnsafeLayerError; False means it succeeds with every
    entry contained in the layer (see `AttackPlan.inside`); None accepts either, for the cases
    where copy-style and overlay-style drivers differ (whiteouts, and lower layers a copy-style
    driver sees while applying and an overlay-style one does not). Either way the canary stays
    intact.
    """

    name: str
    plan: Callable[[Path], AttackPlan]
    rejected: bool | None
    needs_root: bool = False


_UP = "../" * 40  # more than enough to climb to "/" from any layer directory
# Symlinks that lead to the host's "/" when wrongly followed carry the mode "/" has, so that a
# driver which applies a symlink's metadata to its target fails this suite without opening up the
# host's root directory. No other link in the suite names a real host path.
_ROOT_MODE = 0o755


def _inside(canary: Path) -> str:
    """Where the canary's path lands when it is (correctly) taken relative to the layer root."""
    return str(canary).lstrip("/")


def _dotdot_name(canary: Path) -> AttackPlan:
    """`../../…/canary/evil`: a name climbing out of the root."""
    return AttackPlan(LayerBuilder().file(f"{_UP}{_inside(canary)}/evil", b"evil"))


def _dotdot_after_dir(canary: Path) -> AttackPlan:
    """`a/../../…/canary/evil`: a name that only climbs out after normalisation."""
    return AttackPlan(LayerBuilder().file(f"a/../{_UP}{_inside(canary)}/evil", b"evil"))


def _absolute_name(canary: Path) -> AttackPlan:
    """`/…/canary/evil`: an absolute name, taken relative to the layer root."""
    return AttackPlan(
        LayerBuilder().file(f"{canary}/evil", b"evil"),
        inside={f"{_inside(canary)}/evil": b"evil"},
    )


def _symlink_root_then_write(canary: Path) -> AttackPlan:
    """`a -> /` then `a/…/canary/evil`: writing through an absolute symlink."""
    upper = LayerBuilder().symlink("a", "/", mode=_ROOT_MODE).file(f"a/{_inside(canary)}/evil", b"evil")
    return AttackPlan(upper, inside={"a": None, f"{_inside(canary)}/evil": b"evil"})


def _symlink_dotdot_then_write(canary: Path) -> AttackPlan:
    """`a -> ../../../…` then `a/…/canary/evil`: writing through a climbing symlink."""
    upper = LayerBuilder().symlink("a", _UP, mode=_ROOT_MODE).file(f"a/{_inside(canary)}/evil", b"evil")
    return AttackPlan(upper, inside={f"{_inside(canary)}/evil": b"evil"})


def _symlink_chain_then_write(canary: Path) -> AttackPlan:
    """`a -> b`, `b -> ../../…` then `a/…/canary/evil`: a chain of symlinks."""
    upper = (
        LayerBuilder()
        .symlink("a", "b")
        .symlink("b", _UP, mode=_ROOT_MODE)
        .file(f"a/{_inside(canary)}/evil", b"evil")
    )
    return AttackPlan(upper, inside={f"{_inside(canary)}/evil": b"evil"})


def _symlink_to_canary_then_write(canary: Path) -> AttackPlan:
    """`a -> /…/canary` then `a/evil`: the target does not exist inside the layer."""
    return AttackPlan(LayerBuilder().symlink("a", str(canary)).file("a/evil", b"evil"))


def _lower_symlink_then_write(canary: Path) -> AttackPlan:
    """A lower layer's `etc -> /…/canary`, then `etc/evil` in the layer above: a copy-style
    driver meets the symlink (whose target is not in the layer) and rejects; an overlay-style
    driver writes into the layer's own directory, where `etc` is a new directory that hides the
    lower symlink, so the entry lands inside."""
    return AttackPlan(
        LayerBuilder().file("etc/evil", b"evil"),
        lower=LayerBuilder().symlink("etc", str(canary)),
        inside={"etc/evil": b"evil"},
    )


def _symlink_loop(canary: Path) -> AttackPlan:
    """`a -> b`, `b -> a`, then `a/evil`: a loop never resolves."""
    return AttackPlan(LayerBuilder().symlink("a", "b").symlink("b", "a").file("a/evil", b"evil"))


def _symlink_swapped(canary: Path) -> AttackPlan:
    """`d -> sub`, `d/x`, then `d` swapped for `d -> ../../…` and `d/…/canary/y`."""
    upper = (
        LayerBuilder()
        .dir("sub")
        .symlink("d", "sub")
        .file("d/x", b"x")
        .symlink("d", _UP, mode=_ROOT_MODE)
        .file(f"d/{_inside(canary)}/y", b"y")
    )
    return AttackPlan(upper, inside={"sub/x": b"x", f"{_inside(canary)}/y": b"y"})


def _hardlink_dotdot(canary: Path) -> AttackPlan:
    """A hard link to `../../…/canary/secret`."""
    return AttackPlan(LayerBuilder().hardlink("h", f"{_UP}{_inside(canary)}/secret"))


def _hardlink_absolute(canary: Path) -> AttackPlan:
    """A hard link to `/…/canary/secret`, which is not in the layer."""
    return AttackPlan(LayerBuilder().hardlink("h", f"{canary}/secret"))


def _hardlink_through_symlink(canary: Path) -> AttackPlan:
    """`a -> /…/canary`, then a hard link to `a/secret`."""
    return AttackPlan(LayerBuilder().symlink("a", str(canary)).hardlink("h", "a/secret"))


def _hardlink_to_symlink_then_write(canary: Path) -> AttackPlan:
    """`s -> /…/canary/secret`, `h` a hard link to `s`, then a file `h`: must replace `h`."""
    upper = LayerBuilder().symlink("s", f"{canary}/secret").hardlink("h", "s").file("h", b"evil", mode=0o777)
    return AttackPlan(upper, inside={"h": b"evil", "s": None})


def _file_over_symlink(canary: Path) -> AttackPlan:
    """A lower layer's `f -> /…/canary/secret`, then a file `f`: must replace the symlink."""
    return AttackPlan(
        LayerBuilder().file("f", b"evil", mode=0o777, mtime=0),
        lower=LayerBuilder().symlink("f", f"{canary}/secret"),
        inside={"f": b"evil"},
    )


def _dir_over_symlink(canary: Path) -> AttackPlan:
    """A lower layer's `d -> /…/canary`, then a directory `d` (0777, mtime 0) and `d/evil`."""
    return AttackPlan(
        LayerBuilder().dir("d", mode=0o777, mtime=0).file("d/evil", b"evil"),
        lower=LayerBuilder().symlink("d", str(canary)),
        inside={"d/evil": b"evil"},
    )


def _symlink_metadata(canary: Path) -> AttackPlan:
    """`s -> /…/canary/secret` owned by 1234 with mtime 0: metadata must not reach the target."""
    upper = LayerBuilder().symlink("s", f"{canary}/secret", uid=1234, gid=1234, mtime=0)
    return AttackPlan(upper, inside={"s": None})


def _whiteout_bare(canary: Path) -> AttackPlan:
    """`.wh.`: a whiteout naming nothing."""
    return AttackPlan(LayerBuilder().file(".wh."))


def _whiteout_dot(canary: Path) -> AttackPlan:
    """`sub/.wh..`: a whiteout naming its own directory."""
    return AttackPlan(LayerBuilder().dir("sub").file("sub/.wh.."))


def _whiteout_dotdot(canary: Path) -> AttackPlan:
    """`sub/.wh...`: a whiteout naming the parent directory."""
    return AttackPlan(LayerBuilder().dir("sub").file("sub/.wh..."))


def _whiteout_as_directory(canary: Path) -> AttackPlan:
    """`.wh.../x`: a whiteout name used as a directory."""
    return AttackPlan(LayerBuilder().file(".wh.../x"))


def _whiteout_through_symlink(canary: Path) -> AttackPlan:
    """`sub -> /…/canary`, then `sub/.wh.secret`: must not delete the canary's file."""
    return AttackPlan(LayerBuilder().symlink("sub", str(canary)).whiteout("sub/secret"))


def _whiteout_through_parent_symlink(canary: Path) -> AttackPlan:
    """`sub -> /…/outside`, then `sub/.wh.canary`: must not delete the canary tree."""
    upper = LayerBuilder().symlink("sub", str(canary.parent)).whiteout(f"sub/{canary.name}")
    return AttackPlan(upper)


def _opaque_through_symlink(canary: Path) -> AttackPlan:
    """`sub -> ../../…/canary`, then `sub/.wh..wh..opq`: must not empty the canary tree."""
    upper = LayerBuilder().symlink("sub", f"{_UP}{_inside(canary)}").opaque("sub")
    return AttackPlan(upper)


def _root_as_file(canary: Path) -> AttackPlan:
    """A file entry named `./`: the layer root cannot be replaced."""
    return AttackPlan(LayerBuilder().file("./", b"evil"))


def _device_dotdot(canary: Path) -> AttackPlan:
    """A device node at `../../…/canary/null`."""
    return AttackPlan(LayerBuilder().char_device(f"{_UP}{_inside(canary)}/null", 1, 3))


def _device_through_symlink(canary: Path) -> AttackPlan:
    """`a -> /`, then a device node at `a/…/canary/null`."""
    upper = LayerBuilder().symlink("a", "/", mode=_ROOT_MODE).char_device(f"a/{_inside(canary)}/null", 1, 3)
    return AttackPlan(upper, inside={f"{_inside(canary)}/null": None})


EXTRACTION_ATTACKS: tuple[ExtractionAttack, ...] = (
    ExtractionAttack("dotdot-name", _dotdot_name, rejected=True),
    ExtractionAttack("dotdot-after-dir", _dotdot_after_dir, rejected=True),
    ExtractionAttack("absolute-name", _absolute_name, rejected=False),
    ExtractionAttack("symlink-root-then-write", _symlink_root_then_write, rejected=False),
    ExtractionAttack("symlink-dotdot-then-write", _symlink_dotdot_then_write, rejected=False),
    ExtractionAttack("symlink-chain-then-write", _symlink_chain_then_write, rejected=False),
    ExtractionAttack("symlink-to-canary-then-write", _symlink_to_canary_then_write, rejected=True),
    ExtractionAttack("lower-symlink-then-write", _lower_symlink_then_write, rejected=None),
    ExtractionAttack("symlink-loop", _symlink_loop, rejected=True),
    ExtractionAttack("symlink-swapped", _symlink_swapped, rejected=False),
    ExtractionAttack("hardlink-dotdot", _hardlink_dotdot, rejected=True),
    ExtractionAttack("hardlink-absolute", _hardlink_absolute, rejected=True),
    ExtractionAttack("hardlink-through-symlink", _hardlink_through_symlink, rejected=True),
    ExtractionAttack("hardlink-to-symlink-then-write", _hardlink_to_symlink_then_write, rejected=False),
    ExtractionAttack("file-over-symlink", _file_over_symlink, rejected=False),
    ExtractionAttack("dir-over-symlink", _dir_over_symlink, rejected=False),
    ExtractionAttack("symlink-metadata", _symlink_metadata, rejected=False),
    ExtractionAttack("whiteout-bare", _whiteout_bare, rejected=True),
    ExtractionAttack("whiteout-dot", _whiteout_dot, rejected=True),
    ExtractionAttack("whiteout-dotdot", _whiteout_dotdot, rejected=True),
    ExtractionAttack("whiteout-as-directory", _whiteout_as_directory, rejected=True),
    ExtractionAttack("whiteout-through-symlink", _whiteout_through_symlink, rejected=None),
    ExtractionAttack("whiteout-through-parent-symlink", _whiteout_through_parent_symlink, rejected=None),
    ExtractionAttack("opaque-through-symlink", _opaque_through_symlink, rejected=None),
    ExtractionAttack("root-as-file", _root_as_file, rejected=True),
    ExtractionAttack("device-dotdot", _device_dotdot, rejected=True),
    ExtractionAttack("device-through-symlink", _device_through_symlink, rejected=False, needs_root=True),
)


def check_attack_outcome(
    attack: ExtractionAttack, plan: AttackPlan, root: Path, error: UnsafeLayerError | None
) -> None:
    """Assert the outcome `attack` demands, given the layer's tree and the error applying raised."""
    if attack.rejected is True:
        assert error is not None, f"{attack.name}: a hostile archive was accepted"
    elif attack.rejected is False:
        assert error is None, f"{attack.name}: a containable archive was refused: {error}"
    if error is not None:
        return
    for path, content in plan.inside.items():
        found = root / path
        assert os.path.lexists(found), f"{attack.name}: {path} did not land inside the layer"
        if content is not None:
            assert not found.is_symlink() and found.read_bytes() == content, (
                f"{attack.name}: {path} does not hold the archive's content"
            )


# --- the suite -----------------------------------------------------------------------------------


@contextmanager
def _mounted(driver: StorageDriver, layer: str) -> Iterator[Path]:
    """The layer's tree for the duration of a block."""
    root = driver.mount(layer)
    try:
        yield root
    finally:
        driver.unmount(layer)


def _layer(driver: StorageDriver, name: str, parent: str | None, content: LayerBuilder | None = None) -> str:
    """Create the layer `name` on `parent`, apply `content` to it, return its id."""
    created = layer_id(name)
    driver.create_layer(created, parent)
    if content is not None:
        driver.apply_diff(created, content.stream())
    return created


def _collect(chunks: Iterator[bytes]) -> bytes:
    return b"".join(chunks)


def _read_archive(archive: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    """A layer tar's members by normalised name, with the content of regular files."""
    import tarfile

    members: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isreg() else None
            name = member.name.removeprefix("./").rstrip("/")
            members[name] = (member, handle.read() if handle is not None else None)
    return members


def _listing(directory: Path) -> list[str]:
    """Every path below `directory`, relative and sorted."""
    if not directory.exists():
        return []
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def _xattrs_supported(directory: Path) -> bool:
    """Whether files in `directory` (created if needed) take `user.*` extended attributes."""
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / "xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.dockyard.probe", b"1")
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise
    finally:
        probe.unlink()
    return True


def _rich_layers(*, xattrs: bool) -> tuple[LayerBuilder, LayerBuilder]:
    """A base layer and a layer on it using every feature a layer can hold (devices and foreign
    owners only as root, `user.*` attributes only where the filesystem takes them)."""
    attributes = {"user.note": b"kept", "user.raw": b"\xff\x00\x01"} if xattrs else None
    base = (
        LayerBuilder()
        .dir("etc")
        .file("etc/passwd", b"root:x:0:0\n")
        .file("etc/gone", b"gone")
        .dir("tree")
        .file("tree/a", b"a")
        .dir("tree/sub")
        .file("tree/sub/b", b"b")
        .dir("opaque")
        .file("opaque/old", b"old")
        .file("f2d", b"file")
        .dir("d2f")
        .file("d2f/inner", b"inner")
        .file("same", b"unchanged")
    )
    upper = (
        LayerBuilder()
        .dir("etc", mode=0o750)
        .file("etc/passwd", b"root:x:0:0\nuser:x:1:1\n")
        .whiteout("etc/gone")
        .whiteout("tree")
        .opaque("opaque")
        .file("opaque/new", b"new")
        .file("f2d.tmp", b"")
        .whiteout("f2d.tmp")
        .dir("f2d", mode=0o700)
        .file("d2f", b"now a file")
        .dir("bin")
        .file("bin/tool", b"#!/bin/sh\n", mode=0o4755, xattrs=attributes)
        .hardlink("bin/tool-link", "bin/tool")
        .symlink("bin/abs", "/nonexistent/passwd")
        .symlink("bin/rel", "../etc/passwd")
        .symlink("bin/dangling", "/nowhere")
        .dir("tmp", mode=0o1777, xattrs=attributes)
        .fifo("tmp/pipe", mode=0o600)
        .file("exact", b"ns", pax={"mtime": "1600000000.123456789"})
        .file("empty", b"")
        .sparse_file("sparse", 4 << 20, {1 << 20: b"data"})
    )
    if _IS_ROOT:
        upper.dir("home", uid=1000, gid=1000).file("home/own", b"mine", uid=1000, gid=100)
        upper.dir("dev").char_device("dev/null", 1, 3).block_device("dev/loop9", 7, 9)
    return base, upper


class StorageDriverConformance:
    """Every test a storage driver must pass. Subclass it and provide a `storage_driver` fixture
    (see the module docstring); tests that need root or `user.*` attributes skip, saying why."""

    def test_available_and_status(self, storage_driver: StorageDriver) -> None:
        """The driver meets the protocol and describes itself in string pairs for `info`."""
        assert isinstance(storage_driver, StorageDriver)
        assert isinstance(storage_driver.available(), Availability)
        status = storage_driver.status()
        assert status and all(isinstance(k, str) and isinstance(v, str) for k, v in status.items())

    def test_create_mount_and_remove(self, storage_driver: StorageDriver) -> None:
        """Layers and container layers come and go; removing a removed layer is not an error."""
        base = _layer(storage_driver, "base", None)
        assert storage_driver.exists(base)
        with _mounted(storage_driver, base) as root:
            assert root.is_dir() and list(root.iterdir()) == []
        child = _layer(storage_driver, "child", base)
        container = layer_id("container")
        storage_driver.create_rw(container, child)
        assert storage_driver.exists(container)
        for removed in (container, child):
            storage_driver.remove(removed)
            assert not storage_driver.exists(removed)
        storage_driver.remove(child)  # removing what is gone is not an error
        assert storage_driver.exists(base)

    def test_create_refuses_duplicates_and_missing_parents(self, storage_driver: StorageDriver) -> None:
        """An existing id is a conflict; a missing parent or layer is not found."""
        base = _layer(storage_driver, "base", None)
        with pytest.raises(ConflictError):
            storage_driver.create_layer(base, None)
        with pytest.raises(NotFoundError):
            storage_driver.create_layer(layer_id("orphan"), layer_id("missing"))
        with pytest.raises(NotFoundError):
            storage_driver.mount(layer_id("missing"))

    def test_apply_reports_digest_and_size_and_child_sees_parent(self, storage_driver: StorageDriver) -> None:
        """apply_diff reports the digest and size of the whole stream; a child starts as an
        unchanged view of its parent."""
        archive = LayerBuilder().dir("etc").file("etc/hostname", b"base\n").build()
        archive += bytes(4096)  # padding after the end-of-archive blocks counts too
        base = layer_id("base")
        storage_driver.create_layer(base, None)
        result = storage_driver.apply_diff(base, io.BytesIO(archive))
        assert result.digest == "sha256:" + hashlib.sha256(archive).hexdigest()
        assert result.size == len(archive)
        child = _layer(storage_driver, "child", base)
        with _mounted(storage_driver, child) as root:
            assert (root / "etc" / "hostname").read_bytes() == b"base\n"
        assert storage_driver.changes(child) == []
        assert storage_driver.diff_size(child) == 0

    def test_whiteouts_and_opaque_directories(self, storage_driver: StorageDriver) -> None:
        """Whiteouts and opaque markers hide what lower layers hold, never the layer's own
        entries (an opaque marker keeps what came before it in the same archive)."""
        lower = (
            LayerBuilder()
            .file("gone", b"1")
            .dir("tree")
            .file("tree/a", b"a")
            .dir("tree/sub")
            .file("tree/sub/b", b"b")
            .dir("opaque")
            .file("opaque/old", b"old")
            .dir("opaque/keep")
            .file("opaque/keep/old", b"old")
            .file("kept", b"kept")
        )
        upper = (
            LayerBuilder()
            .whiteout("gone")
            .whiteout("tree")
            .whiteout("never-existed")
            .dir("opaque")
            .file("opaque/keep/new", b"new")  # before the marker: stays
            .opaque("opaque")
            .file("opaque/after", b"after")
            .file("fresh", b"fresh")
            .whiteout("fresh")  # a layer never hides its own entries
        )
        base = _layer(storage_driver, "base", None, lower)
        child = _layer(storage_driver, "child", base, upper)
        with _mounted(storage_driver, child) as root:
            assert _listing(root) == [
                "fresh",
                "kept",
                "opaque",
                "opaque/after",
                "opaque/keep",
                "opaque/keep/new",
            ]
        with _mounted(storage_driver, base) as root:
            assert "gone" in _listing(root) and "opaque/old" in _listing(root)

    def test_hardlinks(self, storage_driver: StorageDriver) -> None:
        """Hard links share one inode."""
        upper = LayerBuilder().dir("d").file("d/f", b"data").hardlink("d/h", "d/f").hardlink("g", "./d/f")
        layer = _layer(storage_driver, "base", None, upper)
        with _mounted(storage_driver, layer) as root:
            inodes = {os.lstat(root / name).st_ino for name in ("d/f", "d/h", "g")}
            assert len(inodes) == 1 and os.lstat(root / "g").st_nlink == 3
            assert (root / "g").read_bytes() == b"data"

    def test_symlinks(self, storage_driver: StorageDriver) -> None:
        """Symlink targets, absolute and dangling ones included, are stored as they are."""
        targets = {"abs": "/nonexistent/abs", "rel": "../x/y", "dangling": "/nowhere", "dir": "d"}
        upper = LayerBuilder().dir("d")
        for name, target in targets.items():
            upper.symlink(name, target)
        layer = _layer(storage_driver, "base", None, upper)
        with _mounted(storage_driver, layer) as root:
            for name, target in targets.items():
                assert (root / name).is_symlink() and os.readlink(root / name) == target

    def test_large_sparse_file(self, storage_driver: StorageDriver, tmp_path: Path) -> None:
        """A 64 MiB file of mostly zeros keeps its content, stays sparse and survives a diff."""
        size = 64 << 20
        chunks = {0: b"head", 32 << 20: b"middle", size - 4: b"tail"}
        content = LayerBuilder().sparse_file("big", size, chunks)
        layer = _layer(storage_driver, "base", None, content)
        with _mounted(storage_driver, layer) as root:
            st = os.stat(root / "big")
            assert st.st_size == size
            assert st.st_blocks * 512 < size // 8, "holes were filled in"
            with open(root / "big", "rb") as handle:
                for offset, data in chunks.items():
                    handle.seek(offset)
                    assert handle.read(len(data)) == data
            expected = tree_snapshot(root, root_times=False)
        spool = tmp_path / "diff.tar"
        with spool.open("wb") as handle:
            for chunk in storage_driver.diff(layer):
                handle.write(chunk)
        copy = layer_id("copy")
        storage_driver.create_layer(copy, None)
        with spool.open("rb") as handle:
            storage_driver.apply_diff(copy, handle)
        with _mounted(storage_driver, copy) as root:
            assert tree_snapshot(root, root_times=False) == expected

    def test_user_xattrs(
        self, storage_driver: StorageDriver, dockyard_storage_context: DriverContext
    ) -> None:
        """`user.*` attributes, binary values included, are applied and diffed."""
        if not _xattrs_supported(dockyard_storage_context.home.parent / "xattr-probe"):
            pytest.skip("this filesystem refuses user.* extended attributes")
        upper = (
            LayerBuilder()
            .file("f", b"x", xattrs={"user.a": b"1", "user.raw": b"\xff\x00\x01"})
            .dir("d", xattrs={"user.d": b"dir"})
        )
        layer = _layer(storage_driver, "base", None, upper)
        with _mounted(storage_driver, layer) as root:
            assert os.getxattr(root / "f", "user.a") == b"1"
            assert os.getxattr(root / "f", "user.raw") == b"\xff\x00\x01"
            assert os.getxattr(root / "d", "user.d") == b"dir"
        members = _read_archive(_collect(storage_driver.diff(layer)))
        assert members["f"][0].pax_headers["SCHILY.xattr.user.a"] == "1"

    @_needs_root
    def test_ownership(self, storage_driver: StorageDriver) -> None:
        """Owners are kept, a symlink's own included."""
        upper = (
            LayerBuilder()
            .dir("d", uid=1000, gid=1001)
            .file("d/f", uid=1234, gid=5678)
            .symlink("s", "d/f", uid=4321, gid=8765)
        )
        layer = _layer(storage_driver, "base", None, upper)
        with _mounted(storage_driver, layer) as root:
            owners = {name: os.lstat(root / name) for name in ("d", "d/f", "s")}
            assert {name: (st.st_uid, st.st_gid) for name, st in owners.items()} == {
                "d": (1000, 1001),
                "d/f": (1234, 5678),
                "s": (4321, 8765),
            }

    @_needs_root
    def test_device_nodes(self, storage_driver: StorageDriver) -> None:
        """Character and block devices keep their numbers and modes."""
        upper = LayerBuilder().char_device("null", 1, 3).block_device("loop9", 7, 9)
        layer = _layer(storage_driver, "base", None, upper)
        with _mounted(storage_driver, layer) as root:
            null, loop = os.lstat(root / "null"), os.lstat(root / "loop9")
            assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
            assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 9)
            assert stat.S_IMODE(null.st_mode) == 0o666

    def test_fifos_and_modes(self, storage_driver: StorageDriver) -> None:
        """Modes are kept, setuid, setgid and sticky bits included, and a read-only directory
        still receives its contents."""
        modes = {
            "suid": 0o4755,
            "sgid": 0o2755,
            "sticky": 0o1777,
            "none": 0o000,
            "ro": 0o555,
            "ro/f": 0o444,
            "pipe": 0o640,
        }
        upper = (
            LayerBuilder()
            .file("suid", b"x", mode=0o4755)
            .file("sgid", b"x", mode=0o2755)
            .dir("sticky", mode=0o1777)
            .file("none", mode=0o000)
            .dir("ro", mode=0o555)
            .file("ro/f", b"f", mode=0o444)
            .fifo("pipe", mode=0o640)
        )
        layer = _layer(storage_driver, "base", None, upper)
        with _mounted(storage_driver, layer) as root:
            found = {name: stat.S_IMODE(os.lstat(root / name).st_mode) for name in modes}
            assert found == modes
            assert stat.S_ISFIFO(os.lstat(root / "pipe").st_mode)

    def test_mtimes(self, storage_driver: StorageDriver) -> None:
        """Modification times are kept to the nanosecond, a directory's after its contents."""
        upper = (
            LayerBuilder()
            .dir("d", mtime=1000)
            .file("d/f", b"f", mtime=2000)
            .symlink("d/s", "f", mtime=3000)
            .file("exact", pax={"mtime": "1234567890.123456789"})
        )
        layer = _layer(storage_driver, "base", None, upper)
        with _mounted(storage_driver, layer) as root:
            found = {name: os.lstat(root / name).st_mtime_ns for name in ("d", "d/f", "d/s")}
            assert found == {"d": 1000 * 10**9, "d/f": 2000 * 10**9, "d/s": 3000 * 10**9}
            assert os.lstat(root / "exact").st_mtime_ns == 1234567890_123456789

    def test_changes_and_diff_of_a_container(self, storage_driver: StorageDriver) -> None:
        """What a container changed through its mount shows in changes() as `docker diff`
        prints it, in diff() with whiteouts, and in diff_size()."""
        lower = (
            LayerBuilder()
            .file("keep", b"k")
            .file("mod", b"m")
            .file("gone", b"g")
            .dir("dir")
            .file("dir/a", b"a")
            .file("dir/b", b"b")
            .dir("etc")
            .file("etc/passwd", b"p")
            .file("chmod", b"c", mode=0o644)
        )
        base = _layer(storage_driver, "base", None, lower)
        container = layer_id("container")
        storage_driver.create_rw(container, base)
        with _mounted(storage_driver, container) as root:
            (root / "mod").write_bytes(b"modified")
            (root / "gone").unlink()
            for name in ("a", "b"):
                (root / "dir" / name).unlink()
            (root / "dir").rmdir()
            (root / "etc" / "added").write_bytes(b"a")
            os.chmod(root / "chmod", 0o600)
            (root / "newdir").mkdir()
            (root / "newdir" / "x").write_bytes(b"x")
        found = {(change.path, change.kind) for change in storage_driver.changes(container)}
        assert found == {
            ("/mod", ChangeKind.CHANGED),
            ("/gone", ChangeKind.DELETED),
            ("/dir", ChangeKind.DELETED),
            ("/etc", ChangeKind.CHANGED),
            ("/etc/added", ChangeKind.ADDED),
            ("/chmod", ChangeKind.CHANGED),
            ("/newdir", ChangeKind.ADDED),
            ("/newdir/x", ChangeKind.ADDED),
        }
        members = _read_archive(_collect(storage_driver.diff(container)))
        assert set(members) == {
            "mod",
            ".wh.gone",
            ".wh.dir",
            "etc",
            "etc/added",
            "chmod",
            "newdir",
            "newdir/x",
        }
        assert members["mod"][1] == b"modified"
        assert stat.S_IMODE(members["chmod"][0].mode) == 0o600
        assert storage_driver.diff_size(container) == len(b"modified") + 3

    def test_round_trip(self, storage_driver: StorageDriver, dockyard_storage_context: DriverContext) -> None:
        """Applying a layer's diff on the same parent reproduces the layer exactly."""
        xattrs = _xattrs_supported(dockyard_storage_context.home.parent / "xattr-probe")
        lower, upper = _rich_layers(xattrs=xattrs)
        base = _layer(storage_driver, "base", None, lower)
        layer = _layer(storage_driver, "layer", base, upper)
        archive = _collect(storage_driver.diff(layer))
        copy = layer_id("copy")
        storage_driver.create_layer(copy, base)
        result = storage_driver.apply_diff(copy, io.BytesIO(archive))
        assert result.digest == "sha256:" + hashlib.sha256(archive).hexdigest()
        with _mounted(storage_driver, layer) as original, _mounted(storage_driver, copy) as again:
            assert tree_snapshot(again, root_times=False) == tree_snapshot(original, root_times=False)
        assert set(_read_archive(_collect(storage_driver.diff(copy)))) == set(_read_archive(archive))

    def test_mount_reference_counts(self, storage_driver: StorageDriver) -> None:
        """Mounts are counted; an extra unmount does nothing."""
        base = _layer(storage_driver, "base", None, LayerBuilder().file("f", b"f"))
        assert storage_driver.mount(base) == storage_driver.mount(base)
        storage_driver.unmount(base)
        with pytest.raises(ConflictError):
            storage_driver.remove(base)
        assert storage_driver.exists(base)
        storage_driver.unmount(base)
        storage_driver.unmount(base)  # not mounted any more: nothing to do
        storage_driver.remove(base)
        assert not storage_driver.exists(base)

    def test_concurrent_mounts(self, storage_driver: StorageDriver) -> None:
        """Mounts of one image layer (a layer with a parent, so a real mount for drivers that
        mount) from many threads and processes at once are all counted."""
        parent = _layer(storage_driver, "parent", None, LayerBuilder().file("p", b"parent"))
        base = _layer(storage_driver, "base", parent, LayerBuilder().file("f", b"shared"))
        threads, processes, per_process = 24, 4, 5
        with ThreadPoolExecutor(8) as pool:
            roots = set(pool.map(lambda _: storage_driver.mount(base), range(threads)))
        assert len(roots) == 1 and (roots.pop() / "f").read_bytes() == b"shared"
        children = []
        for _ in range(processes):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child process
                code = 1
                try:
                    for _ in range(per_process):
                        storage_driver.mount(base)
                    code = 0
                finally:  # a child reports through its exit status, never unwinds into pytest
                    os._exit(code)
            children.append(pid)
        for pid in children:
            assert os.waitpid(pid, 0)[1] == 0, "a mounting process failed"
        total = threads + processes * per_process
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: storage_driver.unmount(base), range(total - 1)))
        with pytest.raises(ConflictError):
            storage_driver.remove(base)
        storage_driver.unmount(base)
        storage_driver.remove(base)

    def test_many_containers_of_one_image(self, storage_driver: StorageDriver) -> None:
        """Containers of one image, created and mounted from threads and processes at once, all
        see the image and never each other's writes; each unmounts cleanly and is removed."""
        base = _layer(storage_driver, "base", None, LayerBuilder().dir("etc").file("etc/a", b"a"))
        image = _layer(storage_driver, "image", base, LayerBuilder().file("etc/b", b"b"))
        names = [f"container-{index}" for index in range(8)]
        in_threads, in_processes = names[:4], names[4:]

        def run(name: str) -> None:
            container = layer_id(name)
            storage_driver.create_rw(container, image)
            root = storage_driver.mount(container)
            assert sorted(os.listdir(root / "etc")) == ["a", "b"]
            (root / "etc" / "a").write_bytes(name.encode())
            (root / "etc" / "b").unlink()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(run, in_threads))
        children = []
        for name in in_processes:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child process
                code = 1
                try:
                    run(name)
                    code = 0
                finally:  # a child reports through its exit status, never unwinds into pytest
                    os._exit(code)
            children.append(pid)
        for pid in children:
            assert os.waitpid(pid, 0)[1] == 0, "a container process failed"
        for name in names:
            container = layer_id(name)
            with _mounted(storage_driver, container) as root:  # a second user of each mount
                assert (root / "etc" / "a").read_bytes() == name.encode()
                assert not (root / "etc" / "b").exists()
            storage_driver.unmount(container)
            storage_driver.remove(container)
            assert not storage_driver.exists(container)
        with _mounted(storage_driver, image) as root:
            assert (root / "etc" / "a").read_bytes() == b"a" and (root / "etc" / "b").exists()

    def test_commit_of_a_container(
        self, storage_driver: StorageDriver, dockyard_storage_context: DriverContext
    ) -> None:
        """What a container writes through its mount (files large, sparse and hard-linked,
        owners and devices as root, `user.*` attributes, deletions, a directory removed and made
        again) comes out of diff() and, applied on the same image, gives the same tree."""
        import shutil

        xattrs = _xattrs_supported(dockyard_storage_context.home.parent / "xattr-probe")
        lower = (
            LayerBuilder()
            .dir("etc")
            .file("etc/passwd", b"root\n")
            .file("etc/gone", b"g")
            .dir("var")
            .file("var/old", b"old")
            .dir("var/sub")
            .file("var/sub/deep", b"d")
            .file("owned", b"o")
            .file("big", b"x" * 1000)
        )
        base = _layer(storage_driver, "base", None, lower)
        container = layer_id("container")
        storage_driver.create_rw(container, base)
        payload = os.urandom(3 << 20)  # spans several read chunks
        with _mounted(storage_driver, container) as root:
            (root / "etc" / "passwd").write_bytes(b"root\nuser\n")
            (root / "etc" / "gone").unlink()
            shutil.rmtree(root / "var")
            (root / "var").mkdir()
            (root / "var" / "new").write_bytes(b"new")
            (root / "large").write_bytes(payload)
            with open(root / "sparse", "wb") as handle:
                handle.truncate(64 << 20)
                handle.seek(48 << 20)
                handle.write(b"middle")
            os.link(root / "large", root / "large-link")
            (root / "link").symlink_to("etc/passwd")
            os.mkfifo(root / "pipe")
            os.utime(root / "big", ns=(1, 1_234_567_890_123_456_789))
            if xattrs:
                os.setxattr(root / "owned", "user.note", b"\xff\x00kept")
            if _IS_ROOT:
                os.chown(root / "owned", 1234, 5678)
                os.mknod(root / "null", stat.S_IFCHR | 0o620, os.makedev(1, 3))
        # Read back through a fresh mount: a FUSE mount may still show attributes it cached
        # before its write-back finished (a sparse file's mtime, seen with fuse-overlayfs).
        with _mounted(storage_driver, container) as root:
            expected = tree_snapshot(root, root_times=False)
        found = {(change.path, change.kind) for change in storage_driver.changes(container)}
        assert {
            ("/etc/gone", ChangeKind.DELETED),
            ("/var/old", ChangeKind.DELETED),
            ("/large", ChangeKind.ADDED),
            ("/etc/passwd", ChangeKind.CHANGED),
        } <= found
        archive = _collect(storage_driver.diff(container))
        copy = layer_id("copy")
        storage_driver.create_layer(copy, base)
        storage_driver.apply_diff(copy, io.BytesIO(archive))
        with _mounted(storage_driver, copy) as root:
            assert tree_snapshot(root, root_times=False) == expected
            assert os.stat(root / "sparse").st_blocks * 512 < 8 << 20, "holes were filled in"

    def test_remove_while_mounted_is_a_conflict(self, storage_driver: StorageDriver) -> None:
        """A mounted container layer cannot be removed."""
        base = _layer(storage_driver, "base", None)
        container = layer_id("container")
        storage_driver.create_rw(container, base)
        with _mounted(storage_driver, container), pytest.raises(ConflictError):
            storage_driver.remove(container)
        assert storage_driver.exists(container)

    def test_killed_apply_is_cleaned_up(
        self, storage_driver: StorageDriver, dockyard_storage_context: DriverContext
    ) -> None:
        """A process killed while it applies a diff leaves no layer that looks complete, and
        cleanup() removes whatever it left."""
        import signal

        base = _layer(storage_driver, "base", None, LayerBuilder().file("f", b"f"))
        before = _listing(dockyard_storage_context.home)
        child = _layer(storage_driver, "child", base)
        archive = LayerBuilder().file("first", b"1").sparse_file("big", 16 << 20, {}).build()
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child process, killed while it applies
            try:
                os.close(writer)
                with os.fdopen(reader, "rb") as stream:
                    storage_driver.apply_diff(child, stream)
            finally:
                os._exit(0)
        os.close(reader)
        with os.fdopen(writer, "wb") as pipe:
            # Returns once the child has read all but a pipe buffer of it: it is mid-apply.
            pipe.write(archive[: 4 << 20])
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), "the apply ended before it could be killed"
        storage_driver.cleanup()
        assert not storage_driver.exists(child), "a half-applied layer looks complete"
        storage_driver.remove(child)
        assert _listing(dockyard_storage_context.home) == before, "leftovers of the killed apply"

    @pytest.mark.parametrize("attack", EXTRACTION_ATTACKS, ids=[attack.name for attack in EXTRACTION_ATTACKS])
    def test_extraction_attack(
        self, storage_driver: StorageDriver, dockyard_canary: Canary, attack: ExtractionAttack
    ) -> None:
        """A hostile archive is rejected or contained, and nothing outside the layer changes."""
        if attack.needs_root and not _IS_ROOT:
            pytest.skip("needs root")
        plan = attack.plan(dockyard_canary.path)
        lower = _layer(storage_driver, "lower", None, plan.lower)
        hostile = layer_id("hostile")
        storage_driver.create_layer(hostile, lower)
        error: UnsafeLayerError | None = None
        try:
            storage_driver.apply_diff(hostile, plan.upper.stream())
        except UnsafeLayerError as exc:
            error = exc
        dockyard_canary.assert_intact()
        if error is not None:
            check_attack_outcome(attack, plan, dockyard_canary.path, error)
            return
        with _mounted(storage_driver, hostile) as root:
            check_attack_outcome(attack, plan, root, None)
