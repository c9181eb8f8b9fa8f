"""The overlay driver's own promises, on real overlay mounts: short lower names for deep images,
mounts counted across processes, stale mounts undone, refusals that name their cause, and the
rootless mode in a real user namespace. The shared promises are in the conformance suite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.core import store
from dockyard.core.drivers import Availability, DriverContext, DriverKind
from dockyard.core.mountinfo import find_mount, is_mount_point
from dockyard.core.plugins import load_plugins
from dockyard.core.testing import LayerBuilder, layer_id
from dockyard.plugins.storage.overlay import OverlayDriver
from dockyard.plugins.storage.overlay_mounts import KERNEL, Stack, option_string
from tests.mounts import detach_mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting overlays needs root")


def _context(tmp_path: Path, **options: str) -> DriverContext:
    return DriverContext(
        home=tmp_path / "home", run_dir=tmp_path / "run", rootless=False, options=options
    )


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[OverlayDriver]:
    built = OverlayDriver(_context(tmp_path))
    if not built.available().usable:
        pytest.skip(built.available().reason)
    try:
        yield built
        built.cleanup()
    finally:  # a failed test may leave a layer mounted
        detach_mounts_under(tmp_path)


def _chain(driver: OverlayDriver, depth: int) -> list[str]:
    """`depth` layers, each on the one before, layer N adding the file fN."""
    layers: list[str] = []
    for index in range(depth):
        layer = layer_id(f"layer-{index}")
        driver.create_layer(layer, layers[-1] if layers else None)
        driver.apply_diff(layer, LayerBuilder().file(f"f{index}", str(index).encode()).stream())
        layers.append(layer)
    return layers


def test_registered_above_btrfs_and_vfs() -> None:
    registry = load_plugins(autoload=False).drivers
    priorities = {entry.name: entry.priority for entry in registry.of_kind(DriverKind.STORAGE)}
    assert priorities["overlay"] > priorities["btrfs"] > priorities["vfs"] > 0
    assert [entry.name for entry in registry.of_kind(DriverKind.STORAGE)][:3] == [
        "overlay", "btrfs", "vfs",
    ]


def test_asking_leaves_no_driver_state(tmp_path: Path) -> None:
    """available() probes next to the home while it does not exist, so asking (as `info` does)
    never makes the driver look in use; a usable verdict is cached in the run directory."""
    driver = OverlayDriver(_context(tmp_path))
    assert driver.available() == Availability(True)
    assert sorted(os.listdir(tmp_path)) == ["run"]
    cache = store.read_json(tmp_path / "run" / "probe.json")
    assert cache["program"] == KERNEL and cache["key"]["filesystem"] == "ext4"
    cache["program"] = "cached"  # a second driver reads the verdict instead of mounting
    store.write_json(tmp_path / "run" / "probe.json", cache)
    assert OverlayDriver(_context(tmp_path)).status()["Mount Program"] == "cached"


def test_layout_links_and_mounts(driver: OverlayDriver, tmp_path: Path) -> None:
    base, child = _chain(driver, 2)
    home = tmp_path / "home"
    links = {name: os.readlink(home / "l" / name) for name in os.listdir(home / "l")}
    assert all(len(name) == 12 for name in links)
    assert sorted(links.values()) == sorted(f"../layers/{layer}/diff" for layer in (base, child))
    assert driver.mount(base) == home / "layers" / base / "diff", "a base layer needs no mount"
    view = driver.mount(child)
    assert view == home / "layers" / child / "merged" and is_mount_point(view)
    found = find_mount(view)
    assert found is not None and found.fstype == "overlay" and "ro" in found.super_options
    assert any(option.startswith("lowerdir=l/") for option in found.super_options)
    assert sorted(os.listdir(view)) == ["f0", "f1"]
    driver.unmount(child)
    driver.unmount(base)
    assert not is_mount_point(view)
    driver.remove(child)
    assert len(os.listdir(home / "l")) == 1


@pytest.mark.slow
def test_deep_images_fit_the_mount_options(driver: OverlayDriver, tmp_path: Path) -> None:
    """A container on 150 layers mounts: its short lower names fit the page of options the
    kernel reads, where the layers' full paths would not."""
    layers = _chain(driver, 150)
    container = layer_id("container")
    driver.create_rw(container, layers[-1])
    root = driver.mount(container)
    try:
        assert sorted(os.listdir(root)) == sorted(f"f{index}" for index in range(150))
        (root / "f0").write_bytes(b"changed")
        assert [change.path for change in driver.changes(container)] == ["/f0"]
    finally:
        driver.unmount(container)
    full_paths = Stack(tuple(str(tmp_path / "home" / "layers" / layer / "diff") for layer in layers))
    assert len(option_string(full_paths, program=KERNEL, rootless=False)) > os.sysconf("SC_PAGE_SIZE")


