"""Startup latency side by side: `--version` and `images` for dockyard, podman and docker.

Run as root from the repository:  sudo .venv/bin/python bench/startup.py [--runs N]

Every engine lists the same two small images from a private, temporary store: dockyard and podman
through --root/--runroot, docker through a dockerd started here with a temporary data root and
socket (an already running dockerd is used as is, with the two images added and removed again).
One untimed warm-up run of each case fills the page cache; then the cases run round-robin, N
rounds, each round starting one case further on, so load drift and ordering effects spread evenly.
The table shows medians and the ratios dockyard/podman and dockyard/docker: ratios compare engines
on one machine, absolute times do not travel. Nothing leaves loopback (dockerd runs without a
bridge or firewall rules).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ENGINES = ("dockyard", "podman", "docker")
ACTIONS = ("--version", "images")
IMAGES = ("dockyard-bench/one:latest", "dockyard-bench/two:latest")
DOCKERD_START_TIMEOUT = 60.0
DOCKERD_STOP_TIMEOUT = 30.0
# Users run dockyard from cached bytecode. An environment that forbids writing it (CI images and
# sandboxes often do) would have every run recompile every module: that measures the compiler, not
# startup. So the commands run without the switch, and the warm-up run writes the cache.
COMMAND_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


class BenchError(Exception):
    """An engine could not be prepared or a command failed; the message says which and why."""


@dataclass
class Engine:
    """One engine under test: its command prefix and what to run when the benchmark ends."""

    name: str
    binary: str
    store_args: list[str] = field(default_factory=list)
    teardown: list[list[str]] = field(default_factory=list)

    def command(self, action: str) -> list[str]:
        """The argv for one benchmarked action; `--version` needs no store."""
        if action == "--version":
            return [self.binary, "--version"]
        return [self.binary, *self.store_args, action]


@dataclass
class Case:
    """One timed command and its samples in seconds; `error` is set when it failed."""

    engine: str
    action: str
    argv: list[str]
    samples: list[float] = field(default_factory=list)
    error: str = ""


def run(argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, raising BenchError with its stderr when it fails."""
    try:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=COMMAND_ENV,
            timeout=timeout, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(argv)}: timed out after {timeout:g}s") from exc
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise BenchError(f"{' '.join(argv)}: exit {result.returncode}: {detail[0]}")
    return result


def write_rootfs_tars(directory: Path) -> list[Path]:
    """Two tiny, distinct root filesystem tarballs, one per benchmark image."""
    paths = []
    for index, image in enumerate(IMAGES):
        path = directory / f"rootfs-{index}.tar"
        content = f"{image}\n".encode()
        with tarfile.open(path, "w") as archive:
            info = tarfile.TarInfo("etc/bench-image")
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            archive.addfile(info, io.BytesIO(content))
        paths.append(path)
    return paths


def import_images(engine: Engine, tars: list[Path], *, timeout: float) -> None:
    """Import the benchmark images so that every engine's `images` lists the same two."""
    for tar, image in zip(tars, IMAGES, strict=True):
        run([engine.binary, *engine.store_args, "import", str(tar), image], timeout=timeout)


def dockyard_engine(work: Path) -> Engine:
    """Dockyard from this venv, with a store of its own."""
    binary = Path(sys.executable).with_name("dockyard")
    if not binary.exists():
        raise BenchError(f"{binary} not found: run ./setup.sh first")
    store = ["--root", str(work / "dockyard-root"), "--runroot", str(work / "dockyard-run")]
    return Engine("dockyard", str(binary), store)


def podman_engine(work: Path) -> Engine:
    """podman with a store of its own (its default storage driver, as a user would have it)."""
    binary = shutil.which("podman")
    if binary is None:
        raise BenchError("podman not found")
    store = ["--root", str(work / "podman-root"), "--runroot", str(work / "podman-run")]
    # `system reset` removes whatever podman mounted or locked under its private store.
    return Engine("podman", binary, store, teardown=[[binary, *store, "system", "reset", "-f"]])


