"""One Dockerfile instruction, parsed: a frozen value per keyword, built from its flags and arguments.

Every instruction carries `keyword` (upper case), `line` and `end_line` (1-based, for error messages),
`original` (the instruction as written, continuations joined: what "Step N/M : ..." prints) and
`flags` (the raw `--name=value` words). Arguments stay as written: variables are substituted later,
by `dockyard.core.build.expand`, against the scope of the step that runs them.

    Command        RUN/CMD/ENTRYPOINT/SHELL arguments: exec form (JSON) or shell form (one string)
    From           FROM [--platform=] image [AS name]
    Run Cmd Entrypoint Shell
    Copy Add       sources, destination, --from/--chown/--chmod/--link (ADD: --checksum, --keep-git-dir)
    Env Label      ordered (key, value) pairs, both `k=v k2="v 2"` and the legacy `ENV k v` form
    Arg            (name, default or None) pairs
    Expose Volume  lists of words
    User Workdir Stopsignal Maintainer   one string
    Healthcheck    test (None for NONE) and the durations in nanoseconds, retries
    Onbuild        the trigger: its text as written and the instruction it parses to

`parse_arguments` turns a keyword, its flags and the rest of its line into one of these values.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

__all__ = [
    "Add",
    "Arg",
    "Cmd",
    "Command",
    "Copy",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Instruction",
    "Label",
    "Maintainer",
    "Onbuild",
    "Run",
    "Shell",
    "Stopsignal",
    "User",
    "Volume",
    "Workdir",
    "flag_value",
    "parse_arguments",
    "split_words",
]


@dataclass(frozen=True)
class Command:
    """The arguments of RUN/CMD/ENTRYPOINT/SHELL: in exec form the JSON array as given, in shell
    form one string the builder prefixes with the stage's SHELL."""

    args: tuple[str, ...]
    shell_form: bool


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Where an instruction is and how it was written; subclasses add its parsed arguments."""

    keyword: str
    line: int
    end_line: int
    original: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    """`FROM [--platform=P] image [AS name]`; `name` is lower-cased as Docker does."""

    image: str
    name: str | None
    platform: str | None


@dataclass(frozen=True, kw_only=True)
class Run(Instruction):
    """`RUN`; `mounts` are the raw `--mount` values, `network` the `--network` value."""

    command: Command
    mounts: tuple[str, ...] = ()
    network: str | None = None


@dataclass(frozen=True, kw_only=True)
class Cmd(Instruction):
    """`CMD`: the image's default command (or default arguments to ENTRYPOINT)."""

    command: Command


@dataclass(frozen=True, kw_only=True)
class Entrypoint(Instruction):
    """`ENTRYPOINT`: the image's entry point."""

    command: Command


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    """`SHELL ["executable", "parameters"]`: JSON form only."""

    args: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Copy(Instruction):
    """`COPY [--from=] [--chown=] [--chmod=] [--link] src... dest` (exec or whitespace form)."""

    sources: tuple[str, ...]
    dest: str
    from_stage: str | None = None
    chown: str | None = None
    chmod: str | None = None


