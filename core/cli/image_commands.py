"""Image commands: images, import, tag, rmi, history, inspect, image prune, and the `image` group."""

from __future__ import annotations

import sys

import click

from dockyard.core.cli import build_command, registry_commands
from dockyard.core.cli.exit_status import command_failure
from dockyard.core.cli.inspect_commands import inspect_image_command
from dockyard.core.cli.launcher import report_error
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError, UsageError
from dockyard.core.image_listing import display_id, go_time, since

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.core.images import Image

pass_engine = click.make_pass_decorator(Engine)

HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


@click.command("images")
@click.argument("repository", required=False)
@click.option(
    "-a", "--all", "show_all", is_flag=True, help="Show all images (default hides intermediate images)."
)
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "template", help="Format output using a Go template, 'table' or 'json'.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@pass_engine
def images(
    engine: Engine,
    repository: str | None,
    show_all: bool,
    digests: bool,
    filters: tuple[str, ...],
    template: str | None,
    no_trunc: bool,
    quiet: bool,
) -> None:
    """List images."""
    from dockyard.core.image_listing import render_image_listing

    output = render_image_listing(
        engine,
        repository=repository,
        show_all=show_all,
        digests=digests,
        filters=list(filters),
        template=template,
        no_trunc=no_trunc,
        quiet=quiet,
    )
    click.echo(output, nl=False)


@click.command("import")
@click.argument("source")
@click.argument("reference", required=False)
@click.option(
    "-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image."
)
@click.option("-m", "--message", default="", help="Set commit message for imported image.")
@pass_engine
def import_(
    engine: Engine, source: str, reference: str | None, changes: tuple[str, ...], message: str
) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    from dockyard.core.image_ops import import_image

    if source == "-":
        image = import_image(
            engine,
            sys.stdin.buffer,
            source_name="-",
            reference=reference,
            changes=list(changes),
            message=message,
        )
    else:
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below, after the import
        except OSError as exc:
            raise UsageError(f"cannot open {source}: {exc.strerror}") from exc
        with stream:
            image = import_image(
                engine,
                stream,
                source_name=source,
                reference=reference,
                changes=list(changes),
                message=message,
            )
    click.echo(image.id)


@click.command("tag")
@click.argument("source")
@click.argument("target")
@pass_engine
def tag(engine: Engine, source: str, target: str) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    from dockyard.core.image_ops import tag_image

    tag_image(engine, source, target)


@click.command("rmi")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option(
    "--no-prune", is_flag=True, help="Do not delete untagged parents."
)
@pass_engine
@click.pass_context
def rmi(ctx: click.Context, engine: Engine, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images."""
    from dockyard.core.image_ops import remove_image

    failures = 0
    for name in names:
        try:
            report = remove_image(engine, name, force=force, prune=not no_prune)
        except DockyardError as exc:
            report_error(exc)
            failures += 1
            continue
        for reference in report.untagged:
            click.echo(f"Untagged: {reference}")
        for image_id in report.deleted:
            click.echo(f"Deleted: {image_id}")
    if failures:
        ctx.exit(command_failure(ctx))


@click.command("history")
@click.argument("name")
@click.option(
    "-H",
    "--human",
    type=bool,
    default=True,
    show_default=True,
    help="Print sizes and dates in human readable format.",
)
@click.option("--format", "template", help="Format output using a Go template.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@pass_engine
def history(
    engine: Engine, name: str, human: bool, template: str | None, no_trunc: bool, quiet: bool
) -> None:
    """Show the history of an image."""
    from dockyard.core.cli.output import echo_rows
    from dockyard.core.units import human_size

    image = engine.images.resolve(name)
    sizes = [record.size if record else 0 for record in (engine.layers.get(chain) for chain in image.layers)]
    entries = image.config.get("history") or [{"created": image.created}] * len(image.layers)
    rows = []
    layer_index = 0
    for entry in entries:
        size = 0
        if not entry.get("empty_layer") and layer_index < len(sizes):
            size = sizes[layer_index]
            layer_index += 1
        created_by = str(entry.get("created_by", ""))
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append(
            {
                "ID": "<missing>",
                "CreatedAt": go_time(str(entry.get("created", ""))),
                "CreatedSince": since(str(entry.get("created", "")))
                if human
                else str(entry.get("created", "")),
                "CreatedBy": created_by,
                "Size": human_size(size) if human else str(size),
                "Comment": str(entry.get("comment", "")),
            }
        )
    rows.reverse()
    _fill_ids(engine, image, rows, no_trunc=no_trunc)
    if quiet:
        for row in rows:
            click.echo(row["ID"])
        return
    echo_rows(rows, template=template, default=HISTORY_TABLE, headers=HISTORY_HEADERS)


def _fill_ids(engine: Engine, image: Image, rows: list[dict[str, str]], *, no_trunc: bool) -> None:
    """Docker's IMAGE column: the newest row is the image, each older one the next image up its
    parent chain (one per step for images built or committed here); `<missing>` past the chain."""
    from dockyard.core.errors import NotFoundError

    current: Image | None = image
    for row in rows:
        if current is None:
            return
        row["ID"] = display_id(current.id, no_trunc)
        try:
            current = engine.images.get(current.parent) if current.parent else None
        except NotFoundError:
            current = None


@click.command("prune")
@click.option(
    "-a", "--all", "all_unused", is_flag=True, help="Remove all unused images, not just dangling ones."
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@pass_engine
def prune(engine: Engine, all_unused: bool, force: bool) -> None:
    """Remove unused images."""
    from dockyard.core.image_ops import prune_images
    from dockyard.core.units import human_size

    warning = (
        "WARNING! This will remove all images without at least one container associated to them."
        if all_unused
        else "WARNING! This will remove all dangling images."
    )
    if not force and not click.confirm(f"{warning}\nAre you sure you want to continue?", default=False):
        return
    report = prune_images(engine, all_unused=all_unused)
    if report.deleted:
        click.echo("Deleted Images:")
        for reference in report.untagged:
            click.echo(f"untagged: {reference}")
        for image_id in report.deleted:
            click.echo(f"deleted: {image_id}")
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(report.reclaimed)}")


@click.group("image")
def image() -> None:
    """Manage images."""


image.add_command(images, "ls")
image.add_command(images, "list")
image.add_command(rmi, "rm")
image.add_command(rmi, "remove")
image.add_command(import_, "import")
image.add_command(tag, "tag")
image.add_command(history, "history")
image.add_command(prune, "prune")
image.add_command(inspect_image_command, "inspect")

# `image pull/push/save/load`: registry_commands keeps its heavy imports inside the commands.
image.add_command(registry_commands.pull, "pull")
image.add_command(registry_commands.push, "push")
image.add_command(registry_commands.save, "save")
image.add_command(registry_commands.load, "load")
image.add_command(build_command.build, "build")
