"""What the monitor's short-lived children do: start a container, clean up after it, remove it.

These run in processes forked from the monitor, so they may import anything: the monitor itself
stays small. Each reports one JSON object on `report_fd` (the container's pid, or an error with
the exit status Docker would give) and exits.
"""

from __future__ import annotations

import json
import os
from typing import Any

from dockyard.core.errors import DockyardError

__all__ = ["child_main"]

PR_SET_CHILD_SUBREAPER = 36


def _report(fd: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


def _engine(directory: str) -> tuple[Any, Any]:
    from pathlib import Path

    from dockyard.core.config import Settings
    from dockyard.core.engine import Engine

    with open(os.path.join(directory, "monitor.json"), "rb") as handle:
        params = json.load(handle)
    settings = params["settings"]
    engine = Engine(
        Settings(
            root=Path(settings["root"]),
            runroot=Path(settings["runroot"]),
            rootless=settings["rootless"],
            storage_driver=settings["storage_driver"],
            log_level=settings["log_level"],
            log_format=settings["log_format"],
        )
    )
    from dockyard.core import log

    log.configure(level=settings["log_level"], log_format=settings["log_format"])
    container = engine.containers.load(os.path.basename(directory))
    return engine, container


def _become_subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _start(directory: str, stdio: tuple[int, int, int]) -> dict[str, Any]:
    from dockyard.core.lifecycle import launch
    from dockyard.core.procs import start_time
    from dockyard.core.timestamps import now_rfc3339

    engine, container = _engine(directory)
    _become_subreaper()
    pid = launch(engine, container, stdio=stdio)
    engine.containers.update_state(
        container,
        Status="running",
        Pid=pid,
        PidStart=start_time(pid),
        StartedAt=now_rfc3339(),
        ExitCode=0,
        Error="",
        StopRequested=False,
    )
    engine.hooks.container_started(container_id=container.id, pid=pid)
    return {"pid": pid}


def _cleanup(directory: str, *, remove: bool) -> dict[str, Any]:
    from dockyard.core.lifecycle import release, remove_stopped

    engine, container = _engine(directory)
    release(engine, container)
    engine.hooks.container_stopped(
        container_id=container.id, exit_code=int(container.state.get("ExitCode") or 0)
    )
    if remove:
        remove_stopped(engine, container, volumes=True)
    return {"done": True}


def child_main(action: str, directory: str, *, stdio: tuple[int, int, int] | None, report_fd: int) -> None:
    """Run `action` (start, cleanup, remove) for the container in `directory`, report, exit."""
    try:
        if action == "start":
            assert stdio is not None
            result = _start(directory, stdio)
        else:
            result = _cleanup(directory, remove=action == "remove")
    except DockyardError as exc:
        result = {"error": str(exc), "exit_code": exc.exit_code}
    except OSError as exc:
        result = {"error": str(exc), "exit_code": 125}
    _report(report_fd, result)
    os._exit(0)
