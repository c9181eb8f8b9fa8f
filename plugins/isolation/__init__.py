"""Built-in isolation drivers, each a plugin module registering through `dockyard_register_drivers`."""
