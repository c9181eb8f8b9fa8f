"""Commands about a container's processes: top, stats, pause, unpause."""

from __future__ import annotations

from typing import Any

import click

from dockyard.core.cli.batch import each_container
from dockyard.core.engine import Engine

pass_engine = click.make_pass_decorator(Engine)

_CLEAR_SCREEN = "\033[2J\033[H"


@click.command("top", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@pass_engine
def top(engine: Engine, name: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container."""
    from dockyard.core.container_top import top as container_top
    from dockyard.core.tabwriter import tabwrite

    titles, rows = container_top(engine.containers.resolve(name), ps_args)
    lines = ["\t".join(titles), *("\t".join(row) for row in rows)]
    click.echo(tabwrite("".join(line + "\n" for line in lines), min_width=20), nl=False)


@click.command("stats")
@click.option(
    "-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running)."
)
@click.option("--format", "template", help="Format output using a Go template, 'table' or 'json'.")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.argument("names", nargs=-1)
@pass_engine
def stats(
    engine: Engine,
    show_all: bool,
    template: str | None,
    no_stream: bool,
    no_trunc: bool,
    names: tuple[str, ...],
) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    from dockyard.core.container_stats import STATS_HEADERS, STATS_TABLE, stats_frames
    from dockyard.core.formatting import format_rows

    def containers() -> list[tuple[str, Any]]:
        if names:
            return [(name, engine.containers.resolve(name)) for name in names]
        listed = [c for c in engine.containers.list() if show_all or c.running]
        return [(c.id if no_trunc else c.id[:12], c) for c in listed]

    for rows in stats_frames(engine, containers, no_trunc=no_trunc):
        text = format_rows(template or "", rows, headers=STATS_HEADERS, default=STATS_TABLE)
        click.echo(text if no_stream else _CLEAR_SCREEN + text, nl=False)
        if no_stream:
            return


@click.command("pause")
@click.argument("names", nargs=-1, required=True)
@pass_engine
@click.pass_context
def pause(ctx: click.Context, engine: Engine, names: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    from dockyard.core.container_ops import pause_container

    each_container(ctx, engine, names, lambda container: pause_container(engine, container))


@click.command("unpause")
@click.argument("names", nargs=-1, required=True)
@pass_engine
@click.pass_context
def unpause(ctx: click.Context, engine: Engine, names: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    from dockyard.core.container_ops import unpause_container

    each_container(ctx, engine, names, lambda container: unpause_container(engine, container))
