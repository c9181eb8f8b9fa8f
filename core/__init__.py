"""Dockyard's core: the plugin contract, settings, state and image stores, and the CLI.

The core knows no driver by name; drivers arrive through the hooks in `dockyard.core.hookspecs`.
"""

__version__ = "0.1.0"
