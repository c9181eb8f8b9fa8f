"""The named network namespace file each container's network lives in, for every netns driver.

A driver reserves the file (so two attaches of one container cannot both proceed), creates the
namespace behind it with loopback up, and removes it on detach; errors come back as the engine's.
"""

from __future__ import annotations

from pathlib import Path

from dockyard.core.errors import DriverFailed, UsageError

__all__ = ["create", "path_for", "remove", "reserve"]


def path_for(directory: Path, container_id: str) -> Path:
    """Where the container's namespace file lives under the driver's directory."""
    if not container_id or "/" in container_id or container_id.startswith("."):
        raise UsageError(f"invalid container id {container_id!r}")
    return directory / container_id


def reserve(path: Path, container_id: str) -> None:
    """Create the empty file the namespace will be bound to; refuse a second attach."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x"):
            pass
    except FileExistsError:
        raise DriverFailed(f"container {container_id} already has a network namespace at {path}") from None
    except OSError as exc:
        raise DriverFailed(f"cannot create {path}: {exc.strerror}") from exc


def create(path: Path, container_id: str) -> None:
    """Make a new network namespace with loopback up and bind it to the reserved file."""
    from dockyard.core.linux.netns import create_named

    try:
        create_named(path)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise DriverFailed(f"cannot create the network namespace of {container_id}: {exc}") from exc


def remove(path: Path) -> None:
    """Unbind and delete the namespace file; nothing to do when it is already gone."""
    from dockyard.core.linux.netns import remove_named

    try:
        remove_named(path)
    except OSError as exc:
        raise DriverFailed(f"cannot remove {path}: {exc.strerror}") from exc