@dataclass(frozen=True, kw_only=True)
class Add(Copy):
    """`ADD`: a COPY that also fetches URLs and unpacks local tar archives; `--checksum` raw."""

    checksum: str | None = None


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    """`ENV`: the pairs in the order written; all are substituted against the scope before the line."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    """`LABEL`: key/value pairs, keys and values may be quoted."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    """`ARG name[=default] ...`: each declared name with its default (None: no default)."""

    args: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    """`EXPOSE port[/proto] ...`."""

    ports: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    """`VOLUME` paths, JSON or whitespace separated."""

    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    """`USER user[:group]`."""

    user: str


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    """`WORKDIR path` (relative paths join the previous WORKDIR)."""

    path: str


@dataclass(frozen=True, kw_only=True)
class Stopsignal(Instruction):
    """`STOPSIGNAL signal`."""

    signal: str


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    """`MAINTAINER name` (deprecated; sets the image's author)."""

    name: str


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """`HEALTHCHECK [options] CMD ...` or `HEALTHCHECK NONE`, in the image config's terms: `test` is
    `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`; durations in nanoseconds, 0 = inherit."""

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """`ONBUILD <instruction>`: `expression` is what the image config stores, `trigger` its parse."""

    expression: str
    trigger: Instruction


# Flags each instruction accepts; anything else is "Unknown flag" as in Docker.
ALLOWED_FLAGS: dict[str, frozenset[str]] = {
    "FROM": frozenset({"platform"}),
    "RUN": frozenset({"mount", "network", "security"}),
    "COPY": frozenset({"from", "chown", "chmod", "link", "parents", "exclude"}),
    "ADD": frozenset({"chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"}),
    "HEALTHCHECK": frozenset({"interval", "timeout", "start-period", "start-interval", "retries"}),
}

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
_NO_ARGS = "{} requires at least one argument"


def flag_value(flags: tuple[str, ...], name: str) -> str | None:
    """The value of `--name=value` among `flags` (the last one wins); "true" for a bare `--name`."""
    found: str | None = None
    for flag in flags:
        key, equals, value = flag[2:].partition("=")
        if key == name:
            found = value if equals else "true"
    return found


def _flag_values(flags: tuple[str, ...], name: str) -> tuple[str, ...]:
    return tuple(flag[2:].partition("=")[2] for flag in flags if flag[2:].partition("=")[0] == name)


def split_words(rest: str, escape: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes in the words (Docker's `parseWords`):
    ENV, LABEL and ARG words are unquoted later, when their variables are substituted."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    started = False
    index = 0
    while index < len(rest):
        char = rest[index]
        index += 1
        if not quote and char.isspace():
            if started:
                words.append("".join(word))
            word, started = [], False
            continue
        started = True
        if char == escape and quote != "'":
            if index == len(rest):
                continue  # an escape at the very end is dropped
            word.append(char)
            char = rest[index]
            index += 1
        elif quote and char == quote:
            quote = ""
        elif not quote and char in "'\"":
            quote = char
        word.append(char)
    if started:
        words.append("".join(word))
    return words


def _json_array(rest: str) -> tuple[str, ...] | None:
    """The string array `rest` spells in JSON, or None when it is not JSON (then: shell form)."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return tuple(value)


def _command(rest: str) -> Command:
    args = _json_array(rest)
    if args is not None:
        return Command(args=args, shell_form=False)
    return Command(args=(rest,), shell_form=True)


def _list(rest: str) -> tuple[str, ...]:
    args = _json_array(rest)
    return args if args is not None else tuple(word for word in _WHITESPACE.split(rest) if word)


def _pairs(keyword: str, rest: str, escape: str) -> tuple[tuple[str, str], ...]:
    """ENV/LABEL pairs: `k=v ...`, or the legacy `k v` (everything after the first space is v)."""
    words = split_words(rest, escape)
    if not words:
        raise ValueError(_NO_ARGS.format(keyword))
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{keyword} must have two arguments")
        return ((parts[0], parts[1]),)
    pairs = []
    for word in words:
        key, equals, value = word.partition("=")
        if not equals:
            raise ValueError(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        if not key:
            raise ValueError(f"{keyword} names can not be blank")
        pairs.append((key, value))
    return tuple(pairs)


def _args(rest: str, escape: str) -> tuple[tuple[str, str | None], ...]:
    declared: list[tuple[str, str | None]] = []
    for word in split_words(rest, escape):
        name, equals, default = word.partition("=")
        if not name:
            raise ValueError("ARG names can not be blank")
        declared.append((name, default if equals else None))
    if not declared:
        raise ValueError(_NO_ARGS.format("ARG"))
    return tuple(declared)


_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}  # fmt: skip
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Go's `time.ParseDuration` ("1m30s", "1.5h", "0") in nanoseconds."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0
    total, position = 0.0, 0
    while position < len(body):
        match = _DURATION_PART.match(body, position)
        if match is None:
            raise ValueError(f"time: invalid duration {text!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not body:
        raise ValueError(f"time: invalid duration {text!r}")
    return -int(total) if text.startswith("-") else int(total)


def _healthcheck_duration(flags: tuple[str, ...], name: str) -> int:
    value = flag_value(flags, name)
    if value is None:
        return 0
    nanoseconds = parse_duration(value)
    if nanoseconds != 0 and nanoseconds < 1_000_000:
        raise ValueError(f"{name.title().replace('-', '')} {value!r} cannot be less than 1ms")
    return nanoseconds


def _healthcheck(flags: tuple[str, ...], rest: str) -> dict[str, object]:
    kind, *tail = _WHITESPACE.split(rest, maxsplit=1)
    command = tail[0].strip() if tail else ""
    if kind.upper() == "NONE":
        if command or flags:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return {"test": ("NONE",)}
    if kind.upper() != "CMD":
        raise ValueError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if not command:
        raise ValueError("Missing command after HEALTHCHECK CMD")
    parsed = _command(command)
    test = ("CMD-SHELL", *parsed.args) if parsed.shell_form else ("CMD", *parsed.args)
    retries_text = flag_value(flags, "retries") or "0"
    try:
        retries = int(retries_text)
    except ValueError:
        raise ValueError(f"invalid --retries value {retries_text!r}") from None
    if retries < 0:
        raise ValueError("--retries cannot be negative")
    return {
        "test": test,
        "interval": _healthcheck_duration(flags, "interval"),
        "timeout": _healthcheck_duration(flags, "timeout"),
        "start_period": _healthcheck_duration(flags, "start-period"),
        "start_interval": _healthcheck_duration(flags, "start-interval"),
        "retries": retries,
    }


def _from(flags: tuple[str, ...], rest: str) -> dict[str, object]:
    words = [word for word in _WHITESPACE.split(rest) if word]
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
        raise ValueError("FROM requires either one argument, or three: FROM <source> [AS <name>]")
    name = words[2].lower() if len(words) == 3 else None
    if name is not None and not _STAGE_NAME.match(name):
        raise ValueError(
            f"invalid name for build stage: {words[2]!r}, name can't start with a number or contain symbols"
        )
    return {"image": words[0], "name": name, "platform": flag_value(flags, "platform")}


def _copy(keyword: str, flags: tuple[str, ...], rest: str) -> dict[str, object]:
    words = _list(rest)
    if len(words) < 2:
        raise ValueError(
            f"{keyword} requires at least two arguments, but only one was provided. "
            "Destination could not be determined."
        )
    fields: dict[str, object] = {
        "sources": words[:-1],
        "dest": words[-1],
        "chown": flag_value(flags, "chown"),
        "chmod": flag_value(flags, "chmod"),
    }
    if keyword == "COPY":
        fields["from_stage"] = flag_value(flags, "from")
    else:
        fields["checksum"] = flag_value(flags, "checksum")
    return fields


def _one_string(keyword: str, rest: str) -> str:
    if not rest:
        raise ValueError(f"{keyword} requires exactly one argument")
    return rest


def _fields(keyword: str, flags: tuple[str, ...], rest: str, escape: str) -> dict[str, object]:
    """The keyword-specific fields of an instruction (ONBUILD is handled by the caller)."""
    if keyword == "FROM":
        return _from(flags, rest)
    if keyword in ("RUN", "CMD", "ENTRYPOINT"):
        if not rest and keyword == "RUN":
            raise ValueError(_NO_ARGS.format(keyword))
        fields: dict[str, object] = {"command": _command(rest)}
        if keyword == "RUN":
            fields.update(mounts=_flag_values(flags, "mount"), network=flag_value(flags, "network"))
        return fields
    if keyword == "SHELL":
        args = _json_array(rest)
        if args is None:
            raise ValueError("SHELL requires the arguments to be in JSON form")
        if not args:
            raise ValueError("SHELL requires at least one argument")
        return {"args": args}
    if keyword in ("COPY", "ADD"):
        return _copy(keyword, flags, rest)
    if keyword in ("ENV", "LABEL"):
        return {"pairs": _pairs(keyword, rest, escape)}
    if keyword == "ARG":
        return {"args": _args(rest, escape)}
    if keyword in ("EXPOSE", "VOLUME"):
        words = _list(rest)
        if not words:
            raise ValueError(_NO_ARGS.format(keyword))
        if keyword == "VOLUME" and any(not word.strip() for word in words):
            raise ValueError("VOLUME specified can not be an empty string")
        return {"ports": words} if keyword == "EXPOSE" else {"paths": words}
    if keyword == "HEALTHCHECK":
        return _healthcheck(flags, rest)
    field = {"USER": "user", "WORKDIR": "path", "STOPSIGNAL": "signal", "MAINTAINER": "name"}[keyword]
    return {field: _one_string(keyword, rest)}


KINDS: dict[str, type[Instruction]] = {
    "FROM": From, "RUN": Run, "CMD": Cmd, "ENTRYPOINT": Entrypoint, "SHELL": Shell, "COPY": Copy,
    "ADD": Add, "ENV": Env, "LABEL": Label, "ARG": Arg, "EXPOSE": Expose, "VOLUME": Volume,
    "USER": User, "WORKDIR": Workdir, "STOPSIGNAL": Stopsignal, "MAINTAINER": Maintainer,
    "HEALTHCHECK": Healthcheck, "ONBUILD": Onbuild,
}  # fmt: skip


def parse_arguments(
    keyword: str, flags: tuple[str, ...], rest: str, *, escape: str, where: dict[str, object]
) -> Instruction:
    """Build the instruction `keyword` (upper case, known) from its flags and the rest of its line.

    `where` holds the location fields (line, end_line, original). Problems raise ValueError with
    Docker's wording; the caller adds the line number.
    """
    allowed = ALLOWED_FLAGS.get(keyword, frozenset())
    for flag in flags:
        name = flag[2:].partition("=")[0]
        if name not in allowed:
            raise ValueError(f"Unknown flag: {name}")
    fields = _fields(keyword, flags, rest, escape)
    return KINDS[keyword](keyword=keyword, flags=flags, **where, **fields)  # type: ignore[arg-type]
