"""Layer archives: safe application (both resolvers, every whiteout mode) and both diffs."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.core import layer_apply, layer_diff, rootpath
from dockyard.core.drivers import ChangeKind
from dockyard.core.errors import ContentError, DriverFailed, UnsafeLayerError
from dockyard.core.layer_apply import WhiteoutMode, apply_layer
from dockyard.core.layer_diff import changes, diff_size, write_diff
from dockyard.core.testing import (
    EXTRACTION_ATTACKS,
    Canary,
    ExtractionAttack,
    LayerBuilder,
    check_attack_outcome,
    tree_snapshot,
)

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root")


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with openat2(2) and again with the O_NOFOLLOW walk that replaces it."""
    if request.param == "walk":
        monkeypatch.setattr(rootpath, "_openat2", lambda: None)
    return str(request.param)


def _apply(root: Path, layer: LayerBuilder, mode: WhiteoutMode = WhiteoutMode.DELETE) -> None:
    apply_layer(root, layer.stream(), whiteouts=mode)


def _tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def _copy(source: Path, destination: Path) -> None:
    subprocess.run(["cp", "-a", "--", source, destination], check=True)


# --- resolving inside the root -------------------------------------------------------------------


def test_openat2_is_available_on_this_kernel() -> None:
    assert rootpath._openat2() is not None


