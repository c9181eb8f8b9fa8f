"""The plugin contract: every hook Dockyard calls, typed and documented.

A plugin is a module or object with functions marked `@dockyard.core.hookspecs.hookimpl`, named after
the specs below. Built-in plugins (listed in `dockyard.plugins.BUILTIN_PLUGINS`) and third-party ones
(the `dockyard` entry-point group) are registered the same way; `DOCKYARD_DISABLE_PLUGIN_AUTOLOAD=1`
skips the entry-point group.

Commands: a plugin adds CLI commands through the `dockyard.commands` entry-point group, one entry per
command, its value an import string (`mypkg.cli:hello`). The CLI imports the command only when it
runs, so plugins cannot slow `dockyard --help` down beyond the entry-point scan.

Lifecycle hooks are notifications: every implementation is called, return values are ignored, and an
implementation must not raise (a failing observer must not fail the user's command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from dockyard.core.config import Settings
    from dockyard.core.drivers import DriverRegistry

PROJECT = "dockyard"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(historic=True)
def dockyard_register_drivers(register: DriverRegistry) -> None:
    """Register storage, network and isolation drivers.

    Call `register.storage(name, factory, plugin=..., priority=...)` (likewise `network`, `isolation`)
    once per driver. `factory(context)` builds the driver from a `DriverContext`; it must do no I/O.
    `factory` may be an import string (`mypkg.driver:MyDriver`): the module is imported only when
    the driver is built, so a plugin whose drivers a command does not use costs it nothing.
    A higher priority wins automatic selection; priority 0 means "only when named". Historic, so a
    plugin registered late still hears it.
    """


@hookspec
def dockyard_configure(settings: Settings) -> object | None:
    """The engine's settings are known: return an object to register as a plugin for them, or None.

    Called once per engine, after every plugin is loaded. A plugin that keeps state per storage
    root (the built-in event log does) returns an object whose hook implementations are bound to
    `settings.root`, instead of keeping module-level state that two engines would share.
    """


@hookspec
def dockyard_container_created(container_id: str, name: str, image: str) -> None:
    """A container was created from `image` (an image id) with the given id and name."""


@hookspec
def dockyard_container_started(container_id: str, pid: int) -> None:
    """A container's main process `pid` (as seen from the host) started."""


@hookspec
def dockyard_container_stopped(container_id: str, exit_code: int) -> None:
    """A container's main process ended with `exit_code` (128+N for signal N, as Docker reports)."""


@hookspec
def dockyard_container_removed(container_id: str) -> None:
    """A container and its read-write layer were removed."""


@hookspec
def dockyard_container_renamed(container_id: str, old_name: str, new_name: str) -> None:
    """A container's name changed from `old_name` to `new_name` (both without Docker's `/`)."""


@hookspec
def dockyard_container_paused(container_id: str) -> None:
    """Every process of a container was frozen (`pause`)."""


@hookspec
def dockyard_container_unpaused(container_id: str) -> None:
    """A paused container's processes were thawed (`unpause`, or before a stop or kill)."""


@hookspec
def dockyard_container_committed(
    container_id: str, image_id: str, reference: str | None, comment: str
) -> None:
    """A new image `image_id` was made from a container's changes (`commit`); `reference` is the
    tag it got (None: untagged) and `comment` the commit message. Tagging also fires
    `dockyard_image_tagged`."""


@hookspec
def dockyard_image_pulled(image_id: str, reference: str) -> None:
    """An image was pulled from a registry and stored under `reference`."""


@hookspec
def dockyard_image_imported(image_id: str, reference: str | None) -> None:
    """An image was created from a tarball (`import`); `reference` is None when untagged."""


@hookspec
def dockyard_image_tagged(image_id: str, reference: str) -> None:
    """`reference` now points at the image."""


@hookspec
def dockyard_image_untagged(image_id: str, reference: str) -> None:
    """`reference` no longer points at the image."""


@hookspec
def dockyard_image_removed(image_id: str) -> None:
    """An image and every layer only it used were deleted."""
