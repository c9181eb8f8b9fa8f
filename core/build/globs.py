"""Go's `filepath.Match` syntax as Python regular expressions: the one pattern language Docker uses
for COPY/ADD sources and, with `**` added, for .dockerignore.

    *        any run of characters except `/`
    ?        one character except `/`
    [a-z]    a class; `[^a-z]` negates it; `\\]` escapes inside it
    \\c      the character c itself

A malformed pattern (an unclosed class, a trailing backslash inside a class) is refused the way Go
refuses it with ErrBadPattern, so a typo in a Dockerfile or .dockerignore is reported, not ignored.
"""

from __future__ import annotations

import functools
import re

from dockyard.core.errors import UsageError

__all__ = ["component_regex", "has_wildcards", "match_component"]

_WILDCARDS = frozenset("*?[\\")


def has_wildcards(pattern: str) -> bool:
    """Whether `pattern` needs matching at all (Go's `hasMeta`): literal names are looked up directly."""
    return any(char in _WILDCARDS for char in pattern)


def component_regex(pattern: str) -> str:
    """The regular expression (without anchors) matching what `pattern` matches in one path component."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\":
            if index == len(pattern):
                raise UsageError(f"syntax error in pattern: {pattern!r}")
            out.append(re.escape(pattern[index]))
            index += 1
        elif char == "[":
            regex, index = _char_class(pattern, index)
            out.append(regex)
        else:
            out.append(re.escape(char))
    return "".join(out)


def _char_class(pattern: str, index: int) -> tuple[str, int]:
    """Translate the class starting after `[` at `index`; return its regex and the index after `]`."""
    negate = index < len(pattern) and pattern[index] == "^"
    if negate:
        index += 1
    items: list[str] = []
    while True:
        if index >= len(pattern):
            raise UsageError(f"syntax error in pattern: {pattern!r}")
        if pattern[index] == "]" and items:
            break
        low, index = _class_char(pattern, index)
        if index < len(pattern) and pattern[index] == "-":
            high, index = _class_char(pattern, index + 1)
            if high < low:
                raise UsageError(f"syntax error in pattern: {pattern!r}")
            items.append(f"{re.escape(low)}-{re.escape(high)}")
        else:
            items.append(re.escape(low))
    body = "".join(items)
    # A negated class still never matches the separator, as in Go.
    return (f"[^/{body}]" if negate else f"[{body}]"), index + 1


def _class_char(pattern: str, index: int) -> tuple[str, int]:
    if index >= len(pattern) or pattern[index] in "-]":
        raise UsageError(f"syntax error in pattern: {pattern!r}")
    if pattern[index] == "\\":
        index += 1
        if index >= len(pattern):
            raise UsageError(f"syntax error in pattern: {pattern!r}")
    return pattern[index], index + 1


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(component_regex(pattern), re.DOTALL)


def match_component(pattern: str, name: str) -> bool:
    """Whether the single path component `name` matches `pattern` (Go's `filepath.Match`)."""
    return _compiled(pattern).fullmatch(name) is not None
