"""Idle detached containers: start time and the memory of each engine's per-container process.

Run as root from the repository:  sudo .venv/bin/python bench/idle.py [--count 100]

Each engine starts COUNT containers of the same busybox image with `run -d --network none IMAGE
sleep 3600`, one after another, then the proportional set size (PSS, shared pages divided among
their users) of its per-container processes is summed and divided by COUNT: dockyard's monitor,
podman's conmon, docker's containerd-shim. The containers are removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import IMAGE, busybox_rootfs
from startup import BenchError, Engine, docker_engine, dockyard_engine, podman_engine, run

MONITORS = {"dockyard": "dockyard/core/monitor.py", "podman": "conmon", "docker": "containerd-shim"}


def pss_kib(pid: int) -> int:
    """The PSS of one process in KiB (0 when it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def monitor_pids(pattern: str) -> list[int]:
    """Pids whose command line contains `pattern`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pattern in command:
            pids.append(int(entry.name))
    return pids


def measure(engine: Engine, count: int, *, timeout: float) -> tuple[float, float, int]:
    """Median start seconds, KiB of PSS per monitor, and the number of monitors found."""
    base = [engine.binary, *engine.store_args]
    starts = []
    before = set(monitor_pids(MONITORS[engine.name]))
    for _ in range(count):
        started = time.perf_counter()
        run([*base, "run", "-d", "--network", "none", IMAGE, "sleep", "3600"], timeout=timeout)
        starts.append(time.perf_counter() - started)
    time.sleep(2)  # let every monitor settle into its idle loop
    pids = [pid for pid in monitor_pids(MONITORS[engine.name]) if pid not in before]
    total = sum(pss_kib(pid) for pid in pids)
    remove_all(base, timeout=timeout)
    return statistics.median(starts), total / max(len(pids), 1), len(pids)


def remove_all(base: list[str], *, timeout: float, attempts: int = 3) -> None:
    """Remove every container of the engine. On a loaded machine podman's `rm -f` sometimes
    finds a container's shm mount still busy and gives up on the rest: try again."""
    for attempt in range(1, attempts + 1):
        ids = run([*base, "ps", "-aq"], timeout=timeout).stdout.split()
        if not ids:
            return
        try:
            run([*base, "rm", "-f", *ids], timeout=timeout * 4)
            return
        except BenchError:
            if attempt == attempts:
                raise
            time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    """Start COUNT idle containers per engine and print start time and memory per container."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="containers per engine (default 100)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("idle.py: run as root", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="dockyard-idle-") as temp, contextlib.ExitStack() as stack:
        work = Path(temp)
        tarball = work / "busybox.tar"
        rootfs = busybox_rootfs(work / "rootfs")
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        for name in ("dockyard", "podman", "docker"):
            try:
                engine = stack.enter_context(docker_engine(work)) if name == "docker" else (
                    dockyard_engine(work) if name == "dockyard" else podman_engine(work)
                )
                for command in engine.teardown:
                    stack.callback(subprocess.run, command, capture_output=True, check=False)
                run([engine.binary, *engine.store_args, "import", str(tarball), IMAGE], timeout=args.timeout)
                rows.append((name, *measure(engine, args.count, timeout=args.timeout)))
            except BenchError as exc:
                print(f"note: skipping {name}: {exc}")
    print(f"{args.count} idle detached containers per engine (network none)")
    print(f"{'engine':<10} {'start (median ms)':>18} {'PSS per monitor (KiB)':>22} {'monitors':>9}")
    for name, start, pss, found in rows:
        print(f"{name:<10} {start * 1000:>18.1f} {pss:>22.0f} {found:>9}")
    mine = {name: (start, pss) for name, start, pss, _ in rows}.get("dockyard")
    for name, start, pss, _ in rows:
        if mine and name != "dockyard":
            print(f"dockyard/{name}: start {mine[0] / start:.2f}x, memory {mine[1] / pss:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
