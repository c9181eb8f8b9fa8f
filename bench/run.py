"""`run --rm busybox true` side by side: dockyard, podman, docker, and the floor (runc, unshare).

Run as root from the repository:  sudo .venv/bin/python bench/run.py [--runs N]

Every engine runs the same busybox image (Debian's busybox-static, imported into each store) with
network none, then with its default network where it has one that works on this host. The floor
is `runc run` on an OCI bundle of the same rootfs and `unshare ... chroot`, which is what any
engine must at least cost. Cases run round-robin after one warm-up each; the table gives medians
and dockyard's ratio to each peer. Shares its engine helpers with startup.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from startup import BenchError, Case, Engine, docker_engine, dockyard_engine, measure, podman_engine, run

IMAGE = "dockyard-bench/busybox:latest"


def busybox_rootfs(directory: Path) -> Path:
    """A root filesystem of Debian's static busybox with its applet links."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise BenchError("busybox-static is not installed: run ./setup.sh")
    for sub in ("bin", "proc", "sys", "dev", "etc", "tmp"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, directory / "bin" / "busybox")
    applets = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        link = directory / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    return directory


def busybox_engines(
    work: Path, rootfs: Path, stack: contextlib.ExitStack, *, timeout: float, docker_bridge_ip: str = ""
) -> list[Engine]:
    """dockyard, podman and docker, those this host has, each with `rootfs` imported as IMAGE;
    their cleanup goes on `stack`. docker's private daemon gets a bridge only with `docker_bridge_ip`."""
    tarball = work / "busybox.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    engines = []
    for name in ("dockyard", "podman", "docker"):
        try:
            if name == "docker":
                engine = stack.enter_context(docker_engine(work, bridge_ip=docker_bridge_ip))
            else:
                engine = dockyard_engine(work) if name == "dockyard" else podman_engine(work)
            for command in engine.teardown:
                stack.callback(subprocess.run, command, capture_output=True, check=False)
            run([engine.binary, *engine.store_args, "import", str(tarball), IMAGE], timeout=timeout)
        except BenchError as exc:
            print(f"note: skipping {name}: {exc}")
            continue
        engines.append(engine)
    return engines


def runc_bundle(work: Path, rootfs: Path) -> list[str] | None:
    """`runc run` on a bundle of the rootfs, network none; None when runc is missing."""
    runc = shutil.which("runc")
    if runc is None:
        return None
    bundle = work / "bundle"
    bundle.mkdir()
    subprocess.run([runc, "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    (bundle / "config.json").write_text(json.dumps(config))
    return [runc, "--root", str(work / "runc-state"), "run", "--bundle", str(bundle), "bench-floor"]


def cases_for(engine: Engine, *, default_network: bool) -> list[Case]:
    """The engine's `run --rm` with network none, and with its default network if asked."""
    base = [engine.binary, *engine.store_args, "run", "--rm"]
    cases = [Case(engine.name, "network none", [*base, "--network", "none", IMAGE, "true"])]
    if default_network:
        cases.append(Case(engine.name, "default network", [*base, IMAGE, "true"]))
    return cases


def report(cases: list[Case], *, runs: int) -> str:
    """Medians in milliseconds and dockyard's ratio to every other case of the same network."""
    lines = [f"run --rm IMAGE true: median of {runs} runs, milliseconds (lower is better)"]
    medians = {(c.engine, c.action): statistics.median(c.samples) for c in cases if c.samples}
    for (engine, action), median in sorted(medians.items(), key=lambda item: item[1]):
        mine = medians.get(("dockyard", action)) or medians.get(("dockyard", "network none"))
        ratio = f"dockyard/{engine} = {mine / median:.2f}x" if mine and engine != "dockyard" else ""
        lines.append(f"{engine:<10} {action:<16} {median * 1000:8.1f}   {ratio}")
    lines += [f"failed: {case.engine} {case.action}: {case.error}" for case in cases if case.error]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Prepare every engine with the same image, measure side by side, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per case (default 10)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run counts as failed")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run.py: run as root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as temp, contextlib.ExitStack() as stack:
        work = Path(temp)
        rootfs = busybox_rootfs(work / "rootfs")
        cases: list[Case] = []
        for engine in busybox_engines(work, rootfs, stack, timeout=args.timeout):
            cases += cases_for(engine, default_network=engine.name != "docker")
        floor = runc_bundle(work, rootfs)
        if floor is not None:
            cases.append(Case("runc run", "network none", floor))
        unshare = ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net"]
        cases.append(Case("unshare", "network none", [*unshare, "chroot", str(rootfs), "/bin/true"]))
        measure(cases, runs=args.runs, timeout=args.timeout)
        print(report(cases, runs=args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
