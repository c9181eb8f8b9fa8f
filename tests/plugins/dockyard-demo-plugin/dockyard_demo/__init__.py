"""A third-party Dockyard plugin: the tests' proof that plugins plug in, and an example to copy.

It uses the three extension points a package has:

- lifecycle hooks: each event is appended as one JSON line to the file named by
  `DOCKYARD_DEMO_EVENTS`; nothing is written when the variable is unset;
- a storage driver, `demo-copy`: the built-in plain-copy driver under another name, priority 0 so
  it is used only when named (`dockyard --storage-driver demo-copy ...`);
- a command, `dockyard demo-hello`, declared in the `dockyard.commands` entry-point group
  (see pyproject.toml and `dockyard_demo.cli`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

from dockyard.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from dockyard.core.drivers import DriverContext, DriverRegistry
    from dockyard_demo.driver import DemoCopyDriver

EVENTS_VARIABLE = "DOCKYARD_DEMO_EVENTS"
DRIVER_NAME = "demo-copy"

log = logging.getLogger(__name__)


def _record(event: str, **fields: object) -> None:
    """Append one event as a JSON line; a failed write is logged, never raised (hooks must not)."""
    path = os.environ.get(EVENTS_VARIABLE)
    if not path:
        return
    line = json.dumps({"event": event, **fields}, sort_keys=True)
    try:
        with open(path, "a", encoding="utf-8") as events:
            events.write(line + "\n")
    except OSError as exc:
        log.warning("cannot record %s event in %s: %s", event, path, exc)


def _build_driver(context: DriverContext) -> DemoCopyDriver:
    # Imported when the driver is built, not when the plugin loads: commands that never touch
    # storage do not pay for the driver's imports.
    from dockyard_demo.driver import DemoCopyDriver

    return DemoCopyDriver(context)


@hookimpl
def dockyard_register_drivers(register: DriverRegistry) -> None:
    """Register `demo-copy` with priority 0, so automatic selection never picks it."""
    register.storage(
        DRIVER_NAME,
        _build_driver,
        plugin=__name__,
        priority=0,
        description="plain copy, registered by a third-party plugin",
    )


@hookimpl
def dockyard_container_created(container_id: str, name: str, image: str) -> None:
    """Record a container creation."""
    _record("container_created", container_id=container_id, name=name, image=image)


@hookimpl
def dockyard_container_started(container_id: str, pid: int) -> None:
    """Record a container start."""
    _record("container_started", container_id=container_id, pid=pid)


@hookimpl
def dockyard_container_stopped(container_id: str, exit_code: int) -> None:
    """Record a container's exit."""
    _record("container_stopped", container_id=container_id, exit_code=exit_code)


@hookimpl
def dockyard_container_removed(container_id: str) -> None:
    """Record a container removal."""
    _record("container_removed", container_id=container_id)


@hookimpl
def dockyard_image_pulled(image_id: str, reference: str) -> None:
    """Record a pull."""
    _record("image_pulled", image_id=image_id, reference=reference)


@hookimpl
def dockyard_image_imported(image_id: str, reference: str | None) -> None:
    """Record an import."""
    _record("image_imported", image_id=image_id, reference=reference)


@hookimpl
def dockyard_image_tagged(image_id: str, reference: str) -> None:
    """Record a new tag."""
    _record("image_tagged", image_id=image_id, reference=reference)


@hookimpl
def dockyard_image_untagged(image_id: str, reference: str) -> None:
    """Record a removed tag."""
    _record("image_untagged", image_id=image_id, reference=reference)


@hookimpl
def dockyard_image_removed(image_id: str) -> None:
    """Record an image removal."""
    _record("image_removed", image_id=image_id)
