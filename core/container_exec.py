"""`exec`: another process in a running container, started by the container's isolation driver.

The process is built like the container's first one (core/container_spec.py): the user resolved
through the passwd and group files inside the running container (`/proc/PID/root`), the
container's environment plus `-e`, its working directory unless `-w`, and its capabilities,
seccomp profile and limits (all capabilities with `--privileged`).

How the CLI waits for it. The IsolationDriver contract says `exec` is called in a child subreaper
that exits right after, and that the process it returns is reparented to that caller's parent. So
the CLI marks itself a child subreaper and forks a helper that does exactly that: it becomes a
subreaper, calls the driver, reports the pid (or the error) on a pipe and exits. The driver may
change the helper's state as it likes (non-dumpable, another pid namespace for its children), none
of which touches the CLI. Once the helper is reaped, the new process (and whatever intermediate
processes the driver left) are the CLI's children: it waits with a pidfd and `waitpid`.

The process never gets the CLI's own descriptors: its stdio are pipes or a pty the CLI relays
(core/exec_relay.py), or /dev/null with `-d` (its own pty with `-d -t`, held by a holder the CLI
leaves behind), so it cannot reach the user's terminal (TIOCSTI) or reopen the CLI's files
through /proc/self/fd.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from dockyard.core import errors
from dockyard.core.containers import Container
from dockyard.core.drivers import DriverKind
from dockyard.core.engine import Engine
from dockyard.core.errors import ConflictError, DockyardError, UsageError
from dockyard.core.spec import ContainerSpec, ProcessSpec, User

__all__ = ["ExecRequest", "build_process", "run_exec", "running_spec", "start_process"]

_REPORT_LIMIT = 65536


@dataclass(frozen=True)
class ExecRequest:
    """What `docker exec` was asked for."""

    command: tuple[str, ...]
    env: tuple[str, ...] = ()
    user: str | None = None
    workdir: str | None = None
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    privileged: bool = False


def running_spec(container: Container) -> ContainerSpec:
    """The spec a running container was started with; Docker's refusal when it is not running."""
    if container.status == "paused":
        raise ConflictError(f"container {container.id} is paused, unpause the container before exec")
    spec_path = container.path("spec.json")
    if container.status != "running" or not container.pid or not spec_path.exists():
        raise ConflictError(f"container {container.id} is not running")
    return ContainerSpec.from_json(spec_path.read_text())


def build_process(container: Container, spec: ContainerSpec, request: ExecRequest) -> ProcessSpec:
    """The ProcessSpec for `request`, on the container's settings (module docstring)."""
    from dockyard.core.container_spec import all_capabilities, process_env
    from dockyard.core.run_config import merge_env
    from dockyard.core.users import resolve_user

    if not request.command:
        raise UsageError("exec needs a command to run")
    config = container.config["Config"]
    user = resolve_user(f"/proc/{container.pid}/root", request.user or config.get("User") or "")
    env = process_env(
        {**config, "Env": merge_env(list(config.get("Env") or []), list(request.env))},
        hostname=spec.hostname or container.id[:12],
        home=user.home,
        tty=request.tty,
    )
    main = spec.process
    return ProcessSpec(
        args=request.command,
        env=tuple(env),
        cwd=request.workdir or config.get("WorkingDir") or "/",
        user=User(uid=user.uid, gid=user.gid, additional_gids=user.additional_gids),
        terminal=request.tty,
        capabilities=all_capabilities() if request.privileged else main.capabilities,
        no_new_privileges=main.no_new_privileges,
        seccomp_profile=main.seccomp_profile,
        rlimits=main.rlimits,
    )


def start_process(
    engine: Engine,
    container: Container,
    spec: ContainerSpec,
    process: ProcessSpec,
    *,
    stdio: tuple[int, int, int],
    console: int | None = None,
) -> int:
    """Start `process` in the container through a helper (module docstring); return its pid,
    which is the caller's child from now on. The caller must be a child subreaper. With a
    terminal, the driver sends it to `console` (IsolationDriver.start)."""
    driver = engine.driver(DriverKind.ISOLATION, container.config["Dockyard"]["IsolationDriver"])
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    handled = sys.exc_info()[1]  # the CLI may run inside an `except` block: not ours to report
    helper = os.fork()
    if helper == 0:
        record: dict[str, Any] = {"error": "DockyardError", "message": "the exec helper failed"}
        try:
            os.close(report_r)
            from dockyard.core.linux.process import set_child_subreaper

            set_child_subreaper()
            record = {
                "pid": driver.exec(spec, pid=container.pid, process=process, stdio=stdio, console=console)
            }
        except DockyardError as exc:
            record = {"error": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
        except OSError as exc:
            record = {"error": "DockyardError", "message": f"exec: {exc.strerror or exc}"}
        finally:
            unexpected = sys.exc_info()[1]
            if unexpected is not None and unexpected is not handled:  # a bug: say what it was
                record = {"error": "DockyardError", "message": f"the exec helper failed: {unexpected!r}"}
            os.write(report_w, json.dumps(record).encode()[:_REPORT_LIMIT])
            os._exit(0)
    os.close(report_w)
    try:
        report = _read_report(report_r)
    finally:
        os.close(report_r)
        os.waitpid(helper, 0)
    if "pid" in report:
        return int(report["pid"])
    raise _error(report)


def _read_report(fd: int) -> dict[str, Any]:
    chunks = []
    while chunk := os.read(fd, _REPORT_LIMIT):
        chunks.append(chunk)
    try:
        report = json.loads(b"".join(chunks))
    except ValueError:
        return {"message": "the exec helper died without a report"}
    return report if isinstance(report, dict) else {"message": f"unreadable exec report: {report!r}"}


def _error(report: dict[str, Any]) -> DockyardError:
    """The helper's error as the same class, so Docker's 126/127 reach the exit status."""
    kind = getattr(errors, str(report.get("error")), None)
    if not (isinstance(kind, type) and issubclass(kind, DockyardError)):
        kind = DockyardError
    error = kind(str(report.get("message", "exec failed")))
    if "exit_code" in report:
        error.exit_code = int(report["exit_code"])
    return error


def run_exec(
    engine: Engine,
    container: Container,
    request: ExecRequest,
    *,
    detach_keys: bytes | None = None,
) -> int:
    """Run `request` in the container: its exit status, 0 at once with `detach`, or
    exec_relay.DETACHED when the user typed `detach_keys` (Docker's default when None)."""
    from dockyard.core import exec_relay
    from dockyard.core.detach_keys import DEFAULT_DETACH_BYTES
    from dockyard.core.linux.process import set_child_subreaper

    if request.tty and request.interactive and not request.detach and not os.isatty(0):
        raise UsageError("the input device is not a TTY")
    spec = running_spec(container)
    process = build_process(container, spec, request)
    set_child_subreaper()
    if request.detach and not request.tty:
        with exec_relay.null_stdio() as stdio:
            start_process(engine, container, spec, process, stdio=stdio)
        return 0
    session = exec_relay.open_session(tty=request.tty, stdin=request.interactive and not request.detach)
    try:
        pid = start_process(
            engine, container, spec, process, stdio=session.process_stdio, console=session.console_fd
        )
        session.take_terminal()
    except BaseException:
        session.close()
        raise
    if request.detach and session.master is not None:  # `-d -t`: a holder keeps its terminal
        try:
            exec_relay.hand_to_holder(session.master, pid)
        finally:
            session.close()
        return 0
    return exec_relay.relay(pid, session, detach_keys=detach_keys or DEFAULT_DETACH_BYTES)
