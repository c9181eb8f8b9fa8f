"""Built-in isolation drivers, each registered by name in `dockyard.plugins.builtin_drivers`."""
