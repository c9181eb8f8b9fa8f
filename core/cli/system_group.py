"""The `system` group: df, prune, and `info` and `events` under their system names."""

from __future__ import annotations

import click

from dockyard.core.cli.events_command import events
from dockyard.core.cli.system_commands import info
from dockyard.core.engine import Engine

pass_engine = click.make_pass_decorator(Engine)


@click.command("df")
@click.option("--format", "template", help="Format output using a Go template, 'table' or 'json'.")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@pass_engine
def df(engine: Engine, template: str | None, verbose: bool) -> None:
    """Show disk usage."""
    from dockyard.core.cli.output import echo_rows

    if verbose:
        from dockyard.core.disk_usage_detail import render_verbose

        click.echo(render_verbose(engine, template), nl=False)
        return
    from dockyard.core.disk_usage import DF_HEADERS, DF_TABLE, disk_usage_rows

    echo_rows(disk_usage_rows(engine), template=template, default=DF_TABLE, headers=DF_HEADERS)


def _warning(*, all_images: bool, volumes: bool) -> str:
    items = ["all stopped containers"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append(
        "all images without at least one container associated to them"
        if all_images
        else "all dangling images"
    )
    items.append("all build cache" if all_images else "unused build cache")
    listed = "".join(f"  - {item}\n" for item in items)
    return f"WARNING! This will remove:\n{listed}\nAre you sure you want to continue?"


@click.command("prune")
@click.option(
    "-a", "--all", "all_images", is_flag=True, help="Remove all unused images not just dangling ones."
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes.")
@pass_engine
def prune(engine: Engine, all_images: bool, force: bool, volumes: bool) -> None:
    """Remove unused data."""
    from dockyard.core.system_prune import prune_system
    from dockyard.core.units import human_size

    if not force and not click.confirm(_warning(all_images=all_images, volumes=volumes), default=False):
        return
    report = prune_system(engine, all_images=all_images, volumes=volumes)
    sections = [
        ("Deleted Containers:", report.containers),
        ("Deleted Volumes:", report.volumes),
        (
            "Deleted Images:",
            [f"untagged: {ref}" for ref in report.images.untagged]
            + [f"deleted: {image_id}" for image_id in report.images.deleted],
        ),
    ]
    for title, lines in sections:
        if lines:
            click.echo(title)
            for line in lines:
                click.echo(line)
            click.echo()
    click.echo(f"Total reclaimed space: {human_size(report.reclaimed)}")


@click.group("system")
def system() -> None:
    """Manage Dockyard."""


system.add_command(df, "df")
system.add_command(events, "events")
system.add_command(info, "info")
system.add_command(prune, "prune")
