"""The `demo-copy` storage driver: the built-in plain-copy driver under the demo's name."""

from __future__ import annotations

from dockyard.plugins.storage.vfs import VfsDriver


class DemoCopyDriver(VfsDriver):
    """Stores layers exactly as `vfs` does; only the name differs.

    That is all the demo has to prove: a driver registered by a third party is listed by `info`,
    selected by name, and does the real work of an import.
    """

    name = "demo-copy"
