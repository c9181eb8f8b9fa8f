"""go-units' sizes and durations: what Docker's CLI prints (`4.26MB`, `5 minutes ago`) and parses (`512m`).

Kept apart from the template engine so listings pay only for what they print.
"""

from __future__ import annotations

import re

from dockyard.core.errors import UsageError

__all__ = ["bytes_size", "human_duration", "human_duration_ago", "human_size", "parse_size"]


_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_BINARY_MULTIPLIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+\."


def human_size(size: float, *, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, `precision` significant digits.

    `docker images` and `docker ps` use 3 (`4.26MB`, `13.3kB`, `856B`); prune summaries use 4.
    """
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(_DECIMAL_UNITS) - 1:
        value /= 1000
        unit += 1
    return f"{value:.{precision}g}{_DECIMAL_UNITS[unit]}"


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits (`1.535MiB`), as `docker stats`
    prints memory."""
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(_BINARY_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.4g}{_BINARY_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: `Less than a second`, `About a minute`, `3 hours`, `2 weeks`..."""
    whole_seconds = int(seconds)
    minutes = int(seconds / 60)
    hours = int(seconds / 3600 + 0.5)
    if whole_seconds < 1:
        return "Less than a second"
    if whole_seconds == 1:
        return "1 second"
    if whole_seconds < 60:
        return f"{whole_seconds} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def human_duration_ago(seconds: float) -> str:
    """The CREATED column: `5 minutes ago`, `About an hour ago`."""
    return human_duration(seconds) + " ago"


def parse_size(text: str) -> int:
    """go-units RAMInBytes: `512m`, `1.5g`, `2 GiB`, `100` -> bytes (binary units, any case).

    Units are b, k, m, g, t, p, optionally followed by `b` or `ib`. Raises UsageError with
    go-units' wording (`invalid size: '...'`, `invalid suffix: '...'`).
    """
    number, space, suffix = text.partition(" ")
    if not space:
        split = max(text.rfind(char) for char in "0123456789.") + 1
        number, suffix = text[:split], text[split:]
    if not re.fullmatch(_SIZE_NUMBER, number):
        raise UsageError(f"invalid size: '{text}'")
    size = float(number)
    if len(suffix) > 3:
        raise UsageError(f"invalid suffix: '{suffix}'")
    lowered = suffix.lower()
    if not lowered or lowered == "b":
        return int(size)
    if lowered[0] not in _BINARY_MULTIPLIERS or lowered[1:] not in ("", "b", "ib"):
        raise UsageError(f"invalid suffix: '{lowered}'")
    return int(size * _BINARY_MULTIPLIERS[lowered[0]])
