"""`run` pulls a missing image first, as the seeds show: "Unable to find image ... locally"."""

from __future__ import annotations

from tests.conftest import Dockyard
from tests.integration.registry.support import Registry


def test_run_pulls_a_missing_image_then_runs_it(
    dockyard: Dockyard, registry: Registry, busybox_image: tuple[str, str]
) -> None:
    name = f"{registry.host}/seed/busybox:1"
    never = dockyard("run", "--rm", "--pull", "never", name, "true", check=False)
    assert never.returncode == 125 and "No such image" in never.stderr
    missing = dockyard("run", "--rm", f"{registry.host}/seed/nothing:1", "true", check=False)
    assert missing.returncode == 125, "run exits 125 when its pull fails, as docker run does"
    assert missing.stderr.endswith("not found: manifest unknown: manifest unknown\n")

    first = dockyard("run", "--rm", name, "echo", "hello from a pulled image")
    assert f"Unable to find image '{name}' locally" in first.stderr
    assert "Pull complete" in first.stderr and "Status: Downloaded newer image" in first.stderr
    assert first.stdout == "hello from a pulled image\n"

    second = dockyard("run", "--rm", name, "echo", "again")
    assert second.stderr == "" and second.stdout == "again\n", "a present image is not pulled again"
    always = dockyard("run", "--rm", "--pull", "always", name, "true")
    assert "Status: Image is up to date" in always.stderr or "Digest:" in always.stderr
    assert dockyard("images", "-q").stdout.strip() == busybox_image[0][7:19]
