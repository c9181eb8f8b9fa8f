"""The `dockyard` entry point: global options, lazy subcommands, and Docker's exit codes.

Commands are import strings, so `dockyard --help` imports no command module and no driver. Plugins
add commands through the `dockyard.commands` entry-point group, read only when a name is not a
built-in one or when help lists every command.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from dockyard.core import __version__

__all__ = ["BUILTIN_COMMANDS", "LazyGroup", "cli", "main"]

# name -> (import string, one-line help shown by `--help` without importing the command)
_CONTAINERS = "dockyard.core.cli.container_commands"
BUILTIN_COMMANDS: dict[str, tuple[str, str]] = {
    "attach": (
        f"{_CONTAINERS}:attach",
        "Attach local standard input, output, and error streams to a running container",
    ),
    "commit": ("dockyard.core.cli.commit_commands:commit", "Create a new image from a container's changes"),
    "container": (f"{_CONTAINERS}:container", "Manage containers"),
    "create": (f"{_CONTAINERS}:create", "Create a new container"),
    "kill": (f"{_CONTAINERS}:kill", "Kill one or more running containers"),
    "logs": (f"{_CONTAINERS}:logs", "Fetch the logs of a container"),
    "ps": (f"{_CONTAINERS}:ps", "List containers"),
    "restart": (f"{_CONTAINERS}:restart", "Restart one or more containers"),
    "rm": (f"{_CONTAINERS}:rm", "Remove one or more containers"),
    "run": (f"{_CONTAINERS}:run", "Create and run a new container from an image"),
    "start": (f"{_CONTAINERS}:start", "Start one or more stopped containers"),
    "stop": (f"{_CONTAINERS}:stop", "Stop one or more running containers"),
    "wait": (f"{_CONTAINERS}:wait", "Block until one or more containers stop, then print their exit codes"),
    "exec": ("dockyard.core.cli.exec_command:exec_", "Execute a command in a running container"),
    "top": ("dockyard.core.cli.process_commands:top", "Display the running processes of a container"),
    "stats": (
        "dockyard.core.cli.process_commands:stats",
        "Display a live stream of container(s) resource usage statistics",
    ),
    "pause": (
        "dockyard.core.cli.process_commands:pause",
        "Pause all processes within one or more containers",
    ),
    "unpause": (
        "dockyard.core.cli.process_commands:unpause",
        "Unpause all processes within one or more containers",
    ),
    "rename": ("dockyard.core.cli.container_admin_commands:rename", "Rename a container"),
    "port": (
        "dockyard.core.cli.container_admin_commands:port",
        "List port mappings or a specific mapping for the container",
    ),
    "cp": (
        "dockyard.core.cli.container_admin_commands:cp",
        "Copy files/folders between a container and the local filesystem",
    ),
    "diff": (
        "dockyard.core.cli.commit_commands:diff",
        "Inspect changes to files or directories on a container's filesystem",
    ),
    "events": ("dockyard.core.cli.events_command:events", "Get real time events from the server"),
    "system": ("dockyard.core.cli.system_group:system", "Manage Dockyard"),
    "export": (
        "dockyard.core.cli.container_admin_commands:export",
        "Export a container's filesystem as a tar archive",
    ),
    "build": ("dockyard.core.cli.build_command:build", "Build an image from a Dockerfile"),
    "history": ("dockyard.core.cli.image_commands:history", "Show the history of an image"),
    "image": ("dockyard.core.cli.image_commands:image", "Manage images"),
    "images": ("dockyard.core.cli.image_commands:images", "List images"),
    "import": (
        "dockyard.core.cli.image_commands:import_",
        "Import the contents from a tarball to create a filesystem image",
    ),
    "info": ("dockyard.core.cli.system_commands:info", "Display system-wide information"),
    "inspect": (
        "dockyard.core.cli.inspect_commands:inspect",
        "Return low-level information on Dockyard objects",
    ),
    "load": ("dockyard.core.cli.registry_commands:load", "Load an image from a tar archive or STDIN"),
    "login": ("dockyard.core.cli.registry_commands:login", "Log in to a registry"),
    "logout": ("dockyard.core.cli.registry_commands:logout", "Log out from a registry"),
    "pull": ("dockyard.core.cli.registry_commands:pull", "Download an image from a registry"),
    "push": ("dockyard.core.cli.registry_commands:push", "Upload an image to a registry"),
    "rmi": ("dockyard.core.cli.image_commands:rmi", "Remove one or more images"),
    "save": (
        "dockyard.core.cli.registry_commands:save",
        "Save one or more images to a tar archive (streamed to STDOUT by default)",
    ),
    "tag": (
        "dockyard.core.cli.image_commands:tag",
        "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    ),
    "network": ("dockyard.core.cli.network_commands:network", "Manage networks"),
    "volume": ("dockyard.core.cli.volume_commands:volume", "Manage volumes"),
    "version": (
        "dockyard.core.cli.system_commands:version",
        "Show the Dockyard version information",
    ),
}


def _import_string(target: str) -> Any:
    import importlib

    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _plugin_commands() -> dict[str, str]:
    from dockyard.core.entrypoints import COMMAND_GROUP, autoload_enabled, entry_points

    if not autoload_enabled():
        return {}
    return {ep.name: ep.value for ep in entry_points(COMMAND_GROUP)}


class LazyGroup(click.Group):
    """A click group whose subcommands are import strings, resolved only when invoked."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and plugin command names, for help and completion."""
        return sorted({*super().list_commands(ctx), *self._lazy, *_plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import the named command only now."""
        if cmd_name in self._lazy:
            command = _import_string(self._lazy[cmd_name][0])
        elif cmd_name in self.commands:
            return self.commands[cmd_name]
        else:
            target = _plugin_commands().get(cmd_name)
            if target is None:
                return None
            command = _import_string(target)
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{cmd_name}: {command!r} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands with their short help, importing only plugin commands."""
        rows = [(name, self._lazy[name][1]) for name in sorted(self._lazy)]
        for name, target in sorted(_plugin_commands().items()):
            if name not in self._lazy:
                rows.append((name, _plugin_help(target)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _plugin_help(target: str) -> str:
    command = _import_string(target)
    if isinstance(command, click.Command):
        return command.get_short_help_str()
    return ""


@click.group(
    cls=LazyGroup,
    lazy=BUILTIN_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# readable=False: an unreadable root is reported by the command that reads it, as one line.
@click.option("--root", type=click.Path(readable=False), help="Storage root (default /var/lib/dockyard).")
@click.option("--runroot", type=click.Path(), help="Runtime state root (default /run/dockyard).")
@click.option("--storage-driver", "-s", help="Storage driver to use (see `dockyard info`).")
@click.option(
    "--log-level",
    "-l",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Logging level (default warning).",
)
@click.option("--log-format", type=click.Choice(["console", "json"]), help="Log rendering.")
@click.version_option(__version__, "--version", "-v", message="Dockyard version %(version)s")
@click.pass_context
def cli(ctx: click.Context, /, **flags: str | None) -> None:
    """A daemonless container engine with Docker's commands."""
    from dockyard.core import log
    from dockyard.core.config import load_settings
    from dockyard.core.engine import Engine

    settings = load_settings(flags)
    log.configure(level=settings.log_level, log_format=settings.log_format)
    if settings.rootless:
        from dockyard.core.user_namespace import enter

        enter(settings)
    ctx.obj = Engine(settings)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI with Docker's exit codes (see `exit_status`): 125 for usage errors, the
    failed command's status for engine errors."""
    from dockyard.core.cli.exit_status import USAGE_ERROR, error_status
    from dockyard.core.cli.launcher import report_error
    from dockyard.core.errors import DockyardError

    args = sys.argv[1:] if argv is None else argv
    try:
        # Without standalone mode click returns a command's `ctx.exit(code)` instead of raising.
        status = cli.main(args=args, prog_name="dockyard", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(USAGE_ERROR)
    except (DockyardError, OSError) as exc:
        report_error(exc)
        sys.exit(error_status(exc, _failed_command(args)))
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


def _failed_command(args: list[str]) -> str:
    """The words naming the command `args` ran (`container run` for `--root /x container run ...`),
    parsed again by click without running anything: the command's own context is gone by now."""
    words: list[str] = []
    command: click.Command | None = cli
    parent: click.Context | None = None
    while isinstance(command, click.Group) and args:
        name = words[-1] if words else "dockyard"
        ctx = command.make_context(name, list(args), parent=parent, resilient_parsing=True)
        # A group leaves in ctx.args what follows its subcommand's name, which comes right before.
        words.append(args[len(args) - len(ctx.args) - 1])
        command, args, parent = command.get_command(ctx, words[-1]), ctx.args, ctx
    return " ".join(words)
