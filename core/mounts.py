"""`-v`, `--mount` and `--tmpfs` parsed into one list of mount records, Docker's inspect shape.

    {"Type": "bind"|"volume"|"tmpfs", "Source": ..., "Destination": ..., "RW": bool,
     "Name": volume name (volumes only), "Options": [...]}

A volume record with no Name is anonymous: the container creates it when it is created.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from dockyard.core.errors import UsageError

__all__ = ["parse_mounts"]

_VOLUME_MODES = {
    "ro",
    "rw",
    "z",
    "Z",
    "nocopy",
    "shared",
    "slave",
    "private",
    "rshared",
    "rslave",
    "rprivate",
}


def _destination(path: str, spec: str) -> str:
    if not path.startswith("/"):
        raise UsageError(f"invalid mount config: destination {path!r} in {spec!r} must be an absolute path")
    normalized = posixpath.normpath(path)
    if normalized == "/":
        raise UsageError(f"invalid mount config: destination can't be '/' in {spec!r}")
    return normalized


def _from_volume_flag(spec: str) -> dict[str, Any]:
    parts = spec.split(":")
    if len(parts) == 1:
        return {
            "Type": "volume",
            "Name": "",
            "Source": "",
            "Destination": _destination(parts[0], spec),
            "RW": True,
            "Options": [],
        }
    if len(parts) > 3:
        raise UsageError(f"invalid volume specification: {spec!r}")
    source, target = parts[0], parts[1]
    modes = parts[2].split(",") if len(parts) == 3 else []
    if not set(modes) <= _VOLUME_MODES:
        raise UsageError(f"invalid mode in volume specification {spec!r}")
    record: dict[str, Any] = {
        "Destination": _destination(target, spec),
        "RW": "ro" not in modes,
        "Options": [mode for mode in modes if mode not in ("ro", "rw")],
    }
    if source.startswith("/"):
        if not Path(source).exists():
            raise UsageError(f"invalid mount config: bind source path does not exist: {source}")
        record.update(Type="bind", Source=source)
    elif source:
        record.update(Type="volume", Name=source, Source="")
    else:
        raise UsageError(f"invalid volume specification: {spec!r}")
    return record


def _from_mount_flag(spec: str) -> dict[str, Any]:
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        fields[key.strip().lower()] = value if sep else "true"
    kind = fields.pop("type", "volume")
    source = fields.pop("source", fields.pop("src", ""))
    target = fields.pop("target", fields.pop("destination", fields.pop("dst", "")))
    if not target:
        raise UsageError(f"invalid mount config: target is required in {spec!r}")
    readonly = fields.pop("readonly", fields.pop("ro", "false")) in ("true", "1")
    options: list[str] = []
    if kind == "bind":
        if not source.startswith("/"):
            raise UsageError(
                f'invalid mount config for type "bind": source must be an absolute path ({spec!r})'
            )
        if not Path(source).exists():
            raise UsageError(
                f'invalid mount config for type "bind": bind source path does not exist: {source}'
            )
        fields.pop("bind-propagation", None)
    elif kind == "volume":
        fields.pop("volume-nocopy", None)
    elif kind == "tmpfs":
        if source:
            raise UsageError('invalid mount config for type "tmpfs": source is not allowed')
        if "tmpfs-size" in fields:
            options.append(f"size={fields.pop('tmpfs-size')}")
        if "tmpfs-mode" in fields:
            options.append(f"mode={fields.pop('tmpfs-mode')}")
    else:
        raise UsageError(f"invalid mount type {kind!r} (bind, volume or tmpfs)")
    if fields:
        raise UsageError(f"unexpected key(s) {', '.join(sorted(fields))} in --mount {spec!r}")
    record: dict[str, Any] = {
        "Type": kind,
        "Source": source if kind == "bind" else "",
        "Destination": _destination(target, spec),
        "RW": not readonly,
        "Options": options,
    }
    if kind == "volume":
        record["Name"] = source
    return record


def _from_tmpfs_flag(spec: str) -> dict[str, Any]:
    target, _, options = spec.partition(":")
    return {
        "Type": "tmpfs",
        "Source": "",
        "Destination": _destination(target, spec),
        "RW": True,
        "Options": [option for option in options.split(",") if option],
    }


def parse_mounts(volumes: list[str], mounts: list[str], tmpfs: list[str]) -> list[dict[str, Any]]:
    """Every mount the flags ask for, with duplicate destinations refused as Docker refuses them."""
    records = (
        [_from_volume_flag(spec) for spec in volumes]
        + [_from_mount_flag(spec) for spec in mounts]
        + [_from_tmpfs_flag(spec) for spec in tmpfs]
    )
    seen: set[str] = set()
    for record in records:
        if record["Destination"] in seen:
            raise UsageError(f"Duplicate mount point: {record['Destination']}")
        seen.add(record["Destination"])
    return records
