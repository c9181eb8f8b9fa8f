"""Container housekeeping commands: rename, port, container prune, cp."""

from __future__ import annotations

import sys

import click

from dockyard.core.engine import Engine
from dockyard.core.errors import UsageError

pass_engine = click.make_pass_decorator(Engine)


@click.command("rename")
@click.argument("name")
@click.argument("new_name")
@pass_engine
def rename(engine: Engine, name: str, new_name: str) -> None:
    """Rename a container."""
    from dockyard.core.container_ops import rename_container

    rename_container(engine, engine.containers.resolve(name), new_name)


@click.command("port")
@click.argument("name")
@click.argument("private_port", required=False)
@pass_engine
def port(engine: Engine, name: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    from dockyard.core.container_ports import port_lines

    for line in port_lines(engine.containers.resolve(name), private_port):
        click.echo(line)


@click.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>').")
@pass_engine
def prune(engine: Engine, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all stopped containers."""
    from dockyard.core.container_logs import parse_since
    from dockyard.core.container_ops import prune_containers
    from dockyard.core.units import human_size

    until: float | None = None
    labels = []
    from dockyard.core.filters import parse_filters

    for key, argument in parse_filters(filters, ("until", "label")):
        if key == "until":
            until = parse_since(argument)
        else:
            labels.append(argument)
    if not force and not click.confirm(
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?", default=False
    ):
        return
    report = prune_containers(engine, until=until, labels=labels)
    if report.deleted:
        click.echo("Deleted Containers:")
        for container_id in report.deleted:
            click.echo(container_id)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(report.reclaimed)}")


@click.command("cp")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Accepted for compatibility: cp prints no progress output.")
@click.argument("source")
@click.argument("destination")
@pass_engine
def cp(engine: Engine, archive: bool, follow_link: bool, quiet: bool, source: str, destination: str) -> None:
    """Copy files/folders between a container and the local filesystem.

    Use '-' as the source to read a tar archive from stdin and extract it to a directory
    destination in a container. Use '-' as the destination to stream a tar archive of a
    container source to stdout.
    """
    from dockyard.core.container_copy import copy_from_container, copy_to_container, split_location

    source_container, source_path = split_location(source)
    target_container, target_path = split_location(destination)
    if source_container is not None and target_container is not None:
        raise UsageError("copying between containers is not supported")
    if source_container is not None:
        container = engine.containers.resolve(source_container)
        copy_from_container(
            engine, container, source_path, target_path, follow=follow_link, stdout=sys.stdout.buffer
        )
    elif target_container is not None:
        container = engine.containers.resolve(target_container)
        copy_to_container(
            engine,
            container,
            source_path,
            target_path,
            follow=follow_link,
            keep_owner=archive,
            stdin=sys.stdin.buffer,
        )
    else:
        raise UsageError("must specify at least one container source")


@click.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file, instead of STDOUT.")
@click.argument("name")
@pass_engine
def export(engine: Engine, output: str | None, name: str) -> None:
    """Export a container's filesystem as a tar archive."""
    from dockyard.core.container_export import export_container

    container = engine.containers.resolve(name)
    if output is None:
        if sys.stdout.isatty():
            raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        export_container(engine, container, sys.stdout.buffer)
        return
    from pathlib import Path

    from dockyard.core.store import atomic_output

    with atomic_output(Path(output)) as handle:
        export_container(engine, container, handle)
