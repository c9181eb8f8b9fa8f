"""The `dockyard demo-hello` command; the CLI imports this module only when the command runs."""

from __future__ import annotations

import click


@click.command(name="demo-hello")
@click.option("--fail", is_flag=True, help="Fail as an engine error does, to show the exit status.")
def hello(fail: bool) -> None:
    """Say hello from the demo plugin.

    Its only purpose is to prove that a command declared by a plugin reaches the CLI, and that its
    failures exit as a built-in command's do.
    """
    if fail:
        from dockyard.core.errors import DockyardError

        raise DockyardError("the demo plugin was asked to fail")
    click.echo("Hello from dockyard-demo-plugin!")
