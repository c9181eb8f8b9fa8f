"""Docker's `--format` for listings: docker/cli's formatter.Context on top of the Go template engine.

`format_rows(fmt, rows, headers=..., default=...)`: "json" means `{{json .}}`; a `table` prefix adds
a header row (the same template run against the column titles) and aligns columns like Go's
text/tabwriter; a backslash-t or backslash-n typed on the command line becomes a tab or newline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dockyard.core.gotemplate import HEADER_FUNCS, Template
from dockyard.core.tabwriter import tabwrite

__all__ = ["format_once", "format_rows"]


def format_rows(
    fmt: str, rows: Iterable[Mapping[str, object]], *, headers: Mapping[str, str], default: str
) -> str:
    """List output for a command's `--format`, as docker/cli's formatter.Context writes it.

    `fmt` is what the user gave ("" for nothing); "" and "table" mean the command's `default`
    format. Each row is rendered and followed by a newline. A `table ...` format first renders a
    header row by running the same template against `headers` (field name -> column title, such as
    {"ID": "IMAGE ID"}) with json/split/join/title/lower/upper/truncate passing their first argument
    through, then aligns every line's tab-separated cells. A header error keeps the partial header,
    as Docker ignores it; a row error raises UsageError.
    """
    if fmt in ("", "table"):
        fmt = default
    template = Template(_docker_template_text(fmt))
    body = "".join(template.execute(row) + "\n" for row in rows)
    if not fmt.startswith("table"):
        return body
    header = template.execute(headers, funcs=HEADER_FUNCS, partial=True)
    return tabwrite(header + "\n" + body)


def format_once(fmt: str, data: object) -> str:
    """The user's template run once against one value, adding no newline: docker/cli's output
    for a `--format` that receives every list at once (`system df -v`)."""
    return Template(_docker_template_text(fmt)).execute(data)


def _docker_template_text(fmt: str) -> str:
    """docker/cli's Format.templateString: "json", the `table` prefix, and escaped tabs/newlines."""
    if fmt == "json":
        return "{{json .}}"
    text = fmt.removeprefix("table").strip(" ")
    return text.replace("\\t", "\t").replace("\\n", "\n")
