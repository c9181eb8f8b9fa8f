"""`commit` and `diff`: a container's changes as a new image, and listed path by path."""

from __future__ import annotations

import click

from dockyard.core.engine import Engine

pass_engine = click.make_pass_decorator(Engine)

_PAUSE_FLAGS = ("-p", "--pause")


class _DockerBoolFlags(click.Command):
    """Docker's boolean flag syntax for `--pause`: alone it means true, `--pause=false` turns it
    off, and it never takes the next word as its value (click would read `-p NAME` as a value)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Spell a bare `-p`/`--pause` (and `-p=VALUE`) as `--pause=VALUE` before click parses."""
        rewritten: list[str] = []
        for index, arg in enumerate(args):
            if arg == "--":
                rewritten.extend(args[index:])
                break
            if arg in _PAUSE_FLAGS:
                arg = "--pause=true"
            elif arg.startswith("-p="):
                arg = "--pause=" + arg.removeprefix("-p=")
            rewritten.append(arg)
        return super().parse_args(ctx, rewritten)


@click.command("commit", cls=_DockerBoolFlags)
@click.option(
    "-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").'
)
@click.option(
    "-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image."
)
@click.option("-m", "--message", default="", help="Commit message.")
@click.option(
    "-p", "--pause", type=click.BOOL, default=True, show_default=True, help="Pause container during commit."
)
@click.argument("container")
@click.argument("reference", metavar="[REPOSITORY[:TAG]]", required=False)
@pass_engine
def commit(
    engine: Engine,
    author: str,
    changes: tuple[str, ...],
    message: str,
    pause: bool,
    container: str,
    reference: str | None,
) -> None:
    """Create a new image from a container's changes."""
    from dockyard.core.container_commit import commit_container

    image_id = commit_container(
        engine,
        engine.containers.resolve(container),
        reference=reference,
        author=author,
        message=message,
        changes=changes,
        pause=pause,
    )
    click.echo(image_id)


@click.command("diff")
@click.argument("container")
@pass_engine
def diff(engine: Engine, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    from dockyard.core.container_changes import visible_changes

    found = engine.containers.resolve(container)
    for change in visible_changes(engine.storage.changes(found.id)):
        click.echo(f"{change.kind} {change.path}")