def _python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_mounts_are_counted_across_processes(driver: OverlayDriver, tmp_path: Path) -> None:
    child = _chain(driver, 2)[-1]
    container = layer_id("container")
    driver.create_rw(container, child)
    program = (
        "from pathlib import Path\n"
        "from dockyard.core.drivers import DriverContext\n"
        "from dockyard.plugins.storage.overlay import OverlayDriver\n"
        f"driver = OverlayDriver(DriverContext(Path({str(tmp_path / 'home')!r}), "
        f"Path({str(tmp_path / 'run')!r}), False))\n"
        "driver.{}({!r})\n"
    )
    _python(program.format("mount", container))
    merged = tmp_path / "home" / "layers" / container / "merged"
    assert is_mount_point(merged), "the mount outlives the process that made it"
    assert driver.mount(container) == merged
    _python(program.format("unmount", container))
    assert is_mount_point(merged), "one user is left"
    driver.unmount(container)
    assert not is_mount_point(merged)


def _mount_then_die(driver: OverlayDriver, layer: str) -> None:
    """Mount in a child process that is killed after the mount and before it is counted."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, killed mid-mount
        try:
            store.write_json = lambda *_, **__: os.kill(os.getpid(), signal.SIGKILL)
            driver.mount(layer)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)


def test_mounts_a_killed_command_left_are_undone(driver: OverlayDriver, tmp_path: Path) -> None:
    child = _chain(driver, 2)[-1]
    container = layer_id("container")
    driver.create_rw(container, child)
    merged = tmp_path / "home" / "layers" / container / "merged"
    _mount_then_die(driver, container)
    assert is_mount_point(merged)
    driver.cleanup()
    assert not is_mount_point(merged)
    _mount_then_die(driver, container)
    driver.remove(container)  # nobody counts the mount: it is undone, then the layer removed
    assert not merged.exists() and not driver.exists(container)


def test_refusals_name_their_cause(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    for name in ("lower", "upper", "work", "merged"):
        (outer / name).mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={outer}/lower,upperdir={outer}/upper,workdir={outer}/work", str(outer / "merged")],
        check=True,
    )
    try:
        nested = DriverContext(outer / "merged" / "home", tmp_path / "run-kernel", False,
                               {"mount_program": "kernel"})
        assert OverlayDriver(nested).available() == Availability(
            False, "backing filesystem is overlay: nested overlay not supported"
        )
        fallback = DriverContext(outer / "merged" / "home", tmp_path / "run-auto", False)
        assert OverlayDriver(fallback).status()["Mount Program"].endswith("fuse-overlayfs")
    finally:
        subprocess.run(["umount", str(outer / "merged")], check=True)
    missing = OverlayDriver(_context(tmp_path, mount_program="/nonexistent/fuse-overlayfs"))
    assert missing.available() == Availability(
        False, "/nonexistent/fuse-overlayfs is not installed", missing=True
    )


ROOTLESS_SCRIPT = """
import io, json, os, sys, tarfile
from pathlib import Path
from dockyard.core.drivers import DriverContext
from dockyard.core.testing import LayerBuilder, layer_id
from dockyard.plugins.storage.overlay import OverlayDriver

home, run, program = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
driver = OverlayDriver(DriverContext(home, run, rootless=True, options={"mount_program": program}))
base, image, container = layer_id("base"), layer_id("image"), layer_id("container")
driver.create_layer(base, None)
driver.apply_diff(base, LayerBuilder().dir("etc").file("etc/a", b"a").file("etc/b", b"b")
                  .file("gone", b"g").stream())
driver.create_layer(image, base)
driver.apply_diff(image, LayerBuilder().opaque("etc").file("etc/c", b"c").whiteout("gone").stream())
driver.create_rw(container, image)
root = driver.mount(container)
seen = sorted(str(path.relative_to(root)) for path in root.rglob("*"))
(root / "etc" / "c").unlink()
(root / "new").write_bytes(b"n")
changes = [(change.path, str(change.kind)) for change in driver.changes(container)]
members = [m.name for m in tarfile.open(fileobj=io.BytesIO(b"".join(driver.diff(container))))]
driver.unmount(container)
opaque = os.listxattr(home / "layers" / image / "diff" / "etc")
for layer in (container, image, base):
    driver.remove(layer)
print(json.dumps({"status": driver.status(), "seen": seen, "changes": changes,
                  "members": members, "opaque": opaque, "left": os.listdir(home / "layers")}))
"""


@pytest.mark.parametrize("program", ["", "fuse-overlayfs"], ids=["kernel", "fuse-overlayfs"])
def test_rootless_in_a_user_namespace(tmp_path: Path, program: str) -> None:
    """Rootless: the kernel mounts with `userxattr` inside a user namespace (or fuse-overlayfs
    does), opaque directories carry `user.overlay.opaque`, and the container's diff reads its
    upper as usual."""
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c", ROOTLESS_SCRIPT,
         str(tmp_path / "home"), str(tmp_path / "run"), program],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"]["Mount Program"].endswith(program or KERNEL)
    assert report["seen"] == ["etc", "etc/c"]
    assert report["changes"] == [["/etc", "C"], ["/etc/c", "D"], ["/new", "A"]]
    assert report["members"] == ["etc", "etc/.wh.c", "new"]
    assert report["opaque"] == ["user.overlay.opaque"]
    assert report["left"] == []
