"""Built-in network drivers, each registered by name in `dockyard.plugins.builtin_drivers`."""
