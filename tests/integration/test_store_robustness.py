"""The store survives concurrency and killed commands: the promises of the foundation issue."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Dockyard, wait_until

# Where each driver keeps its layers under its home, and a layer's tree inside its entry there.
LAYER_TREES = {"vfs": ("dir", "."), "overlay": ("layers", "diff")}


@pytest.fixture(autouse=True, params=sorted(LAYER_TREES))
def driver(request: pytest.FixtureRequest, dockyard: Dockyard) -> str:
    """Each test once per driver that keeps layers as plain trees, named through the environment."""
    name: str = request.param
    dockyard.env["DOCKYARD_STORAGE_DRIVER"] = name
    return name


def _layers(dockyard: Dockyard, driver: str) -> Path:
    return dockyard.root / "storage" / driver / LAYER_TREES[driver][0]


def _layer_tree(dockyard: Dockyard, driver: str, chain: str) -> Path:
    return _layers(dockyard, driver) / chain[7:] / LAYER_TREES[driver][1]


def _check_consistent(dockyard: Dockyard, driver: str) -> None:
    """Every reference names a recorded image, every image's layers exist and are complete."""
    home = dockyard.root / "image-store" / driver
    references = json.loads((home / "references.json").read_text())
    images = {p.stem for p in (home / "images").glob("*.json") if not p.name.startswith(".tmp-")}
    for reference, image_id in references["tags"].items():
        assert image_id[7:] in images, f"{reference} points at a missing image"
    for image_hex in images:
        record = json.loads((home / "images" / f"{image_hex}.json").read_text())
        assert (home / "blobs" / "sha256" / image_hex).exists(), "image config blob missing"
        for chain in record["layers"]:
            assert (home / "layers" / f"{chain[7:]}.json").exists(), "layer record missing"
            assert _layer_tree(dockyard, driver, chain).is_dir(), "layer dir missing"
    listing = dockyard("images", "-q", "--no-trunc").stdout.split()
    assert sorted(i[7:] for i in listing) == sorted(images)


@pytest.mark.slow
def test_twenty_concurrent_commands_leave_a_consistent_store(
    dockyard: Dockyard, driver: str, make_tar: Callable[[dict[str, bytes]], Path]
) -> None:
    tarballs = [make_tar({"shared": b"same", f"n{i}": str(i).encode()}) for i in range(4)]
    dockyard("import", str(tarballs[0]), "base:0")
    rng = random.Random(20)
    commands: list[list[str]] = []
    for i in range(20):
        kind = i % 4
        if kind in (0, 1):
            commands.append(["import", str(rng.choice(tarballs)), f"img{i % 5}:t{i % 3}"])
        elif kind == 2:
            commands.append(["tag", "base:0", f"alias{i}:latest"])
        else:
            commands.append(["rmi", f"img{rng.randrange(5)}:t{rng.randrange(3)}"])
    processes = [
        subprocess.Popen(
            dockyard.command(*argv), env=dockyard.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for argv in commands
    ]
    for argv, process in zip(commands, processes, strict=True):
        _, stderr = process.communicate(timeout=180)
        if argv[0] != "rmi":  # an rmi may race ahead of the import that creates its target
            assert process.returncode == 0, (argv, stderr.decode())
        else:
            assert process.returncode in (0, 1), (argv, stderr.decode())
            assert b"Traceback" not in stderr
    _check_consistent(dockyard, driver)
    dockyard("image", "prune", "-a", "-f")
    assert dockyard("images", "-q").stdout == ""
    layer_dirs = list(_layers(dockyard, driver).iterdir())
    assert [path for path in layer_dirs if not path.name.startswith(".")] == [], (
        "removing every image must leave no layer behind"
    )


@pytest.mark.slow
def test_killed_import_leaves_a_usable_store(
    dockyard: Dockyard, driver: str, busybox_tar: Path
) -> None:
    dockyard("import", str(busybox_tar), "before:kill")
    # Feed the import through a pipe and kill it while it is still reading its input.
    process = subprocess.Popen(
        dockyard.command("import", "-", "victim"), env=dockyard.env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    data = busybox_tar.read_bytes()
    process.stdin.write(data[: len(data) // 2])
    process.stdin.flush()
    scratch = dockyard.root / "tmp"
    wait_until(
        lambda: scratch.is_dir() and any(p.is_dir() for p in scratch.iterdir()), timeout=30, interval=0.01
    )
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdin.close()

    assert dockyard("images", "--format", "{{.Repository}}").stdout.split() == ["before"]
    dockyard("import", str(busybox_tar), "after:kill")
    assert [p for p in scratch.iterdir() if p.is_dir()] == [], "stale scratch space must be cleaned"
    _check_consistent(dockyard, driver)


@pytest.mark.slow
def test_killed_layer_apply_is_rebuilt(dockyard: Dockyard, driver: str, tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(400):
        (big / f"file{i}").write_bytes(os.urandom(64 * 1024))
    tarball = tmp_path / "big.tar"
    subprocess.run(["tar", "-C", str(big), "-cf", str(tarball), "."], check=True)
    layer_root = dockyard.root / "storage" / driver
    process = subprocess.Popen(
        dockyard.command("import", str(tarball), "big"), env=dockyard.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    # os.walk, not rglob: the import's scratch directories come and go while the poll walks them.
    wait_until(
        lambda: any(name.startswith("file1") for _, _, names in os.walk(layer_root) for name in names),
        timeout=30,
        interval=0.01,
    )
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    dockyard("import", str(tarball), "big")
    _check_consistent(dockyard, driver)
    images = dockyard.root / "image-store" / driver / "images"
    (image_hex,) = [p.stem for p in images.glob("*.json")]
    record = json.loads((images / f"{image_hex}.json").read_text())
    layer_dir = _layer_tree(dockyard, driver, record["layers"][0])
    assert len(list(layer_dir.glob("file*"))) == 400
