"""The build context: Dockerfile lookup, stdin, COPY source resolution, destinations, checksums,
the COPY tar stream and ADD's archive unpacking."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tempfile
from pathlib import Path

import pytest

from dockyard.core.build.archives import is_archive
from dockyard.core.build.context import open_directory_context, open_stream_context
from dockyard.core.build.dockerignore import IgnoreMatcher
from dockyard.core.build.sources import SourceTree, destination, parse_chmod, plan_copy
from dockyard.core.errors import NotFoundError, UnsafeLayerError, UsageError


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content.startswith("->"):
            path.symlink_to(content[2:])
        else:
            path.write_text(content)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> SourceTree:
    root = make_tree(
        tmp_path / "ctx",
        {
            "Dockerfile": "FROM scratch\n",
            "a.txt": "a",
            "b.txt": "b",
            "src/main.py": "main",
            "src/lib/util.py": "util",
            "src/link": "->main.py",
            "src/up": "->../../../../etc",
            "docs/readme.md": "r",
            "escape": "->/a.txt",
        },
    )
    return SourceTree(str(root))


def names(plan: object) -> list[str]:
    return list(plan.names())  # type: ignore[attr-defined]


def tar_members(plan: object) -> dict[str, tarfile.TarInfo]:
    out = io.BytesIO()
    plan.write_tar(out)  # type: ignore[attr-defined]
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        return {member.name: member for member in tar.getmembers()}


@pytest.mark.parametrize(
    ("sources", "dest", "dest_is_dir", "expected"),
    [
        (["a.txt"], "/dest/", True, ["/dest/a.txt"]),  # into a directory
        (["a.txt"], "/dest", False, ["/dest"]),  # the file becomes /dest
        (["src"], "/app", False, ["/app/lib", "/app/lib/util.py", "/app/link", "/app/main.py", "/app/up"]),
        (["*.txt"], "/d/", True, ["/d/a.txt", "/d/b.txt"]),
        (["src/*.py", "a.txt"], "/d/", True, ["/d/main.py", "/d/a.txt"]),
        (["s?c/l*/u*.py"], "/d/", True, ["/d/util.py"]),
        (["../../a.txt"], "/x", False, ["/x"]),  # confined to the context
        (["/a.txt"], "/x", False, ["/x"]),
        (["escape"], "/x", False, ["/x"]),  # an absolute symlink resolves inside the context
        (["src/link"], "/x/", True, ["/x/main.py"]),
        ([".", ], "/d/", True, None),
    ],
)  # fmt: skip
def test_copy_destination_and_source_rules(
    tree: SourceTree, sources: list[str], dest: str, dest_is_dir: bool, expected: list[str] | None
) -> None:
    plan = plan_copy(tree, sources, dest, dest_is_dir=dest_is_dir)
    if expected is None:
        assert "/d/Dockerfile" in names(plan) and "/d/src/lib/util.py" in names(plan)
    else:
        assert names(plan) == expected


def test_symlinks_inside_a_copied_directory_stay_links(tree: SourceTree) -> None:
    members = tar_members(plan_copy(tree, ["src"], "/app", dest_is_dir=False))
    assert members["app/link"].issym() and members["app/link"].linkname == "main.py"
    assert members["app/up"].issym() and members["app/up"].linkname == "../../../../etc"


def test_symlink_out_of_the_context_is_not_followed(tree: SourceTree) -> None:
    # src/up -> ../../../../etc resolves to <context>/etc, which does not exist.
    with pytest.raises(NotFoundError, match="file not found in build context"):
        plan_copy(tree, ["src/up/passwd"], "/x", dest_is_dir=False)


@pytest.mark.parametrize(
    ("sources", "dest_is_dir", "error", "message"),
    [
        (["missing"], False, NotFoundError, "COPY failed: file not found in build context or excluded by"),
        (["*.nothing"], True, NotFoundError, "COPY failed: no source files were specified"),
        (["a.txt", "b.txt"], False, UsageError, "the destination must be a directory and end with a /"),
        (["*.txt"], False, UsageError, "When using COPY with more than one source file"),
    ],
)
def test_copy_errors(
    tree: SourceTree, sources: list[str], dest_is_dir: bool, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        plan_copy(tree, sources, "/dest", dest_is_dir=dest_is_dir)


def test_ignored_files_are_not_copied_but_exceptions_are(tree: SourceTree) -> None:
    ignored = SourceTree(tree.root, IgnoreMatcher(["src", "!src/lib/util.py", "*.txt", "Dockerfile"]))
    assert names(plan_copy(ignored, ["."], "/", dest_is_dir=True)) == [
        "/docs", "/docs/readme.md", "/escape", "/src", "/src/lib", "/src/lib/util.py",
    ]  # fmt: skip
    with pytest.raises(NotFoundError):
        plan_copy(ignored, ["a.txt"], "/x", dest_is_dir=False)
    with pytest.raises(NotFoundError, match="no source files"):
        plan_copy(ignored, ["*.txt"], "/x/", dest_is_dir=True)


@pytest.mark.parametrize(
    ("dest", "workdir", "expected"),
    [
        ("/abs", "/w", ("/abs", False)),
        ("rel/", "/w", ("/w/rel", True)),
        (".", "/w", ("/w", True)),
        ("../../x", "/w", ("/x", False)),
        ("x", "/", ("/x", False)),
    ],
)
def test_destination(dest: str, workdir: str, expected: tuple[str, bool]) -> None:
    assert destination(dest, workdir) == expected


def test_tar_carries_owner_and_chmod(tree: SourceTree) -> None:
    os.chmod(os.path.join(tree.root, "a.txt"), 0o600)
    plain = tar_members(plan_copy(tree, ["a.txt", "src/lib"], "/d/", dest_is_dir=True))
    assert (plain["d/a.txt"].mode, plain["d/a.txt"].uid, plain["d/a.txt"].gid) == (0o600, 0, 0)
    changed = tar_members(
        plan_copy(
            tree, ["a.txt", "src"], "/d/", dest_is_dir=True, owner=(1000, 1001), chmod=parse_chmod("755")
        )
    )
    assert (changed["d/a.txt"].mode, changed["d/a.txt"].uid, changed["d/a.txt"].gid) == (0o755, 1000, 1001)
    assert changed["d/lib"].isdir() and changed["d/lib"].mode == 0o755 and changed["d/lib"].uid == 1000
    out = io.BytesIO()
    plan_copy(tree, ["a.txt"], "/d/", dest_is_dir=True).write_tar(out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        assert tar.extractfile("d/a.txt").read() == b"a"  # type: ignore[union-attr]


@pytest.mark.parametrize("text", ["9", "abc", "77777"])
def test_bad_chmod(text: str) -> None:
    with pytest.raises(UsageError, match="invalid chmod"):
        parse_chmod(text)


def test_checksum_ignores_mtimes_but_not_content_mode_owner_or_names(tree: SourceTree) -> None:
    def checksum(**options: object) -> str:
        return plan_copy(tree, ["src", "a.txt"], "/d/", dest_is_dir=True, **options).checksum()  # type: ignore[arg-type]

    first = checksum()
    assert first.startswith("sha256:") and checksum() == first
    main = os.path.join(tree.root, "src", "main.py")
    os.utime(main, (1, 1))
    os.utime(os.path.join(tree.root, "src"), (2, 2))
    assert checksum() == first  # touched, not changed
    Path(main).write_text("MAIN")
    changed_content = checksum()
    assert changed_content != first
    os.chmod(main, 0o700)
    changed_mode = checksum()
    assert changed_mode != changed_content
    assert checksum(owner=(1, 1)) != changed_mode
    assert checksum(chmod=0o644) != changed_mode
    os.rename(main, os.path.join(tree.root, "src", "renamed.py"))
    assert checksum() != changed_mode
    os.remove(os.path.join(tree.root, "src", "link"))
    os.symlink("elsewhere", os.path.join(tree.root, "src", "link"))
    assert plan_copy(tree, ["src"], "/d/", dest_is_dir=True).checksum() != first
    assert (
        plan_copy(tree, ["a.txt"], "/d/", dest_is_dir=True).checksum()
        != plan_copy(tree, ["a.txt"], "/e/", dest_is_dir=True).checksum()
    )


def make_archive(path: Path, entries: dict[str, bytes], *, compress: bool = False) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.uid = len(data), 33
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue()) if compress else raw.getvalue())


def test_add_unpacks_local_archives_into_the_destination(tree: SourceTree) -> None:
    root = Path(tree.root)
    make_archive(root / "app.tar.gz", {"./bin/app": b"binary", "etc/conf": b"c"}, compress=True)
    assert is_archive(str(root / "app.tar.gz")) and not is_archive(str(root / "a.txt"))
    plan = plan_copy(tree, ["app.tar.gz"], "/opt", dest_is_dir=False, unpack_archives=True)
    members = tar_members(plan)
    assert sorted(members) == ["opt/bin/app", "opt/etc/conf"] and members["opt/bin/app"].uid == 33
    as_copy = plan_copy(tree, ["app.tar.gz"], "/opt/", dest_is_dir=True)
    assert names(as_copy) == ["/opt/app.tar.gz"]  # COPY never unpacks
    assert plan.checksum() != as_copy.checksum()


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "dir/.wh.hidden"])
def test_archive_entries_cannot_escape(tree: SourceTree, name: str) -> None:
    make_archive(Path(tree.root) / "bad.tar", {"ok": b"", name: b"x"})
    plan = plan_copy(tree, ["bad.tar"], "/opt/", dest_is_dir=True, unpack_archives=True)
    with pytest.raises(UnsafeLayerError):
        plan.write_tar(io.BytesIO())


def test_directory_context_dockerfile_lookup_and_ignore_files(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path, {"ctx/dockerfile": "FROM a\n", "ctx/.dockerignore": "*.txt\n", "ctx/x.txt": ""}
    )
    context = open_directory_context(root / "ctx")
    assert context.dockerfile == b"FROM a\n" and context.dockerfile_name == "dockerfile"
    assert context.ignore.excluded("x.txt") and context.tree.root == str(root / "ctx")
    make_tree(tmp_path, {"other/Build.df": "FROM b\n", "other/Build.df.dockerignore": "secret\n"})
    custom = open_directory_context(root / "ctx", dockerfile=root / "other/Build.df")
    assert (
        custom.dockerfile == b"FROM b\n"
        and custom.ignore.excluded("secret")
        and not custom.ignore.excluded("x.txt")
    )
    piped = open_directory_context(root / "ctx", dockerfile_text=b"FROM c\n")
    assert piped.dockerfile == b"FROM c\n"
    with pytest.raises(UsageError, match=r'unable to prepare context: path ".*nope" not found'):
        open_directory_context(root / "nope")
    with pytest.raises(UsageError, match="Cannot locate specified Dockerfile"):
        open_directory_context(root / "ctx", dockerfile=root / "missing")


@pytest.mark.parametrize("compress", [False, True])
def test_stream_context_from_a_tar(tmp_path: Path, compress: bool) -> None:
    archive = tmp_path / "ctx.tar"
    make_archive(
        archive,
        {"Dockerfile": b"FROM scratch\nCOPY a /\n", "a": b"A", "sub/df": b"FROM x\n"},
        compress=compress,
    )
    with open(archive, "rb") as stream, open_stream_context(stream) as context:
        root = context.root
        assert context.dockerfile.startswith(b"FROM scratch") and Path(root, "a").read_bytes() == b"A"
        assert names(plan_copy(context.tree, ["a"], "/", dest_is_dir=True)) == ["/a"]
    assert not os.path.exists(root)
    with open(archive, "rb") as stream, open_stream_context(stream, dockerfile="sub/df") as context:
        assert context.dockerfile == b"FROM x\n"


def test_stream_context_that_is_only_a_dockerfile() -> None:
    with open_stream_context(io.BytesIO(b'FROM scratch\nCMD ["/hello"]\n')) as context:
        assert context.dockerfile == b'FROM scratch\nCMD ["/hello"]\n' and os.listdir(context.root) == []


def test_stream_context_without_its_dockerfile_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "ctx.tar"
    make_archive(archive, {"a": b"A"})
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # let tempfile see the new TMPDIR
    try:
        with (
            open(archive, "rb") as stream,
            pytest.raises(UsageError, match="Cannot locate specified Dockerfile"),
        ):
            open_stream_context(stream)
    finally:
        tempfile.tempdir = None
    assert sorted(os.listdir(tmp_path)) == ["ctx.tar"]
