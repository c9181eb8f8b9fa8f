"""Built-in storage drivers, each a plugin module registering through `dockyard_register_drivers`."""
