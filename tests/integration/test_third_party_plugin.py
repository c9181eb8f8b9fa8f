"""A third-party plugin, installed as a user would install it, extends the real CLI.

The demo package in tests/plugins/dockyard-demo-plugin is built by pip into a temporary directory
(never into the venv) that is then put on PYTHONPATH: entry points are discovered from the
dist-info directories on sys.path, so the CLI sees the plugin exactly as if it were installed. The
CLI runs as a subprocess of the venv's console script, with a private --root and --runroot.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DEMO_SOURCE = Path(__file__).parents[1] / "plugins" / "dockyard-demo-plugin"
DOCKYARD = Path(sys.executable).with_name("dockyard")
PLUGIN = "dockyard_demo"
DRIVER = "demo-copy"
COMMAND = "demo-hello"
CLI_TIMEOUT = 60

pytestmark = pytest.mark.slow

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo package, built and installed into a private directory meant for PYTHONPATH."""
    work = tmp_path_factory.mktemp("demo-plugin")
    # pip builds in the source tree (build/, *.egg-info): build a copy to keep the repository clean.
    source = shutil.copytree(
        DEMO_SOURCE, work / "source", ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    target = work / "site"
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-index", "--no-deps", "--no-build-isolation", "--target", str(target), str(source),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        pytest.fail(f"building the demo plugin failed:\n{result.stdout}{result.stderr}")
    return target


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    """Where the demo plugin appends the lifecycle events it hears."""
    return tmp_path / "events.jsonl"


@pytest.fixture
def dockyard(tmp_path: Path, plugin_dir: Path, events_file: Path) -> Run:
    """Run the real CLI with the plugin on its path and a private store; returns the result."""
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKYARD_")}
    base_env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(plugin_dir), base_env.get("PYTHONPATH")])),
        DOCKYARD_CONFIG=str(tmp_path / "no-config.toml"),
        DOCKYARD_DEMO_EVENTS=str(events_file),
    )
    store = ["--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "run")]

    def run(
        *args: str, autoload: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = dict(base_env)
        if not autoload:
            env["DOCKYARD_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        result = subprocess.run(
            [str(DOCKYARD), *store, *args],
            capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT, check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"dockyard {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def rootfs_tar(tmp_path: Path) -> Path:
    """A tiny root filesystem tarball: enough for `import`, which accepts any tar."""
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as archive:
        for directory in ("etc", "bin"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        content = b"demo rootfs\n"
        info = tarfile.TarInfo("etc/demo-release")
        info.size, info.mode = len(content), 0o644
        archive.addfile(info, io.BytesIO(content))
    return path


def _info(dockyard: Run, *, autoload: bool = True) -> dict[str, Any]:
    result = dockyard("info", "--format", "json", autoload=autoload)
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_info_lists_the_plugin_and_its_driver(dockyard: Run) -> None:
    info = _info(dockyard)
    plugins = {plugin["Name"]: plugin for plugin in info["Plugins"]}
    assert PLUGIN in plugins, plugins
    assert plugins[PLUGIN]["Version"] == "0.1.0"
    assert "dockyard-demo-plugin" in plugins[PLUGIN]["Source"]
    drivers = {driver["Name"]: driver for driver in info["Drivers"]["storage"]}
    assert DRIVER in drivers, drivers
    assert drivers[DRIVER]["Plugin"] == PLUGIN
    assert drivers[DRIVER]["Priority"] == 0
    assert drivers[DRIVER]["Available"] is True
    assert info["Driver"] != DRIVER, "a priority-0 driver must never be picked automatically"


def test_import_through_the_plugin_driver(
    dockyard: Run, rootfs_tar: Path, events_file: Path
) -> None:
    dockyard("--storage-driver", DRIVER, "import", str(rootfs_tar), "demo:1")

    listing = dockyard("images").stdout.splitlines()
    assert any(line.split()[:2] == ["demo", "1"] for line in listing), listing
    events = _events(events_file)
    kinds = [event["event"] for event in events]
    assert "image_imported" in kinds and "image_tagged" in kinds, events
    imported = next(event for event in events if event["event"] == "image_imported")
    tagged = next(event for event in events if event["event"] == "image_tagged")
    assert imported["image_id"] == tagged["image_id"]
    assert tagged["reference"].endswith("demo:1")


def test_plugin_command(dockyard: Run) -> None:
    assert COMMAND in dockyard("--help").stdout
    result = dockyard(COMMAND)
    assert result.stdout.strip() == "Hello from dockyard-demo-plugin!"


def test_plugin_command_exits_as_a_builtin_one(dockyard: Run) -> None:
    failed = dockyard(COMMAND, "--fail", check=False)
    assert (failed.returncode, failed.stderr) == (1, "Error: the demo plugin was asked to fail\n")
    assert dockyard(COMMAND, "--bogus", check=False).returncode == 125


def test_autoload_switch_hides_the_plugin(dockyard: Run, rootfs_tar: Path) -> None:
    info = _info(dockyard, autoload=False)
    assert PLUGIN not in {plugin["Name"] for plugin in info["Plugins"]}
    assert DRIVER not in {driver["Name"] for driver in info["Drivers"]["storage"]}
    assert COMMAND not in dockyard("--help", autoload=False).stdout

    result = dockyard(
        "--storage-driver", DRIVER, "import", str(rootfs_tar), "demo:1",
        autoload=False, check=False,
    )
    assert result.returncode == 1
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1, error
    assert DRIVER in error and "vfs" in error, error
