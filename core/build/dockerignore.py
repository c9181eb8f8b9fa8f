"""`.dockerignore`: which files of the build context a build may see, by Docker's rules.

    read_patterns(text) -> list[str]     the file's lines as Docker cleans them
    IgnoreMatcher(patterns)              `excluded(path)` and `must_descend(directory)` while walking

The rules (Docker's `dockerignore` and `patternmatcher` packages):
- A line starting with `#` is a comment; blank lines are skipped; surrounding spaces are trimmed.
- A leading `!` makes the line an exception. Each pattern is cleaned like Go's `filepath.Clean`
  (`./a/` is `a`, `a//b/../c` is `a/c`) and a leading `/` is dropped: patterns are relative to the
  context root.
- Matching is Go's `filepath.Match` per path component (`*`, `?`, `[...]`, `\\` escapes) plus `**`,
  any number of directories, zero included: `**/*.go` matches `a.go` and `x/y/a.go`.
- A pattern that matches a directory matches everything below it.
- The last pattern that matches a path decides: `*.md` then `!README.md` keeps README.md.

Docker always sends the Dockerfile and the .dockerignore file to the builder even if they are
excluded, but a COPY cannot pick them up then; `dockyard.core.build.context` follows that.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

from dockyard.core.build.globs import component_regex, match_component
from dockyard.core.errors import UsageError

__all__ = ["IgnoreMatcher", "clean_path", "read_patterns"]


def clean_path(path: str) -> str:
    """Go's `filepath.Clean` for slash-separated paths: "." for empty, no `.`, no `x/..`, no doubles."""
    cleaned = posixpath.normpath(path) if path else "."
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def read_patterns(text: bytes | str) -> list[str]:
    """The patterns of a .dockerignore file, cleaned as Docker cleans them."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="surrogateescape")
    patterns = []
    for raw in text.removeprefix("\ufeff").split("\n"):
        if raw.startswith("#"):
            continue
        pattern = raw.strip()
        if not pattern:
            continue
        exception = pattern.startswith("!")
        if exception:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if exception else pattern)
    return patterns


@dataclass(frozen=True)
class _Pattern:
    text: str
    exception: bool
    parts: tuple[str, ...]
    regex: re.Pattern[str]


def _regex(parts: tuple[str, ...]) -> re.Pattern[str]:
    """One anchored regex for the whole pattern; `**` components span directories."""
    out: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:.*/)?")
            continue
        out.append(component_regex(part.replace("**", "*")))
        if not last:
            out.append("/")
    return re.compile("".join(out), re.DOTALL)


def _compile(text: str) -> _Pattern | None:
    text = text.strip()
    if not text:
        return None
    exception = text.startswith("!")
    body = clean_path(text[1:] if exception else text)
    if exception and not text[1:]:
        raise UsageError('illegal exclusion pattern: "!"')
    parts = tuple(body.split("/"))
    try:
        regex = _regex(parts)
    except UsageError as exc:
        raise UsageError(f"invalid .dockerignore pattern {text!r}: {exc}") from exc
    return _Pattern(text=body, exception=exception, parts=parts, regex=regex)


class IgnoreMatcher:
    """Decides, for paths relative to the context root (`a/b/c`, no leading `./` or `/`), whether
    .dockerignore excludes them."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        compiled = (_compile(pattern) for pattern in patterns)
        self._patterns = [pattern for pattern in compiled if pattern is not None]
        self.has_exceptions = any(pattern.exception for pattern in self._patterns)

    @classmethod
    def from_text(cls, text: bytes | str) -> IgnoreMatcher:
        """The matcher for the contents of a .dockerignore file."""
        return cls(read_patterns(text))

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def excluded(self, path: str) -> bool:
        """Whether `path` (or a directory above it) is excluded, the last matching pattern deciding."""
        path = clean_path(path)
        parents = path.split("/")[:-1]
        prefixes = ["/".join(parents[: depth + 1]) for depth in range(len(parents))]
        excluded = False
        for pattern in self._patterns:
            if pattern.exception != excluded:
                continue  # it could not change the verdict
            if pattern.regex.fullmatch(path) or any(pattern.regex.fullmatch(prefix) for prefix in prefixes):
                excluded = not pattern.exception
        return excluded

    def must_descend(self, directory: str) -> bool:
        """Whether an excluded `directory` must still be walked because an exception pattern may
        re-include something below it (`build/` with `!build/keep.txt`). Errs towards walking:
        each path found inside is still decided by `excluded`."""
        parts = clean_path(directory).split("/")
        return any(
            self._may_reach_inside(pattern.parts, parts) for pattern in self._patterns if pattern.exception
        )

    @staticmethod
    def _may_reach_inside(pattern: tuple[str, ...], directory: list[str]) -> bool:
        for depth, name in enumerate(directory):
            if depth >= len(pattern) or pattern[depth] == "**":
                return True
            if not match_component(pattern[depth].replace("**", "*"), name):
                return False
        return True
