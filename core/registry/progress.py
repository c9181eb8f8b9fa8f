"""Docker's per-layer progress output: live bars on a terminal, plain status lines otherwise.

The output is Docker's jsonmessage rendering. Each layer (or blob) has a short id and one line; on a
terminal that line is redrawn in place (cursor up, clear, write, cursor down) with a bar,

    a3ed95caeb02: Downloading [=================>              ]  1.234MB/3.456MB 2s

while elsewhere (a pipe, a CI log) only the status changes are printed, each once, and the bars are
left out: `a3ed95caeb02: Pull complete`. A line without an id (`Digest: ...`) ends the block: later
updates start new lines, as Docker does between the tags of `pull --all-tags`. Updates come from
download threads, so every method holds one lock; bars are redrawn at most ten times a second.
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import TextIO

from dockyard.core.units import human_size

__all__ = ["PlainProgress", "Progress", "QuietProgress", "TerminalProgress", "format_bar", "make_progress"]

_REDRAW_INTERVAL = 0.1
_BAR_CELLS = 50


def _go_duration(seconds: int) -> str:
    """Whole seconds the way Go prints a time.Duration: `0s`, `45s`, `2m5s`, `1h0m3s`."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def format_bar(current: int, total: int, *, width: int, elapsed: float) -> str:
    """Docker's progress text: bar (on wide terminals), `current/total` sizes, time left."""
    if total <= 0:
        return f"{human_size(current, precision=4):>8}"
    filled = min(int(current / total * 100) // 2, _BAR_CELLS)
    bar = f"[{'=' * filled}>{' ' * (_BAR_CELLS - filled)}] " if width > 110 else ""
    numbers = f"{human_size(current, precision=4):>8}/{human_size(total, precision=4)}"
    if current > total:
        numbers = f"{human_size(current, precision=4):>8}"
    left = ""
    if current > 0 and elapsed > 0 and filled < _BAR_CELLS and width > 50:
        left = " " + _go_duration(int(elapsed / current * (total - current)))
    return bar + numbers + left


class Progress:
    """Where an operation reports its progress; this base prints nothing (`--quiet`)."""

    def message(self, text: str) -> None:
        """A line of its own (`Digest: ...`, `Status: ...`)."""

    def status(self, ident: str, text: str) -> None:
        """A status change for one layer: `Pulling fs layer`, `Pull complete`."""

    def bar(self, ident: str, action: str, current: int, total: int) -> None:
        """Bytes done for one layer (`Downloading`, `Extracting`, `Pushing`): terminals only."""


QuietProgress = Progress


class PlainProgress(Progress):
    """Status lines only, for pipes and logs."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def message(self, text: str) -> None:
        """Print the line."""
        with self._lock:
            self._out.write(text + "\n")
            self._out.flush()

    def status(self, ident: str, text: str) -> None:
        """Print `id: status`."""
        with self._lock:
            self._out.write(f"{ident}: {text}\n")
            self._out.flush()


class TerminalProgress(Progress):
    """One line per id, redrawn in place with ANSI cursor movement."""

    def __init__(self, out: TextIO, *, width: int | None = None) -> None:
        self._out = out
        self._width = width or shutil.get_terminal_size((200, 24)).columns
        self._lines: dict[str, int] = {}
        self._started: dict[tuple[str, str], float] = {}
        self._drawn: dict[str, float] = {}
        self._texts: dict[str, str] = {}
        self._lock = threading.Lock()

    def message(self, text: str) -> None:
        """Print the line below the block; later ids start a new block."""
        with self._lock:
            self._lines.clear()
            self._out.write(text + "\n")
            self._out.flush()

    def status(self, ident: str, text: str) -> None:
        """Redraw the id's line with its new status."""
        with self._lock:
            self._draw(ident, text)

    def bar(self, ident: str, action: str, current: int, total: int) -> None:
        """Redraw the id's line with a bar, at most ten times a second (always when done)."""
        now = time.monotonic()
        with self._lock:
            started = self._started.setdefault((ident, action), now)
            if now - self._drawn.get(ident, 0.0) < _REDRAW_INTERVAL and current < total:
                return
            self._drawn[ident] = now
            text = format_bar(current, total, width=self._width, elapsed=now - started)
            self._draw(ident, f"{action} {text}")

    def _draw(self, ident: str, text: str) -> None:
        if self._texts.get(ident) == text and ident in self._lines:
            return
        self._texts[ident] = text
        if ident not in self._lines:
            self._lines[ident] = len(self._lines)
            self._out.write("\n")
        up = len(self._lines) - self._lines[ident]
        self._out.write(f"\x1b[{up}A\x1b[2K\r{ident}: {text}\r\x1b[{up}B")
        self._out.flush()


def make_progress(out: TextIO, *, quiet: bool = False) -> Progress:
    """The progress display for `out`: live on a terminal, plain lines otherwise, or none."""
    if quiet:
        return QuietProgress()
    if out.isatty():
        return TerminalProgress(out)
    return PlainProgress(out)
