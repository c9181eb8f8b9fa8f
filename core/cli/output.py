"""Listing output the way Docker's CLI prints it: tables, `--format` templates, JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click

__all__ = ["echo_inspected", "echo_json", "echo_rows"]


def echo_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    template: str | None,
    default: str,
    headers: Mapping[str, str],
) -> None:
    """Print rows with the user's `--format` template, or the command's default table."""
    from dockyard.core.formatting import format_rows

    click.echo(format_rows(template or "", rows, headers=headers, default=default), nl=False)


def echo_json(value: Any) -> None:
    """Print a value as indented JSON, as `inspect` does."""
    click.echo(json.dumps(value, indent=4))


def echo_inspected(records: Sequence[Any], template: str | None) -> None:
    """Print what an `inspect` command found: each through `--format`, else all as JSON."""
    if template:
        from dockyard.core.gotemplate import render

        for record in records:
            click.echo(render(template, record))
    else:
        echo_json(records)
