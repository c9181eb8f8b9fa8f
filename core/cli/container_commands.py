"""Container commands: create, run, start, stop, kill, restart, rm, ps, logs, wait, attach."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import click

from dockyard.core.cli.batch import each_container
from dockyard.core.cli.commit_commands import commit, diff
from dockyard.core.cli.container_admin_commands import cp, export, port, prune, rename
from dockyard.core.cli.detach_option import detach_keys_option, parsed_detach_keys
from dockyard.core.cli.exec_command import exec_
from dockyard.core.cli.exit_status import command_failure
from dockyard.core.cli.inspect_commands import inspect_container_command
from dockyard.core.cli.launcher import report_error
from dockyard.core.cli.process_commands import pause, stats, top, unpause
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError

pass_engine = click.make_pass_decorator(Engine)


def create_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The flags `create` and `run` share, in Docker's spelling."""
    options = [
        click.option("--name", help="Assign a name to the container."),
        click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
        click.option("-e", "--env", multiple=True, help="Set environment variables."),
        click.option(
            "--env-file", "env_files", multiple=True, help="Read in a file of environment variables."
        ),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("-h", "--hostname", help="Container host name."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
        click.option(
            "--rm", "auto_remove", is_flag=True, help="Automatically remove the container when it exits."
        ),
        click.option("--restart", default="no", help="Restart policy to apply when a container exits."),
        click.option("-v", "--volume", "volumes", multiple=True, help="Bind mount a volume."),
        click.option("--mount", "mounts", multiple=True, help="Attach a filesystem mount to the container."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory."),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities."),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities."),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
        click.option("--security-opt", multiple=True, help="Security options."),
        click.option("--sysctl", "sysctls", multiple=True, help="Sysctl options."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("-m", "--memory", help="Memory limit."),
        click.option("--memory-swap", help="Swap limit equal to memory plus swap: '-1' for unlimited swap."),
        click.option("--cpus", help="Number of CPUs."),
        click.option("--pids-limit", type=int, help="Tune container pids limit (-1 for unlimited)."),
        click.option(
            "--init",
            is_flag=True,
            help="Run an init inside the container that forwards signals and reaps processes.",
        ),
        click.option("--network", "--net", "network", help="Connect a container to a network."),
        click.option("--network-alias", "network_aliases", multiple=True, help="Add a network-scoped alias."),
        click.option("--link", "links", multiple=True, help="Add link to another container."),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("-l", "--label", "labels", multiple=True, help="Set meta data on a container."),
        click.option("--stop-signal", help="Signal to stop the container."),
        click.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container."),
        click.option("--runtime", help="Isolation driver (namespaces, oci, ...) for this container."),
        click.option(
            "--pull", default="missing", help='Pull image before running ("always", "missing", "never").'
        ),
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _create_options(kwargs: dict[str, Any]) -> Any:
    """The collected flags as CreateOptions: click's parameter names are its field names."""
    from dockyard.core.run_config import CreateOptions

    values: dict[str, Any] = {
        key: list(value) if isinstance(value, tuple) else value for key, value in kwargs.items()
    }
    return CreateOptions(**values)


@click.command("create", context_settings={"allow_interspersed_args": False})
@create_options
@pass_engine
def create(engine: Engine, /, **kwargs: Any) -> None:
    """Create a new container."""
    from dockyard.core.lifecycle import create_container

    container = create_container(engine, _create_options(kwargs))
    click.echo(container.id)


@click.command("run", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@detach_keys_option
@create_options
@pass_engine
@click.pass_context
def run(ctx: click.Context, engine: Engine, /, detach: bool, detach_keys: str | None, **kwargs: Any) -> None:
    """Create and run a new container from an image."""
    from dockyard.core.lifecycle import create_container, start_container, wait_for_start

    keys = parsed_detach_keys(detach_keys)
    options = _create_options(kwargs)
    container = create_container(engine, options)
    if detach:
        start_container(engine, container, attach=False)
        wait_for_start(engine, container)
        click.echo(container.id)
        return
    start_container(engine, container, attach=True)
    ctx.exit(_attach(engine, container, stdin=options.interactive, tty=options.tty, keys=keys, clean_up=True))


def _attach(
    engine: Engine, container: Any, *, stdin: bool, tty: bool, keys: bytes, clean_up: bool = False
) -> int:
    """Relay the container's streams; with `clean_up` (an attached `run`), release and, for
    `--rm`, remove the container here after it exits, where everything is already imported."""
    from dockyard.core.attach import DETACHED, attach

    def cleanup(code: int) -> None:
        from dockyard.core.lifecycle import finish_attached

        finish_attached(engine, container.id, code)

    restarts = container.config["HostConfig"]["RestartPolicy"]["Name"] != "no"
    socket_path = engine.attach_socket(container.id)
    if not tty:
        _proxy_signals(engine, container.id)
    cleaner = cleanup if clean_up and not restarts else None
    code = attach(socket_path, stdin=stdin, tty=tty, cleanup=cleaner, detach_keys=keys)
    if code == DETACHED:
        click.echo("\r\nread escape sequence", err=True)
        return 0
    return code


PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _proxy_signals(engine: Engine, container_id: str) -> None:
    """Docker's --sig-proxy: signals this attached CLI receives go to the container's process.

    Without a terminal, ctrl-c and a `kill` of the CLI reach the container instead of leaving it
    running behind a CLI that went away; with a terminal the keys travel through the pty.
    """
    import os
    import signal

    def forward(number: int, _frame: object) -> None:
        try:
            pid = engine.containers.load(container_id).pid
        except DockyardError:
            return
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)

    for name in PROXIED_SIGNALS:
        signal.signal(getattr(signal, name), forward)


@click.command("start")
@click.option(
    "-a", "--attach", "attach_output", is_flag=True, help="Attach STDOUT/STDERR and forward signals."
)
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@detach_keys_option
@click.argument("names", nargs=-1, required=True)
@pass_engine
@click.pass_context
def start(
    ctx: click.Context,
    engine: Engine,
    attach_output: bool,
    interactive: bool,
    detach_keys: str | None,
    names: tuple[str, ...],
) -> None:
    """Start one or more stopped containers."""
    from dockyard.core.lifecycle import start_container, wait_for_start

    keys = parsed_detach_keys(detach_keys)
    if (attach_output or interactive) and len(names) > 1:
        raise click.UsageError("you cannot start and attach multiple containers at once")
    if attach_output or interactive:
        container = engine.containers.resolve(names[0])
        start_container(engine, container, attach=True, stdin=interactive)
        tty = bool(container.config["Config"].get("Tty"))
        ctx.exit(_attach(engine, container, stdin=interactive, tty=tty, keys=keys))

    def begin(container: Any) -> None:
        start_container(engine, container, attach=False)
        wait_for_start(engine, container)

    each_container(ctx, engine, names, begin)


@click.command("stop")
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.option("-s", "--signal", "signal_name", help="Signal to send to the container.")
@click.argument("names", nargs=-1, required=True)
@pass_engine
@click.pass_context
def stop(
    ctx: click.Context, engine: Engine, timeout: int | None, signal_name: str | None, names: tuple[str, ...]
) -> None:
    """Stop one or more running containers."""
    from dockyard.core.lifecycle import stop_container

    each_container(
        ctx, engine, names, lambda c: stop_container(engine, c, timeout=timeout, signal_name=signal_name)
    )


@click.command("kill")
@click.option("-s", "--signal", "signal_name", default="KILL", help="Signal to send to the container.")
@click.argument("names", nargs=-1, required=True)
@pass_engine
@click.pass_context
def kill(ctx: click.Context, engine: Engine, signal_name: str, names: tuple[str, ...]) -> None:
    """Kill one or more running containers."""
    from dockyard.core.lifecycle import kill_container

    each_container(ctx, engine, names, lambda c: kill_container(engine, c, signal_name))


@click.command("restart")
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.argument("names", nargs=-1, required=True)
@pass_engine
@click.pass_context
def restart(ctx: click.Context, engine: Engine, timeout: int | None, names: tuple[str, ...]) -> None:
    """Restart one or more containers."""
    from dockyard.core.lifecycle import start_container, stop_container, wait_for_start

    def again(container: Any) -> None:
        stop_container(engine, container, timeout=timeout)
        fresh = engine.containers.load(container.id)
        start_container(engine, fresh, attach=False)
        wait_for_start(engine, fresh)

    each_container(ctx, engine, names, again)


@click.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.argument("names", nargs=-1, required=True)
@pass_engine
@click.pass_context
def rm(ctx: click.Context, engine: Engine, force: bool, volumes: bool, names: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    from dockyard.core.lifecycle import remove_container

    each_container(ctx, engine, names, lambda c: remove_container(engine, c, force=force, volumes=volumes))


@click.command("wait")
@click.argument("names", nargs=-1, required=True)
@pass_engine
@click.pass_context
def wait(ctx: click.Context, engine: Engine, names: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    from dockyard.core.lifecycle import wait_container

    failures = 0
    for name in names:
        try:
            click.echo(wait_container(engine, engine.containers.resolve(name)))
        except DockyardError as exc:
            report_error(exc)
            failures += 1
    if failures:
        ctx.exit(command_failure(ctx))


@click.command("attach")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@detach_keys_option
@click.argument("name")
@pass_engine
@click.pass_context
def attach(ctx: click.Context, engine: Engine, no_stdin: bool, detach_keys: str | None, name: str) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    keys = parsed_detach_keys(detach_keys)
    container = engine.containers.resolve(name)
    if container.status != "running":
        raise DockyardError("You cannot attach to a stopped container, start it first")
    config = container.config["Config"]
    ctx.exit(
        _attach(
            engine,
            container,
            stdin=not no_stdin and bool(config.get("OpenStdin")),
            tty=bool(config.get("Tty")),
            keys=keys,
        )
    )


@click.command("ps")
@click.option(
    "-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running)."
)
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "template", help="Format output using a Go template, 'table' or 'json'.")
@click.option(
    "-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)."
)
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@pass_engine
def ps(
    engine: Engine,
    show_all: bool,
    quiet: bool,
    size: bool,
    no_trunc: bool,
    filters: tuple[str, ...],
    template: str | None,
    last: int,
    latest: bool,
) -> None:
    """List containers."""
    from dockyard.core.cli.output import echo_rows
    from dockyard.core.container_listing import (
        FILTER_KEYS,
        PS_HEADERS,
        PS_SIZE_TABLE,
        PS_TABLE,
        container_rows,
        matches,
    )
    from dockyard.core.filters import parse_filters

    parsed = parse_filters(filters, FILTER_KEYS)
    containers = engine.containers.list()
    if latest:
        last = 1
    if not (show_all or last > 0 or any(key in ("status", "exited") for key, _ in parsed)):
        containers = [c for c in containers if c.running]
    image_ids: dict[str, set[str]] = {}
    for key, value in parsed:
        if key == "ancestor":
            try:
                image_ids[value] = {engine.images.resolve(value).id}
            except DockyardError:
                image_ids[value] = set()
    containers = [c for c in containers if matches(c, parsed, image_ids)]
    if last > 0:
        containers = containers[:last]
    if size:
        for container in containers:
            try:
                container.state["SizeRw"] = engine.storage.diff_size(container.id)
            except DockyardError:
                container.state["SizeRw"] = 0
    if quiet:
        for container in containers:
            click.echo(container.id if no_trunc else container.id[:12])
        return
    rows = container_rows(containers, no_trunc=no_trunc, size=size)
    echo_rows(rows, template=template, default=PS_SIZE_TABLE if size else PS_TABLE, headers=PS_HEADERS)


@click.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--since", help="Show logs since timestamp or relative (e.g. 42m for 42 minutes).")
@click.argument("name")
@pass_engine
def logs(engine: Engine, follow: bool, tail: str, timestamps: bool, since: str | None, name: str) -> None:
    """Fetch the logs of a container."""
    from dockyard.core.container_logs import parse_since, read_log

    container = engine.containers.resolve(name)

    def still_running() -> bool:
        try:
            return engine.containers.load(container.id).running
        except DockyardError:
            return False

    path = container.path(f"{container.id}-json.log")
    out, err = sys.stdout, sys.stderr
    for stream, when, text in read_log(
        path, tail=tail, since=parse_since(since), follow=still_running if follow else None
    ):
        target = err if stream == "stderr" else out
        target.write(f"{when} {text}" if timestamps else text)
        target.flush()


@click.group("container")
def container() -> None:
    """Manage containers."""


for _command, _names in (
    (create, ("create",)),
    (run, ("run",)),
    (start, ("start",)),
    (stop, ("stop",)),
    (kill, ("kill",)),
    (restart, ("restart",)),
    (rm, ("rm", "remove")),
    (wait, ("wait",)),
    (attach, ("attach",)),
    (ps, ("ls", "ps", "list")),
    (logs, ("logs",)),
    (exec_, ("exec",)),
    (top, ("top",)),
    (stats, ("stats",)),
    (pause, ("pause",)),
    (unpause, ("unpause",)),
    (rename, ("rename",)),
    (port, ("port",)),
    (cp, ("cp",)),
    (prune, ("prune",)),
    (commit, ("commit",)),
    (diff, ("diff",)),
):
    for _name in _names:
        container.add_command(_command, _name)
container.add_command(inspect_container_command, "inspect")
container.add_command(export, "export")
