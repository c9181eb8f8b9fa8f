"""The long-lived helper a user-mode network runs per container (pasta, slirp4netns): remember
which process it is, and stop it for good on detach.

The helper outlives the command that started it (the CLI prepares the network and exits), so its
pid and start time go to a small JSON file; the pair names one process even after the pid is
reused, so a stale record can never make `detach` kill a stranger.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from dockyard.core.errors import DriverFailed

__all__ = ["record", "stop"]

STOP_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
_POLL = 0.01


def record(path: Path, pid: int) -> None:
    """Remember helper `pid` (and its start time) in `path`; fail if it already died."""
    from dockyard.core.procs import start_time

    started = start_time(pid)
    if started is None:
        raise DriverFailed(f"the network helper (pid {pid}) exited right after starting")
    path.write_text(json.dumps({"pid": pid, "start": started}))


def stop(path: Path) -> None:
    """Stop the helper `path` names, if it still runs, and forget it; idempotent."""
    from dockyard.core.procs import alive

    try:
        remembered = json.loads(path.read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise DriverFailed(f"cannot read the network helper record {path}: {exc}") from exc
    pid, started = int(remembered["pid"]), int(remembered["start"])
    if alive(pid, started):
        _terminate(pid, started)
    path.unlink(missing_ok=True)


def _terminate(pid: int, started: int) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE; reap it when it is our own child."""
    from dockyard.core.procs import alive

    for sig, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, STOP_GRACE)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            _reap(pid)
            if not alive(pid, started):
                return
            time.sleep(_POLL)
    raise DriverFailed(f"the network helper (pid {pid}) did not exit after SIGKILL")


def _reap(pid: int) -> None:
    """Collect `pid`'s exit status if this process is its parent (it is not, usually)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
