"""Logging through structlog, imported only when something is actually logged.

structlog costs more start-up time than the whole of `dockyard images`, so loggers are lazy: a call
below the configured level returns at once, and the first call at or above it configures structlog
(console rendering on a terminal, JSON lines with `--log-format json`) on standard error.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["configure", "debug_enabled", "get_logger"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_state: dict[str, Any] = {"level": 30, "format": "console", "ready": False}


def configure(*, level: str, log_format: str) -> None:
    """Set the threshold and rendering for every logger; cheap, structlog is not imported yet."""
    _state.update(level=_LEVELS[level], format=log_format, ready=False)


def debug_enabled() -> bool:
    """Whether `--log-level debug` is in force (tracebacks are shown then)."""
    return bool(_state["level"] <= _LEVELS["debug"])


def _structlog_ready() -> Any:
    import structlog

    if not _state["ready"]:
        renderer: Any
        if _state["format"] == "json":
            renderer = structlog.processors.JSONRenderer()
        else:
            renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(_state["level"]),
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=False,
        )
        _state["ready"] = True
    return structlog


class _LazyLogger:
    """A logger whose methods import structlog only when the level lets the message through."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _log(self, level: str, event: str, **fields: Any) -> None:
        if _LEVELS[level] < _state["level"]:
            return
        structlog = _structlog_ready()
        getattr(structlog.get_logger(self._name), level)(event, **fields)

    def debug(self, event: str, **fields: Any) -> None:
        """Log at debug level."""
        self._log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log at info level."""
        self._log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log at warning level."""
        self._log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log at error level."""
        self._log("error", event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log at error level with the current exception's traceback."""
        self._log("error", event, exc_info=True, **fields)


def get_logger(name: str) -> _LazyLogger:
    """A lazy structlog logger named `name`."""
    return _LazyLogger(name)
