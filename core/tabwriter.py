"""Go's text/tabwriter with docker/cli's settings, `NewWriter(out, 10, 1, 3, ' ', 0)`: the column
alignment of every Docker listing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["render_table", "tabwrite"]


_MIN_WIDTH = 10
_PADDING = 3


def tabwrite(text: str, *, min_width: int = _MIN_WIDTH) -> str:
    """Align tab-terminated cells into columns (elastic tabstops), exactly as Go's tabwriter.

    A column is a run of consecutive lines that have a cell terminated by a tab at that position;
    its width is the widest such cell plus 3, at least `min_width` (10 for listings; `docker top`
    uses 20). The last cell of a line is never padded.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(first: int, end: int) -> None:
        for number in range(first, end):
            for column, cell in enumerate(lines[number]):
                out.append(cell)
                if column < len(widths):
                    out.append(" " * (widths[column] - _display_width(cell)))
            if number + 1 < len(lines):
                out.append("\n")

    def format_block(first: int, end: int) -> None:
        column = len(widths)
        current = first
        while current < end:
            if column >= len(lines[current]) - 1:
                current += 1
                continue
            write_lines(first, current)
            first = current
            width = min_width
            while current < end and column < len(lines[current]) - 1:
                width = max(width, _display_width(lines[current][column]) + _PADDING)
                current += 1
            widths.append(width)
            format_block(first, current)
            widths.pop()
            first = current
        write_lines(first, end)

    format_block(0, len(lines))
    return "".join(out)


def _display_width(text: str) -> int:
    """Terminal columns, as go-runewidth counts them: East Asian wide characters take two."""
    if text.isascii():
        return len(text)
    import unicodedata  # only for non-ASCII cells

    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Cells aligned in columns the way `docker images` prints them (newline after every line)."""
    lines = ["\t".join(headers), *("\t".join(row) for row in rows)]
    return tabwrite("".join(line + "\n" for line in lines))
