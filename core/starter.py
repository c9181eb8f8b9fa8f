"""What the monitor's short-lived children do: start a container, clean up after it, remove it.

These run in processes forked from the monitor, so they may import anything: the monitor itself
stays small. Each reports one JSON object on `report_fd` (the container's pid, or an error with
the exit status Docker would give) and exits. A start reports as soon as the process runs and
tells plugins afterwards, so lifecycle listeners never delay a container.
"""

from __future__ import annotations

import json
import os
from typing import Any

from dockyard.core.errors import DockyardError

__all__ = ["child_main", "send_report"]

PR_SET_CHILD_SUBREAPER = 36


def send_report(fd: int, payload: dict[str, Any]) -> None:
    """Send `payload` as one JSON object on `fd` and close it (monitor.read_report reads it)."""
    with os.fdopen(fd, "wb") as report:
        report.write(json.dumps(payload).encode())


def _engine(directory: str, *, builtin_only: bool) -> tuple[Any, Any]:
    """The engine and container; with `builtin_only`, third-party plugins are not loaded."""
    from pathlib import Path

    from dockyard.core import log
    from dockyard.core.config import Settings
    from dockyard.core.engine import Engine

    with open(os.path.join(directory, "monitor.json"), "rb") as handle:
        settings = json.load(handle)["settings"]
    engine = Engine(
        Settings(
            root=Path(settings["root"]),
            runroot=Path(settings["runroot"]),
            rootless=settings["rootless"],
            storage_driver=settings["storage_driver"],
            log_level=settings["log_level"],
            log_format=settings["log_format"],
        ),
        plugin_autoload=False if builtin_only else None,
    )
    log.configure(level=settings["log_level"], log_format=settings["log_format"])
    return engine, engine.containers.load(os.path.basename(directory))


def _become_subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _builtin_isolation(plugin: str | None, name: str | None) -> Any:
    """The registered built-in isolation driver `plugin` provides as `name`, or None when the
    container was created with a third party's (DriverEntry)."""
    from dockyard.core.drivers import DriverKind, DriverRegistry
    from dockyard.core.errors import NotFoundError
    from dockyard.plugins.builtin_drivers import dockyard_register_drivers

    registry = DriverRegistry()
    dockyard_register_drivers(register=registry)
    try:
        entry = registry.get(DriverKind.ISOLATION, name or "")
    except NotFoundError:
        return None
    return entry if entry.plugin == plugin else None


def _prepared_driver(directory: str, entry: Any) -> Any:
    """The built-in isolation driver `entry` registers, built for this container's settings.

    The fast path for a first start that the CLI prepared: no plugin manager, no entry points,
    no engine, only the one module that starts the process.
    """
    from pathlib import Path

    from dockyard.core.drivers import DriverContext

    with open(os.path.join(directory, "monitor.json"), "rb") as handle:
        settings = json.load(handle)["settings"]
    return entry.factory(
        DriverContext(
            home=Path(settings["root"]) / "isolation" / entry.name,
            run_dir=Path(settings["runroot"]) / "isolation" / entry.name,
            rootless=settings["rootless"],
        )
    )


def _start(directory: str, stdio: tuple[int, int, int], console: int | None) -> tuple[str, int]:
    """Start the container's first process; (container id, pid). `console` receives its
    terminal (IsolationDriver.start)."""
    from pathlib import Path

    from dockyard.core.containers import ContainerStore, running_state

    with open(os.path.join(directory, "config.json"), "rb") as handle:
        names = json.load(handle)["Dockyard"]
    spec_path = os.path.join(directory, "spec.json")
    builtin = _builtin_isolation(names.get("IsolationPlugin"), names.get("IsolationDriver"))
    if builtin is not None and os.path.exists(spec_path):
        from dockyard.core.spec import ContainerSpec

        store = ContainerStore(Path(directory).parent)
        container = store.load(os.path.basename(directory))
        driver = _prepared_driver(directory, builtin)
        _become_subreaper()
        with open(spec_path) as handle:
            pid = int(driver.start(ContainerSpec.from_json(handle.read()), stdio=stdio, console=console))
    else:
        from dockyard.core.lifecycle import launch

        engine, container = _engine(directory, builtin_only=False)
        store = engine.containers
        _become_subreaper()
        pid = launch(engine, container, stdio=stdio, console=console)
    store.update_state(container, **running_state(pid))
    return container.id, pid


def _notify_started(directory: str, container_id: str, pid: int) -> None:
    """Tell every plugin, third-party ones included, once the monitor already has the pid."""
    from dockyard.core.log import get_logger

    try:
        engine, _ = _engine(directory, builtin_only=False)
        engine.hooks.container_started(container_id=container_id, pid=pid)
    except (DockyardError, OSError) as exc:
        get_logger(__name__).warning("a plugin failed on container start", error=str(exc))


def _cleanup(directory: str, *, remove: bool) -> dict[str, Any]:
    from dockyard.core.lifecycle import release, remove_stopped

    engine, container = _engine(directory, builtin_only=False)
    release(engine, container)
    engine.hooks.container_stopped(
        container_id=container.id, exit_code=int(container.state.get("ExitCode") or 0)
    )
    if remove:
        remove_stopped(engine, container, volumes=True)
    return {"done": True}


def child_main(
    action: str,
    directory: str,
    *,
    stdio: tuple[int, int, int] | None,
    report_fd: int,
    console: int | None = None,
) -> None:
    """Run `action` (start, cleanup, remove) for the container in `directory`, report, exit;
    a start with a terminal sends it to `console`."""
    started: tuple[str, int] | None = None
    result: dict[str, Any]
    try:
        if action == "start":
            if stdio is None:
                raise ValueError("a start needs the container's standard descriptors")
            started = _start(directory, stdio, console)
            result = {"pid": started[1]}
        else:
            result = _cleanup(directory, remove=action == "remove")
    except DockyardError as exc:
        result = {"error": str(exc), "exit_code": exc.exit_code}
    except OSError as exc:
        result = {"error": str(exc), "exit_code": 125}
    send_report(report_fd, result)
    if started is not None:
        _notify_started(directory, *started)
    os._exit(0)