def test_walk_resolves_like_openat2(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")
    (root / "abs").symlink_to("/usr")
    (root / "up").symlink_to("../../../../usr")
    (root / "usr" / "lib" / "back").symlink_to("../../lib")
    (root / "chain").symlink_to("abs/lib/back")
    openat2 = rootpath._openat2()
    assert openat2 is not None
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for path in ("lib", "abs/lib", "up/lib", "usr/lib/back", "chain", "lib/back/back"):
            parts = tuple(path.split("/"))
            by_walk = rootpath._walk(root_fd, parts, os.O_RDONLY | os.O_DIRECTORY)
            by_openat2 = openat2(root_fd, path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                assert os.fstat(by_walk).st_ino == os.fstat(by_openat2).st_ino == (
                    (root / "usr" / "lib").stat().st_ino
                ), path
            finally:
                os.close(by_walk)
                os.close(by_openat2)
    finally:
        os.close(root_fd)


# --- hostile archives ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(WhiteoutMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize(
    "attack", EXTRACTION_ATTACKS, ids=[attack.name for attack in EXTRACTION_ATTACKS]
)
def test_extraction_attack(
    tmp_path: Path, dockyard_canary: Canary, resolver: str, mode: WhiteoutMode,
    attack: ExtractionAttack,
) -> None:
    if (attack.needs_root or mode is WhiteoutMode.OVERLAY) and not IS_ROOT:
        pytest.skip("needs root")
    plan = attack.plan(dockyard_canary.path)
    root = tmp_path / "layer"
    root.mkdir()
    if plan.lower is not None:
        _apply(root, plan.lower, mode)
    error: UnsafeLayerError | None = None
    try:
        _apply(root, plan.upper, mode)
    except UnsafeLayerError as exc:
        error = exc
    dockyard_canary.assert_intact()
    check_attack_outcome(attack, plan, root, error)


def test_contained_whiteouts_differ_by_mode(tmp_path: Path, dockyard_canary: Canary) -> None:
    """A whiteout behind a symlink leading nowhere: nothing to delete, no directory to mark."""
    upper = LayerBuilder().symlink("sub", str(dockyard_canary.path)).whiteout("sub/secret")
    (tmp_path / "copy").mkdir()
    _apply(tmp_path / "copy", upper)
    if IS_ROOT:
        (tmp_path / "overlay").mkdir()
        with pytest.raises(UnsafeLayerError, match="leads nowhere"):
            _apply(tmp_path / "overlay", upper, WhiteoutMode.OVERLAY)
    dockyard_canary.assert_intact()


def test_absolute_symlinks_are_stored_not_followed(tmp_path: Path, resolver: str) -> None:
    layer = LayerBuilder().dir("srv").dir("srv/data").symlink("data", "/srv/data")
    _apply(tmp_path, layer.file("data/x", b"mine"))
    assert os.readlink(tmp_path / "data") == "/srv/data"
    assert (tmp_path / "srv" / "data" / "x").read_bytes() == b"mine", "resolved with the layer as /"


def test_private_overlay_xattrs_are_never_applied(tmp_path: Path) -> None:
    xattrs = {"trusted.overlay.redirect": b"/etc", "user.overlay.origin": b"x"}
    _apply(tmp_path, LayerBuilder().dir("d", xattrs=xattrs))
    assert os.listxattr(tmp_path / "d") == []


# --- applying ------------------------------------------------------------------------------------


def test_digest_and_size_cover_the_whole_stream(tmp_path: Path) -> None:
    data = LayerBuilder().file("f", b"x").build() + bytes(8192)
    result = apply_layer(tmp_path, io.BytesIO(data), whiteouts=WhiteoutMode.DELETE)
    assert result.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.size == len(data)


def test_entry_types_and_metadata(tmp_path: Path) -> None:
    layer = (
        LayerBuilder().dir("./", mode=0o711, mtime=10).dir("d", mode=0o750, mtime=100)
        .file("d/f", b"data", mode=0o4711, mtime=200).symlink("d/s", "f", mtime=300)
        .hardlink("d/h", "d/f").fifo("d/p", mode=0o604)
        .file("ns", pax={"mtime": "1700000000.000000042", "atime": "5.5"})
        .file("x", b"", xattrs={"user.k": b"v", "trusted.t": b"t"})
    )
    if IS_ROOT:
        layer.file("owned", uid=123, gid=456).char_device("c", 1, 3).block_device("b", 7, 1)
    _apply(tmp_path, layer)
    found = {p: os.lstat(tmp_path / p) for p in ("", "d", "d/f", "d/s", "d/h", "d/p", "ns")}
    assert stat.S_IMODE(found[""].st_mode) == 0o711 and found[""].st_mtime_ns == 10 * 10**9
    assert stat.S_IMODE(found["d"].st_mode) == 0o750
    assert found["d"].st_mtime_ns == 100 * 10**9, "directory times are set after their contents"
    assert stat.S_IMODE(found["d/f"].st_mode) == 0o4711 and found["d/f"].st_mtime_ns == 200 * 10**9
    assert found["d/s"].st_mtime_ns == 300 * 10**9 and stat.S_ISLNK(found["d/s"].st_mode)
    assert found["d/h"].st_ino == found["d/f"].st_ino
    assert stat.S_ISFIFO(found["d/p"].st_mode) and stat.S_IMODE(found["d/p"].st_mode) == 0o604
    assert found["ns"].st_mtime_ns == 1_700_000_000_000_000_042
    assert found["ns"].st_atime_ns == 5_500_000_000
    assert os.getxattr(tmp_path / "x", "user.k") == b"v"
    if IS_ROOT:
        assert os.getxattr(tmp_path / "x", "trusted.t") == b"t"
        owned = os.lstat(tmp_path / "owned")
        assert (owned.st_uid, owned.st_gid) == (123, 456)
        assert os.lstat(tmp_path / "c").st_rdev == os.makedev(1, 3)
        assert stat.S_ISBLK(os.lstat(tmp_path / "b").st_mode)


def test_files_are_written_sparse(tmp_path: Path) -> None:
    _apply(tmp_path, LayerBuilder().sparse_file("big", 16 << 20, {8 << 20: b"x"}))
    st = os.stat(tmp_path / "big")
    assert st.st_size == 16 << 20 and st.st_blocks * 512 <= 1 << 20


def test_implied_directories_and_replacements(tmp_path: Path, resolver: str) -> None:
    umask = os.umask(0o077)
    try:
        _apply(tmp_path, LayerBuilder().file("a/b/c", b"c").file("d", b"file").dir("e"))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b").st_mode) == 0o755
    _apply(tmp_path, LayerBuilder().dir("d").file("e", b"now a file").file("a", b"over a tree"))
    assert (tmp_path / "d").is_dir() and (tmp_path / "e").read_bytes() == b"now a file"
    assert (tmp_path / "a").read_bytes() == b"over a tree"


def test_whiteouts_delete_mode(tmp_path: Path, resolver: str) -> None:
    _apply(
        tmp_path,
        LayerBuilder().file("gone").dir("tree").file("tree/a").dir("o").file("o/old")
        .dir("o/sub").file("o/sub/old").file("keep").symlink("link", "/keep"),
    )
    _apply(
        tmp_path,
        LayerBuilder().whiteout("gone").whiteout("tree").whiteout("link").whiteout("missing")
        .file("o/sub/new").opaque("o").file("o/after").file("mine").whiteout("mine"),
    )
    assert _tree(tmp_path) == ["keep", "mine", "o", "o/after", "o/sub", "o/sub/new"]


@needs_root
def test_whiteouts_overlay_mode(tmp_path: Path, resolver: str) -> None:
    _apply(
        tmp_path,
        LayerBuilder().dir("etc").whiteout("etc/gone").opaque("etc").file("etc/new")
        .file("mine").whiteout("mine").whiteout("deep/er/x"),
        WhiteoutMode.OVERLAY,
    )
    for path in ("etc/gone", "deep/er/x"):
        found = os.lstat(tmp_path / path)
        assert stat.S_ISCHR(found.st_mode) and found.st_rdev == os.makedev(0, 0), path
        assert (found.st_uid, found.st_gid) == (0, 0)
    assert os.getxattr(tmp_path / "etc", layer_apply.OVERLAY_OPAQUE_XATTR) == b"y"
    assert (tmp_path / "etc" / "new").is_file() and (tmp_path / "mine").is_file()


def test_aufs_metadata_is_skipped(tmp_path: Path) -> None:
    _apply(tmp_path, LayerBuilder().dir(".wh..wh.plnk").file(".wh..wh.plnk/1.2").file("kept"))
    assert _tree(tmp_path) == ["kept"]


def test_ignore_chown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "not permitted")

    monkeypatch.setattr(os, "chown", refuse)
    layer = LayerBuilder().file("f", b"x", uid=4242)
    apply_layer(tmp_path, layer.stream(), whiteouts=WhiteoutMode.DELETE, ignore_chown=True)
    assert (tmp_path / "f").read_bytes() == b"x"
    with pytest.raises(DriverFailed, match="'f'") as caught:
        apply_layer(tmp_path, layer.stream(), whiteouts=WhiteoutMode.DELETE)
    assert isinstance(caught.value.__cause__, PermissionError)


