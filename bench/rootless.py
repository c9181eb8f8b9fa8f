"""Rootless `run --rm busybox true`: dockyard against rootless podman, as one unprivileged user.

Run as root from the repository:  sudo .venv/bin/python bench/rootless.py [--runs N]

A throwaway user (with /etc/subuid and /etc/subgid ranges) is created for the run and removed
afterwards with everything it stored. Both engines import the same busybox rootfs into that
user's own stores and run it with network none; each command goes through `runuser`, whose own
cost is measured too (`runuser true`) so it can be subtracted by eye. podman gets its cgroupfs
manager and file events (no systemd session here) and the containers.conf ulimits setup.sh
wrote. Cases run round-robin after one warm-up each; the table gives medians and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from run import busybox_rootfs
from startup import BenchError, Case, measure

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
IMAGE = "dockyard-bench/busybox:latest"
PODMAN_FLAGS = ["--cgroup-manager", "cgroupfs", "--events-backend", "file"]


@contextlib.contextmanager
def bench_user(runtime_parent: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh unprivileged user and the environment its commands run with; removed afterwards."""
    name = f"dybench{os.getpid() % 10000}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    try:
        entry = pwd.getpwnam(name)
        if name not in Path("/etc/subuid").read_text():
            first = 400000 + (entry.pw_uid % 1000) * 65536
            span = f"{first}-{first + 65535}"
            subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, name], check=True)
        runtime = runtime_parent / name
        runtime.mkdir(mode=0o700)
        os.chown(runtime, entry.pw_uid, entry.pw_gid)
        env = {"HOME": entry.pw_dir, "XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        yield name, env
    finally:
        stop_processes(name)
        subprocess.run(["userdel", "--remove", "--force", name], capture_output=True, check=False)


def stop_processes(name: str) -> None:
    """Kill what the user left running (dockyard's keeper, podman's pause process), by pid."""
    uid = pwd.getpwnam(name).pw_uid
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), 9)


def as_user(name: str, env: dict[str, str], *argv: str) -> list[str]:
    """The argv that runs `argv` as `name` with exactly `env`."""
    return ["runuser", "-u", name, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]


def prepare(name: str, env: dict[str, str], tar: Path) -> None:
    """Import the busybox tarball into both engines' stores of the user."""
    data = tar.read_bytes()
    for argv in (
        as_user(name, env, DOCKYARD, "import", "-", IMAGE),
        as_user(name, env, "podman", *PODMAN_FLAGS, "import", "-", IMAGE),
    ):
        result = subprocess.run(argv, input=data, capture_output=True, check=False)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(argv[5:7])} import failed: {result.stderr.decode().strip()}")


def report(cases: list[Case], *, runs: int) -> str:
    """Medians in milliseconds and dockyard's ratio to podman."""
    lines = [f"rootless run --rm busybox true, network none: median of {runs} runs, ms (lower is better)"]
    medians = {case.engine: statistics.median(case.samples) for case in cases if case.samples}
    for engine, median in sorted(medians.items(), key=lambda item: item[1]):
        lines.append(f"{engine:<16} {median * 1000:8.1f}")
    if "dockyard" in medians and "podman" in medians:
        lines.append(f"dockyard/podman = {medians['dockyard'] / medians['podman']:.2f}x")
    lines += [f"failed: {case.engine}: {case.error}" for case in cases if case.error]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0)
    options = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run bench/rootless.py as root: it creates the unprivileged user it measures")
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-rootless-"))
    work.chmod(0o755)
    try:
        rootfs = busybox_rootfs(work / "rootfs")
        tar = work / "busybox.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
        with bench_user(work) as (name, env):
            prepare(name, env, tar)
            run_args = ["run", "--rm", "--network", "none", IMAGE, "true"]
            cases = [
                Case("dockyard", "run", as_user(name, env, DOCKYARD, *run_args)),
                Case("podman", "run", as_user(name, env, "podman", *PODMAN_FLAGS, *run_args)),
                Case("runuser true", "floor", as_user(name, env, "true")),
            ]
            measure(cases, runs=options.runs, timeout=options.timeout)
            print(report(cases, runs=options.runs))
    except BenchError as exc:
        sys.exit(f"bench failed: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
