"""Container lifecycle with Docker's semantics: create, start, stop, kill, wait, remove.

A container is assembled in one direction: the storage driver gives it a read-write layer on the
image, the network driver an attachment, the isolation driver its processes; each step that fails
undoes the ones before it. Starting hands the container to its monitor (core/monitor.py), which
outlives this command.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
from typing import Any

from dockyard.core.containers import ACTIVE_STATUSES, Container, ensure_name_free, running_state, valid_name
from dockyard.core.drivers import DriverKind
from dockyard.core.engine import Engine
from dockyard.core.errors import ConflictError, DockyardError, NotFoundError, UsageError
from dockyard.core.log import get_logger
from dockyard.core.run_config import CreateOptions, to_records
from dockyard.core.store import new_id
from dockyard.core.timestamps import now_rfc3339

__all__ = [
    "create_container",
    "kill_container",
    "launch",
    "release",
    "remove_container",
    "remove_stopped",
    "start_container",
    "stop_container",
    "wait_container",
]

log = get_logger(__name__)
STATE_POLL = 0.02


def _image_for(engine: Engine, name: str, *, pull: str) -> Any:
    """The image to run, pulled as `--pull missing|always|never` says (Docker's messages on stderr).

    The registry client (httpx) is imported only when a pull happens: it costs more start-up
    time than the rest of `run`.
    """
    if pull not in ("missing", "always", "never"):
        raise UsageError(f'invalid pull option: "{pull}": must be one of "always", "missing" or "never"')
    if pull != "always":
        try:
            return engine.images.resolve(name)
        except NotFoundError:
            if pull == "never":
                raise
    from dockyard.core.registry.pull import ensure_image, pull_image

    if pull == "always":
        return pull_image(engine, name, out=sys.stderr)
    return ensure_image(engine, name, out=sys.stderr)


def create_container(engine: Engine, options: CreateOptions) -> Container:
    """Create a container from an image: its record, its read-write layer, its volumes."""
    image = _image_for(engine, options.image, pull=options.pull)
    records = to_records(options, image_config=image.config, image_name=options.image)
    from dockyard.core.network_endpoints import plan_networks

    network = plan_networks(
        engine,
        network=options.network,
        aliases=options.network_aliases,
        publishes=bool(records["HostConfig"]["PortBindings"]),
        hostname=options.hostname,
    )
    records["HostConfig"]["NetworkMode"] = network.mode
    if network.hostname:
        records["Config"]["Hostname"] = network.hostname
    isolation = engine.select_driver(
        DriverKind.ISOLATION, options.runtime or engine.settings.isolation_driver
    )
    container_id = new_id()
    storage = engine.storage
    engine.recover()
    with engine.containers.locked():
        if options.name is not None:
            name = valid_name(options.name)
            ensure_name_free(engine.containers, name)
        else:
            from dockyard.core.names import generate_name

            name = generate_name(engine.containers.names())
        storage.create_rw(container_id, image.layers[-1][7:] if image.layers else None)
        try:
            _create_volumes(engine, records["HostConfig"], image.config, container_id)
            config = {
                "Id": container_id,
                "Name": name,
                "Created": now_rfc3339(),
                "Image": image.id,
                "Path": (records["Config"]["Entrypoint"] or records["Config"]["Cmd"] or [""])[0],
                "Args": [*(records["Config"]["Entrypoint"] or []), *(records["Config"]["Cmd"] or [])][1:],
                "Driver": engine.storage_name,
                "Dockyard": {
                    "NetworkDriver": network.driver,
                    "Networks": network.endpoints,
                    "IsolationDriver": isolation.name,
                    "IsolationPlugin": isolation.plugin,
                },
                **records,
            }
            container = engine.containers.create(config)
        except BaseException:
            storage.remove(container_id)
            raise
    log.info("container created", container_id=container_id, name=name, image=image.id)
    engine.hooks.container_created(container_id=container_id, name=name, image=image.id)
    return container


def _create_volumes(
    engine: Engine, host: dict[str, Any], image_config: dict[str, Any], container_id: str
) -> None:
    """Create named volumes on first use and anonymous ones for `-v /path` and the image's VOLUME."""
    mounts = host["Mounts"]
    taken = {record["Destination"] for record in mounts}
    for path in (image_config.get("config") or {}).get("Volumes") or {}:
        if path not in taken:
            mounts.append(
                {"Type": "volume", "Name": "", "Source": "", "Destination": path, "RW": True, "Options": []}
            )
    for record in mounts:
        if record["Type"] != "volume":
            continue
        volume = engine.volumes.create(record["Name"] or None, anonymous=not record["Name"])
        record["Name"] = volume["Name"]
        record["Source"] = volume["Mountpoint"]


def prepare(engine: Engine, container: Container) -> None:
    """Mount the root filesystem, attach the network and write the spec the driver will start.

    The CLI does this before handing the container to its monitor, with everything already
    imported; the monitor's starter then only has to call the isolation driver.
    """
    from dockyard.core.container_spec import build_spec
    from dockyard.core.network_endpoints import attach_all, detach_all
    from dockyard.core.network_hosts import refresh_peers
    from dockyard.core.port_bindings import port_mappings

    rootfs = engine.storage.mount(container.id)
    try:
        joined = attach_all(
            engine, container, ports=port_mappings(container.config["HostConfig"].get("PortBindings"))
        )
        try:
            engine.containers.update_state(container, durable=False, NetworkSettings=joined.settings)
            spec = build_spec(
                container,
                rootfs=rootfs,
                network=joined.attachment,
                volumes=engine.volumes,
                cgroup_parent="dockyard",
                etc_from=joined.etc_from,
            )
            from dockyard.core.store import atomic_write

            atomic_write(container.directory / "spec.json", spec.to_json().encode())
            refresh_peers(engine, container)
        except BaseException:
            detach_all(engine, container)
            engine.containers.update_state(container, durable=False, NetworkSettings=None)
            raise
    except BaseException:
        engine.storage.unmount(container.id)
        raise


def launch(
    engine: Engine, container: Container, *, stdio: tuple[int, int, int], console: int | None = None
) -> int:
    """Start the container's first process from its prepared spec (preparing it if needed);
    `console` receives its terminal (IsolationDriver.start)."""
    from dockyard.core.spec import ContainerSpec

    spec_path = container.directory / "spec.json"
    if not spec_path.exists():
        prepare(engine, container)
    spec = ContainerSpec.from_json(spec_path.read_text())
    isolation = engine.driver(DriverKind.ISOLATION, container.config["Dockyard"]["IsolationDriver"])
    try:
        return int(isolation.start(spec, stdio=stdio, console=console))
    except BaseException:
        release(engine, container)
        raise


def release(engine: Engine, container: Container) -> None:
    """Undo `launch` after the container's processes ended: cgroups, network, root mount.

    The monitor's cleaner and `rm` may both get here; the lock and the spec file (removed last)
    make the second one a no-op.
    """
    from dockyard.core.network_endpoints import detach_all
    from dockyard.core.network_hosts import refresh_peers
    from dockyard.core.spec import ContainerSpec
    from dockyard.core.store import file_lock

    names = container.config["Dockyard"]
    spec_path = container.directory / "spec.json"
    with file_lock(container.directory / "release.lock"):
        if not spec_path.exists():
            return
        spec = ContainerSpec.from_json(spec_path.read_text())
        engine.driver(DriverKind.ISOLATION, names["IsolationDriver"]).delete(spec)
        detach_all(engine, container)
        engine.containers.update_state(container, durable=False, NetworkSettings=None)
        refresh_peers(engine, container)
        engine.storage.unmount(container.id)
        spec_path.unlink()


def _wait_for_monitor(container: Container, *, timeout: float = 30.0) -> None:
    """Let a monitor that is still cleaning up finish before the container is taken apart."""
    from dockyard.core.procs import alive

    deadline = time.monotonic() + timeout
    while alive(int(container.state.get("MonitorPid") or 0), container.state.get("MonitorStart")):
        if time.monotonic() > deadline:
            return
        time.sleep(STATE_POLL)


def start_container(engine: Engine, container: Container, *, attach: bool, stdin: bool = False) -> None:
    """Start the container and hand it to a new monitor.

    This process mounts the root filesystem, attaches the network and writes the spec; a child
    of it starts the container and becomes the monitor (core/monitor_launch.py). The monitor
    relays nothing until a client says hello: with `attach` the caller's attach session is that
    client; otherwise a bare hello is sent here, after plugins heard that the container started.
    A failed start is recorded as Docker does (exited, its error and exit code; removed with
    `--rm`) and raised.
    """
    if container.running:
        return
    _wait_for_monitor(container)  # the last run's monitor records the exit before it cleans up
    attach_socket = engine.attach_socket(container.id)
    params = {
        "sys_path": [path for path in sys.path if path],
        "settings": {
            "root": str(engine.settings.root),
            "runroot": str(engine.settings.runroot),
            "rootless": engine.settings.rootless,
            "storage_driver": engine.storage_name,
            "log_level": engine.settings.log_level,
            "log_format": engine.settings.log_format,
        },
        "log_path": str(container.path(f"{container.id}-json.log")),
        "attach_socket": str(attach_socket),
        "tty": bool(container.config["Config"].get("Tty")),
        "stdin": stdin or bool(container.config["Config"].get("OpenStdin")),
        "restart": container.config["HostConfig"]["RestartPolicy"],
        "auto_remove": bool(container.config["HostConfig"].get("AutoRemove")),
    }
    container.path("monitor.json").write_text(json.dumps(params))
    engine.containers.update_state(
        container, durable=False, Status="created", StopRequested=False, Error="", MonitorPid=0
    )
    from dockyard.core.monitor_launch import spawn_monitor
    from dockyard.core.procs import start_time

    try:
        prepare(engine, container)  # a bad --user or a busy port fails here, --rm still applies
        monitor_pid, pid = spawn_monitor(engine, container, tty=params["tty"], stdin=params["stdin"])
    except DockyardError as exc:
        _failed_start(engine, container, exc)
        raise
    engine.containers.update_state(
        container, **running_state(pid), MonitorPid=monitor_pid, MonitorStart=start_time(monitor_pid)
    )
    engine.hooks.container_started(container_id=container.id, pid=pid)
    if not attach:
        from dockyard.core.attach import say_hello

        say_hello(attach_socket)


def _failed_start(engine: Engine, container: Container, error: DockyardError) -> None:
    """Record a start that failed (the start itself was undone), tell plugins, honour `--rm`."""
    engine.containers.update_state(
        container,
        Status="exited",
        ExitCode=error.exit_code,
        Error=str(error),
        Pid=0,
        FinishedAt=now_rfc3339(),
    )
    fresh = engine.containers.load(container.id)
    release(engine, fresh)
    engine.hooks.container_stopped(container_id=container.id, exit_code=error.exit_code)
    if fresh.config["HostConfig"].get("AutoRemove"):
        remove_stopped(engine, fresh, volumes=True)


def wait_for_start(engine: Engine, container: Container, *, timeout: float = 60.0) -> Container:
    """Wait until the monitor has started the container or given up; raise its start error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = engine.containers.load(container.id)
        status = current.status
        if status in ("running", "paused") or (status == "exited" and not current.state.get("Error")):
            return current
        if status == "exited":
            error = DockyardError(str(current.state.get("Error")))
            error.exit_code = int(current.state.get("ExitCode") or 125)
            raise error
        time.sleep(STATE_POLL)
    raise DockyardError(f"container {container.id[:12]} did not start within {timeout:.0f}s")


def _signal_number(name: str | None, default: int = signal.SIGTERM) -> int:
    if not name:
        return int(default)
    text = name.upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError:
        raise UsageError(f"invalid signal: {name}") from None


def kill_container(engine: Engine, container: Container, signal_name: str | None = "KILL") -> None:
    """Send a signal to the container's first process, as `docker kill -s`."""
    number = _signal_number(signal_name, signal.SIGKILL)
    if container.status not in ACTIVE_STATUSES or not container.pid:
        raise ConflictError(
            f"Cannot kill container: {container.name}: container {container.id} is not running"
        )
    stopping = number in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
    if stopping:
        engine.containers.update_state(container, StopRequested=True)
    with contextlib.suppress(ProcessLookupError):
        os.kill(container.pid, number)
    if stopping:
        from dockyard.core.container_ops import thaw_if_paused

        thaw_if_paused(engine, container)  # a frozen process acts on the signal only once thawed


def wait_container(engine: Engine, container: Container, *, timeout: float | None = None) -> int:
    """Block until the container is no longer active; its exit code, as `docker wait`."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            current = engine.containers.load(container.id)
        except NotFoundError:
            return int(container.state.get("ExitCode") or 0)
        if current.status not in ACTIVE_STATUSES and not (
            current.status == "created" and current.state.get("MonitorPid")
        ):
            return int(current.state.get("ExitCode") or 0)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(STATE_POLL)


def stop_container(
    engine: Engine, container: Container, *, timeout: int | None = None, signal_name: str | None = None
) -> None:
    """STOPSIGNAL (SIGTERM by default), then SIGKILL after the timeout, as `docker stop -t`.
    A container restarting between two runs (no pid) has its restart policy cancelled."""
    if container.status not in ACTIVE_STATUSES or not (container.pid or container.status == "restarting"):
        return
    config = container.config["Config"]
    number = _signal_number(signal_name or config.get("StopSignal"))
    grace = timeout if timeout is not None else (config.get("StopTimeout") or 10)
    engine.containers.update_state(container, StopRequested=True)
    if container.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(container.pid, number)
    from dockyard.core.container_ops import thaw_if_paused

    thaw_if_paused(engine, container)  # a frozen process acts on the signal only once thawed
    try:
        wait_container(engine, container, timeout=grace)
        return
    except TimeoutError:
        pass
    current = engine.containers.load(container.id)
    if current.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(current.pid, signal.SIGKILL)
    wait_container(engine, container, timeout=30)


def finish_attached(engine: Engine, container_id: str, code: int) -> None:
    """What an attached client does in the monitor's stead once the container has exited (see
    core/monitor.py's cleanup handoff): release it, tell plugins, and remove it for `--rm`."""
    try:
        fresh = engine.containers.load(container_id)
    except NotFoundError:
        return  # a failed start: the monitor has already removed it (--rm)
    release(engine, fresh)
    engine.hooks.container_stopped(container_id=container_id, exit_code=code)
    if fresh.config["HostConfig"].get("AutoRemove"):
        remove_stopped(engine, fresh, volumes=True)


def remove_stopped(engine: Engine, container: Container, *, volumes: bool) -> None:
    """Delete a stopped container: its layer, its anonymous volumes (with `volumes`), its record."""
    engine.storage.remove(container.id)
    if volumes:
        for record in container.config["HostConfig"].get("Mounts") or []:
            if record["Type"] == "volume":
                volume = engine.volumes.get(record["Name"]) if record["Name"] else None
                if volume and volume.get("Anonymous"):
                    engine.volumes.remove(record["Name"], in_use_by=[])
    with engine.containers.locked():
        engine.containers.delete(container)
    # The monitor's runtime directory (its attach socket lived there) goes with the record.
    shutil.rmtree(engine.container_runtime_dir(container.id), ignore_errors=True)
    engine.hooks.container_removed(container_id=container.id)


def remove_container(engine: Engine, container: Container, *, force: bool, volumes: bool) -> None:
    """`docker rm [-f] [-v]`: refuse a running container unless forced."""
    if container.status in ACTIVE_STATUSES:
        if not force:
            raise ConflictError(
                f"cannot remove container {container.name}: container is {container.status}: "
                "stop the container before removing or force remove"
            )
        stop_container(engine, container, timeout=0, signal_name="KILL")  # also when restarting
        container = engine.containers.load(container.id)
    _wait_for_monitor(container)
    if not container.directory.exists():
        return  # `--rm`: the monitor removed it
    release(engine, container)
    remove_stopped(engine, container, volumes=volumes)
