"""`--filter key=value` flags, parsed the same way by every listing command.

Kept free of heavy imports: `images` parses its filters on the fast path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["parse_filters"]


def parse_filters(values: Iterable[str], allowed: Iterable[str]) -> list[tuple[str, str]]:
    """(key, value) pairs in the order given; a missing `=` or an unknown key is a usage error."""
    from dockyard.core.errors import UsageError

    keys = tuple(allowed)
    pairs = []
    for value in values:
        key, sep, argument = value.partition("=")
        if not sep or key not in keys:
            raise UsageError(f"invalid filter {value!r} (supported: {', '.join(keys)})")
        pairs.append((key, argument))
    return pairs
