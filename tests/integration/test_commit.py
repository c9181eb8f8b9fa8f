"""`commit`, `diff` and `history` of committed images through the real CLI, on every storage driver."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Dockyard
from tests.integration.test_storage_drivers_cli import DRIVERS, cli_for, dockyard_on_btrfs  # noqa: F401

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")
# The network plays no part in commit or diff: the containers here get only their loopback.
RUN = ("run", "--network", "none")


@pytest.fixture
def busybox(dockyard: Dockyard, busybox_tar: Path) -> str:
    """A busybox image named `busybox` in this test's store; returns its id."""
    return dockyard("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar), "busybox").stdout.strip()


def _inspect(dockyard: Dockyard, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(dockyard("inspect", name).stdout)[0]
    return data


def _history(dockyard: Dockyard, image: str) -> list[list[str]]:
    template = "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"
    lines = dockyard("history", "--no-trunc", "--format", template, image).stdout.splitlines()
    return [line.split("|") for line in lines]


def _actions(dockyard: Dockyard, container: str) -> list[str]:
    out = dockyard("events", "--since", "1h", "--until", "0s", "--format", "{{.Action}} {{.Actor.ID}}").stdout
    return [line.split()[0] for line in out.splitlines() if line.endswith(container)]


def test_commit_keeps_the_files_and_applies_changes(dockyard: Dockyard, busybox: str) -> None:
    script = "mkdir -p /opt/app && printf hello > /opt/app/greeting && rm /bin/vi"
    dockyard(*RUN, "--name", "work", "-e", "FROM_RUN=1", "busybox", "sh", "-c", script)
    result = dockyard(
        "commit",
        "-a",
        "Ann Author <ann@example.com>",
        "-m",
        "add the greeting",
        "-c",
        'CMD ["cat", "/opt/app/greeting"]',
        "--change",
        "ENV GREETING=hi",
        "work",
        "greeter:1",
    )
    image_id = result.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71, "prints the full id, as Docker"
    assert dockyard(*RUN, "--rm", "greeter:1").stdout == "hello", "CMD from -c, file from the container"
    shown = dockyard(
        *RUN, "--rm", "greeter:1", "sh", "-c", 'echo "$GREETING $FROM_RUN"; test -e /bin/vi || echo gone'
    ).stdout
    assert shown == "hi 1\ngone\n", "ENV from -c added to the container's own; the deletion kept"

    inspected = _inspect(dockyard, "greeter:1")
    assert inspected["Id"] == image_id and inspected["Parent"] == busybox
    assert inspected["Author"] == "Ann Author <ann@example.com>"
    assert inspected["Comment"] == "add the greeting"
    assert inspected["Config"]["Cmd"] == ["cat", "/opt/app/greeting"]
    assert sorted(inspected["Config"]["Env"]) == ["FROM_RUN=1", "GREETING=hi"]
    assert len(inspected["RootFS"]["Layers"]) == 2

    newest, base = _history(dockyard, "greeter:1")
    assert newest == [image_id, f"sh -c {script}", "5B", "add the greeting"], "moby: created_by is the Cmd"
    assert base[0] == busybox and base[3].startswith("Imported from ") and base[2].endswith("MB")


def test_diff_lists_added_changed_and_deleted_paths(dockyard: Dockyard, busybox: str) -> None:
    dockyard(*RUN, "--name", "fresh", "busybox", "true")
    assert dockyard("diff", "fresh").stdout == "", "the runtime's mount points are not changes"
    dockyard(
        *RUN,
        "--name",
        "base",
        "busybox",
        "sh",
        "-c",
        "mkdir /srv && echo 1 > /srv/conf && echo x > /srv/gone",
    )
    dockyard("commit", "base", "with-srv")
    dockyard(
        *RUN,
        "--name",
        "changer",
        "with-srv",
        "sh",
        "-c",
        "echo 2 >> /srv/conf; echo n > /srv/new; rm /srv/gone /bin/vi",
    )
    assert dockyard("diff", "changer").stdout.splitlines() == [
        "C /bin",
        "D /bin/vi",
        "C /srv",
        "C /srv/conf",
        "D /srv/gone",
        "A /srv/new",
    ], "Docker's letters, parents before children, by path"
    assert dockyard("container", "diff", "changer").stdout == dockyard("diff", "changer").stdout


def test_commit_of_a_running_container_pauses_it(dockyard: Dockyard, busybox: str) -> None:
    container = dockyard(
        *RUN, "-d", "--name", "live", "busybox", "sh", "-c", "echo started > /started; sleep 300"
    ).stdout.strip()
    deadline = time.monotonic() + 20
    while "A /started" not in dockyard("diff", "live").stdout:
        assert time.monotonic() < deadline, "the container never wrote its file"
        time.sleep(0.05)
    dockyard("commit", "live", "snapshot")
    assert dockyard("ps", "--format", "{{.Names}} {{.State}}").stdout.split() == ["live", "running"]
    assert _actions(dockyard, container)[-3:] == ["pause", "unpause", "commit"]
    assert dockyard(*RUN, "--rm", "snapshot", "cat", "/started").stdout == "started\n"

    dockyard("commit", "--pause=false", "live", "unpaused")
    assert _actions(dockyard, container)[-1:] == ["commit"]
    assert _actions(dockyard, container)[-2] != "unpause", "--pause=false did not pause"
    dockyard("commit", "-p", "live")  # a bare -p means true and does not swallow the name


def test_commit_to_a_tag_moves_it(dockyard: Dockyard, busybox: str) -> None:
    dockyard(*RUN, "--name", "one", "busybox", "sh", "-c", "echo 1 > /n")
    dockyard(*RUN, "--name", "two", "busybox", "sh", "-c", "echo 2 > /n")
    first = dockyard("commit", "one", "numbers").stdout.strip()
    second = dockyard("commit", "two", "numbers").stdout.strip()
    assert first != second
    assert _inspect(dockyard, "numbers")["Id"] == second
    rows = dockyard("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout.splitlines()
    assert f"numbers:latest {second[7:19]}" in rows and f"<none>:<none> {first[7:19]}" in rows
    assert dockyard(*RUN, "--rm", "numbers", "cat", "/n").stdout == "2\n"


def test_an_empty_diff_adds_only_a_history_entry(dockyard: Dockyard, busybox: str) -> None:
    dockyard(*RUN, "--name", "idle", "busybox", "true")
    image_id = dockyard("commit", "-m", "nothing changed", "idle", "same").stdout.strip()
    assert _inspect(dockyard, "same")["RootFS"]["Layers"] == _inspect(dockyard, "busybox")["RootFS"]["Layers"]
    config = json.loads(dockyard("inspect", "--format", "{{json .}}", "same").stdout)
    assert config["Id"] == image_id
    newest = _history(dockyard, "same")[0]
    assert newest == [image_id, "true", "0B", "nothing changed"]


def test_errors_leave_nothing_behind(dockyard: Dockyard, busybox: str) -> None:
    missing = dockyard("commit", "nope", "x", check=False)
    assert (missing.returncode, missing.stderr) == (1, "Error: No such container: nope\n")
    assert dockyard("diff", "nope", check=False).returncode == 1
    dockyard(*RUN, "--name", "cc", "busybox", "sh", "-c", "echo x > /x")
    bad = dockyard("commit", "-c", "BOGUS x", "cc", "x", check=False)
    assert bad.returncode == 1 and "'BOGUS' is not a valid change command" in bad.stderr
    bad_tag = dockyard("commit", "cc", "UPPER:case", check=False)
    assert bad_tag.returncode == 1
    assert dockyard("images", "-aq").stdout.split() == [busybox[7:19]], "no image was recorded"


@pytest.mark.parametrize("driver", DRIVERS)
def test_commit_on_every_storage_driver(
    request: pytest.FixtureRequest, driver: str, busybox_tar: Path
) -> None:
    cli: Dockyard = request.getfixturevalue("cli_for")(driver)
    cli("--storage-driver", driver, "import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar), "busybox")
    cli(
        "--storage-driver",
        driver,
        *RUN,
        "--name",
        "work",
        "busybox",
        "sh",
        "-c",
        "mkdir /data && echo on > /data/f && rm /bin/vi",
    )
    assert cli("--storage-driver", driver, "diff", "work").stdout.splitlines() == [
        "C /bin",
        "D /bin/vi",
        "A /data",
        "A /data/f",
    ]
    cli("--storage-driver", driver, "commit", "work", "saved")
    out = cli(
        "--storage-driver",
        driver,
        *RUN,
        "--rm",
        "saved",
        "sh",
        "-c",
        "cat /data/f; test -e /bin/vi || echo gone",
    ).stdout
    assert out == "on\ngone\n"
    assert _inspect(cli, "saved")["GraphDriver"]["Name"] == driver
    cli("--storage-driver", driver, "rm", "work")
    cli("--storage-driver", driver, "rmi", "saved", "busybox")
    assert cli("images", "-aq").stdout == ""


def test_the_draft_api_builds_step_images(dockyard: Dockyard, make_tar: Any) -> None:
    """What the builder does: FROM scratch, COPY (a tar), a metadata step, one image per step."""
    from dockyard.core.config import load_settings
    from dockyard.core.engine import Engine
    from dockyard.core.image_draft import ImageDraft

    settings = {"root": str(dockyard.root), "runroot": str(dockyard.runroot), "storage_driver": "vfs"}
    engine = Engine(load_settings(settings, environ=dockyard.env), plugin_autoload=False)
    with ImageDraft.from_scratch(engine) as draft, make_tar({"hello": b"hi\n"}).open("rb") as tar:
        added = draft.add_layer_from_tar(tar, created_by="/bin/sh -c #(nop) COPY file:x in / ")
        assert not added.empty and added.diff_id == draft.diff_ids[0]
        first = draft.commit()
        draft.apply_changes(['CMD ["/hello"]'])
        draft.add_history(created_by='/bin/sh -c #(nop)  CMD ["/hello"]')
        nothing = draft.add_layer_from_tar(io.BytesIO(bytes(1024)), created_by="/bin/sh -c true")
        assert nothing.empty and len(draft.diff_ids) == 1
        second = draft.commit(tags=["hello:step"])
    assert dockyard("images", "-q").stdout.split() == [second[7:19]], "the first step stays untagged"
    assert dockyard("images", "-aq").stdout.split() == [second[7:19], first[7:19]]
    rows = _history(dockyard, "hello:step")
    assert [row[1] for row in rows] == [
        "/bin/sh -c true",
        '/bin/sh -c #(nop)  CMD ["/hello"]',
        "/bin/sh -c #(nop) COPY file:x in / ",
    ]
    assert [row[0] for row in rows] == [second, first, "<missing>"], "one id per step image, as Docker"
    assert [row[2] for row in rows] == ["0B", "0B", "3B"]
    inspected = _inspect(dockyard, "hello:step")
    assert inspected["Parent"] == first and inspected["Config"]["Cmd"] == ["/hello"]
    assert dockyard("save", "hello:step", "-o", str(dockyard.root.parent / "hello.tar")).returncode == 0
