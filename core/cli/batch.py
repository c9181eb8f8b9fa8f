"""Commands that act on several named containers: each name is tried, failures are reported one
line each, and the command exits 1 if any failed (Docker's `stop a b c` behaviour)."""

from __future__ import annotations

from collections.abc import Callable

import click

from dockyard.core.cli.exit_status import command_failure
from dockyard.core.cli.launcher import report_error
from dockyard.core.containers import Container
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError

__all__ = ["each_container"]


def each_container(
    ctx: click.Context, engine: Engine, names: tuple[str, ...], action: Callable[[Container], None]
) -> None:
    """Apply `action` to every named container, echoing the name of each one that succeeded."""
    failures = 0
    for name in names:
        try:
            action(engine.containers.resolve(name))
            click.echo(name)
        except DockyardError as exc:
            report_error(exc)
            failures += 1
    if failures:
        ctx.exit(command_failure(ctx))