def _docker_answers(binary: str, host_args: list[str]) -> bool:
    try:
        result = subprocess.run(
            [binary, *host_args, "version"], stdin=subprocess.DEVNULL, capture_output=True,
            timeout=10, check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


@contextlib.contextmanager
def docker_engine(work: Path, *, bridge_ip: str = "") -> Iterator[Engine]:
    """docker talking to a running dockerd, else to a private one started and stopped here.

    The private daemon gets its own data root, exec root, pid file and socket, no bridge and no
    iptables rules, so it touches nothing outside the temporary directory; with `bridge_ip`
    (CIDR) it gets its default bridge docker0 on that address, still without iptables rules.
    The default ulimits are ones root can grant here (it lacks CAP_SYS_RESOURCE, so raising
    limits would fail).
    """
    binary = shutil.which("docker")
    if binary is None:
        raise BenchError("docker not found")
    if _docker_answers(binary, []):
        print("note: using the dockerd already running; its other images are listed too")
        yield Engine("docker", binary, teardown=[[binary, "rmi", *IMAGES]])
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise BenchError("no dockerd running and none on PATH")
    home = work / "dockerd"
    home.mkdir()
    host_args = ["--host", f"unix://{home / 'docker.sock'}"]
    argv = [
        dockerd, *host_args, "--data-root", str(home / "data"), "--exec-root", str(home / "exec"),
        "--pidfile", str(home / "docker.pid"),
        *(["--bip", bridge_ip] if bridge_ip else ["--bridge", "none"]), "--iptables=false",
        "--ip6tables=false", "--default-ulimit", "nofile=4096:4096",
        "--default-ulimit", "nproc=4096:4096",
    ]
    log_path = home / "dockerd.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_dockerd(daemon, binary, host_args, log_path)
        yield Engine("docker", binary, host_args)
    finally:
        _stop(daemon)


def _wait_for_dockerd(
    daemon: subprocess.Popen[bytes], binary: str, host_args: list[str], log_path: Path
) -> None:
    deadline = time.monotonic() + DOCKERD_START_TIMEOUT
    while not _docker_answers(binary, host_args):
        if daemon.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise BenchError("dockerd did not come up:\n  " + "\n  ".join(tail))
        time.sleep(0.2)


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    """Stop dockerd gently (it stops its containerd and unmounts), killing it only if it hangs."""
    if daemon.poll() is not None:
        return
    daemon.terminate()
    try:
        daemon.wait(timeout=DOCKERD_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print("note: dockerd ignored SIGTERM; killing it", file=sys.stderr)
        daemon.kill()
        daemon.wait()


def measure(cases: list[Case], *, runs: int, timeout: float) -> None:
    """Warm up once, then time every case `runs` times, round-robin; failures end a case."""
    for case in cases:
        try:
            run(case.argv, timeout=timeout)
        except BenchError as exc:
            case.error = str(exc)
    for round_number in range(runs):
        shift = round_number % len(cases)
        for case in cases[shift:] + cases[:shift]:
            if case.error:
                continue
            started = time.perf_counter()
            try:
                run(case.argv, timeout=timeout)
            except BenchError as exc:
                case.error = str(exc)
                continue
            case.samples.append(time.perf_counter() - started)


def report(cases: list[Case], *, runs: int) -> str:
    """The table of medians in milliseconds, with dockyard's ratio to each peer."""
    medians = {
        (case.engine, case.action): statistics.median(case.samples)
        for case in cases
        if case.samples and not case.error
    }
    header = ["command", *ENGINES, "dockyard/podman", "dockyard/docker"]
    rows = [header]
    for action in ACTIONS:
        row = [action]
        row += [
            f"{medians[(engine, action)] * 1000:.1f}" if (engine, action) in medians else "-"
            for engine in ENGINES
        ]
        for peer in ("podman", "docker"):
            mine, theirs = medians.get(("dockyard", action)), medians.get((peer, action))
            row.append(f"{mine / theirs:.2f}x" if mine and theirs else "-")
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [f"startup latency: median of {runs} runs, milliseconds (lower is better)"]
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
    lines += [f"failed: {case.engine} {case.action}: {case.error}" for case in cases if case.error]
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Startup latency of dockyard, podman and docker, side by side."
    )
    parser.add_argument("--runs", type=int, default=30, help="timed runs per command (default 30)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds before a command counts as failed"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def _prepare(
    name: str, work: Path, tars: list[Path], stack: contextlib.ExitStack, *, timeout: float
) -> Engine | None:
    """Build one engine and import the images into it; a missing peer is a note, not a failure."""
    try:
        if name == "dockyard":
            engine = dockyard_engine(work)
        elif name == "podman":
            engine = podman_engine(work)
        else:
            engine = stack.enter_context(docker_engine(work))
        # Registered before importing, so a half-done import is still cleaned up.
        for command in engine.teardown:
            stack.callback(_teardown, command, timeout=timeout)
        import_images(engine, tars, timeout=timeout)
        version = run([engine.binary, "--version"], timeout=timeout).stdout.splitlines()
    except BenchError as exc:
        print(f"note: skipping {name}: {exc}")
        return None
    print(f"{name}: {version[0] if version else '(no version output)'}")
    return engine


def _teardown(command: list[str], *, timeout: float) -> None:
    try:
        run(command, timeout=timeout)
    except BenchError as exc:
        print(f"note: cleanup failed: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Prepare the engines, measure them side by side, print the table; 2 when nothing ran."""
    args = _parse_args(argv)
    if os.geteuid() != 0:
        print("startup.py: run as root (sudo .venv/bin/python bench/startup.py)", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        tars = write_rootfs_tars(work)
        engines = [
            engine
            for name in ENGINES
            if (engine := _prepare(name, work, tars, stack, timeout=args.timeout)) is not None
        ]
        if not any(engine.name == "dockyard" for engine in engines):
            print("startup.py: dockyard could not be prepared; nothing to compare", file=sys.stderr)
            return 2
        cases = [
            Case(engine.name, action, engine.command(action))
            for engine in engines
            for action in ACTIONS
        ]
        measure(cases, runs=args.runs, timeout=args.timeout)
        # Printed before cleanup, so a cleanup failure cannot swallow the results.
        print(report(cases, runs=args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
