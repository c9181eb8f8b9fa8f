"""`inspect`, `image inspect` and `container inspect`: Docker's JSON, or a `--format` template."""

from __future__ import annotations

from typing import Any

import click

from dockyard.core.engine import Engine
from dockyard.core.errors import NotFoundError

pass_engine = click.make_pass_decorator(Engine)


def _lookup(engine: Engine, name: str, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Containers first, then images, as Docker looks them up."""
    from dockyard.core.inspection import inspect_container, inspect_image

    if "container" in kinds:
        try:
            return inspect_container(engine, engine.containers.resolve(name))
        except NotFoundError:
            if kinds == ("container",):
                raise
    try:
        return inspect_image(engine, engine.images.resolve(name))
    except NotFoundError:
        if kinds == ("image",):
            raise
        raise NotFoundError(f"No such object: {name}") from None


def _make(name: str, help_text: str, kinds: tuple[str, ...]) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("names", nargs=-1, required=True)
    @click.option("-f", "--format", "template", help="Format output using a Go template.")
    @click.option(
        "-s", "--size", is_flag=True, help="Display total file sizes (accepted; sizes are always shown)."
    )
    @click.option("--type", "kind", type=click.Choice(["container", "image"]), help="Only inspect this type.")
    @pass_engine
    @click.pass_context
    def command(
        ctx: click.Context,
        engine: Engine,
        names: tuple[str, ...],
        template: str | None,
        size: bool,
        kind: str | None,
    ) -> None:
        from dockyard.core.cli.batch import inspect_each

        inspect_each(ctx, names, lambda name: _lookup(engine, name, (kind,) if kind else kinds), template)

    return command


inspect = _make("inspect", "Return low-level information on Dockyard objects.", ("container", "image"))
inspect_image_command = _make("inspect", "Display detailed information on one or more images.", ("image",))
inspect_container_command = _make(
    "inspect", "Display detailed information on one or more containers.", ("container",)
)
