"""Docker's variable substitution and the ARG/ENV scoping a build follows.

    expand_word(word, lookup, escape=...)     one word: `$var`, `${var}`, modifiers, quotes, escapes
    BuildArgs(values)                         the `--build-arg` values and which of them were consumed
    GlobalScope(dockerfile.global_args, ...)  the ARGs before the first FROM: only FROM lines see them
    StageScope(global_scope, image_env=...)   one stage: `apply(instruction)` substitutes and records
                                              ENV/ARG; `run_environment()` is what RUN gets

Substitution (Docker's shell-like lexer, not a shell): `$name` and `${name}` (unset is empty),
`${name:-word}` (word when unset or empty), `${name-word}` (when unset), `${name:+word}` (word when
set and non-empty), `${name+word}` (when set), `${name:?message}` / `${name?message}` (an error),
`${name#glob}` `${name##glob}` `${name%glob}` `${name%%glob}` (strip a prefix or suffix). Single
quotes are literal, double quotes keep spaces and allow `$`, the escape character (the `# escape=`
directive's, `\\` by default) makes the next character literal: `\\$HOME` is `$HOME`.

Scoping, as the Dockerfile reference describes it:
- An ARG before the first FROM is usable only in FROM lines, unless a stage declares it again
  (`ARG name` without a value then takes the global value).
- `--build-arg name=value` overrides a declared ARG's default; undeclared build args are not visible
  (the builder warns about them: `BuildArgs.unconsumed`), except the predefined proxy variables
  (HTTP_PROXY, http_proxy, HTTPS_PROXY, https_proxy, FTP_PROXY, ftp_proxy, NO_PROXY, no_proxy,
  ALL_PROXY, all_proxy), which RUN gets without a declaration and which stay out of the image.
- An ENV variable always wins over an ARG of the same name.
- All pairs of one ENV line are substituted against the values before that line.

Only the instructions Docker substitutes are substituted: FROM, ADD, COPY, ENV, LABEL, ARG, EXPOSE,
VOLUME, USER, WORKDIR, STOPSIGNAL. RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK are left to the
shell in the container; ONBUILD triggers are stored as written.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from dockyard.core.build.instructions import (
    Add,
    Arg,
    Copy,
    Env,
    Expose,
    From,
    Instruction,
    Label,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from dockyard.core.errors import DockerfileError

__all__ = ["PROXY_ARGS", "BuildArgs", "GlobalScope", "StageScope", "expand_word"]

PROXY_ARGS = frozenset(
    {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
     "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
)  # fmt: skip

Lookup = Callable[[str], "str | None"]

_SPECIAL_PARAMETERS = "*@#?-$!"


class _Lexer:
    """One pass over a word; `text` is consumed left to right."""

    def __init__(self, text: str, lookup: Lookup, escape: str) -> None:
        self.text, self.lookup, self.escape, self.position = text, lookup, escape, 0

    def _peek(self) -> str:
        return self.text[self.position] if self.position < len(self.text) else ""

    def _next(self) -> str:
        char = self._peek()
        self.position += 1 if char else 0
        return char

    def word(self, stop: str = "") -> str:
        """The processed text up to `stop` (consumed), or to the end when `stop` is empty."""
        out: list[str] = []
        while self._peek():
            char = self._peek()
            if stop and char == stop:
                self._next()
                return "".join(out)
            if char == "'":
                out.append(self._single_quoted())
            elif char == '"':
                out.append(self._double_quoted())
            elif char == "$":
                out.append(self._dollar())
            else:
                self._next()
                if char == self.escape:
                    char = self._next()
                out.append(char)
        if stop:
            raise ValueError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def _single_quoted(self) -> str:
        self._next()
        end = self.text.find("'", self.position)
        if end < 0:
            raise ValueError("unexpected end of statement while looking for matching single-quote")
        value, self.position = self.text[self.position : end], end + 1
        return value

    def _double_quoted(self) -> str:
        self._next()
        out: list[str] = []
        while True:
            char = self._peek()
            if not char:
                raise ValueError("unexpected end of statement while looking for matching double-quote")
            if char == '"':
                self._next()
                return "".join(out)
            if char == "$":
                out.append(self._dollar())
                continue
            self._next()
            if char == self.escape and self._peek() in ('"', "$", self.escape) and self._peek():
                char = self._next()
            out.append(char)

    def _name(self) -> str:
        start = self.position
        if self._peek().isdigit():
            while self._peek().isdigit():
                self._next()
            return self.text[start : self.position]
        if self._peek() and self._peek() in _SPECIAL_PARAMETERS:
            return self._next()
        while self._peek() and (self._peek().isalnum() or self._peek() == "_"):
            self._next()
        return self.text[start : self.position]

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            return "$" if not name else self.lookup(name) or ""
        self._next()
        if not self._peek():
            raise ValueError("syntax error: missing '}'")
        if self._peek() in "{}:":
            raise ValueError("syntax error: bad substitution")
        name = self._name()
        value = self.lookup(name)
        modifier = self._next()
        if modifier == "}":
            return value or ""
        if not modifier:
            raise ValueError("syntax error: missing '}'")
        if modifier == ":":
            operator = self._next()
            if operator not in ("-", "+", "?"):
                raise ValueError(f"unsupported modifier ({operator}) in substitution")
            return _apply(name, value or None, operator, self.word("}"))
        if modifier in ("-", "+", "?"):
            return _apply(name, value, modifier, self.word("}"))
        if modifier in ("#", "%"):
            longest = self._peek() == modifier
            if longest:
                self._next()
            return _strip(value or "", self.word("}"), prefix=modifier == "#", longest=longest)
        raise ValueError(f"unsupported modifier ({modifier}) in substitution")


def _apply(name: str, value: str | None, operator: str, word: str) -> str:
    """`-`, `+`, `?` given whether the variable counts as set (`value` is None when it does not)."""
    if operator == "-":
        return word if value is None else value
    if operator == "+":
        return "" if value is None else word
    if value is None:
        raise ValueError(f"{name}: {word or 'is not allowed to be unset'}")
    return value


def _strip(value: str, pattern: str, *, prefix: bool, longest: bool) -> str:
    matcher = re.compile(fnmatch.translate(pattern), re.DOTALL)
    lengths = range(len(value), -1, -1) if longest else range(len(value) + 1)
    for length in lengths:
        part = value[:length] if prefix else value[len(value) - length :]
        if matcher.match(part):
            return value[length:] if prefix else value[: len(value) - length]
    return value


def expand_word(word: str, lookup: Lookup, *, escape: str = "\\") -> str:
    """Substitute variables in `word` and remove its quotes and escapes (Docker's `ProcessWord`);
    `lookup` returns a variable's value or None when it is unset."""
    try:
        return _Lexer(word, lookup, escape).word()
    except ValueError as exc:
        raise DockerfileError(f'failed to process "{word}": {exc}') from exc


class BuildArgs:
    """The `--build-arg` values of one build, remembering which ones a declared ARG consumed."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values: dict[str, str] = dict(values or {})
        self._consumed: set[str] = set()

    def take(self, name: str) -> str | None:
        """The value given for `name` (None if none), and `name` counts as consumed."""
        self._consumed.add(name)
        return self.values.get(name)

    def proxies(self) -> dict[str, str]:
        """The predefined proxy variables given, usable without an ARG."""
        return {name: value for name, value in self.values.items() if name in PROXY_ARGS}

    def unconsumed(self) -> list[str]:
        """Build args no ARG declared (proxies excepted), sorted: Docker's
        `[Warning] One or more build-args [...] were not consumed`."""
        return sorted(set(self.values) - self._consumed - PROXY_ARGS)


def _declare(
    args: dict[str, str | None],
    instruction: Arg,
    build_args: BuildArgs,
    inherited: Callable[[str], str | None],
    expand: Callable[[str], str],
) -> Arg:
    """Record the ARGs of `instruction` in `args`, one after the other (a later default may use an
    earlier name); return the instruction with its names and defaults substituted."""
    declared = []
    for raw_name, raw_default in instruction.args:
        name = expand(raw_name)
        default = expand(raw_default) if raw_default is not None else None
        given = build_args.take(name)
        args[name] = given if given is not None else default if default is not None else inherited(name)
        declared.append((name, default))
    return dataclasses.replace(instruction, args=tuple(declared))


class GlobalScope:
    """The ARGs declared before the first FROM, their values resolved against `--build-arg`.

    `platform_args` are the automatic platform ARGs (TARGETPLATFORM, TARGETOS, TARGETARCH,
    BUILDPLATFORM, ...): visible here without a declaration, in a stage once it declares them.
    """

    def __init__(
        self,
        global_args: Iterable[Arg],
        build_args: BuildArgs,
        *,
        platform_args: Mapping[str, str] | None = None,
        escape: str = "\\",
    ) -> None:
        self.build_args, self.escape = build_args, escape
        self.platform_args = dict(platform_args or {})
        self.values: dict[str, str | None] = {}
        for instruction in global_args:
            _declare(self.values, instruction, build_args, self.platform_args.get, self._expand)

    def lookup(self, name: str) -> str | None:
        """A global ARG's value, or a platform ARG's."""
        return self.values[name] if name in self.values else self.platform_args.get(name)

    def _expand(self, word: str) -> str:
        return expand_word(word, self.lookup, escape=self.escape)

    def expand_from(self, instruction: From) -> From:
        """FROM with its image and `--platform` substituted from the global ARGs."""
        platform = self._expand(instruction.platform) if instruction.platform is not None else None
        return dataclasses.replace(instruction, image=self._expand(instruction.image), platform=platform)


def _env_pairs(image_env: Sequence[str]) -> dict[str, str]:
    pairs = {}
    for entry in image_env:
        name, _, value = entry.partition("=")
        pairs[name] = value
    return pairs


class StageScope:
    """The variables one stage's instructions see, updated by its ENV and ARG instructions.

    `image_env` is the base image's `Env` (`NAME=value` entries). `env` then holds the stage's
    environment in order (what the image config's `Env` becomes), `args` the ARGs the stage declared
    with their effective values (None: declared without any value).
    """

    def __init__(self, global_scope: GlobalScope, *, image_env: Sequence[str] = ()) -> None:
        self.global_scope = global_scope
        self.escape = global_scope.escape
        self.env: dict[str, str] = _env_pairs(image_env)
        self.args: dict[str, str | None] = {}

    def lookup(self, name: str) -> str | None:
        """ENV first, then the stage's ARGs, then the predefined proxy build args."""
        if name in self.env:
            return self.env[name]
        if name in self.args:
            return self.args[name]
        return self.global_scope.build_args.proxies().get(name)

    def expand(self, word: str) -> str:
        """`word` substituted against this scope."""
        return expand_word(word, self.lookup, escape=self.escape)

    def _inherited(self, name: str) -> str | None:
        """What `ARG name` without a default takes: the stage's earlier value, else the global one."""
        return self.args[name] if name in self.args else self.global_scope.lookup(name)

    def apply(self, instruction: Instruction) -> Instruction:
        """The instruction with its variables substituted; ENV and ARG also change the scope.

        Call it once per instruction, in order, right before executing it.
        """
        expand = self.expand
        if isinstance(instruction, Env):
            pairs = tuple((expand(key), expand(value)) for key, value in instruction.pairs)
            self.env.update(pairs)
            return dataclasses.replace(instruction, pairs=pairs)
        if isinstance(instruction, Arg):
            return _declare(self.args, instruction, self.global_scope.build_args, self._inherited, expand)
        if isinstance(instruction, Label):
            pairs = tuple((expand(key), expand(value)) for key, value in instruction.pairs)
            return dataclasses.replace(instruction, pairs=pairs)
        if isinstance(instruction, Copy):
            return _expand_copy(instruction, expand)
        if isinstance(instruction, Expose):
            ports = tuple(port for word in instruction.ports for port in expand(word).split())
            return dataclasses.replace(instruction, ports=ports)
        if isinstance(instruction, Volume):
            return dataclasses.replace(instruction, paths=tuple(expand(path) for path in instruction.paths))
        if isinstance(instruction, User):
            return dataclasses.replace(instruction, user=expand(instruction.user))
        if isinstance(instruction, Workdir):
            return dataclasses.replace(instruction, path=expand(instruction.path))
        if isinstance(instruction, Stopsignal):
            return dataclasses.replace(instruction, signal=expand(instruction.signal))
        return instruction

    def config_env(self) -> list[str]:
        """The stage's environment as the image config's `Env` list."""
        return [f"{name}={value}" for name, value in self.env.items()]

    def arg_environment(self) -> dict[str, str]:
        """The declared ARGs with a value that no ENV shadows: what RUN gets on top of `Env`, and what
        Docker's classic builder shows in history and keys its cache on (`|2 a=1 b=2 ...`)."""
        return {
            name: value for name, value in self.args.items() if value is not None and name not in self.env
        }

    def run_environment(self) -> list[str]:
        """The environment of a RUN step: `Env`, the unshadowed ARGs, and the given proxy variables
        (which never enter the image or its cache key)."""
        extra = {**self.global_scope.build_args.proxies(), **self.arg_environment()}
        extra = {name: value for name, value in extra.items() if name not in self.env}
        return self.config_env() + [f"{name}={value}" for name, value in extra.items()]


def _expand_copy(instruction: Copy, expand: Callable[[str], str]) -> Copy:
    def optional(value: str | None) -> str | None:
        return expand(value) if value is not None else None

    fields: dict[str, object] = {
        "sources": tuple(expand(source) for source in instruction.sources),
        "dest": expand(instruction.dest),
        "chown": optional(instruction.chown),
        "chmod": optional(instruction.chmod),
        "from_stage": optional(instruction.from_stage),
    }
    if isinstance(instruction, Add):
        fields["checksum"] = optional(instruction.checksum)
    return dataclasses.replace(instruction, **fields)  # type: ignore[arg-type]
