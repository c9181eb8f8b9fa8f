"""Start a container's first process from a child of the CLI that then becomes its monitor.

The CLI has the engine, the plugins and the prepared spec loaded already. A child forked from it
starts the container at once, so the isolation driver's imports are paid once and in a process
that has most of them, and then replaces itself by execve with the lean monitor
(`python -S -I -c MONITOR_BOOT`, core/monitor.py). The container stays that process's child across
the exec, so the monitor reaps it; the child made itself a child subreaper first, and the flag
survives execve. Before the exec the child reports the container's pid, or why the start failed,
on a pipe; the monitor then waits for its first client before it relays any output.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import TYPE_CHECKING, NoReturn

from dockyard.core import monitor
from dockyard.core.errors import DockyardError
from dockyard.core.starter import send_report

if TYPE_CHECKING:
    from dockyard.core.containers import Container
    from dockyard.core.engine import Engine

__all__ = ["spawn_monitor"]

# Import the monitor rather than run it as a script: an import loads the bytecode cache (and
# writes it when it can), while a script is compiled from source in every monitor, leaving about
# 1.3 MB of parser memory behind in each. The argument after it is monitor.py's own path, which
# also names the process in `ps`; the monitor's directory is on sys.path only for that import.
MONITOR_BOOT = (
    "import sys; sys.path.append(sys.argv.pop(1).rpartition('/')[0]); import monitor; "
    "del sys.path[-1]; monitor.main()"
)


def spawn_monitor(engine: Engine, container: Container, *, tty: bool, stdin: bool) -> tuple[int, int]:
    """Start the prepared container under a new monitor; (monitor pid, container pid).

    Raises DockyardError with the exit status Docker gives (125, 126, 127) when the start fails;
    the child has then undone the start (see `lifecycle.launch`) and exited.
    """
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    log_flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    log_fd = os.open(container.path("monitor.log"), log_flags, 0o644)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report_r)
            _become_monitor(engine, container, report_w=report_w, log_fd=log_fd, tty=tty, stdin=stdin)
        finally:
            os._exit(125)
    os.close(report_w)
    os.close(log_fd)
    report = monitor.read_report(report_r)
    if "pid" in report:
        return pid, int(str(report["pid"]))
    os.waitpid(pid, 0)
    error = DockyardError(str(report.get("error") or "the container's monitor failed before it started it"))
    error.exit_code = int(str(report.get("exit_code") or 125))
    raise error


def _become_monitor(
    engine: Engine, container: Container, *, report_w: int, log_fd: int, tty: bool, stdin: bool
) -> NoReturn:
    """In the child: leave the CLI's session and terminal, start the container, exec the monitor."""
    from dockyard.core.lifecycle import launch
    from dockyard.core.linux.process import set_child_subreaper

    os.setsid()
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(log_fd, 2)
    set_child_subreaper()
    stdio, outputs, stdin_w = monitor.container_stdio(tty=tty, stdin=stdin)
    console = monitor.Console() if tty else None
    try:
        pid = launch(engine, container, stdio=stdio, console=console.driver_end.fileno() if console else None)
        if console is not None:
            outputs, stdin_w = _terminal(console, pid, stdin=stdin)
    except DockyardError as exc:
        send_report(report_w, {"error": str(exc), "exit_code": exc.exit_code})
        os._exit(1)
    except OSError as exc:
        send_report(report_w, {"error": str(exc), "exit_code": 125})
        os._exit(1)
    for fd in set(stdio):
        os.close(fd)
    for fd in [*outputs, *([stdin_w] if stdin_w is not None else [])]:
        os.set_inheritable(fd, True)
    started = {"pid": pid, "outputs": {str(fd): name for fd, name in outputs.items()}, "stdin": stdin_w}
    send_report(report_w, {"pid": pid})
    boot = [sys.executable, "-S", "-I", "-c", MONITOR_BOOT, monitor.__file__]
    try:
        os.execv(sys.executable, [*boot, str(container.directory), json.dumps(started)])
    except OSError:
        os.kill(pid, signal.SIGKILL)  # no monitor: leave no container behind that nobody reaps
        raise


def _terminal(console: monitor.Console, pid: int, *, stdin: bool) -> tuple[dict[int, str], int | None]:
    """The monitor's ends of the terminal the driver made in container process `pid` (see
    monitor.Console); without one, the process is killed: nobody could talk to it."""
    master = console.receive()
    console.close()
    if master is None:
        os.kill(pid, signal.SIGKILL)
        raise DockyardError("the isolation driver sent no terminal for the container")
    return monitor.terminal_ends(master, stdin=stdin)
