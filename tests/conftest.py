"""Shared fixtures: a private Dockyard root per test and real images built offline.

Images come from real parts, not stand-ins: a busybox root filesystem made from Debian's
`busybox-static` binary, packed as a tarball the CLI imports.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["tests.conftest_btrfs"]  # btrfs_mount, btrfs_scratch: a loop-mounted btrfs

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
BUSYBOX = Path("/bin/busybox")


@dataclass
class Dockyard:
    """Runs the real `dockyard` CLI against a private root and runroot."""

    root: Path
    runroot: Path
    env: dict[str, str]

    def command(self, *args: str) -> list[str]:
        """The argv that runs `dockyard ARGS` against this root."""
        return [DOCKYARD, "--root", str(self.root), "--runroot", str(self.runroot), *args]

    def __call__(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run a command; with `check`, fail the test (showing stderr) on a non-zero exit."""
        result = subprocess.run(
            self.command(*args),
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"dockyard {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def run_bytes(self, *args: str, input: bytes) -> subprocess.CompletedProcess[bytes]:
        """Run a command with binary standard input (a tarball on `-`)."""
        return subprocess.run(
            self.command(*args), input=input, capture_output=True, env=self.env, timeout=120
        )


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below `path`, from /proc/self/mountinfo."""
    prefix = str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def processes_naming(text: str) -> list[int]:
    """Pids of the processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # it exited while we looked
                continue
    return found


@pytest.fixture
def dockyard(tmp_path: Path) -> Iterator[Dockyard]:
    """A Dockyard CLI with its own root, runroot and no user config file.

    Afterwards every container is removed through the CLI, as a user would, and the test fails if
    anything stays mounted: a leaked mount is a bug, not something for a fixture to sweep away.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKYARD_")}
    env["DOCKYARD_CONFIG"] = str(tmp_path / "no-config.toml")
    env["DOCKYARD_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    cli = Dockyard(tmp_path / "root", tmp_path / "run", env)
    yield cli
    if (cli.root / "containers").is_dir():
        ids = cli("ps", "-aq", "--no-trunc", check=False).stdout.split()
        if ids:
            cli("rm", "-f", *ids)
    leaked = mounts_below(tmp_path)
    for point in sorted(leaked, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    assert not leaked, f"mounts left behind: {leaked}"


def build_busybox_rootfs(destination: Path) -> None:
    """A minimal root filesystem: Debian's static busybox and one symlink per applet."""
    if not BUSYBOX.exists():
        pytest.fail("busybox-static is not installed: run ./setup.sh")
    for directory in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "var/log"):
        (destination / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, destination / "bin" / "busybox")
    applets = subprocess.run(
        [str(BUSYBOX), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        link = destination / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (destination / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (destination / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (destination / "tmp").chmod(0o1777)


def tar_directory(source: Path) -> bytes:
    """A tarball of `source`'s contents with paths relative to it, as `tar -C source -c .` makes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(source, arcname=".")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem tarball, built once per session."""
    base = tmp_path_factory.mktemp("busybox")
    rootfs = base / "rootfs"
    build_busybox_rootfs(rootfs)
    tarball = base / "busybox.tar"
    tarball.write_bytes(tar_directory(rootfs))
    return tarball


@pytest.fixture
def busybox(dockyard: Dockyard, busybox_tar: Path) -> str:
    """A busybox image named `busybox` (CMD /bin/sh) in this test's store; returns its name."""
    dockyard("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar), "busybox")
    return "busybox"


def wait_until(condition: Callable[[], bool], timeout: float = 20, interval: float = 0.05) -> None:
    """Poll `condition` every `interval` seconds until it holds; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(interval)


@pytest.fixture
def make_tar(tmp_path: Path) -> Callable[[dict[str, bytes]], Path]:
    """Write a tarball holding the given files (name -> content) and return its path."""
    counter = iter(range(1_000_000))

    def make(files: dict[str, bytes]) -> Path:
        path = tmp_path / f"layer-{next(counter)}.tar"
        with tarfile.open(path, "w") as archive:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                info.mtime = 1_700_000_000
                archive.addfile(info, io.BytesIO(content))
        return path

    return make


DEBIAN_CACHE = Path("/var/cache/dockyard-tests/debian-bookworm-minbase.tar")
DEBIAN_MIRROR = "http://deb.debian.org/debian"


@pytest.fixture(scope="session")
def debian_tar() -> Path:
    """A Debian 12 root filesystem from `debootstrap --variant=minbase`, made once per machine.

    It takes a minute and Debian's package mirror, so the tarball is kept under /var/cache and
    reused by later runs; delete it to rebuild.
    """
    if DEBIAN_CACHE.exists():
        return DEBIAN_CACHE
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is not installed: run ./setup.sh")
    DEBIAN_CACHE.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=DEBIAN_CACHE.parent))
    try:
        subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(work / "rootfs"), DEBIAN_MIRROR],
            check=True,
            capture_output=True,
            timeout=900,
        )
        partial = work / "debian.tar"
        subprocess.run(["tar", "-C", str(work / "rootfs"), "-cf", str(partial), "."], check=True)
        os.replace(partial, DEBIAN_CACHE)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return DEBIAN_CACHE
