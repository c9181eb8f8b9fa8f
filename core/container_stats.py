"""`stats`: each container's resource use in Docker's columns, sampled through its isolation driver.

CPU, memory (with its limit), task count and block I/O come from the driver's `usage(spec)`;
network traffic from the container's network namespace (/proc/PID/net/dev, loopback left out,
nothing when it shares the host's). CPU % is the CPU time used between two samples over the wall
time between them, as Docker computes it, so every frame needs a previous sample: the first one
is taken SAMPLE_SECONDS before the first frame. Without a memory limit the host's memory is the
limit, as Docker shows it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from dockyard.core.containers import Container
from dockyard.core.drivers import DriverKind, ResourceUsage
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError
from dockyard.core.units import bytes_size, human_size

__all__ = ["SAMPLE_SECONDS", "STATS_HEADERS", "STATS_TABLE", "Sample", "stats_frames"]

SAMPLE_SECONDS = 1.0
STATS_TABLE = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
)
STATS_HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


@dataclass(frozen=True)
class Sample:
    """One reading of a running container."""

    taken: float  # time.monotonic()
    usage: ResourceUsage
    net_rx: int
    net_tx: int


def _network_bytes(pid: int) -> tuple[int, int]:
    """Bytes received and sent on the container's interfaces other than loopback."""
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            return 0, 0  # the host's network: its traffic is not the container's
        with open(f"/proc/{pid}/net/dev", encoding="ascii") as handle:
            lines = handle.read().splitlines()[2:]
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    received = sent = 0
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() != "lo" and len(fields) >= 9:
            received += int(fields[0])
            sent += int(fields[8])
    return received, sent


def _sample(engine: Engine, container: Container) -> Sample | None:
    """A reading of the container, None when it is not running (or stops while being read)."""
    from dockyard.core.spec import ContainerSpec

    spec_path = container.path("spec.json")
    if not container.running or not container.pid:
        return None
    try:
        spec = ContainerSpec.from_json(spec_path.read_text())
        driver = engine.driver(DriverKind.ISOLATION, container.config["Dockyard"]["IsolationDriver"])
        usage = driver.usage(spec)
    except FileNotFoundError:
        return None
    except DockyardError:
        if not spec_path.exists():
            return None
        raise
    return Sample(time.monotonic(), usage, *_network_bytes(container.pid))


def _host_memory() -> int:
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _row(
    container: Container,
    label: str,
    before: Sample | None,
    after: Sample | None,
    *,
    host_memory: int,
    no_trunc: bool,
) -> dict[str, str]:
    usage = after.usage if after else ResourceUsage()
    cpu = 0.0
    if before is not None and after is not None and after.taken > before.taken:
        cpu = (usage.cpu_seconds - before.usage.cpu_seconds) / (after.taken - before.taken) * 100
    limit = (usage.memory_limit or host_memory) if after else 0
    memory_percent = usage.memory_bytes / limit * 100 if limit else 0.0
    rx, tx = (after.net_rx, after.net_tx) if after else (0, 0)
    return {
        "Container": label,
        "ID": container.id if no_trunc else container.id[:12],
        "Name": container.name,
        "CPUPerc": f"{max(cpu, 0.0):.2f}%",
        "MemUsage": f"{bytes_size(usage.memory_bytes)} / {bytes_size(limit)}",
        "MemPerc": f"{memory_percent:.2f}%",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": f"{human_size(usage.block_read)} / {human_size(usage.block_write)}",
        "PIDs": str(usage.pids),
    }


def stats_frames(
    engine: Engine, containers: Callable[[], list[tuple[str, Container]]], *, no_trunc: bool
) -> Iterator[list[dict[str, str]]]:
    """Rows for every container `containers()` names (label as given, container), one frame
    every SAMPLE_SECONDS; the list is asked again for every frame, so new containers appear."""
    host_memory = _host_memory()
    previous: dict[str, Sample | None] = {
        container.id: _sample(engine, container) for _, container in containers()
    }
    while True:
        time.sleep(SAMPLE_SECONDS)
        current = {}
        rows = []
        for label, container in containers():
            sample = _sample(engine, container)
            current[container.id] = sample
            rows.append(
                _row(
                    container,
                    label,
                    previous.get(container.id),
                    sample,
                    host_memory=host_memory,
                    no_trunc=no_trunc,
                )
            )
        previous = current
        yield rows
