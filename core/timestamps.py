"""RFC 3339 timestamps as Docker writes them (UTC, nanosecond precision, `Z`) and reads them."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

__all__ = ["now_rfc3339", "seconds_since"]

_FRACTION = re.compile(r"\.(\d+)")


def now_rfc3339() -> str:
    """The current time as `2024-01-02T03:04:05.123456789Z`."""
    nanoseconds = time.time_ns()
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def _parse(text: str) -> datetime:
    text = text.strip().replace("Z", "+00:00")
    # Python accepts at most microseconds: trim longer fractions before parsing.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    return datetime.fromisoformat(text)


def seconds_since(text: str) -> float | None:
    """Seconds from an RFC 3339 time until now, or None when `text` does not parse."""
    try:
        moment = _parse(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, time.time() - moment.timestamp())
