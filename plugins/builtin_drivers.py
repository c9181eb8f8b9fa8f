"""Every built-in driver, registered by import string: loading plugins imports no driver module.

A `run` uses one storage, one network and one isolation driver, yet importing all eleven driver
modules to register them cost ~20 ms of every command that loads plugins. Here each driver is
named with its factory as an import string (`DriverRegistry` accepts one); its module is imported
only when the driver is built, and `plugin` still names the module that implements it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from dockyard.core.drivers import DriverRegistry

__all__ = ["BUILTIN_DRIVERS", "dockyard_register_drivers"]

_PACKAGE = "dockyard.plugins"

BUILTIN_DRIVERS: tuple[tuple[str, str, str, int, str], ...] = (
    # (kind, name, "module:factory" under dockyard.plugins, priority, description)
    ("storage", "overlay", "storage.overlay:OverlayDriver", 30,
     "overlayfs: layers shared as lower directories, containers as upper ones"),
    ("storage", "btrfs", "storage.btrfs:BtrfsDriver", 20,
     "btrfs: a subvolume per layer, a snapshot per child layer and container"),
    ("storage", "vfs", "storage.vfs:VfsDriver", 1,
     "plain copy: every layer a full copy of its parent"),
    ("isolation", "namespaces", "isolation.namespaces:NamespacesDriver", 20,
     "Linux namespaces, cgroups, capabilities and seccomp, set up in Python"),
    ("isolation", "rootless", "isolation.rootless:RootlessDriver", 20,
     "Linux namespaces inside the user's own user namespace (subordinate ids)"),
    ("isolation", "oci", "isolation.oci:OciDriver", 0,
     "an OCI runtime (runc by default; crun, runsc) running a generated bundle"),
    ("network", "bridge", "network.bridge:BridgeNetworkDriver", 20,
     "a private address on the dockyard0 bridge, NAT and published ports"),
    ("network", "none", "network.none:NoneNetworkDriver", 10,
     "a private network namespace with only loopback"),
    ("network", "pasta", "network.pasta:PastaNetworkDriver", 8,
     "user-mode networking by pasta (passt): no privilege needed, published ports"),
    ("network", "slirp4netns", "network.slirp4netns:Slirp4netnsNetworkDriver", 6,
     "user-mode networking by slirp4netns: no privilege needed, published ports"),
    ("network", "host", "network.host:HostNetworkDriver", 0,
     "share the host's network namespace (no isolation)"),
)  # fmt: skip


@hookimpl
def dockyard_register_drivers(register: DriverRegistry) -> None:
    """Register every built-in driver under its implementing module's name, importing none."""
    for kind, name, target, priority, description in BUILTIN_DRIVERS:
        module = f"{_PACKAGE}.{target.partition(':')[0]}"
        add = getattr(register, kind)
        add(name, f"{_PACKAGE}.{target}", plugin=module, priority=priority, description=description)
