"""Dockyard's exceptions, all in one place.

    DockyardError                 anything Dockyard reports to a user (a generic engine error)
    ├── UsageError                the user asked for something malformed (bad flag value, bad reference)
    │   ├── InvalidReference      an image reference that does not parse
    │   ├── DockerfileError       a Dockerfile that does not parse or whose variables do not expand
    │   └── InvalidDigest         a digest that is not `algorithm:lowercase-hex` of the right length
    ├── NotFoundError             no such image, container, driver, ...
    │   └── AmbiguousIdError      an id prefix that matches more than one object
    ├── ConflictError             the operation would break something (image in use, tag exists, ...)
    ├── StoreError                on-disk state is unreadable or a write failed
    ├── ContentError              content does not match its digest, size or declared type
    ├── UnsafeLayerError          a layer archive tries to reach outside its layer
    ├── RegistryError             a registry refused a request or could not be reached
    ├── CommandError              a container's command could not be started (Docker's 126/127)
    │   ├── CommandNotFound       no such executable in the container (exit status 127)
    │   └── CommandNotExecutable  it exists but cannot be executed: permissions, format (126)
    └── DriverError               a driver could not do what was asked
        ├── DriverNotSupported    this host cannot run the driver at all (wrong kernel, filesystem, ...)
        ├── DriverPrerequisites   the host could, but something is missing (a package, a module, a mount)
        └── DriverFailed          the driver tried and the operation failed

Backend errors (OSError, netlink and btrfs errors) are translated into these at the boundary with
`raise ... from exc`, so the CLI can print one line and keep the traceback for `--log-level debug`.

Exit statuses follow Docker's CLI: an error's `exit_code` is 125, the generic engine error, unless
it carries a specific status (126, 127, or a container's own); the CLI exits with a generic one as
125 for `run` and `create` and as 1 for every other command (core/cli/exit_status.py).
"""

from __future__ import annotations

__all__ = [
    "AmbiguousIdError",
    "CommandError",
    "CommandNotExecutable",
    "CommandNotFound",
    "ConflictError",
    "ContentError",
    "DockerfileError",
    "DockyardError",
    "DriverError",
    "DriverFailed",
    "DriverNotSupported",
    "DriverPrerequisites",
    "InvalidDigest",
    "InvalidReference",
    "NotFoundError",
    "RegistryError",
    "StoreError",
    "UnsafeLayerError",
    "UsageError",
]


class DockyardError(Exception):
    """Base of every error Dockyard reports; `exit_code` 125 is the generic engine error, which the
    CLI turns into its command's status (125 for `run` and `create`, else 1); any other value is a
    specific status the CLI exits with as it is."""

    exit_code: int = 125


class UsageError(DockyardError):
    """The request itself is malformed."""


class InvalidReference(UsageError):
    """An image reference does not follow the distribution reference grammar."""


class DockerfileError(UsageError):
    """A Dockerfile does not parse, or an instruction's variables do not expand; `line` is the
    1-based line of the instruction when known, for the message Docker prints:
    `Dockerfile parse error line 3: unknown instruction: RUNN`."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class InvalidDigest(UsageError):
    """A digest is not `algorithm:hex` with a known algorithm and the exact hex length."""


class NotFoundError(DockyardError):
    """The named object does not exist."""


class AmbiguousIdError(NotFoundError):
    """An id prefix matches more than one object."""


class ConflictError(DockyardError):
    """The operation conflicts with the current state (in use, already exists)."""


class StoreError(DockyardError):
    """On-disk state could not be read or written."""


class ContentError(DockyardError):
    """Content does not match its digest, size or declared media type."""


class UnsafeLayerError(DockyardError):
    """A layer archive contains an entry that would escape or corrupt the layer."""


class RegistryError(DockyardError):
    """A registry refused a request or could not be reached; `status` is the HTTP status, if any.

    The message follows Docker's shape, `Get "URL": unauthorized: authentication required`, so a
    user sees which request failed and the registry's own words.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CommandError(DockyardError):
    """The container was set up but its command could not be executed.

    `exit_code` is what `docker run`, `start -a` and `exec` exit with in that case, and the CLI
    passes it on whatever the command.
    """


class CommandNotFound(CommandError):
    """The command is not a file in the container (`executable file not found in $PATH`)."""

    exit_code = 127


class CommandNotExecutable(CommandError):
    """The command exists in the container but cannot be executed (`permission denied`)."""

    exit_code = 126


class DriverError(DockyardError):
    """A driver could not perform an operation."""


class DriverNotSupported(DriverError):
    """The driver cannot work on this host at all."""


class DriverPrerequisites(DriverError):
    """The driver could work on this host, but something it needs is missing."""


class DriverFailed(DriverError):
    """The driver attempted the operation and it failed."""
