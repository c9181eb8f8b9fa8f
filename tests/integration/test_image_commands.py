"""The image commands end to end, through the real CLI and the real vfs driver."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Dockyard

ID = re.compile(r"^sha256:[0-9a-f]{64}$")


@pytest.fixture(autouse=True)
def _on_vfs(dockyard: Dockyard) -> None:
    """These tests read vfs's layout on disk: name vfs, which overlay's priority would pass over."""
    dockyard.env["DOCKYARD_STORAGE_DRIVER"] = "vfs"


def _import(dockyard: Dockyard, tarball: Path, *args: str) -> str:
    result = dockyard("import", str(tarball), *args)
    image_id = result.stdout.strip()
    assert ID.match(image_id), result.stdout
    return image_id


def test_seed_empty_scratch_import(dockyard: Dockyard) -> None:
    """The seed's `tar cv --files-from /dev/null | docker import - scratch`."""
    empty = subprocess.run(
        ["tar", "c", "--files-from", "/dev/null"], capture_output=True, check=True
    ).stdout
    result = dockyard.run_bytes("import", "-", "scratch", input=empty)
    assert result.returncode == 0, result.stderr
    assert ID.match(result.stdout.decode().strip())
    listing = dockyard("images").stdout.splitlines()
    assert listing[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert listing[1].split()[:2] == ["scratch", "latest"]


def test_images_columns_and_formats(dockyard: Dockyard, busybox_tar: Path) -> None:
    image_id = _import(dockyard, busybox_tar, "busybox:1.36", "-m", "from busybox-static")
    dockyard("tag", "busybox:1.36", "localhost:5000/tools/busybox")

    header, *rows = dockyard("images").stdout.splitlines()
    assert re.match(r"^REPOSITORY\s{3,}TAG\s{3,}IMAGE ID\s{3,}CREATED\s{3,}SIZE$", header)
    assert sorted(row.split()[0] for row in rows) == ["busybox", "localhost:5000/tools/busybox"]
    assert all(image_id[7:19] in row for row in rows)
    assert any("Less than a second ago" in row or "seconds ago" in row for row in rows)

    quiet = dockyard("images", "-q").stdout.split()
    assert quiet == [image_id[7:19]]
    assert dockyard("images", "-q", "--no-trunc").stdout.split() == [image_id]

    formatted = dockyard("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(formatted) == ["busybox:1.36", "localhost:5000/tools/busybox:latest"]
    as_json = [json.loads(line) for line in dockyard("images", "--format", "{{json .}}").stdout.splitlines()]
    assert {row["ID"] for row in as_json} == {image_id[7:19]}
    assert {"Repository", "Tag", "CreatedSince", "Size", "Digest"} <= set(as_json[0])

    table = dockyard("images", "--format", "table {{.ID}}\\t{{.Repository}}").stdout.splitlines()
    assert table[0].split() == ["IMAGE", "ID", "REPOSITORY"]
    assert dockyard("images", "--digests").stdout.splitlines()[0].split()[2] == "DIGEST"
    assert dockyard("images", "busybox").stdout.count("\n") == 2
    assert dockyard("images", "-f", "reference=busybox:*", "-q").stdout.split() == [image_id[7:19]]


def test_import_changes_and_inspect(dockyard: Dockyard, busybox_tar: Path) -> None:
    _import(
        dockyard, busybox_tar, "tools:v1",
        "-c", 'CMD ["/bin/sh", "-c", "echo hi"]',
        "-c", "ENV GREETING=hello PLACE=world",
        "-c", "EXPOSE 8080/tcp",
        "-c", "WORKDIR /srv",
        "-c", "LABEL org.example.team=yard",
        "-m", "initial import",
    )
    inspected = json.loads(dockyard("image", "inspect", "tools:v1").stdout)
    assert len(inspected) == 1
    image = inspected[0]
    assert image["RepoTags"] == ["tools:v1"]
    assert image["Config"]["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert image["Config"]["Env"] == ["GREETING=hello", "PLACE=world"]
    assert image["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert image["Config"]["WorkingDir"] == "/srv"
    assert image["Comment"] == "initial import"
    assert image["Os"] == "linux" and image["Architecture"]
    assert len(image["RootFS"]["Layers"]) == 1 and image["Size"] > 500_000
    assert image["GraphDriver"]["Name"] == "vfs"

    assert dockyard("inspect", "--format", "{{.Config.WorkingDir}}", "tools:v1").stdout == "/srv\n"
    label = dockyard("inspect", "-f", '{{index .Config.Labels "org.example.team"}}', "tools:v1")
    assert label.stdout == "yard\n"
    assert json.loads(dockyard("inspect", "-f", "{{json .Config.ExposedPorts}}", "tools:v1").stdout) == {
        "8080/tcp": {}
    }

    history = dockyard("history", "tools:v1").stdout.splitlines()
    assert history[0].split()[:2] == ["IMAGE", "CREATED"]
    assert "initial import" in history[1]


def test_bad_change_is_rejected(dockyard: Dockyard, busybox_tar: Path) -> None:
    result = dockyard("import", "-c", "RUN rm -rf /", str(busybox_tar), "x", check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not a valid change command" in result.stderr
    assert dockyard("images", "-q").stdout == ""


def test_rmi_follows_docker_semantics(dockyard: Dockyard, busybox_tar: Path) -> None:
    image_id = _import(dockyard, busybox_tar, "first:latest")
    dockyard("tag", "first", "second:v2")

    conflict = dockyard("rmi", image_id[7:19], check=False)
    assert conflict.returncode == 1 and "must be forced" in conflict.stderr

    untag = dockyard("rmi", "first")
    assert untag.stdout == "Untagged: first:latest\n"
    assert dockyard("images", "-q").stdout.split() == [image_id[7:19]]

    delete = dockyard("rmi", "second:v2")
    assert delete.stdout.splitlines() == ["Untagged: second:v2", f"Deleted: {image_id}"]
    assert dockyard("images", "-q").stdout == ""
    layers = dockyard.root / "storage" / "vfs"
    leftover = [p for p in layers.rglob("*") if p.is_dir() and len(p.name) == 64]
    assert leftover == [], "deleting the last image must delete its layer"


def test_rmi_keeps_an_image_a_container_uses(dockyard: Dockyard, busybox_tar: Path) -> None:
    image_id = _import(dockyard, busybox_tar, "inuse:1")
    container_id = dockyard("create", "--network", "none", "inuse:1", "true").stdout.strip()
    refused = dockyard("rmi", "inuse:1", check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        'Error: conflict: unable to remove repository reference "inuse:1" (must force) - container '
        f"{container_id[:12]} is using its referenced image {image_id[7:19]}\n"
    )
    by_id = dockyard("rmi", image_id[7:19], check=False)
    assert "image is being used by stopped container" in by_id.stderr and by_id.returncode == 1
    forced = dockyard("rmi", "-f", "inuse:1")
    assert forced.stdout == "Untagged: inuse:1\n", "forced: untagged, never deleted under a container"
    assert dockyard("images", "-aq", "--no-trunc").stdout.split() == [image_id]
    assert dockyard("start", "-a", container_id).returncode == 0


def test_rmi_deletes_the_untagged_step_images_of_a_build(dockyard: Dockyard, busybox_tar: Path) -> None:
    _import(dockyard, busybox_tar, "base:1")
    context = dockyard.root.parent / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM base:1\nENV A=1\nLABEL b=2\nCMD [\"true\"]\n")
    for tag in ("steps:1", "steps:2"):
        dockyard("build", "-q", "--no-cache", "-t", tag, str(context))
    listed = dockyard("images", "-aq", "--no-trunc").stdout.split()
    assert len(listed) == 7, "the base and three step images per build"
    deleted = dockyard("rmi", "steps:1").stdout.count("Deleted: ")
    assert deleted == 3, "the image and its two untagged parents; the base is tagged"
    dockyard("image", "prune", "-f")
    assert len(dockyard("images", "-aq").stdout.split()) == 4, "step images under a tag are not dangling"
    kept = dockyard("rmi", "--no-prune", "steps:2").stdout.count("Deleted: ")
    assert kept == 1 and len(dockyard("images", "-aq").stdout.split()) == 3
    pruned = dockyard("image", "prune", "-f").stdout
    assert pruned.count("deleted: ") == 2, "left alone, the step images are dangling one after the other"
    assert len(dockyard("images", "-aq").stdout.split()) == 1


def test_rmi_force_by_id_removes_every_tag(dockyard: Dockyard, busybox_tar: Path) -> None:
    image_id = _import(dockyard, busybox_tar, "a:1")
    dockyard("tag", "a:1", "b:2")
    result = dockyard("rmi", "-f", image_id[7:15])
    assert sorted(result.stdout.splitlines()) == sorted(
        ["Untagged: a:1", "Untagged: b:2", f"Deleted: {image_id}"]
    )


def test_errors_are_one_line_with_exit_1(dockyard: Dockyard, busybox_tar: Path) -> None:
    missing = dockyard("rmi", "nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr == "Error: No such image: nope:latest\n"

    bad_reference = dockyard("tag", "nope", "UPPER/case", check=False)
    assert bad_reference.returncode == 1 and bad_reference.stderr.count("\n") == 1

    bad_flag = dockyard("images", "--bogus", check=False)
    assert bad_flag.returncode == 125

    unknown_driver = dockyard("--storage-driver", "zfs-nope", "import", str(busybox_tar), check=False)
    assert unknown_driver.returncode == 1
    assert "unknown storage driver 'zfs-nope'" in unknown_driver.stderr and "vfs" in unknown_driver.stderr
    assert "Traceback" not in unknown_driver.stderr


def test_debug_log_level_shows_the_traceback(dockyard: Dockyard) -> None:
    result = dockyard("--log-level", "debug", "rmi", "nope", check=False)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "No such image" in result.stderr


def test_ambiguous_id_prefix_is_an_error(
    dockyard: Dockyard, make_tar: Callable[[dict[str, bytes]], Path]
) -> None:
    ids: dict[str, str] = {}
    counter = 0
    while True:
        image_id = _import(dockyard, make_tar({f"file{counter}": str(counter).encode()}))
        counter += 1
        first = image_id[7]
        if first in ids and ids[first] != image_id:
            break
        ids[first] = image_id
    result = dockyard("rmi", first, check=False)
    assert result.returncode == 1 and "ambiguous" in result.stderr
    assert len(dockyard("images", "-q").stdout.split()) == counter


def test_image_prune_removes_dangling_only(dockyard: Dockyard, busybox_tar: Path, make_tar) -> None:  # type: ignore[no-untyped-def]
    kept = _import(dockyard, busybox_tar, "keep:me")
    dangling = _import(dockyard, make_tar({"x": b"x"}))
    result = dockyard("image", "prune", "-f")
    assert f"deleted: {dangling}" in result.stdout
    assert "Total reclaimed space:" in result.stdout
    assert dockyard("images", "-q", "--no-trunc").stdout.split() == [kept]

    refused = dockyard("image", "prune", "-a", input=b"n\n")
    assert "Are you sure you want to continue?" in refused.stdout
    assert dockyard("images", "-q", "--no-trunc").stdout.split() == [kept]


def test_image_group_aliases(dockyard: Dockyard, busybox_tar: Path) -> None:
    dockyard("image", "import", str(busybox_tar), "aliased")
    assert "aliased" in dockyard("image", "ls").stdout
    dockyard("image", "tag", "aliased", "again")
    dockyard("image", "rm", "aliased", "again")
    assert dockyard("image", "ls", "-q").stdout == ""


def test_crafted_layer_cannot_write_outside(dockyard: Dockyard, tmp_path: Path, make_tar) -> None:  # type: ignore[no-untyped-def]
    victim = tmp_path / "victim"
    victim.mkdir()
    evil = make_tar({"ok": b"fine", "../../../../../../" + str(victim / "owned")[1:]: b"pwned"})
    result = dockyard("import", str(evil), "evil", check=False)
    assert list(victim.iterdir()) == []
    assert "Traceback" not in result.stderr
    if result.returncode != 0:
        assert result.returncode == 1 and result.stderr.count("\n") == 1
        assert dockyard("images", "-q").stdout == "", "a refused layer leaves no image"


def test_json_logs_on_request(dockyard: Dockyard, busybox_tar: Path) -> None:
    result = dockyard("--log-level", "info", "--log-format", "json", "import", str(busybox_tar), "logged")
    events = [json.loads(line) for line in result.stderr.splitlines()]
    applied = [event for event in events if event["event"] == "layer applied"]
    assert len(applied) == 1
    assert applied[0]["level"] == "info" and applied[0]["driver"] == "vfs"
    assert applied[0]["diff_id"].startswith("sha256:") and "timestamp" in applied[0]
    quiet = dockyard("import", str(busybox_tar), "quiet")
    assert quiet.stderr == "", "the default level logs nothing for a successful import"


def test_console_logs_are_plain_lines(dockyard: Dockyard, busybox_tar: Path) -> None:
    result = dockyard("--log-level", "info", "import", str(busybox_tar), "console")
    line = next(line for line in result.stderr.splitlines() if "layer applied" in line)
    assert "driver=vfs" in line and "\x1b[" not in line, "no colours when stderr is not a terminal"
