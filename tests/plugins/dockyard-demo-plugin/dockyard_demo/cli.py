"""The `dockyard demo-hello` command; the CLI imports this module only when the command runs."""

from __future__ import annotations

import click


@click.command(name="demo-hello")
def hello() -> None:
    """Say hello from the demo plugin.

    Its only purpose is to prove that a command declared by a plugin reaches the CLI.
    """
    click.echo("Hello from dockyard-demo-plugin!")
