"""`--detach-keys`, shared by run, start, attach and exec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["detach_keys_option", "parsed_detach_keys"]

detach_keys_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--detach-keys", help="Override the key sequence for detaching a container (default ctrl-p,ctrl-q)."
)


def parsed_detach_keys(value: str | None) -> bytes:
    """The bytes of a `--detach-keys` value (Docker's default when not given); UsageError if bad.
    Called before a command changes anything, so a bad value leaves nothing half-done."""
    from dockyard.core.detach_keys import DEFAULT_DETACH_BYTES, parse_detach_keys

    return parse_detach_keys(value) if value else DEFAULT_DETACH_BYTES
