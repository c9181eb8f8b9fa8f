"""`events`: what happened to containers and images, past (`--since`) and as it happens."""

from __future__ import annotations

import click

from dockyard.core.engine import Engine

pass_engine = click.make_pass_decorator(Engine)


@click.command("events")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "template", help="Format output using a Go template, or 'json'.")
@click.option("--since", help="Show all events created since timestamp.")
@click.option("--until", help="Stream events until this timestamp.")
@pass_engine
def events(
    engine: Engine, filters: tuple[str, ...], template: str | None, since: str | None, until: str | None
) -> None:
    """Get real time events from the server.

    Without --since only new events are shown; without --until the command keeps following
    them until it is interrupted. Timestamps are RFC 3339 times, Unix times or durations
    before now (10m, 1h).
    """
    import time

    from dockyard.core.container_logs import parse_since
    from dockyard.core.event_query import event_line, matches, parse_filters
    from dockyard.core.events import event_log
    from dockyard.core.formatting import format_rows

    wanted = parse_filters(filters)
    start, end = parse_since(since), parse_since(until)
    since_ns = time.time_ns() if start is None else int(start * 1e9)
    until_ns = None if end is None else int(end * 1e9)
    for event in event_log(engine.settings.root).events(
        since_ns=since_ns, until_ns=until_ns, follow=lambda: True
    ):
        if not matches(event, wanted):
            continue
        if template:
            click.echo(format_rows(template, [event], headers={}, default=""), nl=False)
        else:
            click.echo(event_line(event))
