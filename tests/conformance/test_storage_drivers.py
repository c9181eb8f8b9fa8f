"""The storage-driver conformance suite, run against every registered storage driver.

Each driver runs where it must: btrfs with its home on a loop-mounted btrfs (`btrfs_scratch`),
the others under the test's tmp_path; overlay runs a second time with fuse-overlayfs, its
fallback where the kernel refuses. Drivers this host cannot use are skipped with their own
reason. A few vfs-specific promises (layout, registration, cheap import, a killed layer copy)
follow the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dockyard.core.drivers import DriverContext, DriverEntry, DriverKind, StorageDriver
from dockyard.core.plugins import load_plugins
from dockyard.core.testing import LayerBuilder, StorageDriverConformance, layer_id
from dockyard.plugins.storage import vfs
from tests.mounts import detach_mounts_under

REGISTRY = load_plugins(autoload=False).drivers
STORAGE_DRIVERS = REGISTRY.of_kind(DriverKind.STORAGE)
# Drivers whose home must live on a particular filesystem: the fixture giving a fresh directory
# there. The rest live under tmp_path.
HOMES = {"btrfs": "btrfs_scratch"}
LAYER_TOOLS = "tarfile dockyard.core.layer_apply dockyard.core.layer_diff"


@dataclass(frozen=True)
class DriverCase:
    """A registered driver and the options to run the suite with."""

    id: str
    entry: DriverEntry
    options: Mapping[str, str] = field(default_factory=dict)


CASES = [DriverCase(entry.name, entry) for entry in STORAGE_DRIVERS] + [
    DriverCase(
        "overlay-fuse", REGISTRY.get(DriverKind.STORAGE, "overlay"),
        {"mount_program": "fuse-overlayfs"},
    ),
]


class TestRegisteredStorageDrivers(StorageDriverConformance):
    """The suite, once per registered storage driver (and once more for overlay with FUSE)."""

    @pytest.fixture(params=CASES, ids=[case.id for case in CASES])
    def driver_case(self, request: pytest.FixtureRequest) -> DriverCase:
        case: DriverCase = request.param
        return case

    @pytest.fixture
    def dockyard_storage_home(
        self, request: pytest.FixtureRequest, driver_case: DriverCase, tmp_path: Path
    ) -> Path:
        place = HOMES.get(driver_case.entry.name)
        base: Path = request.getfixturevalue(place) if place else tmp_path
        return base / "home"

    @pytest.fixture
    def dockyard_storage_options(self, driver_case: DriverCase) -> dict[str, str]:
        return dict(driver_case.options)

    @pytest.fixture
    def storage_driver(
        self, driver_case: DriverCase, dockyard_storage_context: DriverContext
    ) -> Iterator[StorageDriver]:
        driver = driver_case.entry.factory(dockyard_storage_context)
        assert isinstance(driver, StorageDriver)
        availability = driver.available()
        if not availability.usable:
            pytest.skip(f"{driver_case.id}: {availability.reason}")
        try:
            yield driver
            driver.cleanup()
        finally:  # a failed test may leave a layer mounted
            detach_mounts_under(dockyard_storage_context.home)


def test_vfs_is_registered_as_the_last_resort() -> None:
    entry = load_plugins(autoload=False).drivers.get(DriverKind.STORAGE, "vfs")
    assert entry.factory is vfs.VfsDriver and entry.priority == 1
    assert entry.plugin == "dockyard.plugins.storage.vfs"


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("dockyard.plugins.storage.vfs", f"{LAYER_TOOLS} subprocess"),
        ("dockyard.plugins.storage.overlay", f"{LAYER_TOOLS} subprocess ctypes"),
        ("dockyard.plugins.storage.btrfs", f"{LAYER_TOOLS} subprocess btrfsutil"),
        ("dockyard.core.testing", LAYER_TOOLS),  # pytest brings subprocess
    ],
)
def test_imports_stay_cheap(module: str, heavy: str) -> None:
    code = f"import sys, {module}; print(sorted(set({heavy.split()!r}) & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_vfs_layout_and_status(dockyard_storage_context: DriverContext) -> None:
    driver = vfs.VfsDriver(dockyard_storage_context)
    assert driver.status()["Layers"] == "0"
    assert not dockyard_storage_context.home.exists(), "building or asking status creates nothing"
    base, child = layer_id("base"), layer_id("child")
    driver.create_layer(base, None)
    driver.apply_diff(base, LayerBuilder().file("f", b"f").stream())
    driver.create_layer(child, base)
    home = dockyard_storage_context.home
    assert (home / "dir" / child / "f").read_bytes() == b"f", "a child is a full copy"
    assert sorted(p.name for p in (home / "dir").iterdir()) == sorted([base, child])
    status = driver.status()
    assert status["Layers"] == "2" and status["Backing Filesystem"] not in ("", "unknown")
    assert driver.mount(child) == home / "dir" / child
    driver.unmount(child)


def test_vfs_rejects_ids_that_are_paths(dockyard_storage_context: DriverContext) -> None:
    from dockyard.core.errors import UsageError

    driver = vfs.VfsDriver(dockyard_storage_context)
    for bad in ("../x", "a/b", ".tmp-x", ""):
        with pytest.raises(UsageError):
            driver.create_layer(bad, None)


def test_vfs_killed_copy_leaves_nothing(dockyard_storage_context: DriverContext) -> None:
    driver = vfs.VfsDriver(dockyard_storage_context)
    base = layer_id("base")
    driver.create_layer(base, None)
    driver.apply_diff(base, LayerBuilder().file("f", b"f").stream())
    home = dockyard_storage_context.home
    before = sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: copies, then waits to be killed mid-create

        def copy_then_hang(source: Path, destination: Path) -> None:
            subprocess.run(["cp", "-a", "--", source, destination], check=True)
            os.write(ready_write, b"x")
            signal.pause()

        try:
            vfs._copy_tree = copy_then_hang
            driver.create_layer(layer_id("child"), base)
        finally:  # never unwind into pytest from the child
            os._exit(1)
    os.close(ready_write)
    assert os.read(ready_read, 1) == b"x"
    os.close(ready_read)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert not driver.exists(layer_id("child"))
    assert any(p.name.startswith(".tmp-") for p in (home / "dir").iterdir()), "nothing to clean"
    driver.cleanup()
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == before
