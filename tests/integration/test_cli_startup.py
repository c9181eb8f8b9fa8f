"""The CLI's start-up promises: lazy imports, the launcher's fast path, help on every command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.core.cli.main import BUILTIN_COMMANDS
from tests.conftest import Dockyard

PROBE = """
import json, sys
from dockyard.core.cli.{module} import main
try:
    main({args!r})
except SystemExit:
    pass
heavy = ("click", "pluggy", "structlog", "httpx", "pyroute2", "typing", "dataclasses", "tarfile")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith("dockyard.plugins"))
sys.stderr.write("MODULES " + json.dumps(loaded) + "\\n")
"""


def _probe(dockyard: Dockyard, module: str, *args: str) -> tuple[str, list[str]]:
    argv = ["--root", str(dockyard.root), "--runroot", str(dockyard.runroot), *args]
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, args=argv)],
        capture_output=True, text=True, env=dockyard.env, timeout=60,
    )
    marker = [line for line in result.stderr.splitlines() if line.startswith("MODULES ")]
    return result.stdout, json.loads(marker[-1].removeprefix("MODULES "))


def test_images_and_version_import_nothing_heavy(dockyard: Dockyard, busybox_tar: Path) -> None:
    dockyard("import", str(busybox_tar), "busybox")
    for args in (("images",), ("--version",), ("image", "ls", "-q")):
        _, loaded = _probe(dockyard, "launcher", *args)
        assert loaded == [], f"{args} imported {loaded}"


def test_help_imports_no_driver_or_command_module(dockyard: Dockyard) -> None:
    output, loaded = _probe(dockyard, "launcher", "--help")
    assert "images" in output and "import" in output
    assert not [m for m in loaded if m.startswith("dockyard.plugins")], loaded
    assert "pluggy" not in loaded and "structlog" not in loaded


@pytest.mark.parametrize(
    "args",
    [
        ("images",),
        ("images", "-q"),
        ("images", "-a", "--no-trunc"),
        ("images", "--digests"),
        ("images", "busybox"),
        ("images", "busybox:1.0"),
        ("images", "--format", "{{.Repository}}:{{.Tag}}"),
        ("images", "--format={{json .}}"),
        ("images", "--format", "table {{.ID}}\\t{{.Size}}"),
        ("images", "-f", "dangling=true"),
        ("images", "--filter=reference=bus*"),
        ("images", "-f", "bogus=1"),
        ("image", "ls"),
        ("image", "list", "-q", "--no-trunc"),
        ("--version",),
    ],
)
def test_fast_path_matches_click(dockyard: Dockyard, busybox_tar: Path, args: tuple[str, ...]) -> None:
    dockyard("import", str(busybox_tar), "busybox:1.0")
    dockyard("import", str(busybox_tar), "-c", "ENV X=1")
    fast = subprocess.run(dockyard.command(*args), capture_output=True, text=True, env=dockyard.env)
    full = subprocess.run(
        [sys.executable, "-c", "import sys; from dockyard.core.cli.main import main; main(sys.argv[1:])",
         *dockyard.command(*args)[1:]],
        capture_output=True, text=True, env=dockyard.env,
    )
    assert (fast.returncode, fast.stdout, fast.stderr) == (full.returncode, full.stdout, full.stderr)


@pytest.mark.parametrize("command", sorted(BUILTIN_COMMANDS))
def test_every_command_has_help(dockyard: Dockyard, command: str) -> None:
    result = dockyard(command, "--help")
    assert result.stdout.startswith("Usage: dockyard " + command)


def test_image_subcommands_have_help(dockyard: Dockyard) -> None:
    listing = dockyard("image", "--help").stdout
    for sub in ("ls", "rm", "inspect", "prune", "history", "tag", "import"):
        assert sub in listing
        assert dockyard("image", sub, "--help").returncode == 0


EXIT_PROBE = """
import atexit, gc, sys
atexit.register(lambda: sys.stderr.write(f"FROZEN {{gc.get_freeze_count()}}\\n"))
before = gc.get_stats()[0]["collections"]
atexit.register(lambda: sys.stderr.write(f"COLLECTIONS {{gc.get_stats()[0]['collections'] - before}}\\n"))
from dockyard.core.cli.launcher import main
main({args!r})
"""


@pytest.mark.parametrize("args", [("ps", "-a"), ("--version",)])
def test_exit_spares_the_cycle_collection_and_runs_atexit(dockyard: Dockyard, args: tuple[str, ...]) -> None:
    """Both paths hand the command's objects to gc.freeze before exit (a ~15 ms collection at
    shutdown after a `run`), and atexit handlers, a plugin's included, still run."""
    argv = ["--root", str(dockyard.root), "--runroot", str(dockyard.runroot), *args]
    result = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE.format(args=argv)],
        capture_output=True, text=True, env=dockyard.env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    frozen = [line for line in result.stderr.splitlines() if line.startswith("FROZEN ")]
    assert frozen and int(frozen[-1].removeprefix("FROZEN ")) > 1000, result.stderr


def test_a_command_runs_few_cycle_collections(dockyard: Dockyard) -> None:
    """The youngest generation may grow to 10,000 objects: `ps -a` imports click and the engine
    with a handful of collections (27 at Python's default of 700, ~0.25 ms each)."""
    argv = ["--root", str(dockyard.root), "--runroot", str(dockyard.runroot), "ps", "-a"]
    result = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE.format(args=argv)],
        capture_output=True, text=True, env=dockyard.env, timeout=60,
    )
    counts = [line for line in result.stderr.splitlines() if line.startswith("COLLECTIONS ")]
    assert counts and int(counts[-1].removeprefix("COLLECTIONS ")) <= 5, result.stderr
