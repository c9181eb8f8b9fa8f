"""Docker's CLI exit statuses, decided in one place for every command, plugin commands included.

    125  a usage error of any command (click's bad flag, missing argument), and any engine error
         of `run` and `create` (`container run`, `container create`)
    126  the container's command cannot be invoked    } carried by the error itself:
    127  the container's command is not found         } CommandNotExecutable, CommandNotFound
    N    the container's own status (attached `run`, `start -a`, `exec`), returned by the command
    1    any other failure of any other command, as Docker's CLI exits after "Error response from
         daemon: ..."; a command acting on several names reports each failure and exits 1 at the end

An error carries a specific status when its `exit_code` differs from DockyardError's generic
ENGINE_ERROR; only the generic one is decided here from the command that failed. Kept free of
click so the launcher's fast path can use it without importing click.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import click

__all__ = ["ENGINE_ERROR", "FAILURE", "USAGE_ERROR", "command_failure", "error_status", "failure_status"]

ENGINE_ERROR = 125
USAGE_ERROR = 125
FAILURE = 1

# Docker's CLI wraps every error of these in a status 125; other commands exit 1.
_ENGINE_ERROR_COMMANDS = frozenset({"run", "create", "container run", "container create"})


def failure_status(command: str) -> int:
    """The status of a failure of `command` (its words after the program name, `container run`)."""
    return ENGINE_ERROR if command in _ENGINE_ERROR_COMMANDS else FAILURE


def error_status(error: BaseException, command: str) -> int:
    """The status for `error` raised by `command`: the error's own specific status, else the
    command's (`failure_status`); an OSError is a generic engine failure."""
    code = getattr(error, "exit_code", ENGINE_ERROR)
    return code if isinstance(code, int) and code != ENGINE_ERROR else failure_status(command)


def command_failure(ctx: click.Context) -> int:
    """The status of a failure of the running command, for one that reports its failures itself
    (`rm a b` tries every name first)."""
    return failure_status(ctx.command_path.partition(" ")[2])
