"""Commands that act on several named objects: each name is tried, failures are reported one line
each, and the command exits 1 if any failed (Docker's `stop a b c` and `inspect a b` behaviour)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from dockyard.core.cli.exit_status import command_failure
from dockyard.core.cli.launcher import report_error
from dockyard.core.containers import Container
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError

__all__ = ["each_container", "inspect_each"]


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


def inspect_each(
    ctx: click.Context, names: tuple[str, ...], lookup: Callable[[str], Any], template: str | None
) -> None:
    """Look every name up and print what was found as `inspect` does (JSON, or `--format` per
    record); the names that failed are reported first, then the command exits 1."""
    from dockyard.core.cli.output import echo_inspected

    found = []
    failures = 0
    for name in names:
        try:
            found.append(lookup(name))
        except DockyardError as exc:
            report_error(exc)
            failures += 1
    echo_inspected(found, template)
    if failures:
        ctx.exit(command_failure(ctx))
