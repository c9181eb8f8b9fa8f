"""A Dockerfile read the way Docker's parser reads it: directives, logical lines, stages.

    parse_dockerfile(source) -> Dockerfile      the whole file, split into global ARGs and stages
    parse_instruction(text, escape=..., line=...) -> Instruction
                                                one instruction (an image's ONBUILD triggers)

The rules, in the order the parser applies them:

- Parser directives (`# syntax=...`, `# escape=...`, `# check=...`, case-insensitive, spaces
  allowed around `=`) are read only from the top: the first line that is not a directive (a comment,
  a blank line, an instruction, an unknown directive) ends them. A directive given twice is an error;
  `escape` must be a backslash or a backtick and applies from the next line on.
- A line whose first non-blank character is `#` is a comment. A line ending in the escape character
  (trailing blanks allowed) continues on the next one; comment lines and blank lines inside a
  continuation are skipped, as Docker does.
- A logical line is `KEYWORD [--flag[=value]]... arguments`; the keyword is case-insensitive.
  `dockyard.core.build.instructions` parses the arguments of each keyword.
- Only ARG may come before the first FROM: those are the global ARGs, usable in FROM lines.

Errors are `DockerfileError`s worded as Docker's classic builder words them,
`Dockerfile parse error line 3: unknown instruction: RUNN`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dockyard.core.build.instructions import KINDS, Arg, From, Instruction, Onbuild, parse_arguments
from dockyard.core.errors import DockerfileError

__all__ = ["Dockerfile", "Stage", "parse_dockerfile", "parse_instruction"]

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_KEYWORD_SPLIT = re.compile(r"[\t\v\f\r ]+")
_BOM = "\ufeff"


@dataclass(frozen=True)
class Stage:
    """One build stage: its FROM line and the instructions after it, up to the next FROM."""

    index: int
    from_: From
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        """The stage's `AS` name (lower case), or None."""
        return self.from_.name


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile: the directives, the escape character, global ARGs and the stages.

    `instructions` lists every instruction in file order (global ARGs included), as Docker's classic
    builder counts them for "Step N/M".
    """

    directives: dict[str, str]
    escape: str
    global_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]
    instructions: tuple[Instruction, ...] = field(repr=False)

    def stage(self, reference: str) -> Stage | None:
        """The stage named `reference` (case-insensitive) or, for a number, the stage at that index."""
        lowered = reference.lower()
        for stage in self.stages:
            if stage.name == lowered:
                return stage
        if reference.isdigit() and int(reference) < len(self.stages):
            return self.stages[int(reference)]
        return None

    def target(self, name: str | None) -> Stage:
        """The stage `--target` names, or the last stage when it names none."""
        if name is None:
            return self.stages[-1]
        for stage in self.stages:
            if stage.name == name.lower():
                return stage
        raise DockerfileError(f"failed to reach build target {name} in Dockerfile")


def _parse_error(line: int, message: str) -> DockerfileError:
    return DockerfileError(f"Dockerfile parse error line {line}: {message}", line=line)


@dataclass
class _Reader:
    """Turns physical lines into logical ones, applying directives as they appear."""

    lines: list[str]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    directives_done: bool = False
    position: int = 0

    def _directive(self, text: str) -> bool:
        """Take `text` as a parser directive if directives are still allowed; say whether it was one."""
        if self.directives_done:
            return False
        match = _DIRECTIVE.match(text)
        if match is None or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.directives_done = True
            return False
        name, value = match.group(1).lower(), match.group(2)
        if name in self.directives:
            raise _parse_error(self.position, f"only one {name} parser directive can be used")
        if name == "escape" and value not in ("\\", "`"):
            raise _parse_error(self.position, f"invalid ESCAPE '{value}'. Must be ` or \\")
        self.directives[name] = value
        if name == "escape":
            self.escape = value
        return True

    def _continued(self, text: str) -> tuple[str, bool]:
        """`text` without its continuation marker, and whether it had one."""
        match = re.search(re.escape(self.escape) + r"[ \t]*$", text)
        return (text[: match.start()], True) if match else (text, False)

    def logical_lines(self) -> list[tuple[int, int, str]]:
        """Each logical line as (first line number, last line number, text)."""
        result = []
        while self.position < len(self.lines):
            text = self.lines[self.position].lstrip()
            self.position += 1
            start = self.position
            if self._directive(text) or text.startswith("#"):
                continue
            line, continued = self._continued(text)
            if not continued and not line:
                continue
            while continued and self.position < len(self.lines):
                raw = self.lines[self.position]
                self.position += 1
                if raw.lstrip().startswith("#") or not raw.strip():
                    continue
                part, continued = self._continued(raw)
                line += part
            result.append((start, self.position, line.strip()))
        return result


def _split_flags(rest: str) -> tuple[tuple[str, ...], str]:
    """Leading `--name[=value]` words (quotes removed from values) and what follows them."""
    flags: list[str] = []
    position = 0
    while True:
        while position < len(rest) and rest[position].isspace():
            position += 1
        if not rest.startswith("--", position):
            return tuple(flags), rest[position:]
        word: list[str] = []
        quote = ""
        while position < len(rest) and (quote or not rest[position].isspace()):
            char = rest[position]
            position += 1
            if quote and char == quote:
                quote = ""
            elif not quote and char in "'\"":
                quote = char
            elif char == "\\" and position < len(rest):
                word.append(rest[position])
                position += 1
            elif char != "\\":
                word.append(char)
        flag = "".join(word)
        if flag == "--":
            return tuple(flags), rest[position:].lstrip()
        flags.append(flag)


def _instruction(start: int, end: int, text: str, escape: str) -> Instruction:
    parts = _KEYWORD_SPLIT.split(text, maxsplit=1)
    keyword = parts[0].upper()
    if keyword not in KINDS:
        raise _parse_error(start, f"unknown instruction: {keyword}")
    flags, rest = _split_flags(parts[1] if len(parts) > 1 else "")
    where: dict[str, object] = {"line": start, "end_line": end, "original": text}
    if keyword == "ONBUILD":
        return _onbuild(start, end, text, rest, flags, escape)
    try:
        return parse_arguments(keyword, flags, rest, escape=escape, where=where)
    except ValueError as exc:
        raise _parse_error(start, str(exc)) from exc


def _onbuild(start: int, end: int, text: str, rest: str, flags: tuple[str, ...], escape: str) -> Onbuild:
    if flags:
        raise _parse_error(start, f"Unknown flag: {flags[0][2:].partition('=')[0]}")
    if not rest:
        raise _parse_error(start, "ONBUILD requires at least one argument")
    trigger = _instruction(start, end, rest, escape)
    if trigger.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
        message = (
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
            if trigger.keyword == "ONBUILD"
            else f"{trigger.keyword} isn't allowed as an ONBUILD trigger"
        )
        raise _parse_error(start, message)
    return Onbuild(
        keyword="ONBUILD", line=start, end_line=end, original=text, expression=rest, trigger=trigger
    )


def _source_lines(source: bytes | str) -> list[str]:
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DockerfileError(f"Dockerfile is not valid UTF-8: {exc}") from exc
    source = source.removeprefix(_BOM)
    lines = [line.removesuffix("\r") for line in source.split("\n")]
    if lines and not lines[-1]:
        lines.pop()
    return lines


def parse_instruction(text: str, *, escape: str = "\\", line: int = 1) -> Instruction:
    """Parse one instruction written on one line, such as an ONBUILD trigger an image carries."""
    return _instruction(line, line, text.strip(), escape)


def parse_dockerfile(source: bytes | str) -> Dockerfile:
    """Parse a whole Dockerfile; raise `DockerfileError` for anything Docker would refuse."""
    reader = _Reader(_source_lines(source))
    logical = reader.logical_lines()  # the escape directive is known once the lines are read
    instructions = [_instruction(start, end, text, reader.escape) for start, end, text in logical]
    if not instructions:
        raise DockerfileError("the Dockerfile cannot be empty")
    global_args: list[Arg] = []
    stages: list[Stage] = []
    current: list[Instruction] = []
    for instruction in instructions:
        if isinstance(instruction, From):
            if stages:
                stages[-1] = Stage(stages[-1].index, stages[-1].from_, tuple(current))
            if instruction.name is not None and any(stage.name == instruction.name for stage in stages):
                raise _parse_error(instruction.line, f"duplicate stage name {instruction.name!r}")
            stages.append(Stage(len(stages), instruction, ()))
            current = []
        elif stages:
            current.append(instruction)
        elif isinstance(instruction, Arg):
            global_args.append(instruction)
        else:
            raise _parse_error(instruction.line, "no build stage in current context")
    if not stages:
        raise DockerfileError("dockerfile contains no stages to build")
    stages[-1] = Stage(stages[-1].index, stages[-1].from_, tuple(current))
    return Dockerfile(
        directives=dict(reader.directives),
        escape=reader.escape,
        global_args=tuple(global_args),
        stages=tuple(stages),
        instructions=tuple(instructions),
    )
