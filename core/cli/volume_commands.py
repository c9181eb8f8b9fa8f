"""`volume create/ls/inspect/rm/prune`: named volumes, Docker's output."""

from __future__ import annotations

import click

from dockyard.core.cli.exit_status import command_failure
from dockyard.core.cli.launcher import report_error
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError

pass_engine = click.make_pass_decorator(Engine)

VOLUME_TABLE = "table {{.Driver}}\t{{.Name}}"
VOLUME_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT", "Scope": "SCOPE"}


@click.group("volume")
def volume() -> None:
    """Manage volumes."""


@volume.command("create")
@click.argument("name", required=False)
@click.option("-l", "--label", "labels", multiple=True, help="Set metadata for a volume.")
@pass_engine
def create(engine: Engine, name: str | None, labels: tuple[str, ...]) -> None:
    """Create a volume."""
    record = engine.volumes.create(name, labels=dict(label.partition("=")[::2] for label in labels))
    click.echo(record["Name"])


@volume.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("--format", "template", help="Format output using a Go template.")
@pass_engine
def ls(engine: Engine, quiet: bool, template: str | None) -> None:
    """List volumes."""
    from dockyard.core.cli.output import echo_rows

    records = engine.volumes.all()
    if quiet:
        for record in records:
            click.echo(record["Name"])
        return
    echo_rows(records, template=template, default=VOLUME_TABLE, headers=VOLUME_HEADERS)


@volume.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "template", help="Format output using a Go template.")
@pass_engine
@click.pass_context
def inspect(ctx: click.Context, engine: Engine, names: tuple[str, ...], template: str | None) -> None:
    """Display detailed information on one or more volumes."""
    from dockyard.core.cli.batch import inspect_each

    def shown(name: str) -> dict[str, object]:
        return {key: value for key, value in engine.volumes.get(name).items() if key != "Anonymous"}

    inspect_each(ctx, names, shown, template)


@volume.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes.")
@pass_engine
@click.pass_context
def rm(ctx: click.Context, engine: Engine, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more volumes."""
    from dockyard.core.volume_usage import volume_users

    users = volume_users(engine)
    failures = 0
    for name in names:
        try:
            engine.volumes.remove(name, in_use_by=users.get(name, []))
            click.echo(name)
        except DockyardError as exc:
            if force and "no such volume" in str(exc):
                continue
            report_error(exc)
            failures += 1
    if failures:
        ctx.exit(command_failure(ctx))


@volume.command("prune")
@click.option(
    "-a", "--all", "all_volumes", is_flag=True, help="Remove all unused volumes, not just anonymous ones."
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@pass_engine
def prune(engine: Engine, all_volumes: bool, force: bool) -> None:
    """Remove unused local volumes."""
    from dockyard.core.units import human_size
    from dockyard.core.volume_usage import prune_volumes

    if not force and not click.confirm(
        "WARNING! This will remove anonymous local volumes not used by at least one container.\n"
        "Are you sure you want to continue?",
        default=False,
    ):
        return
    removed, reclaimed = prune_volumes(engine, all_volumes=all_volumes)
    if removed:
        click.echo("Deleted Volumes:")
        for name in removed:
            click.echo(name)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(reclaimed)}")
