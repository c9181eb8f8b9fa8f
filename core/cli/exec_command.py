"""`exec`: run a command in a running container (core/container_exec.py does the work)."""

from __future__ import annotations

import click

from dockyard.core.cli.detach_option import detach_keys_option, parsed_detach_keys
from dockyard.core.engine import Engine

pass_engine = click.make_pass_decorator(Engine)


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@detach_keys_option
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_engine
@click.pass_context
def exec_(
    ctx: click.Context,
    engine: Engine,
    /,
    detach: bool,
    detach_keys: str | None,
    env: tuple[str, ...],
    env_file: tuple[str, ...],
    interactive: bool,
    privileged: bool,
    tty: bool,
    user: str | None,
    workdir: str | None,
    name: str,
    command: tuple[str, ...],
) -> None:
    """Execute a command in a running container."""
    from dockyard.core.container_exec import ExecRequest, run_exec
    from dockyard.core.exec_relay import DETACHED
    from dockyard.core.run_config import environment

    keys = parsed_detach_keys(detach_keys)
    request = ExecRequest(
        command=command,
        env=tuple(environment(list(env), list(env_file))),
        user=user,
        workdir=workdir,
        tty=tty,
        interactive=interactive,
        detach=detach,
        privileged=privileged,
    )
    code = run_exec(engine, engine.containers.resolve(name), request, detach_keys=keys)
    if code == DETACHED:
        click.echo("\r\nread escape sequence", err=True)
        code = 0
    ctx.exit(code)
