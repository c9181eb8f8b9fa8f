"""An idle container's monitor costs little more memory than a bare interpreter (issue 3: at most
4 MB PSS per idle container with 100 running; bench/idle.py measures that figure)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Dockyard

# The monitor's own share above `python -S -I`: its code, its few C modules, `os`, its buffers.
# Running it from source, or importing json, socket or signal, costs 1 MB or more on top.
ALLOWANCE_KIB = 1024


def _private_dirty_kib(pid: int) -> int:
    """Memory only this process holds: what it wrote, shared with no other."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1])
    raise AssertionError(f"no Private_Dirty for process {pid}")


def test_idle_monitor_costs_little_more_than_a_bare_interpreter(
    dockyard: Dockyard, busybox_tar: Path
) -> None:
    dockyard("import", str(busybox_tar), "busybox")
    dockyard("run", "-d", "--network", "none", "--name", "idle", "busybox", "sleep", "300")
    (container_dir,) = [p for p in (dockyard.root / "containers").iterdir() if len(p.name) == 64]
    monitor_pid = json.loads((container_dir / "state.json").read_text())["MonitorPid"]
    bare = subprocess.Popen([sys.executable, "-S", "-I", "-c", "import _signal; _signal.pause()"])
    try:
        time.sleep(1.0)  # both settle: the monitor waits in its idle loop
        extra = _private_dirty_kib(monitor_pid) - _private_dirty_kib(bare.pid)
    finally:
        bare.kill()
        bare.wait()
    assert extra <= ALLOWANCE_KIB, f"the monitor holds {extra} KiB more than a bare interpreter"
    assert dockyard("ps", "--format", "{{.Names}} {{.State}}").stdout == "idle running\n"
    dockyard("rm", "-f", "idle")
