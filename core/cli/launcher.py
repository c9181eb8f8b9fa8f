"""The `dockyard` entry point: serves the hottest read-only commands before click is imported.

Importing click costs more than everything `dockyard images` does, so `--version` and a plain
`images` (or `image ls`) are parsed here by hand. Anything this parser does not recognise, help
included, goes to the click application unchanged, which owns every error message; a test runs
both paths over the same arguments so they cannot drift apart.
"""

from __future__ import annotations

import sys

from dockyard.core import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["main", "report_error"]

_GLOBAL_VALUES = {
    "--root": "root",
    "--runroot": "runroot",
    "--storage-driver": "storage_driver",
    "-s": "storage_driver",
    "--log-level": "log_level",
    "-l": "log_level",
    "--log-format": "log_format",
}
_IMAGES_FLAGS = {
    "-a": "show_all",
    "--all": "show_all",
    "-q": "quiet",
    "--quiet": "quiet",
    "--no-trunc": "no_trunc",
    "--digests": "digests",
}
_IMAGES_VALUES = {"--format": "template", "-f": "filters", "--filter": "filters"}


class _NotFast(Exception):
    """The arguments need the full click application."""


def _options(args: list[str]) -> Iterator[tuple[str, str | None]]:
    """Split `--name=value` and yield (option, inline value); positionals come with name ''."""
    for arg in args:
        if arg.startswith("--") and "=" in arg:
            name, _, value = arg.partition("=")
            yield name, value
        else:
            yield arg, None


def _parse(argv: list[str]) -> tuple[dict[str, str], dict[str, object]] | None:
    """Global flags and `images` options, or None for `--version`; raises _NotFast otherwise."""
    flags: dict[str, str] = {}
    args = iter(list(_options(argv)))
    for name, inline in args:
        if name in ("--version", "-v") and inline is None:
            return None
        if name in _GLOBAL_VALUES:
            value = inline if inline is not None else next(args, (None, None))[0]
            if value is None:
                raise _NotFast
            flags[_GLOBAL_VALUES[name]] = value
            continue
        if name == "images":
            return flags, _parse_images([arg for arg, _ in args], inline)
        if name == "image":
            subcommand = next(args, (None, None))[0]
            if subcommand in ("ls", "list"):
                return flags, _parse_images([arg for arg, _ in args], None)
        raise _NotFast
    raise _NotFast


def _parse_images(rest: list[str], inline: str | None) -> dict[str, object]:
    if inline is not None:
        raise _NotFast
    options: dict[str, object] = {"filters": []}
    items = iter(list(_options(rest)))
    for name, value in items:
        if name in _IMAGES_FLAGS and value is None:
            options[_IMAGES_FLAGS[name]] = True
        elif name in _IMAGES_VALUES:
            if value is None:
                value = next(items, (None, None))[0]
                if value is None:
                    raise _NotFast
            key = _IMAGES_VALUES[name]
            if key == "filters":
                options["filters"].append(value)  # type: ignore[attr-defined]
            else:
                options[key] = value
        elif not name.startswith("-") and "repository" not in options:
            options["repository"] = name
        else:
            raise _NotFast
    return options


def report_error(exc: BaseException) -> None:
    """Print an error as one `Error: ...` line; with `--log-level debug`, its traceback first."""
    from dockyard.core import log

    if log.debug_enabled():
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.write(f"Error: {str(exc) or type(exc).__name__}\n")


def main(argv: list[str] | None = None) -> None:
    """Run `dockyard`: the fast path when it applies, else the click application."""
    _collect_less_often()
    try:
        _dispatch(sys.argv[1:] if argv is None else argv)
    finally:
        _spare_the_exit_collection()


def _collect_less_often() -> None:
    """Let the cycle collector's youngest generation grow to 10,000 objects (Python's default is
    700): importing the CLI, click and the engine otherwise triggers ~40 collections, ~11 ms of
    a `run`. A long-running command (`logs -f`, an attached session) still collects."""
    import gc

    gc.set_threshold(10_000, *gc.get_threshold()[1:])


def _spare_the_exit_collection() -> None:
    """Put every object the command made out of the cycle collector's reach before exit.

    Interpreter shutdown otherwise walks them all for cycles, ~15 ms after a `run` (most of its
    ~20 ms shutdown); the exit still flushes stdio and runs atexit handlers, and nothing needs a
    cycle collected at exit (records are written and closed explicitly).
    """
    import gc

    gc.freeze()


def _dispatch(args: list[str]) -> None:
    try:
        parsed = _parse(args)
        fast = True
    except _NotFast:
        fast = False
    if not fast:  # outside the `except`: the whole command would run as its handler otherwise
        from dockyard.core.cli.main import main as full_main

        full_main(args)
        return
    if parsed is None:
        sys.stdout.write(f"Dockyard version {__version__}\n")
        sys.exit(0)
    flags, options = parsed
    from dockyard.core.cli.exit_status import error_status
    from dockyard.core.errors import DockyardError

    try:
        sys.stdout.write(_images(flags, options))
    except (DockyardError, OSError) as exc:
        report_error(exc)
        sys.exit(error_status(exc, "images"))
    sys.exit(0)


def _images(flags: dict[str, str], options: dict[str, object]) -> str:
    from dockyard.core import log
    from dockyard.core.config import load_settings
    from dockyard.core.engine import Engine
    from dockyard.core.image_listing import render_image_listing

    settings = load_settings(flags)
    log.configure(level=settings.log_level, log_format=settings.log_format)
    return render_image_listing(Engine(settings), **options)  # type: ignore[arg-type]
