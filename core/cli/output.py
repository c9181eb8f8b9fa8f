"""Listing output the way Docker's CLI prints it: tables, `--format` templates, `-q` ids.

A listing is a list of row dicts keyed by Docker's template field names. A `table` format is
rendered once over the header names (Docker's trick: the header row is the template applied to a
map of field -> header) and once per row, then aligned like Go's tabwriter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import click

__all__ = ["echo_json", "echo_rows"]


def echo_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    template: str | None,
    default: str,
    headers: Mapping[str, str],
) -> None:
    """Print rows with the user's `--format` template, or the command's default table."""
    from dockyard.core.formatting import render, render_table

    chosen = template or default
    if chosen == "json":
        for row in rows:
            click.echo(json.dumps(row, separators=(",", ":")))
        return
    if not chosen.startswith("table"):
        for row in rows:
            click.echo(render(chosen, row))
        return
    body = chosen.removeprefix("table").lstrip() or default.removeprefix("table").lstrip()
    body = body.replace("\\t", "\t").replace("\\n", "\n")
    header = render(body, headers).split("\t")
    cells = [render(body, row).split("\t") for row in rows]
    click.echo(render_table(header, cells), nl=False)


def echo_json(value: Any) -> None:
    """Print a value as indented JSON, as `inspect` does."""
    click.echo(json.dumps(value, indent=4))
