"""The btrfs driver's own promises, on a real loop-mounted btrfs: subvolumes and snapshots,
deleted with btrfs's own call (a killed command's included), and refusals that say why. The
shared promises are in the conformance suite."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from dockyard.core.drivers import Availability, DriverContext
from dockyard.core.mountinfo import backing_filesystem
from dockyard.core.testing import LayerBuilder, layer_id
from dockyard.plugins.storage import btrfs


def _driver(home: Path, run_dir: Path, *, rootless: bool = False) -> btrfs.BtrfsDriver:
    return btrfs.BtrfsDriver(DriverContext(home=home, run_dir=run_dir, rootless=rootless))


def test_refused_where_the_home_is_not_on_btrfs(tmp_path: Path) -> None:
    home = tmp_path / "storage" / "btrfs"
    driver = _driver(home, tmp_path / "run")
    fstype = backing_filesystem(tmp_path)
    assert driver.available() == Availability(
        False, f"not a btrfs filesystem: {home} is on {fstype}", missing=False
    )
    assert not (tmp_path / "storage").exists(), "asking creates nothing"


def test_rootless_needs_subvolume_deletion(btrfs_scratch: Path) -> None:
    driver = _driver(btrfs_scratch / "home", btrfs_scratch / "run", rootless=True)
    availability = driver.available()
    assert not availability.usable and availability.missing
    assert "user_subvol_rm_allowed" in availability.reason


def test_layers_are_subvolumes_and_children_snapshots(btrfs_scratch: Path) -> None:
    import btrfsutil

    driver = _driver(btrfs_scratch / "home", btrfs_scratch / "run")
    assert driver.available() == Availability(True)
    base, child, container = layer_id("base"), layer_id("child"), layer_id("container")
    driver.create_layer(base, None)
    driver.apply_diff(base, LayerBuilder().file("f", b"x" * 100_000).stream())
    driver.create_layer(child, base)
    driver.create_rw(container, child)
    trees = {layer: btrfs_scratch / "home" / "subvolumes" / layer for layer in (base, child, container)}
    assert all(btrfsutil.is_subvolume(str(tree)) for tree in trees.values())
    info = {layer: btrfsutil.subvolume_info(str(tree)) for layer, tree in trees.items()}
    assert info[child].parent_uuid == info[base].uuid, "a child layer is a snapshot of its parent"
    assert info[container].parent_uuid == info[child].uuid
    assert driver.status() == {"Backing Filesystem": "btrfs", "Layers": "3"}
    for layer in (container, child):
        driver.remove(layer)
        assert not trees[layer].exists()
    assert btrfsutil.is_subvolume(str(trees[base]))


def test_a_killed_snapshot_is_deleted_by_cleanup(btrfs_scratch: Path) -> None:
    home = btrfs_scratch / "home"
    driver = _driver(home, btrfs_scratch / "run")
    base = layer_id("base")
    driver.create_layer(base, None)
    before = sorted(str(path.relative_to(home)) for path in home.rglob("*"))
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: snapshots, then waits to be killed mid-create

        def hang(*_: object) -> None:
            os.write(ready_write, b"x")
            signal.pause()

        try:
            btrfs.store.write_json = hang  # called once the snapshot is made
            driver.create_layer(layer_id("child"), base)
        finally:  # never unwind into pytest from the child
            os._exit(1)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"x"
    os.close(ready_read)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert not driver.exists(layer_id("child"))
    assert any(entry.name.startswith(".tmp-") for entry in home.iterdir()), "nothing to clean"
    driver.cleanup()
    assert sorted(str(path.relative_to(home)) for path in home.rglob("*")) == before
