"""Dockyard's built-in plugins.

Each entry is an import string registered exactly as a third party's entry point would be: the core
loads this list through the plugin manager and never imports a driver module itself.
"""

BUILTIN_PLUGINS: tuple[str, ...] = (
    "dockyard.plugins.storage.vfs",
    "dockyard.plugins.storage.overlay",
    "dockyard.plugins.storage.btrfs",
    "dockyard.plugins.isolation.namespaces",
    "dockyard.plugins.isolation.oci",
    "dockyard.plugins.isolation.rootless",
    "dockyard.plugins.network.none",
    "dockyard.plugins.network.host",
    "dockyard.plugins.network.bridge",
    "dockyard.plugins.network.pasta",
    "dockyard.plugins.network.slirp4netns",
    "dockyard.plugins.events",
)
