"""Overlay's DetachedDiffs capability: layers staged side by side, invisible until committed."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dockyard.core import store
from dockyard.core.drivers import DetachedDiffs, DriverContext
from dockyard.core.testing import LayerBuilder, layer_id
from dockyard.plugins.storage.btrfs import BtrfsDriver
from dockyard.plugins.storage.overlay import OverlayDriver
from dockyard.plugins.storage.vfs import VfsDriver
from tests.mounts import detach_mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting overlays needs root")


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[OverlayDriver]:
    built = OverlayDriver(DriverContext(home=tmp_path / "home", run_dir=tmp_path / "run", rootless=False))
    if not built.available().usable:
        pytest.skip(built.available().reason)
    try:
        yield built
        built.cleanup()
    finally:
        detach_mounts_under(tmp_path)


def test_only_drivers_whose_layers_stand_alone_declare_it(tmp_path: Path) -> None:
    context = DriverContext(home=tmp_path, run_dir=tmp_path / "run", rootless=False)
    assert isinstance(OverlayDriver(context), DetachedDiffs)
    assert not isinstance(VfsDriver(context), DetachedDiffs)
    assert not isinstance(BtrfsDriver(context), DetachedDiffs)


def test_layers_staged_concurrently_commit_bottom_first_into_one_tree(
    driver: OverlayDriver, tmp_path: Path
) -> None:
    archives = [
        LayerBuilder().file("etc/base", b"0").file("gone", b"x").build(),
        LayerBuilder().file("etc/middle", b"1").whiteout("gone").build(),
        LayerBuilder().file("etc/top", b"2").opaque("etc").build(),
    ]
    ready = threading.Barrier(len(archives) + 1)
    release = threading.Event()

    def stage(index: int) -> None:
        with driver.stage_diff(io.BytesIO(archives[index]), base=index == 0) as diff:
            ready.wait()
            release.wait()
            parent = layer_id(f"l{index - 1}") if index else None
            if parent is not None:
                _wait_until(lambda: driver.exists(parent))
            driver.commit_diff(diff, layer_id(f"l{index}"), parent)

    with ThreadPoolExecutor(len(archives)) as pool:
        staging = [pool.submit(stage, index) for index in range(len(archives))]
        ready.wait(timeout=30)  # all three applied at the same time, none of them visible yet
        assert not any(driver.exists(layer_id(f"l{index}")) for index in range(len(archives)))
        release.set()
        for future in staging:
            future.result()
    tree = driver.mount(layer_id("l2"))
    try:
        assert sorted(os.listdir(tree / "etc")) == ["top"], "the opaque directory hides what is below"
        assert not (tree / "gone").exists(), "the whiteout was recorded and hides the base's file"
    finally:
        driver.unmount(layer_id("l2"))
    assert _scratch(tmp_path / "home") == []


def test_a_staged_diff_that_is_not_committed_leaves_nothing(driver: OverlayDriver, tmp_path: Path) -> None:
    with driver.stage_diff(LayerBuilder().file("f", b"data").stream(), base=True) as diff:
        assert (diff.location / "diff" / "f").read_bytes() == b"data"
        assert diff.diff.size > 0
    assert _scratch(tmp_path / "home") == []
    assert not (tmp_path / "home" / "layers").exists()


def test_committing_onto_a_missing_parent_is_refused_and_stays_discardable(
    driver: OverlayDriver, tmp_path: Path
) -> None:
    from dockyard.core.errors import NotFoundError

    staging = driver.stage_diff(LayerBuilder().file("f", b"data").stream(), base=False)
    with staging as diff, pytest.raises(NotFoundError):
        driver.commit_diff(diff, layer_id("child"), layer_id("missing"))
    assert not driver.exists(layer_id("child"))
    assert _scratch(tmp_path / "home") == []


def _scratch(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir() if p.name.startswith(store.TEMP_PREFIX))


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)
