"""Settings: defaults < TOML config file < DOCKYARD_* environment < command-line flags.

Config files are read in order, later ones overriding: /etc/dockyard/dockyard.toml, then the user's
$XDG_CONFIG_HOME/dockyard/dockyard.toml (~/.config when unset). `DOCKYARD_CONFIG` names a single file
instead. Keys are the setting names below (`storage_driver = "vfs"`, `root = "/srv/dockyard"`);
environment variables are the same names upper-cased behind `DOCKYARD_` (`DOCKYARD_STORAGE_DRIVER`).
"""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.core.errors import UsageError

TYPE_CHECKING = False  # typing itself costs start-up time; mypy still reads the block below
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "Settings", "config_files", "load_settings"]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("console", "json")
SYSTEM_CONFIG = Path("/etc/dockyard/dockyard.toml")


class Settings:
    """Every setting the engine reads, resolved once per command.

    A plain class rather than a dataclass: importing dataclasses would double the start-up time
    of `dockyard images`.
    """

    __slots__ = (
        "isolation_driver",
        "log_format",
        "log_level",
        "network_driver",
        "root",
        "rootless",
        "runroot",
        "storage_driver",
    )

    def __init__(
        self,
        *,
        root: Path,
        runroot: Path,
        rootless: bool,
        storage_driver: str | None = None,
        network_driver: str | None = None,
        isolation_driver: str | None = None,
        log_level: str = "warning",
        log_format: str = "console",
    ) -> None:
        self.root = root
        self.runroot = runroot
        self.rootless = rootless
        self.storage_driver = storage_driver
        self.network_driver = network_driver
        self.isolation_driver = isolation_driver
        self.log_level = log_level
        self.log_format = log_format

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Settings({fields})"


_PATH_KEYS = ("root", "runroot")
_TEXT_KEYS = ("storage_driver", "network_driver", "isolation_driver", "log_level", "log_format")


def _default_locations(rootless: bool, environ: Mapping[str, str]) -> tuple[Path, Path]:
    if not rootless:
        return Path("/var/lib/dockyard"), Path("/run/dockyard")
    home = Path(environ.get("HOME") or Path.home())
    data = Path(environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    runtime = environ.get("XDG_RUNTIME_DIR")
    run = Path(runtime) if runtime else Path(f"/tmp/dockyard-run-{os.getuid()}")
    return data / "dockyard", run / "dockyard"


def config_files(rootless: bool, environ: Mapping[str, str]) -> list[Path]:
    """The config files consulted, lowest precedence first."""
    explicit = environ.get("DOCKYARD_CONFIG")
    if explicit:
        return [Path(explicit)]
    home = Path(environ.get("HOME") or Path.home())
    user_dir = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [SYSTEM_CONFIG, user_dir / "dockyard" / "dockyard.toml"]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from exc
    import tomllib  # only when a config file exists: it costs startup time

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from exc
    unknown = set(data) - set(_PATH_KEYS) - set(_TEXT_KEYS)
    if unknown:
        raise UsageError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
    return data


def load_settings(
    flags: Mapping[str, str | None] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    euid: int | None = None,
) -> Settings:
    """Merge the layers of configuration into one `Settings`; `flags` holds command-line values."""
    environ = os.environ if environ is None else environ
    if euid is None:
        from dockyard.core.linux.idmaps import in_initial_user_namespace

        # Root of a user namespace (the rootless keeper's, as a container's monitor is) is rootless too.
        rootless = os.geteuid() != 0 or not in_initial_user_namespace()
    else:
        rootless = euid != 0
    root, runroot = _default_locations(rootless, environ)
    merged: dict[str, Any] = {"root": root, "runroot": runroot}
    for path in config_files(rootless, environ):
        merged.update(_read_toml(path))
    for key in (*_PATH_KEYS, *_TEXT_KEYS):
        value = environ.get(f"DOCKYARD_{key.upper()}")
        if value:
            merged[key] = value
    for key, value in (flags or {}).items():
        if value is not None:
            merged[key] = value
    for key in _TEXT_KEYS:
        if key in merged and not isinstance(merged[key], str):
            raise UsageError(f"setting {key} must be a string")
    level = merged.get("log_level", "warning").lower()
    if level not in LOG_LEVELS:
        raise UsageError(f"invalid log level {level!r} (choose from {', '.join(LOG_LEVELS)})")
    log_format = merged.get("log_format", "console")
    if log_format not in LOG_FORMATS:
        raise UsageError(f"invalid log format {log_format!r} (choose from console, json)")
    merged["log_level"] = level
    for key in _PATH_KEYS:
        merged[key] = Path(merged[key]).expanduser()
    return Settings(rootless=rootless, **{k: v for k, v in merged.items() if k in Settings.__slots__})
