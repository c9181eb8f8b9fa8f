"""What each network costs: `run --rm busybox true` per network driver, and TCP throughput from
the host into a container, side by side with podman's and docker's default networks.

Run as root from the repository:  sudo .venv/bin/python bench/network.py [--runs N]

Latency: dockyard with every network driver (none, host, bridge, pasta, slirp4netns), podman with
none and its default network, docker with none and its default bridge (a private dockerd whose
docker0 gets 10.213.0.1/24 and no iptables rules), all on the same busybox image, round-robin
after one warm-up each (bench/startup.py's `measure`). The table gives medians and what each
network adds to the same engine's `--network none`.

Throughput: `iperf3 -c 127.0.0.1` on the host against `iperf3 -s` in a container published with
`-p PORT:5201`, for bridge, pasta and slirp4netns, interleaved, median of the runs. No static
iperf3 exists, so the host's own (Debian's iperf3) runs in the busybox container: /usr, /usr/lib
as /lib and /usr/lib64 as /lib64 bind-mounted read-only give it its loader and libraries, with
nothing copied and the same binary on both ends. Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import IMAGE, busybox_engines, busybox_rootfs
from startup import BenchError, Case, Engine, measure, run

DOCKYARD_NETWORKS = ("none", "host", "bridge", "pasta", "slirp4netns")
THROUGHPUT_NETWORKS = ("bridge", "pasta", "slirp4netns")
HOST_IPERF3 = ("-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro")
DOCKER_BRIDGE_IP = "10.213.0.1/24"


def latency_cases(engines: list[Engine]) -> list[Case]:
    """`run --rm IMAGE true` per dockyard network driver, and none vs default for the peers."""
    cases = []
    for engine in engines:
        base = [engine.binary, *engine.store_args, "run", "--rm"]
        networks = DOCKYARD_NETWORKS if engine.name == "dockyard" else ("none", "")
        for network in networks:
            flags = ["--network", network] if network else []
            cases.append(Case(engine.name, network or "default", [*base, *flags, IMAGE, "true"]))
    return cases


def latency_report(cases: list[Case], *, runs: int) -> str:
    """Medians in milliseconds and what each network adds to its engine's `--network none`."""
    lines = [f"run --rm IMAGE true: median of {runs} runs, milliseconds (lower is better)"]
    medians = {(c.engine, c.action): statistics.median(c.samples) for c in cases if c.samples}
    lines.append(f"{'engine':<10} {'network':<12} {'median':>8} {'added to none':>14}")
    for (engine, network), median in medians.items():
        floor = medians.get((engine, "none"))
        added = f"{(median - floor) * 1000:+8.1f}" if floor is not None and network != "none" else ""
        lines.append(f"{engine:<10} {network:<12} {median * 1000:8.1f} {added:>14}")
    lines += [f"failed: {case.engine} {case.action}: {case.error}" for case in cases if case.error]
    return "\n".join(lines)


def free_port() -> int:
    """A TCP port free on the host's loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def iperf3_once(engine: Engine, network: str, *, seconds: int, timeout: float) -> float:
    """One host -> container iperf3 run over a published port; bits per second received."""
    port = free_port()
    container = run(
        [
            engine.binary, *engine.store_args, "run", "-d", "--network", network, "-p", f"{port}:5201",
            *HOST_IPERF3, IMAGE, "/usr/bin/iperf3", "--server", "--one-off",
        ],
        timeout=timeout,
    ).stdout.strip()  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            client = subprocess.run(
                ["iperf3", "--client", "127.0.0.1", "--port", str(port), "--time", str(seconds), "--json"],
                capture_output=True, text=True, timeout=timeout + seconds, check=False,
            )  # fmt: skip
            if client.returncode == 0:
                return float(json.loads(client.stdout)["end"]["sum_received"]["bits_per_second"])
            if time.monotonic() > deadline:  # the server inside may still be starting: retry
                raise BenchError(f"iperf3 over {network}: {client.stdout.strip()[-200:]}")
            time.sleep(0.2)
    finally:
        run([engine.binary, *engine.store_args, "rm", "-f", container], timeout=timeout)


def throughput(engine: Engine, *, runs: int, seconds: int, timeout: float) -> dict[str, list[float]]:
    """Interleaved iperf3 runs per network; a network that fails is reported, not fatal."""
    samples: dict[str, list[float]] = {network: [] for network in THROUGHPUT_NETWORKS}
    for round_number in range(runs):
        shift = round_number % len(THROUGHPUT_NETWORKS)
        for network in THROUGHPUT_NETWORKS[shift:] + THROUGHPUT_NETWORKS[:shift]:
            try:
                samples[network].append(iperf3_once(engine, network, seconds=seconds, timeout=timeout))
            except BenchError as exc:
                print(f"note: {exc}", file=sys.stderr)
    return samples


def throughput_report(samples: dict[str, list[float]], *, seconds: int) -> str:
    """Median Gbit/s per network and each one's ratio to the bridge."""
    lines = [f"TCP host -> container, iperf3 {seconds} s per run, median Gbit/s (higher is better)"]
    bridge = statistics.median(samples["bridge"]) if samples["bridge"] else 0.0
    for network, values in samples.items():
        if not values:
            lines.append(f"{network:<12} failed")
            continue
        median = statistics.median(values)
        ratio = f"{median / bridge:.2f}x bridge" if bridge else ""
        lines.append(f"{network:<12} {median / 1e9:8.2f}   {ratio}  ({len(values)} runs)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Prepare the engines with one image, measure latency then throughput, print both tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per latency case (default 10)")
    parser.add_argument("--iperf-runs", type=int, default=3, help="iperf3 runs per network (default 3)")
    parser.add_argument("--iperf-seconds", type=int, default=3, help="length of one iperf3 run (default 3)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run counts as failed")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("network.py: run as root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as temp, contextlib.ExitStack() as stack:
        work = Path(temp)
        rootfs = busybox_rootfs(work / "rootfs")
        engines = busybox_engines(
            work, rootfs, stack, timeout=args.timeout, docker_bridge_ip=DOCKER_BRIDGE_IP
        )
        cases = latency_cases(engines)
        measure(cases, runs=args.runs, timeout=args.timeout)
        print(latency_report(cases, runs=args.runs))
        dockyard = next(engine for engine in engines if engine.name == "dockyard")
        samples = throughput(dockyard, runs=args.iperf_runs, seconds=args.iperf_seconds, timeout=args.timeout)
        print(throughput_report(samples, seconds=args.iperf_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
