"""The engine: settings bound to plugins, the selected storage driver and its stores.

Everything is built on first use, so a command pays only for what it touches: `images` reads the
image store without loading a single plugin when the storage driver in use can be read off disk.
"""

from __future__ import annotations

from functools import cached_property

TYPE_CHECKING = False  # the driver contracts are imported only when a driver is needed
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from dockyard.core.config import Settings
    from dockyard.core.containers import ContainerStore
    from dockyard.core.drivers import DriverContext, DriverEntry, DriverKind, StorageDriver
    from dockyard.core.images import ImageStore
    from dockyard.core.layers import LayerStore
    from dockyard.core.networks import NetworkStore
    from dockyard.core.plugins import Hooks
    from dockyard.core.volumes import VolumeStore

__all__ = ["Engine"]


class Engine:
    """One command's view of Dockyard: settings, plugins, drivers and stores, built lazily."""

    def __init__(self, settings: Settings, *, plugin_autoload: bool | None = None) -> None:
        self.settings = settings
        self.plugin_autoload = plugin_autoload
        self._drivers: dict[tuple[str, str], Any] = {}

    @cached_property
    def hooks(self) -> Hooks:
        """Every plugin, loaded on first use and told this engine's settings."""
        from dockyard.core.plugins import load_plugins

        hooks = load_plugins(autoload=self.plugin_autoload)
        hooks.configure(settings=self.settings)
        return hooks

    def driver_context(self, kind: DriverKind, name: str) -> DriverContext:
        """The context a driver of this kind and name is built with."""
        from dockyard.core.drivers import DriverContext

        return DriverContext(
            home=self.settings.root / str(kind) / name,
            run_dir=self.settings.runroot / str(kind) / name,
            rootless=self.settings.rootless,
        )

    def build_driver(self, entry: DriverEntry) -> Any:
        """Build a registered driver with its context."""
        return entry.factory(self.driver_context(entry.kind, entry.name))

    def storage_names_on_disk(self) -> list[str]:
        """Storage drivers that already have state under the root (not a driver's scratch space
        next to its home, such as overlay's availability probe)."""
        base = self.settings.root / "storage"
        if not base.is_dir():
            return []
        return sorted(
            entry.name for entry in base.iterdir() if entry.is_dir() and not entry.name.startswith(".")
        )

    @cached_property
    def storage_name(self) -> str:
        """The storage driver in use: named, else the one with state on disk, else by priority."""
        explicit = self.settings.storage_driver
        if not explicit:
            on_disk = self.storage_names_on_disk()
            if len(on_disk) == 1:
                return on_disk[0]
        return self.storage_entry.name

    @cached_property
    def storage_entry(self) -> DriverEntry:
        """The registry entry of the storage driver in use."""
        from dockyard.core.drivers import DriverKind, select_driver

        on_disk = set(self.storage_names_on_disk())
        return select_driver(
            self.hooks.drivers,
            DriverKind.STORAGE,
            explicit=self.settings.storage_driver,
            in_use=on_disk.__contains__,
            build=self.build_driver,
        )

    @cached_property
    def storage(self) -> StorageDriver:
        """The storage driver in use, checked to be usable on this host."""
        entry = self.storage_entry
        driver: StorageDriver = self.build_driver(entry)
        driver.available().raise_if_unusable(entry.name)
        return driver

    @cached_property
    def image_home(self) -> Path:
        """Where the image records of the storage driver in use live."""
        return self.settings.root / "image-store" / self.storage_name

    @cached_property
    def images(self) -> ImageStore:
        """The image store of the storage driver in use, once the flushes that earlier commands
        left owing are settled (core/deferred_flush.py)."""
        from dockyard.core.deferred_flush import settle_notes
        from dockyard.core.images import ImageStore

        store = ImageStore(self.image_home)

        def write_off(layers: set[str]) -> None:
            from dockyard.core.image_assembly import write_off_layers

            write_off_layers(self, store, layers)

        settle_notes(self.image_home, self.image_homes, write_off)
        return store

    def image_homes(self) -> list[Path]:
        """The directories whose filesystems hold what images are made of: the image store's
        and the storage driver's."""
        from dockyard.core.drivers import DriverKind

        return [self.image_home, self.driver_context(DriverKind.STORAGE, self.storage_name).home]

    @cached_property
    def layers(self) -> LayerStore:
        """The layers of the storage driver in use."""
        from dockyard.core.layers import LayerStore

        return LayerStore(self.image_home, self.storage)

    @cached_property
    def containers(self) -> ContainerStore:
        """The containers under this root."""
        from dockyard.core.containers import ContainerStore

        return ContainerStore(self.settings.root / "containers")

    def container_runtime_dir(self, container_id: str) -> Path:
        """Where a container's monitor keeps what lives only while it runs (its attach socket)."""
        return self.settings.runroot / "containers" / container_id

    def attach_socket(self, container_id: str) -> Path:
        """The socket a container's monitor serves attach clients on."""
        return self.container_runtime_dir(container_id) / "attach.sock"

    @cached_property
    def volumes(self) -> VolumeStore:
        """The volumes under this root."""
        from dockyard.core.volumes import VolumeStore

        return VolumeStore(self.settings.root / "volumes")

    @cached_property
    def networks(self) -> NetworkStore:
        """The user-defined networks under this root."""
        from dockyard.core.networks import NetworkStore

        return NetworkStore(self.settings.root / "networks")

    def select_driver(self, kind: DriverKind, explicit: str | None) -> DriverEntry:
        """The named driver of a kind, or the highest-priority one this host can use."""
        from dockyard.core.drivers import select_driver

        return select_driver(
            self.hooks.drivers, kind, explicit=explicit, in_use=lambda name: False, build=self.build_driver
        )

    def driver(self, kind: DriverKind, name: str) -> Any:
        """A network or isolation driver by name, checked to be usable on this host."""
        key = (str(kind), name)
        if key not in self._drivers:
            entry = self.hooks.drivers.get(kind, name)
            driver = self.build_driver(entry)
            driver.available().raise_if_unusable(name)
            self._drivers[key] = driver
        return self._drivers[key]

    @property
    def scratch_parent(self) -> Path:
        """Where commands make their private working directories."""
        return self.settings.root / "tmp"

    def recover(self) -> None:
        """Clean up after commands that were killed: stale scratch space and driver leftovers."""
        from dockyard.core.store import clean_stale_scratch

        clean_stale_scratch(self.scratch_parent)
        self.storage.cleanup()
