"""`system df -v`: Docker's four verbose tables and `--format` over all of them, on a real store."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Dockyard


def _sections(output: str) -> dict[str, list[list[str]]]:
    """Title line -> its table's lines split on runs of two or more spaces."""
    import re

    sections: dict[str, list[list[str]]] = {}
    title = ""
    for line in output.splitlines():
        if line.endswith(":") or line.startswith("Build cache usage:"):
            title = line
            sections[title] = []
        elif line:
            sections[title].append(re.split(r"\s{2,}", line.strip()))
    return sections


def test_verbose_tables_count_images_containers_volumes_and_build_steps(
    dockyard: Dockyard, busybox_tar: Path, tmp_path: Path
) -> None:
    dockyard("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar), "busybox")
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox\nRUN head -c 300000 /dev/zero > /blob\nRUN echo two > /two\n"
    )
    dockyard("build", "-q", "-t", "stepped", str(context))
    dockyard("volume", "create", "data")
    dockyard(
        "run",
        "--name",
        "writer",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "head -c 200000 /dev/zero > /data/z",
    )
    dockyard("create", "--name", "idle", "stepped")

    sections = _sections(dockyard("system", "df", "-v").stdout)
    sections_title = list(sections)[-1]
    assert list(sections) == [
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 300kB",
    ]
    images = sections["Images space usage:"]
    assert images[0] == [
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "SHARED SIZE",
        "UNIQUE SIZE",
        "CONTAINERS",
    ]
    by_repo = {row[0]: row for row in images[1:]}
    assert set(by_repo) == {"busybox", "stepped"}, "the hidden step image is build cache, not an image"
    assert by_repo["busybox"][5] == by_repo["busybox"][4], "all of busybox's layer is shared with stepped"
    assert by_repo["busybox"][6] == "0B" and by_repo["busybox"][7] == "1"
    assert by_repo["stepped"][6] != "0B" and by_repo["stepped"][7] == "1"

    containers = sections["Containers space usage:"]
    assert containers[0] == [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "LOCAL VOLUMES",
        "SIZE",
        "CREATED",
        "STATUS",
        "NAMES",
    ]
    by_name = {row[-1]: row for row in containers[1:]}
    assert by_name["writer"][3] == "1" and by_name["idle"][3] == "0"
    assert by_name["writer"][6].startswith("Exited (0)") and by_name["idle"][6] == "Created"

    volumes = sections["Local Volumes space usage:"]
    assert volumes == [["VOLUME NAME", "LINKS", "SIZE"], ["data", "1", "201kB"]]

    cache = sections[sections_title]
    assert cache[0] == ["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]
    assert len(cache) == 2, "one record: the first RUN's image (the second is the tagged result)"
    assert cache[1][1] == "regular" and cache[1][-1] == "true", "stepped still holds its layer"

    summary = dockyard("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}").stdout
    assert summary.splitlines() == ["Images 2 2", "Containers 2 0", "Local Volumes 1 1", "Build Cache 1 1"]

    listed = dockyard(
        "system", "df", "-v", "--format", "{{range .Images}}{{.Repository}}:{{.Containers}} {{end}}"
    ).stdout
    assert sorted(listed.split()) == ["busybox:1", "stepped:1"]
    whole = json.loads(dockyard("system", "df", "-v", "--format", "json").stdout)
    assert set(whole) == {"Images", "Containers", "Volumes", "BuildCache"}
    assert len(whole["BuildCache"][0]["ID"]) == 64, "a custom format gets whole ids, as Docker's"
    assert "head -c 300000" in whole["BuildCache"][0]["Description"]


def test_a_step_image_left_without_its_child_is_counted_as_an_image(
    dockyard: Dockyard, busybox_tar: Path, tmp_path: Path
) -> None:
    dockyard("import", str(busybox_tar), "busybox")
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "FROM busybox\nRUN head -c 300000 /dev/zero > /blob\nRUN echo two > /two\n"
    )
    dockyard("build", "-q", "-t", "stepped", str(context))
    summary = "{{.Type}}|{{.TotalCount}}|{{.Size}}|{{.Reclaimable}}"
    assert dockyard("system", "df", "--format", summary).stdout.splitlines()[-1] == "Build Cache|1|300kB|0B"
    dockyard("rmi", "--no-prune", "stepped")  # without it, rmi deletes the step image too
    rows = dockyard("system", "df", "--format", summary).stdout.splitlines()
    assert rows[0].startswith("Images|2|") and rows[-1] == "Build Cache|0|0B|0B"
    verbose = dockyard("system", "df", "-v", "--format", "{{range .Images}}{{.Repository}} {{end}}").stdout
    assert sorted(verbose.split()) == ["<none>", "busybox"]