@pytest.mark.parametrize(("code", "fatal"), [(errno.ENOTSUP, False), (errno.ENOSPC, True)])
def test_refused_xattrs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, fatal: bool
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "setxattr", refuse)
    layer = LayerBuilder().file("f", b"x", xattrs={"user.a": b"1"})
    if fatal:
        with pytest.raises(DriverFailed):
            _apply(tmp_path, layer)
    else:
        _apply(tmp_path, layer)
        assert (tmp_path / "f").read_bytes() == b"x"


def test_devices_are_skipped_without_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EPERM, "not permitted")

    monkeypatch.setattr(os, "mknod", refuse)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    _apply(tmp_path, LayerBuilder().char_device("null", 1, 3).file("f"))
    assert _tree(tmp_path) == ["f"]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(DriverFailed):
        _apply(tmp_path, LayerBuilder().char_device("null", 1, 3))


def _raw_member(name: str, kind: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"not a tar at all" * 64, ContentError),
        (LayerBuilder().file("f", b"x" * 4096).build()[:1024], ContentError),
        (_raw_member("weird", b"Z"), ContentError),
        (LayerBuilder().file("f", pax={"mtime": "soon"}).build(), ContentError),
    ],
    ids=["garbage", "truncated", "unknown-type", "bad-pax-time"],
)
def test_invalid_archives(tmp_path: Path, data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        apply_layer(tmp_path, io.BytesIO(data), whiteouts=WhiteoutMode.DELETE)


def test_missing_root_is_a_driver_failure(tmp_path: Path) -> None:
    with pytest.raises(DriverFailed):
        _apply(tmp_path / "missing", LayerBuilder().file("f"))


# --- the naive diff ------------------------------------------------------------------------------


@pytest.fixture
def trees(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A lower tree and an upper copy of it to modify."""
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    _apply(
        lower,
        LayerBuilder().file("keep", b"k").file("mod", b"m").file("gone").dir("dir")
        .file("dir/a").dir("dir/sub").file("dir/sub/b").dir("etc").file("etc/passwd", b"p")
        .symlink("link", "keep").file("attr", b"a").file("f2d").dir("d2f").file("d2f/x")
        .file("touched", b"t"),
    )
    _copy(lower, upper)
    yield lower, upper


def test_changes(trees: tuple[Path, Path]) -> None:
    lower, upper = trees
    assert changes(lower, upper) == []
    (upper / "mod").write_bytes(b"changed")
    (upper / "gone").unlink()
    shutil.rmtree(upper / "dir")
    (upper / "etc" / "new").write_bytes(b"n")
    (upper / "link").unlink()
    (upper / "link").symlink_to("etc")
    os.setxattr(upper / "attr", "user.x", b"1")
    (upper / "f2d").unlink()
    (upper / "f2d").mkdir()
    shutil.rmtree(upper / "d2f")
    (upper / "d2f").write_bytes(b"")
    os.utime(upper / "touched", ns=(1, 1))
    found = [(change.path, change.kind.value) for change in changes(lower, upper)]
    assert found == [
        ("/attr", "C"), ("/d2f", "C"), ("/dir", "D"), ("/etc", "C"), ("/etc/new", "A"),
        ("/f2d", "C"), ("/gone", "D"), ("/link", "C"), ("/mod", "C"), ("/touched", "C"),
    ]
    assert {c.kind for c in changes(None, upper)} == {ChangeKind.ADDED}


@needs_root
def test_changes_see_owners(trees: tuple[Path, Path]) -> None:
    lower, upper = trees
    os.chown(upper / "keep", 1, 1)
    os.utime(upper / "keep", ns=(os.lstat(lower / "keep").st_mtime_ns,) * 2)
    assert [(c.path, c.kind) for c in changes(lower, upper)] == [("/keep", ChangeKind.CHANGED)]


def test_diff_entries(trees: tuple[Path, Path]) -> None:
    lower, upper = trees
    (upper / "gone").unlink()
    shutil.rmtree(upper / "dir")
    (upper / "etc" / "hard").write_bytes(b"shared")
    os.link(upper / "etc" / "hard", upper / "etc" / "hard2")
    os.setxattr(upper / "etc" / "hard", "user.x", b"\xff\x00")
    os.utime(upper / "mod", ns=(5, 1_600_000_000_123456789))
    os.mkfifo(upper / "pipe")
    if IS_ROOT:
        os.mknod(upper / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.chown(upper / "pipe", 7, 8)
    data = b"".join(write_diff(lower, upper))
    assert data == b"".join(write_diff(lower, upper)), "the same trees give the same bytes"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {member.name: member for member in tar}
    assert ".wh.gone" in members and ".wh.dir" in members and "dir/a" not in members
    assert members["etc/hard2"].islnk() and members["etc/hard2"].linkname == "etc/hard"
    assert members["etc/hard"].pax_headers["SCHILY.xattr.user.x"].encode(
        "utf-8", "surrogateescape"
    ) == b"\xff\x00"
    assert members["mod"].pax_headers["mtime"] == "1600000000.123456789"
    assert members["pipe"].isfifo() and not members["pipe"].uname
    if IS_ROOT:
        null = members["null"]
        assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
        assert (members["pipe"].uid, members["pipe"].gid) == (7, 8)
    assert diff_size(lower, upper) == len(b"shared") + len(b"m")


def test_round_trip(trees: tuple[Path, Path], tmp_path: Path, resolver: str) -> None:
    lower, upper = trees
    _apply(
        upper,
        LayerBuilder().whiteout("gone").whiteout("dir").opaque("etc").file("etc/fresh", b"f")
        .file("mod", b"new content", mode=0o600).hardlink("mod-link", "mod")
        .symlink("abs", "/nonexistent/passwd").dir("f2d").file("d2f", b"file").fifo("pipe")
        .file("exact", pax={"mtime": "1.000000001"}).sparse_file("big", 8 << 20, {7 << 20: b"x"}),
    )
    os.setxattr(upper / "keep", "user.round", b"trip")
    rebuilt = tmp_path / "rebuilt"
    _copy(lower, rebuilt)
    archive_bytes = b"".join(write_diff(lower, upper))
    apply_layer(rebuilt, io.BytesIO(archive_bytes), whiteouts=WhiteoutMode.DELETE)
    assert tree_snapshot(rebuilt, root_times=False) == tree_snapshot(upper, root_times=False)
    assert b"".join(write_diff(lower, rebuilt)) == archive_bytes


def test_diff_never_reads_through_a_swapped_symlink(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "f").write_bytes(b"inside")
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "f").write_bytes(b"SECRET")
    chunks = write_diff(None, upper)
    seen = [next(chunks), next(chunks)]  # the headers of d and d/f, content not yet read
    shutil.rmtree(upper / "d")
    (upper / "d").symlink_to(secret)
    with pytest.raises(DriverFailed):
        seen.extend(chunks)
    assert b"SECRET" not in b"".join(seen)


# --- the public surface --------------------------------------------------------------------------


def test_public_surface() -> None:
    """The names drivers and plugins import; changing them is a breaking change."""
    assert set(layer_apply.__all__) == {
        "OPAQUE_MARKER", "OVERLAY_OPAQUE_XATTR", "OVERLAY_USER_OPAQUE_XATTR", "PRIVATE_XATTRS",
        "WHITEOUT_PREFIX", "XATTR_PAX_PREFIX", "WhiteoutMode", "apply_layer",
    }
    assert set(layer_diff.__all__) == {
        "changes", "diff_size", "upper_changes", "upper_diff_size", "write_diff",
        "write_upper_diff",
    }
    for module in (layer_apply, layer_diff):
        assert all(hasattr(module, name) for name in module.__all__)


# --- overlay-style layers: the rootless mode and the native diff ---------------------------------


def test_whiteouts_overlay_userxattr_mode(tmp_path: Path) -> None:
    _apply(
        tmp_path,
        LayerBuilder().dir("etc").opaque("etc").file("etc/new").whiteout("gone"),
        WhiteoutMode.OVERLAY_USERXATTR,
    )
    assert os.getxattr(tmp_path / "etc", layer_apply.OVERLAY_USER_OPAQUE_XATTR) == b"y"
    assert layer_apply.OVERLAY_OPAQUE_XATTR not in os.listxattr(tmp_path / "etc")
    found = os.lstat(tmp_path / "gone")
    assert stat.S_ISCHR(found.st_mode) and found.st_rdev == 0


def test_fuse_overlayfs_xattrs_are_never_applied(tmp_path: Path) -> None:
    _apply(tmp_path, LayerBuilder().dir("d", xattrs={"user.fuseoverlayfs.opaque": b"y"}))
    assert "user.fuseoverlayfs.opaque" not in os.listxattr(tmp_path / "d")


@pytest.fixture
def overlay_layers(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two lower layers as the overlay driver keeps them (the bottom one applied whole, the one
    above with overlay whiteouts) and an empty upper directory."""
    bottom, middle, upper = tmp_path / "bottom", tmp_path / "middle", tmp_path / "upper"
    for directory in (bottom, middle, upper):
        directory.mkdir()
    _apply(
        bottom,
        LayerBuilder().file("keep", b"k").file("mod", b"m").dir("dir").file("dir/a")
        .dir("etc").file("etc/passwd", b"p").file("etc/hidden").dir("opq").file("opq/old")
        .file("dup", b"1"),
    )
    _apply(
        middle,
        LayerBuilder().whiteout("etc/hidden").file("etc/group", b"g").file("dup", b"2"),
        WhiteoutMode.OVERLAY_USERXATTR,
    )
    return bottom, middle, upper


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


def test_upper_changes(overlay_layers: tuple[Path, Path, Path]) -> None:
    bottom, middle, upper = overlay_layers
    (upper / "mod").write_bytes(b"changed")
    _whiteout(upper / "keep")
    _whiteout(upper / "never")  # hides nothing the lowers show: not a change
    (upper / "etc").mkdir()
    _whiteout(upper / "etc" / "group")
    (upper / "etc" / "hidden").write_bytes(b"back")  # the middle layer hid it: added again
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", layer_apply.OVERLAY_USER_OPAQUE_XATTR, b"y")
    (upper / "opq" / "new").write_bytes(b"n")
    (upper / "fresh").mkdir()
    (upper / "fresh" / ".wh..wh..opq").write_bytes(b"")  # fuse-overlayfs's marker, no change
    found = [(change.path, change.kind) for change in layer_diff.upper_changes(upper, [middle, bottom])]
    assert found == [
        ("/etc", ChangeKind.CHANGED), ("/etc/group", ChangeKind.DELETED),
        ("/etc/hidden", ChangeKind.ADDED), ("/fresh", ChangeKind.ADDED),
        ("/keep", ChangeKind.DELETED), ("/mod", ChangeKind.CHANGED),
        ("/opq", ChangeKind.CHANGED), ("/opq/new", ChangeKind.ADDED),
        ("/opq/old", ChangeKind.DELETED),
    ]
    assert layer_diff.upper_diff_size(upper) == len(b"changed") + len(b"back") + len(b"n")


def test_upper_diff_reproduces_the_merged_tree(
    overlay_layers: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Applying the native diff of an upper onto a full copy of the lowers' tree gives what a
    copy-style driver would hold: the same tree as applying the changes by hand."""
    bottom, middle, upper = overlay_layers
    _whiteout(upper / "keep")
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", layer_apply.OVERLAY_USER_OPAQUE_XATTR, b"y")
    (upper / "opq" / "new").write_bytes(b"n")
    (upper / "fresh").mkdir()
    os.setxattr(upper / "fresh", layer_apply.OVERLAY_USER_OPAQUE_XATTR, b"y")
    archive = b"".join(layer_diff.write_upper_diff(upper, [middle, bottom]))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = [member.name for member in tar]
    assert names == ["fresh", ".wh.keep", "opq", "opq/.wh..wh..opq", "opq/new"]
    merged = tmp_path / "merged"
    merged.mkdir()
    _apply(merged, LayerBuilder().file("keep", b"k").dir("opq").file("opq/old"))
    apply_layer(merged, io.BytesIO(archive), whiteouts=WhiteoutMode.DELETE)
    assert _tree(merged) == ["fresh", "opq", "opq/new"]
