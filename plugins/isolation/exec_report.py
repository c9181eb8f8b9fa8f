"""How a container's first process tells the driver that it could not exec its command.

The driver makes a close-on-exec pipe before it forks. The child writes one JSON record to it when
something fails, then exits; when execve succeeds the kernel closes the pipe and the driver reads
end-of-file. The driver thus learns, before returning, whether the command runs, and raises the
same error classes a user sees from Docker: CommandNotFound (127), CommandNotExecutable (126) or
DriverFailed (125).

    {"error": "CommandNotFound", "message": "exec: \\"foo\\": executable file not found in $PATH"}
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from dockyard.core.errors import (
    CommandNotExecutable,
    CommandNotFound,
    DockyardError,
    DriverFailed,
    DriverPrerequisites,
    UsageError,
)

__all__ = ["await_exec", "run_child"]

_ERRORS: dict[str, type[DockyardError]] = {
    cls.__name__: cls
    for cls in (CommandNotFound, CommandNotExecutable, DriverFailed, DriverPrerequisites, UsageError)
}
_PIPE_BUF = 4096  # writes up to this size are atomic
_FAILED_EXIT = 125


def run_child(report_fd: int, body: Callable[[], object]) -> NoReturn:
    """Run `body` (which execs on success) in a forked child; report any failure and exit.

    Never returns into the caller's stack, whatever `body` raises.
    """
    record = {"error": "DriverFailed", "message": "the container process ended before exec"}
    handled = sys.exc_info()[1]  # the caller may be inside an `except` block: not ours to report
    try:
        body()
    except (DockyardError, OSError) as exc:
        kind = type(exc).__name__ if type(exc).__name__ in _ERRORS else "DriverFailed"
        record = {"error": kind, "message": str(exc)}
    finally:
        unexpected = sys.exc_info()[1]
        if unexpected is not None and unexpected is not handled:  # a bug: say what it was
            record = {"error": "DriverFailed", "message": f"container setup failed: {unexpected!r}"}
        os.write(report_fd, json.dumps(record).encode()[:_PIPE_BUF])
        os._exit(_FAILED_EXIT)


def await_exec(report_fd: int) -> None:
    """Read the child's record until EOF; return if it exec'd, raise what it reported otherwise."""
    chunks = []
    while chunk := os.read(report_fd, _PIPE_BUF):
        chunks.append(chunk)
    if not chunks:
        return
    try:
        record = json.loads(b"".join(chunks))
        error, message = _ERRORS.get(record["error"], DriverFailed), str(record["message"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DriverFailed(f"unreadable report from the container process: {chunks!r}") from exc
    raise error(message)
