"""`network create/ls/inspect/rm/prune/connect/disconnect`: Docker's flags and output."""

from __future__ import annotations

from typing import Any

import click

from dockyard.core.cli.exit_status import command_failure
from dockyard.core.cli.launcher import report_error
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError

pass_engine = click.make_pass_decorator(Engine)

NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
FILTER_KEYS = ("driver", "id", "label", "name", "scope", "type")


@click.group("network")
def network() -> None:
    """Manage networks."""


@network.command("create")
@click.argument("name")
@click.option("-d", "--driver", help="Driver to manage the Network.")
@click.option("--subnet", default="", help="Subnet in CIDR format that represents a network segment.")
@click.option("--gateway", default="", help="IPv4 Gateway for the master subnet.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--label", "labels", multiple=True, help="Set metadata on a network.")
@pass_engine
def create(
    engine: Engine,
    name: str,
    driver: str | None,
    subnet: str,
    gateway: str,
    internal: bool,
    labels: tuple[str, ...],
) -> None:
    """Create a network."""
    from dockyard.core.network_ops import create_network

    record = create_network(
        engine,
        name=name,
        driver=driver,
        subnet=subnet,
        gateway=gateway,
        internal=internal,
        labels=dict(label.partition("=")[::2] for label in labels),
    )
    click.echo(record["Id"])


def _row(record: dict[str, Any], *, no_trunc: bool) -> dict[str, Any]:
    labels = record.get("Labels") or {}
    return {
        "ID": record["Id"] if no_trunc else record["Id"][:12],
        "Name": record["Name"],
        "Driver": record["Driver"],
        "Scope": record["Scope"],
        "IPv6": str(bool(record.get("EnableIPv6"))).lower(),
        "Internal": str(bool(record.get("Internal"))).lower(),
        "Labels": ",".join(f"{key}={value}" for key, value in labels.items()),
        "CreatedAt": record["Created"],
    }


def _matches(record: dict[str, Any], filters: list[tuple[str, str]], builtin: bool) -> bool:
    for key, value in filters:
        labels = record.get("Labels") or {}
        label_key, sep, label_value = value.partition("=")
        ok = {
            "driver": record["Driver"] == value,
            "id": record["Id"].startswith(value),
            "name": value in record["Name"],
            "scope": record["Scope"] == value,
            "type": value == ("builtin" if builtin else "custom"),
            "label": label_key in labels and (not sep or labels[label_key] == label_value),
        }[key]
        if not ok:
            return False
    return True


@network.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values.")
@click.option("--format", "template", help="Format output using a Go template.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@pass_engine
def ls(engine: Engine, quiet: bool, filters: tuple[str, ...], template: str | None, no_trunc: bool) -> None:
    """List networks."""
    from dockyard.core.cli.output import echo_rows
    from dockyard.core.filters import parse_filters
    from dockyard.core.network_ops import all_networks

    parsed = parse_filters(filters, FILTER_KEYS)
    user_ids = {record["Id"] for record in engine.networks.all()}
    rows = [
        _row(record, no_trunc=no_trunc)
        for record in all_networks(engine)
        if _matches(record, parsed, builtin=record["Id"] not in user_ids)
    ]
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    echo_rows(rows, template=template, default=NETWORK_TABLE, headers=NETWORK_HEADERS)


@network.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "template", help="Format output using a Go template.")
@pass_engine
@click.pass_context
def inspect(ctx: click.Context, engine: Engine, names: tuple[str, ...], template: str | None) -> None:
    """Display detailed information on one or more networks."""
    from dockyard.core.cli.batch import inspect_each
    from dockyard.core.network_ops import find_network, inspect_network

    inspect_each(ctx, names, lambda name: inspect_network(engine, find_network(engine, name)), template)


@network.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
@pass_engine
@click.pass_context
def rm(ctx: click.Context, engine: Engine, names: tuple[str, ...], force: bool) -> None:
    """Remove one or more networks."""
    from dockyard.core.errors import NotFoundError
    from dockyard.core.network_ops import remove_network

    failures = 0
    for name in names:
        try:
            remove_network(engine, name)
            click.echo(name)
        except DockyardError as exc:
            if force and isinstance(exc, NotFoundError):
                continue
            report_error(exc)
            failures += 1
    if failures:
        ctx.exit(command_failure(ctx))


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@pass_engine
def prune(engine: Engine, force: bool) -> None:
    """Remove all unused networks."""
    from dockyard.core.network_ops import prune_networks

    if not force and not click.confirm(
        "WARNING! This will remove all custom networks not used by at least one container.\n"
        "Are you sure you want to continue?",
        default=False,
    ):
        return
    removed = prune_networks(engine)
    if removed:
        click.echo("Deleted Networks:")
        for name in removed:
            click.echo(name)


@network.command("connect")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container_name", metavar="CONTAINER")
@click.option("--alias", "aliases", multiple=True, help="Add network-scoped alias for the container.")
@pass_engine
def connect(engine: Engine, network_name: str, container_name: str, aliases: tuple[str, ...]) -> None:
    """Connect a container to a network."""
    from dockyard.core.network_ops import connect as connect_network

    container = engine.containers.resolve(container_name)
    connect_network(engine, network_name, container, aliases=list(aliases))


@network.command("disconnect")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container_name", metavar="CONTAINER")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network.")
@pass_engine
def disconnect(engine: Engine, network_name: str, container_name: str, force: bool) -> None:
    """Disconnect a container from a network."""
    from dockyard.core.network_ops import disconnect as disconnect_network

    disconnect_network(engine, network_name, engine.containers.resolve(container_name))
