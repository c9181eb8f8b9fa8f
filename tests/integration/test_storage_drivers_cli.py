"""The storage drivers through the real CLI: the same commands behave the same on overlay, btrfs
(its root on a loop-mounted btrfs) and vfs; `info` tells which drivers this host can use and
why not; selection follows the flag, the environment, then the state on disk, then priority."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.core.mountinfo import mounts
from tests.conftest import Dockyard
from tests.mounts import detach_mounts_under

DRIVERS = ("overlay", "btrfs", "vfs")
# Where each driver keeps one entry per layer, under its home.
LAYER_DIRS = {"overlay": "layers", "btrfs": "subvolumes", "vfs": "dir"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts and btrfs need root")


@pytest.fixture
def dockyard_on_btrfs(dockyard: Dockyard, btrfs_scratch: Path) -> Dockyard:
    """The CLI with its root on the loop-mounted btrfs (the run root stays where it was)."""
    return Dockyard(btrfs_scratch / "root", dockyard.runroot, dockyard.env)


@pytest.fixture
def cli_for(request: pytest.FixtureRequest, dockyard: Dockyard) -> Any:
    """The CLI to use for a driver: btrfs's root on btrfs, the others' on the normal disk."""

    def choose(driver: str) -> Dockyard:
        if driver == "btrfs":
            chosen: Dockyard = request.getfixturevalue("dockyard_on_btrfs")
            return chosen
        return dockyard

    yield choose
    detach_mounts_under(dockyard.root)


def _layers(cli: Dockyard, driver: str) -> list[str]:
    directory = cli.root / "storage" / driver / LAYER_DIRS[driver]
    if not directory.is_dir():
        return []
    return sorted(entry.name for entry in directory.iterdir() if not entry.name.startswith("."))


def _mounted_under(root: Path) -> list[str]:
    prefix = os.path.realpath(root) + "/"
    return [mount.mount_point for mount in mounts() if mount.mount_point.startswith(prefix)]


def _info(cli: Dockyard, *flags: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cli(*flags, "info", "--format", "json").stdout)
    return data


@pytest.mark.parametrize("driver", DRIVERS)
def test_import_inspect_and_rmi(cli_for: Any, driver: str, busybox_tar: Path) -> None:
    cli: Dockyard = cli_for(driver)
    image_id = cli("--storage-driver", driver, "import", str(busybox_tar), "img:1").stdout.strip()
    assert len(_layers(cli, driver)) == 1
    by_env = Dockyard(cli.root, cli.runroot, {**cli.env, "DOCKYARD_STORAGE_DRIVER": driver})
    rows = by_env("images").stdout.splitlines()
    assert rows[1].split()[:3] == ["img", "1", image_id[7:19]]
    inspected = json.loads(cli("--storage-driver", driver, "inspect", "img:1").stdout)[0]
    assert inspected["GraphDriver"]["Name"] == driver and inspected["Id"] == image_id
    assert cli("inspect", "--format", "{{.GraphDriver.Name}}", "img:1").stdout.strip() == driver
    assert _info(cli)["Driver"] == driver, "with no flag, the driver with state on disk is used"
    cli("--storage-driver", driver, "rmi", "img:1")
    assert cli("images", "-q").stdout.strip() == ""
    assert _layers(cli, driver) == [], "rmi left a layer"
    assert _mounted_under(cli.root) == [], "rmi left a mount"


def test_info_lists_every_driver_with_its_availability(dockyard: Dockyard) -> None:
    data = _info(dockyard)
    rows = {row["Name"]: row for row in data["Drivers"]["storage"]}
    assert list(rows) == ["overlay", "btrfs", "vfs"]
    assert rows["overlay"]["Available"] and rows["vfs"]["Available"]
    assert not rows["btrfs"]["Available"]
    home = dockyard.root / "storage" / "btrfs"
    assert rows["btrfs"]["Reason"] == f"not a btrfs filesystem: {home} is on ext4"
    assert data["Driver"] == "overlay", "nothing on disk: the highest usable priority wins"
    assert list((dockyard.root / "storage").iterdir()) == [], "asking left driver state behind"
    text = dockyard("info").stdout
    assert "btrfs (dockyard.plugins.storage.btrfs, priority 20): unavailable: not a btrfs " in text
    assert "Mount Program: kernel" in text


def test_btrfs_is_available_on_a_btrfs_root(dockyard_on_btrfs: Dockyard) -> None:
    rows = {row["Name"]: row for row in _info(dockyard_on_btrfs)["Drivers"]["storage"]}
    assert rows["btrfs"]["Available"] and rows["btrfs"]["Reason"] == ""
    status = dict(_info(dockyard_on_btrfs, "--storage-driver", "btrfs")["DriverStatus"])
    assert status["Backing Filesystem"] == "btrfs"


def test_an_unusable_driver_named_is_refused(dockyard: Dockyard, busybox_tar: Path) -> None:
    result = dockyard("--storage-driver", "btrfs", "import", str(busybox_tar), "img", check=False)
    assert result.returncode == 1
    assert "btrfs driver unavailable: not a btrfs filesystem:" in result.stderr
    assert not (dockyard.root / "storage" / "btrfs" / "subvolumes").exists()


def test_selection_follows_state_on_disk(
    dockyard: Dockyard, dockyard_on_btrfs: Dockyard, busybox_tar: Path
) -> None:
    """With no flag: the driver whose state exists, even below a higher-priority one."""
    dockyard("--storage-driver", "vfs", "import", str(busybox_tar), "img:vfs")
    assert _info(dockyard)["Driver"] == "vfs"
    assert dockyard("images", "--format", "{{.Tag}}").stdout.split() == ["vfs"]
    dockyard_on_btrfs("--storage-driver", "btrfs", "import", str(busybox_tar), "img:btrfs")
    assert _info(dockyard_on_btrfs)["Driver"] == "btrfs"
    dockyard_on_btrfs("rmi", "img:btrfs")  # no flag: the btrfs state is found and used
    assert _layers(dockyard_on_btrfs, "btrfs") == []
