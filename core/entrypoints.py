"""Where third-party plugins come from, and the switch that turns their discovery off.

Kept free of pluggy so that `dockyard --help` can list plugin commands without loading plugins.
Entry points are read here from each distribution's `entry_points.txt` on `sys.path` rather
than through `importlib.metadata`, whose import (email, calendar, zipfile, ...) and scan cost
more than the whole `run` command's own work: the files are found with one directory listing per
`sys.path` entry, read once per process, and a distribution shadowed by an earlier one of the
same name is skipped, as `importlib.metadata.entry_points()` does.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "AUTOLOAD_SWITCH",
    "COMMAND_GROUP",
    "PLUGIN_GROUP",
    "EntryPoint",
    "autoload_enabled",
    "entry_points",
    "load_import_string",
]

PLUGIN_GROUP = "dockyard"
COMMAND_GROUP = "dockyard.commands"
AUTOLOAD_SWITCH = "DOCKYARD_DISABLE_PLUGIN_AUTOLOAD"
_METADATA_SUFFIXES = (".dist-info", ".egg-info")


def autoload_enabled() -> bool:
    """False when the environment asks to skip third-party plugins (any non-empty value)."""
    return not os.environ.get(AUTOLOAD_SWITCH)


class EntryPoint:
    """One `name = module:attribute` line of an installed distribution's entry_points.txt."""

    __slots__ = ("_metadata", "group", "name", "value")

    def __init__(self, name: str, value: str, group: str, metadata: str) -> None:
        self.name = name
        self.value = value
        self.group = group
        self._metadata = metadata

    def load(self) -> Any:
        """Import the module and return the object the entry point names (load_import_string)."""
        return load_import_string(self.value)

    def distribution(self) -> tuple[str, str]:
        """The (name, version) of the distribution that declares this entry point."""
        name = version = ""
        for file_name in ("METADATA", "PKG-INFO"):
            try:
                with open(os.path.join(self._metadata, file_name), encoding="utf-8") as handle:
                    for line in handle:
                        if not line.strip():
                            break  # the headers end at the first blank line
                        key, _, text = line.partition(":")
                        if key == "Name":
                            name = text.strip()
                        elif key == "Version":
                            version = text.strip()
            except OSError:
                continue
            break
        return name, version


def load_import_string(value: str) -> Any:
    """Import `module:attribute.path` and return the object it names (the module itself when it
    names no attribute); extras in brackets are ignored, as by importlib.metadata."""
    import importlib

    module_name, _, attribute = value.partition("[")[0].partition(":")
    target = importlib.import_module(module_name.strip())
    for part in attribute.strip().split(".") if attribute.strip() else ():
        target = getattr(target, part)
    return target


def entry_points(group: str) -> list[EntryPoint]:
    """Every entry point of `group` declared by the distributions on `sys.path`."""
    return [entry for entry in _all_entry_points() if entry.group == group]


_cache: tuple[tuple[str, ...], list[EntryPoint]] | None = None


def _all_entry_points() -> list[EntryPoint]:
    """All entry points, read once per process (again only if `sys.path` changed)."""
    global _cache
    key = tuple(sys.path)
    if _cache is None or _cache[0] != key:
        _cache = (key, list(_scan(key)))
    return _cache[1]


def _scan(paths: tuple[str, ...]) -> list[EntryPoint]:
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for path in paths:
        try:
            names = sorted(os.listdir(path or "."))
        except OSError:
            continue  # a zip file or a missing directory: no installed distributions there
        for name in names:
            if not name.endswith(_METADATA_SUFFIXES):
                continue
            distribution = _normalised(name.rpartition(".")[0].partition("-")[0])
            if distribution in seen:
                continue
            seen.add(distribution)
            metadata = os.path.join(path or ".", name)
            found.extend(_read(metadata))
    return found


def _normalised(name: str) -> str:
    """A distribution name compared as PEP 503 does: case and runs of -_. do not matter."""
    text = name.lower().replace("-", "_").replace(".", "_")
    while "__" in text:
        text = text.replace("__", "_")
    return text


def _read(metadata: str) -> list[EntryPoint]:
    """The entry points of one distribution (none when it declares none)."""
    try:
        with open(os.path.join(metadata, "entry_points.txt"), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    group = ""
    found = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
        elif "=" in line and group:
            name, _, value = line.partition("=")
            found.append(EntryPoint(name.strip(), value.strip(), group, metadata))
    return found
