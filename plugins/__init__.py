"""Dockyard's built-in plugins.

Each entry is an import string registered exactly as a third party's entry point would be: the core
loads this list through the plugin manager and never imports a driver module itself. The drivers
are registered by `builtin_drivers` from import strings, so a command imports only those it builds.
"""

BUILTIN_PLUGINS: tuple[str, ...] = (
    "dockyard.plugins.builtin_drivers",
    "dockyard.plugins.events",
)
