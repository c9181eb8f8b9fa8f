"""The plugin manager: built-in plugins plus the `dockyard` entry-point group, behind typed calls.

Loading plugins costs an entry-point scan and the plugins' imports, so commands that need no driver
and fire no hook (`--help`, `--version`, `images`) never build a manager.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pluggy

from dockyard.core import hookspecs
from dockyard.core.drivers import DriverRegistry
from dockyard.core.entrypoints import PLUGIN_GROUP, autoload_enabled, entry_points
from dockyard.core.log import get_logger

if TYPE_CHECKING:
    from dockyard.core.config import Settings

__all__ = ["Hooks", "PluginInfo", "load_plugins"]

log = get_logger(__name__)


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name, where it came from and its distribution's version."""

    name: str
    source: str
    version: str = ""


@dataclass
class Hooks:
    """Typed calls into every plugin; the only way the core invokes hooks."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo] = field(default_factory=list)
    drivers: DriverRegistry = field(default_factory=DriverRegistry)

    def configure(self, *, settings: Settings) -> None:
        """Tell plugins the engine's settings; register the objects they return as plugins."""
        for plugin in self.manager.hook.dockyard_configure(settings=settings):
            if plugin is not None:
                self.manager.register(plugin)

    def container_created(self, *, container_id: str, name: str, image: str) -> None:
        """Tell plugins a container was created."""
        self.manager.hook.dockyard_container_created(container_id=container_id, name=name, image=image)

    def container_started(self, *, container_id: str, pid: int) -> None:
        """Tell plugins a container's process started."""
        self.manager.hook.dockyard_container_started(container_id=container_id, pid=pid)

    def container_stopped(self, *, container_id: str, exit_code: int) -> None:
        """Tell plugins a container's process ended."""
        self.manager.hook.dockyard_container_stopped(container_id=container_id, exit_code=exit_code)

    def container_removed(self, *, container_id: str) -> None:
        """Tell plugins a container was removed."""
        self.manager.hook.dockyard_container_removed(container_id=container_id)

    def container_renamed(self, *, container_id: str, old_name: str, new_name: str) -> None:
        """Tell plugins a container was renamed."""
        self.manager.hook.dockyard_container_renamed(
            container_id=container_id, old_name=old_name, new_name=new_name
        )

    def container_paused(self, *, container_id: str) -> None:
        """Tell plugins a container was paused."""
        self.manager.hook.dockyard_container_paused(container_id=container_id)

    def container_unpaused(self, *, container_id: str) -> None:
        """Tell plugins a container was unpaused."""
        self.manager.hook.dockyard_container_unpaused(container_id=container_id)

    def container_committed(
        self, *, container_id: str, image_id: str, reference: str | None, comment: str
    ) -> None:
        """Tell plugins an image was made from a container's changes."""
        self.manager.hook.dockyard_container_committed(
            container_id=container_id, image_id=image_id, reference=reference, comment=comment
        )

    def image_pulled(self, *, image_id: str, reference: str) -> None:
        """Tell plugins an image was pulled."""
        self.manager.hook.dockyard_image_pulled(image_id=image_id, reference=reference)

    def image_imported(self, *, image_id: str, reference: str | None) -> None:
        """Tell plugins an image was imported from a tarball."""
        self.manager.hook.dockyard_image_imported(image_id=image_id, reference=reference)

    def image_tagged(self, *, image_id: str, reference: str) -> None:
        """Tell plugins a reference now points at an image."""
        self.manager.hook.dockyard_image_tagged(image_id=image_id, reference=reference)

    def image_untagged(self, *, image_id: str, reference: str) -> None:
        """Tell plugins a reference was removed from an image."""
        self.manager.hook.dockyard_image_untagged(image_id=image_id, reference=reference)

    def image_removed(self, *, image_id: str) -> None:
        """Tell plugins an image was deleted."""
        self.manager.hook.dockyard_image_removed(image_id=image_id)


def load_plugins(*, builtin: tuple[str, ...] | None = None, autoload: bool | None = None) -> Hooks:
    """Build the plugin manager: built-ins first, then the entry-point group unless switched off."""
    from dockyard.plugins import BUILTIN_PLUGINS

    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    hooks = Hooks(manager)
    for import_string in BUILTIN_PLUGINS if builtin is None else builtin:
        module = importlib.import_module(import_string)
        manager.register(module, name=import_string)
        hooks.plugins.append(PluginInfo(import_string, "builtin"))
    if autoload is None:
        autoload = autoload_enabled()
    if autoload:
        _load_entry_points(manager, hooks)
    manager.hook.dockyard_register_drivers.call_historic(kwargs={"register": hooks.drivers})
    return hooks


def _load_entry_points(manager: pluggy.PluginManager, hooks: Hooks) -> None:
    for entry_point in entry_points(PLUGIN_GROUP):
        if manager.get_plugin(entry_point.name) is not None or manager.is_blocked(entry_point.name):
            continue
        plugin = entry_point.load()
        manager.register(plugin, name=entry_point.name)
        dist_name, dist_version = entry_point.distribution()
        hooks.plugins.append(
            PluginInfo(entry_point.name, f"{dist_name or '?'} ({entry_point.value})", dist_version)
        )
        log.debug("plugin loaded", plugin=entry_point.name, value=entry_point.value)
