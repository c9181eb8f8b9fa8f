"""Rootless `run --rm busybox true`: dockyard against rootless podman, as one unprivileged user.

Run as root from the repository:  sudo .venv/bin/python bench/rootless.py [--runs N]

A throwaway user (with /etc/subuid and /etc/subgid ranges) is created for the run and removed
afterwards with everything it stored. Both engines import the same busybox rootfs into that
user's own stores and run it with network none, slirp4netns (the user-mode network both have:
the pasta of Debian's podman 4.3 is not there yet) and each engine's default (dockyard's pasta,
podman 4.3's slirp4netns); /dev/net/tun is opened to users, 0666 as distributions ship it, for
the run and its mode restored after. Each command goes through `runuser`, whose own cost is
measured too (`runuser true`) so it can be subtracted by eye. Cases run round-robin after one
warm-up each; the table gives medians and the ratio per network.

What podman needs to be measured fairly without a systemd login session: `--cgroup-manager
cgroupfs` and `--events-backend file` (no user manager, no journal), and an XDG_RUNTIME_DIR where
logind would make it, /run/user/UID (0700, the user's). The first version of this bench used a
deeper temporary directory, and every podman run then took ~20 s: conmon's exit command
(`podman container cleanup --rm`) refused a runroot longer than 50 characters ("the specified
runroot is longer than 50 characters", lost because it logs to a syslog this host lacks), so the
exit code never reached podman's database and `podman run` waited out its 20-second conmon
timeout ("Exceeded conmon timeout waiting for container to exit"). The runtime is runc, as
setup.sh configures for the peers (crun is not installed).
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
NETWORKS = ("none", "slirp4netns", "default")  # default: no --network flag
TUN = Path("/dev/net/tun")


@contextlib.contextmanager
def bench_user() -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh unprivileged user with its runtime directory at /run/user/UID, as a login session
    would have it, and the environment its commands run with; all removed afterwards."""
    name = f"dybench{os.getpid() % 10000}"
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    runtime: Path | None = None
    try:
        entry = pwd.getpwnam(name)
        if name not in Path("/etc/subuid").read_text():
            first = 400000 + (entry.pw_uid % 1000) * 65536
            span = f"{first}-{first + 65535}"
            subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, name], check=True)
        runtime = Path("/run/user") / str(entry.pw_uid)
        shutil.rmtree(runtime, ignore_errors=True)  # a deleted user's with the same uid
        runtime.mkdir(mode=0o700, parents=True)
        os.chown(runtime, entry.pw_uid, entry.pw_gid)
        env = {"HOME": entry.pw_dir, "XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        yield name, env
    finally:
        stop_processes(name)
        if runtime is not None:
            shutil.rmtree(runtime, ignore_errors=True)
        subprocess.run(["userdel", "--remove", "--force", name], capture_output=True, check=False)


@contextlib.contextmanager
def tun_open_to_users() -> Iterator[None]:
    """/dev/net/tun 0666 for the run (the user-mode networks need it), its mode restored after."""
    mode = TUN.stat().st_mode & 0o7777
    TUN.chmod(0o666)
    try:
        yield
    finally:
        TUN.chmod(mode)


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
    """Medians in milliseconds per network and dockyard's ratio to podman."""
    lines = [
        f"rootless run --rm busybox true: median of {runs} runs, ms (lower is better)",
        f"{'network':<12} {'dockyard':>9} {'podman':>9} {'dockyard/podman':>16}",
    ]
    medians = {(case.engine, case.action): statistics.median(case.samples) for case in cases if case.samples}
    for network in NETWORKS:
        mine, theirs = medians.get(("dockyard", network)), medians.get(("podman", network))
        cells = [f"{value * 1000:9.1f}" if value else f"{'-':>9}" for value in (mine, theirs)]
        ratio = f"{mine / theirs:.2f}x" if mine and theirs else "-"
        lines.append(f"{network:<12} {cells[0]} {cells[1]} {ratio:>16}")
    if ("runuser true", "floor") in medians:
        lines.append(f"floor: runuser true {medians[('runuser true', 'floor')] * 1000:.1f} ms")
    lines += [f"failed: {case.engine} {case.action}: {case.error}" for case in cases if case.error]
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
        with bench_user() as (name, env), tun_open_to_users():
            prepare(name, env, tar)
            cases = [Case("runuser true", "floor", as_user(name, env, "true"))]
            for network in NETWORKS:
                flag = [] if network == "default" else ["--network", network]
                run_args = ["run", "--rm", *flag, IMAGE, "true"]
                cases += [
                    Case("dockyard", network, as_user(name, env, DOCKYARD, *run_args)),
                    Case("podman", network, as_user(name, env, "podman", *PODMAN_FLAGS, *run_args)),
                ]
            measure(cases, runs=options.runs, timeout=options.timeout)
            print(report(cases, runs=options.runs))
    except BenchError as exc:
        sys.exit(f"bench failed: {exc}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
