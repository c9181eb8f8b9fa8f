"""Where third-party plugins come from, and the switch that turns their discovery off.

Kept free of pluggy so that `dockyard --help` can list plugin commands without loading plugins.
"""

from __future__ import annotations

import os

__all__ = ["AUTOLOAD_SWITCH", "COMMAND_GROUP", "PLUGIN_GROUP", "autoload_enabled"]

PLUGIN_GROUP = "dockyard"
COMMAND_GROUP = "dockyard.commands"
AUTOLOAD_SWITCH = "DOCKYARD_DISABLE_PLUGIN_AUTOLOAD"


def autoload_enabled() -> bool:
    """False when the environment asks to skip third-party plugins (any non-empty value)."""
    return not os.environ.get(AUTOLOAD_SWITCH)
