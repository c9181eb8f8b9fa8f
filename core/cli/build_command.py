"""`build`: an image from a Dockerfile and a context, with Docker's classic output and exit codes.

Like `docker build`, a failed build exits 1, except a failed RUN, which exits with the command's
own code; the error is one line on standard error (after the build's output, kept until then, with
`-q`).
"""

from __future__ import annotations

import dataclasses
import io
import sys

import click

from dockyard.core.cli.exit_status import command_failure
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError

pass_engine = click.make_pass_decorator(Engine)


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    """`KEY=VALUE` flags as a dict; a bare `KEY` takes the value from the environment (build args)
    or is empty (labels)."""
    import os

    pairs: dict[str, str] = {}
    for value in values:
        key, equals, rest = value.partition("=")
        if not key:
            raise click.UsageError(f"invalid {what}: {value!r}")
        if equals:
            pairs[key] = rest
        elif what == "build-arg":
            if key in os.environ:
                pairs[key] = os.environ[key]
        else:
            pairs[key] = ""
    return pairs


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


@click.command("build")
@click.argument("context")
@click.option(
    "-t", "--tag", "tags", multiple=True, help="Name and optionally a tag in the 'name:tag' format."
)
@click.option("-f", "--file", "dockerfile", help="Name of the Dockerfile (default: 'PATH/Dockerfile').")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables.")
@click.option("--target", help="Set the target build stage to build.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image.")
@click.option("--network", help="Set the networking mode for the RUN instructions during build.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success.")
@click.option("--rm/--no-rm", default=True, hidden=True, help="Remove intermediate containers (always).")
@click.option("--force-rm", is_flag=True, hidden=True, help="Always remove intermediate containers (always).")
@pass_engine
@click.pass_context
def build(
    ctx: click.Context,
    engine: Engine,
    /,
    context: str,
    tags: tuple[str, ...],
    dockerfile: str | None,
    build_args: tuple[str, ...],
    labels: tuple[str, ...],
    **flags: object,
) -> None:
    """Build an image from a Dockerfile."""
    from dockyard.core.build.builder import BuildOptions, build_image
    from dockyard.core.build.run_step import RunFailed
    from dockyard.core.cli.launcher import report_error
    from dockyard.core.reference import parse_reference

    for tag in tags:
        parse_reference(tag)  # a bad tag fails before any step runs
    options = BuildOptions(
        context=context,
        dockerfile=dockerfile,
        tags=tags,
        build_args=_pairs(build_args, "build-arg"),
        target=_optional(flags["target"]),
        no_cache=bool(flags["no_cache"]),
        pull=bool(flags["pull"]),
        labels=_pairs(labels, "label"),
        network=_optional(flags["network"]),
        quiet=bool(flags["quiet"]),
    )
    # -q: the progress goes to memory, shown on standard error only if the build fails (Docker's CLI);
    # a TextIOWrapper, since the RUN steps write their output to its binary `.buffer`
    kept = io.BytesIO()
    progress = io.TextIOWrapper(kept, encoding="utf-8", write_through=True) if options.quiet else sys.stdout
    try:
        image_id = build_image(engine, dataclasses.replace(options, quiet=False), out=progress)
    except DockyardError as exc:
        sys.stderr.write(kept.getvalue().decode(errors="replace"))
        report_error(exc)
        ctx.exit(exc.code if isinstance(exc, RunFailed) else command_failure(ctx))
    if options.quiet:
        click.echo(image_id)
