"""A Go text/template engine for Docker's `--format`, with docker/cli's functions.

`render(template, data)` executes a Go text/template against plain data (dicts, lists, str, int,
float, bool, None) with the functions docker/cli registers (json, join, split, title, lower,
upper, pad, truncate) and Go's builtins (and, or, not, eq, ne, lt, le, gt, ge, index, len,
print, printf, println), and prints values as Go does: `<no value>`, `[a b]`, `map[k:v]`, `1e+06`.
Actions: `{{if}}`/`{{else if}}`/`{{else}}`, `{{range}}` (lists, dicts, ints), `{{with}}`,
`{{else with}}`, variables (`$x := ...`, `$x = ...`, `{{range $k, $v := ...}}`), parenthesized
pipelines, comments and the `{{-`/`-}}` trim markers. Not supported: `define`, `template`,
`block`, `break`, `continue` and the builtins html, js, urlquery, call and slice.

Dicts stand in for Go structs: `{{.Field}}` reads a key and `{{json .}}` keeps insertion order (a
struct's field order), while `{{.}}` prints a dict with sorted keys, as Go prints a map. Strings
are measured in characters where Go counts bytes (len, truncate, index).

Every error is a UsageError worded like Docker's: `template parsing error: template: :1: ...`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from dockyard.core.errors import UsageError

__all__ = ["HEADER_FUNCS", "Template", "render"]


def render(template: str, data: object) -> str:
    """Execute the Go template `template` against `data` and return the text it produces."""
    return Template(template).execute(data)


# ---------------------------------------------------------------------------------------------
# Go values: how fmt prints them, how encoding/json writes them, what text/template calls true.


class _NoValue:
    """Go's invalid reflect.Value: a missing map key, or a nil result. Falsy; `<no value>`."""

    __slots__ = ()

    def __bool__(self) -> bool:
        return False


_NO_VALUE = _NoValue()


def _go_string(value: object) -> str:
    """`value` as Go's fmt %v prints it: `<nil>`, `true`, `[a b]`, `map[a:1 b:2]`, `1e+06`."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value, json=False)
    if isinstance(value, Mapping):
        items = (f"{_go_string(key)}:{_go_string(value[key])}" for key in sorted(value))
        return "map[" + " ".join(items) + "]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(map(_go_string, value)) + "]"
    return str(value)


def _printed(value: object) -> str:
    """What an action prints: a nil or missing value is `<no value>`, as text/template writes it."""
    return "<no value>" if value is None or value is _NO_VALUE else _go_string(value)


def _go_json(value: object) -> str:
    """`value` as Go's encoding/json writes it, compact and without HTML escaping."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _FuncError(f"json: unsupported value: {_go_string(value)}")
        return _go_float(value, json=True)
    if isinstance(value, Mapping):
        items = (f"{_json_string(str(key))}:{_go_json(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_go_json, value)) + "]"
    raise _FuncError(f"json: unsupported type: {_go_type(value)}")


def _json_string(text: str) -> str:
    """A JSON string as Go writes it: UTF-8 kept, U+2028/U+2029 escaped for JavaScript's sake."""
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _go_float(value: float, *, json: bool) -> str:
    """A float in Go's shortest form: %v uses an exponent from 1e+06 and below 1e-04; JSON from
    1e+21 and below 1e-06, with `1e-7` rather than `1e-07`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _shortest_digits(abs(value))
    exponent = point - 1
    scientific = not (1e-6 <= abs(value) < 1e21) if json else not (-4 <= exponent < 6)
    if scientific:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        width = 1 if json and exponent < 0 else 2
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):0{width}d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest round-tripping digits of a positive float and where the point goes:
    (d, p) means 0.d x 10**p. Python's repr and Go both pick the shortest round-trip digits."""
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or "0") - (len(whole + fraction) - len(digits))
    return digits.rstrip("0"), point


def _go_type(value: object) -> str:
    """The Go type name docker's data would have, for error messages and %T."""
    if value is None:
        return "<nil>"
    for python_type, go_name in _GO_TYPES:
        if isinstance(value, python_type):
            return go_name
    return type(value).__name__


_GO_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "bool"),
    (int, "int"),
    (float, "float64"),
    (str, "string"),
    (Mapping, "map[string]interface {}"),
    ((list, tuple), "[]interface {}"),
)


def _go_quote(text: str) -> str:
    """Go's strconv.Quote: a double-quoted string with Go escapes (%q)."""
    out = []
    for char in text:
        if char in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


_QUOTE_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
    "\\": "\\\\", '"': '\\"',
}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Template functions: Go's builtins and docker/cli's templates.basicFunctions.


class _FuncError(Exception):
    """A template function refused its arguments; reported as `error calling NAME: ...`."""


class _Func(NamedTuple):
    """A template function and its parameter types (None: any value; variadic: last repeats)."""

    call: Callable[..., object]
    params: tuple[type | None, ...]
    variadic: bool = False


def _kind(value: object) -> str:
    """Go's basicKind, for comparisons."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "string" if isinstance(value, str) else "other"


def _eq(first: object, *others: object) -> bool:
    """Go's eq: whether `first` equals any of `others`; mixing types is an error unless nil."""
    if not others:
        raise _FuncError("missing argument for comparison")
    kind = _kind(first)
    for other in others:
        if _kind(other) != kind:
            if "nil" not in (kind, _kind(other)):
                raise _FuncError("incompatible types for comparison")
        elif kind == "other":
            raise _FuncError(f"non-comparable type {_go_string(first)}: {_go_type(first)}")
        elif first == other:
            return True
    return False


def _lt(first: object, second: object) -> bool:
    """Go's lt: numbers with numbers of the same kind, strings with strings."""
    kinds = {_kind(first), _kind(second)}
    if not kinds <= {"int", "float", "string"}:
        raise _FuncError("invalid type for comparison")
    if len(kinds) > 1:
        raise _FuncError("incompatible types for comparison")
    return bool(first < second)  # type: ignore[operator]


def _le(first: object, second: object) -> bool:
    """Go's le: lt or eq."""
    return _lt(first, second) or _eq(first, second)


def _index(item: object, *keys: object) -> object:
    """Go's index: successive map keys and list positions; a missing map key gives nil."""
    for key in keys:
        if isinstance(item, Mapping):
            if not isinstance(key, str):
                raise _FuncError(f"value has type {_go_type(key)}; should be string")
            item = item.get(key)
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise _FuncError(f"cannot index slice/array with type {_go_type(key)}")
            if not 0 <= key < len(item):
                raise _FuncError(f"index out of range: {key}")
            item = ord(item[key]) if isinstance(item, str) else item[key]
        elif item is None:
            raise _FuncError("index of untyped nil")
        else:
            raise _FuncError(f"can't index item of type {_go_type(item)}")
    return item


def _len(item: object) -> int:
    """Go's len: of a string, list or map."""
    if isinstance(item, str | list | tuple | Mapping):
        return len(item)
    raise _FuncError(f"len of type {_go_type(item)}")


def _sprint(*args: object) -> str:
    """Go's fmt.Sprint: a space between two operands only when neither is a string."""
    out = []
    for position, arg in enumerate(args):
        if position and not isinstance(arg, str) and not isinstance(args[position - 1], str):
            out.append(" ")
        out.append(_go_string(arg))
    return "".join(out)


# Patterns are compiled on first use (re caches them) so that importing this module stays cheap.
_VERB = r"%([-+# 0]*)([0-9]+)?(?:\.([0-9]*))?([a-zA-Z%])"


def _printf(template: str, *args: object) -> str:
    """Go's fmt.Sprintf for the verbs templates use: %v %s %q %d %x %X %o %b %e %f %g %t %T %%."""
    out = []
    position = used = 0
    for match in re.finditer(_VERB, template):
        out.append(template[position : match.start()])
        position = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
        elif used == len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_format_verb(args[used], verb, flags, width, precision))
            used += 1
    out.append(template[position:])
    if used < len(args):
        extra = ", ".join(f"{_go_type(arg)}={_go_string(arg)}" for arg in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_verb(value: object, verb: str, flags: str, width: str | None, precision: str | None) -> str:
    """One printf verb applied to one value; a mismatch prints Go's `%!d(string=x)`."""
    align = "<" if "-" in flags else ""
    sign = "+" if "+" in flags else " " if " " in flags else ""
    zero = "0" if "0" in flags and not align else ""
    number_spec = f"{align}{sign}{'#' if '#' in flags else ''}{zero}{width or ''}"
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if verb == "v" or (verb == "s" and not isinstance(value, int | float)):
        text = _go_string(value)
        if precision is not None and isinstance(value, str):
            text = text[: int(precision or 0)]
    elif verb == "q" and isinstance(value, str):
        text = _go_quote(value)
    elif verb == "t" and isinstance(value, bool):
        text = _go_string(value)
    elif verb == "T":
        text = _go_type(value)
    elif verb in "dxXob" and is_int:
        return format(value, number_spec + verb.replace("d", ""))
    elif verb in "xX" and isinstance(value, str):
        text = value.encode().hex()
        text = text.upper() if verb == "X" else text
    elif verb in "gG" and isinstance(value, float) and precision is None:
        text = _go_float(value, json=False)
        text = text.upper() if verb == "G" else text
    elif verb in "eEfFgG" and isinstance(value, float):
        digits = f".{precision or 0}" if precision is not None else ""
        return format(value, f"{number_spec}{digits}{verb.replace('F', 'f')}")
    else:
        return f"%!{verb}({_go_type(value)}={_go_string(value)})"
    return format(text, f"{align or '>'}{width}") if width else text


def _join(elements: object, separator: str) -> str:
    """docker's join: list items (or a map's sorted values) printed and joined."""
    if elements is None:
        return ""
    if isinstance(elements, list | tuple):
        return separator.join(map(_go_string, elements))
    if isinstance(elements, Mapping):
        return separator.join(sorted(map(_go_string, elements.values())))
    raise _FuncError(f"expected slice, got {_go_type(elements)}")


def _split(text: str, separator: str) -> list[str]:
    """Go's strings.Split: an empty separator splits into characters."""
    return list(text) if separator == "" else text.split(separator)


def _title(text: str) -> str:
    """Go's strings.Title: uppercase every letter that follows a separator, leave the rest."""
    out = []
    previous = " "
    for char in text:
        out.append(char.upper() if _is_word_separator(previous) else char)
        previous = char
    return "".join(out)


def _is_word_separator(char: str) -> bool:
    """Go's isSeparator: ASCII other than letters, digits and `_`; beyond ASCII, only spaces."""
    return not (char.isalnum() or char == "_") if char.isascii() else char.isspace()


def _pad(text: str, prefix: int, suffix: int) -> str:
    """docker's pad: spaces before and after a non-empty string."""
    return " " * prefix + text + " " * suffix if text else text


def _truncate(text: str, length: int) -> str:
    """docker's truncate: the first `length` characters."""
    if length < 0:
        raise _FuncError(f"runtime error: slice bounds out of range [:{length}]")
    return text[:length]


def _first(value: object, *_ignored: object) -> object:
    """A header-row stand-in: the column title passes through unchanged."""
    return value


_ANY = None
_FUNCS: dict[str, _Func] = {
    # Go's text/template builtins; "and" and "or" short-circuit, so the executor runs them.
    "eq": _Func(_eq, (_ANY, _ANY), variadic=True),
    "ge": _Func(lambda first, second: not _lt(first, second), (_ANY, _ANY)),
    "gt": _Func(lambda first, second: not _le(first, second), (_ANY, _ANY)),
    "index": _Func(_index, (_ANY, _ANY), variadic=True),
    "le": _Func(_le, (_ANY, _ANY)),
    "len": _Func(_len, (_ANY,)),
    "lt": _Func(_lt, (_ANY, _ANY)),
    "ne": _Func(lambda first, second: not _eq(first, second), (_ANY, _ANY)),
    "not": _Func(lambda value: not value, (_ANY,)),
    "print": _Func(_sprint, (_ANY,), variadic=True),
    "printf": _Func(_printf, (str, _ANY), variadic=True),
    "println": _Func(lambda *args: " ".join(map(_go_string, args)) + "\n", (_ANY,), variadic=True),
    # docker/cli's templates.basicFunctions
    "json": _Func(_go_json, (_ANY,)),
    "join": _Func(_join, (_ANY, str)),
    "lower": _Func(str.lower, (str,)),
    "pad": _Func(_pad, (str, int, int)),
    "split": _Func(_split, (str, str)),
    "title": _Func(_title, (str,)),
    "truncate": _Func(_truncate, (str, int)),
    "upper": _Func(str.upper, (str,)),
}
_SHORT_CIRCUIT = frozenset({"and", "or"})
# docker/cli's templates.HeaderFunctions: a table header keeps the column title intact.
HEADER_FUNCS: dict[str, _Func] = {
    **_FUNCS,
    "json": _Func(_first, (str,)),
    "join": _Func(_first, (str, str)),
    "lower": _Func(_first, (str,)),
    "split": _Func(_first, (str, str)),
    "title": _Func(_first, (str,)),
    "truncate": _Func(_first, (str, int)),
    "upper": _Func(_first, (str,)),
}
_GO_PARAM_NAMES = {str: "string", int: "int"}


# ---------------------------------------------------------------------------------------------
# Lexing: text, and the tokens inside each {{action}}.


class _Token(NamedTuple):
    kind: str
    text: str
    pos: int


_SPACE = " \t\r\n"
_SPACE_CHARS = frozenset(_SPACE)
_ACTION_TOKEN = r"""(?xs)
      (?P<space>[ \t\r\n]+)
    | (?P<right>\}\})
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<number>[+-]?(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?))
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
    | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<declare>:=)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<char>.)
"""
_CHAR_KINDS = {"|": "pipe", "(": "lparen", ")": "rparen", "=": "assign", ",": "comma", ".": "dot"}


def _lex(source: str) -> list[_Token]:
    """Split a template into text tokens and action tokens, applying the trim markers."""
    tokens: list[_Token] = []
    position = 0
    trim_text = False
    while True:
        start = source.find("{{", position)
        text = source[position : start if start >= 0 else len(source)]
        if trim_text:
            text = text.lstrip(_SPACE)
        # "{{- " trims the text before it; "{{-3}}" is just a negative number.
        trim_left = (
            start >= 0 and source.startswith("{{-", start) and source[start + 3 : start + 4] in _SPACE_CHARS
        )
        if trim_left:
            text = text.rstrip(_SPACE)
        if text:
            tokens.append(_Token("text", text, position))
        if start < 0:
            break
        position, trim_text = _lex_action(source, start, start + (4 if trim_left else 2), tokens)
    tokens.append(_Token("eof", "", len(source)))
    return tokens


def _lex_action(source: str, left: int, position: int, tokens: list[_Token]) -> tuple[int, bool]:
    """Tokenize one action from `position`; return where the text resumes and whether to trim it."""
    if source.startswith("/*", position):
        close = source.find("*/", position + 2)
        if close < 0:
            raise _parse_error(source, left, "unclosed comment")
        end = _right_delimiter(source, close + 2)
        if end is None:
            raise _parse_error(source, left, "comment ends before closing delimiter")
        return end
    tokens.append(_Token("left", "{{", left))
    while True:
        match = re.compile(_ACTION_TOKEN).match(source, position)
        if match is None:
            raise _parse_error(source, left, "unclosed action")
        kind, text = match.lastgroup or "char", match.group()
        if kind in ("space", "right"):
            end = _right_delimiter(source, match.end() - 1 if kind == "space" else match.start())
            if end is not None:
                tokens.append(_Token("right", "}}", match.start()))
                return end
        if kind == "char" and text in '"`':
            raise _parse_error(source, match.start(), "unterminated quoted string")
        if kind == "char":
            kind = _CHAR_KINDS.get(text, "char")
        tokens.append(_Token(kind, text, match.start()))
        position = match.end()


def _right_delimiter(source: str, position: int) -> tuple[int, bool] | None:
    """At `}}` or a trimming ` -}}`: where the following text starts and whether to trim it."""
    if source.startswith("}}", position):
        return position + 2, False
    if source[position : position + 1] in _SPACE_CHARS and source.startswith("-}}", position + 1):
        return position + 4, True
    return None


def _parse_error(source: str, position: int, message: str) -> UsageError:
    line = source.count("\n", 0, position) + 1
    return UsageError(f"template parsing error: template: :{line}: {message}")


_STRING_ESCAPE = r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)"
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", '"': '"'}  # fmt: skip


def _unquote(literal: str) -> str | None:
    """A Go interpreted string literal's value, or None if it has an invalid escape."""
    valid = True

    def one(match: re.Match[str]) -> str:
        nonlocal valid
        code = match.group(1)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if len(code) > 1:
            return chr(int(code[1:], 16) if code[0] in "xuU" else int(code, 8))
        valid = False
        return code

    value = re.sub(_STRING_ESCAPE, one, literal[1:-1])
    return value if valid else None


# ---------------------------------------------------------------------------------------------
# Parsing into nodes. Every operand keeps its position and source text for error messages.


class _Const(NamedTuple):
    value: object
    pos: int
    text: str


class _Dot(NamedTuple):
    pos: int
    text: str


class _Field(NamedTuple):
    names: tuple[str, ...]
    pos: int
    text: str


class _Variable(NamedTuple):
    name: str
    names: tuple[str, ...]
    pos: int
    text: str


class _Ident(NamedTuple):
    name: str
    pos: int
    text: str


class _Chain(NamedTuple):
    operand: _Pipe
    names: tuple[str, ...]
    pos: int
    text: str


class _Command(NamedTuple):
    args: tuple[_Operand, ...]
    pos: int
    text: str


class _Pipe(NamedTuple):
    decls: tuple[str, ...]
    assign: bool
    cmds: tuple[_Command, ...]
    pos: int
    text: str


class _Text(NamedTuple):
    text: str


class _Action(NamedTuple):
    pipe: _Pipe


class _Control(NamedTuple):
    kind: str
    pipe: _Pipe
    body: list[_Node]
    else_body: list[_Node] | None


_Operand = _Const | _Dot | _Field | _Variable | _Ident | _Chain | _Pipe
_Node = _Text | _Action | _Control
_OPERAND_STARTS = frozenset({"ident", "dot", "field", "variable", "number", "string", "raw", "lparen"})
_UNSUPPORTED = frozenset({"define", "template", "block", "break", "continue"})


class _Parser:
    """A recursive-descent parser shaped like Go's text/template/parse."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _lex(source)
        self.index = 0
        self.vars = ["$"]

    def parse(self) -> list[_Node]:
        nodes, end = self._list()
        if end.kind != "eof":
            raise self._error(end, f"unexpected {{{{{end.text}}}}}")
        return nodes

    def _list(self) -> tuple[list[_Node], _Token]:
        """Nodes up to the end of input or an `{{end}}` / `{{else`, which is returned too."""
        nodes: list[_Node] = []
        while True:
            token = self._next()
            if token.kind == "eof":
                return nodes, token
            if token.kind == "text":
                nodes.append(_Text(token.text))
                continue
            word = self._peek_non_space()
            if word.kind == "ident" and word.text in ("end", "else"):
                self._next()
                if word.text == "end":
                    self._expect_right(word)
                return nodes, word
            if word.kind == "ident" and word.text in ("if", "range", "with"):
                self._next()
                nodes.append(self._control(word))
            elif word.kind == "ident" and word.text in _UNSUPPORTED:
                raise self._error(word, f"{{{{{word.text}}}}} is not supported")
            else:
                nodes.append(_Action(self._pipeline("command", "right")))

    def _control(self, word: _Token) -> _Control:
        """`{{if}}`, `{{range}}` or `{{with}}` up to its `{{end}}`; `{{else if}}` nests an if."""
        mark = len(self.vars)
        pipe = self._pipeline(word.text, "right")
        body, end = self._list()
        else_body: list[_Node] | None = None
        if end.text == "else":
            chained = self._peek_non_space()
            if word.text != "range" and chained.kind == "ident" and chained.text == word.text:
                self._next()
                else_body = [self._control(chained)]
            else:
                self._expect_right(end)
                else_body, end = self._list()
                if end.text == "else":
                    raise self._error(end, "expected end; found {{else}}")
        if end.kind == "eof":
            raise self._error(end, "unexpected EOF")
        del self.vars[mark:]
        return _Control(word.text, pipe, body, else_body)

    def _pipeline(self, context: str, end_kind: str) -> _Pipe:
        """[declarations] command ["|" command]... up to the closing delimiter or paren."""
        start = self._peek_non_space()
        decls, assign = self._declarations(context)
        cmds: list[_Command] = []
        while True:
            token = self._peek_non_space()
            if token.kind == end_kind:
                self._next()
                break
            if token.kind not in _OPERAND_STARTS:
                raise self._unexpected(token, context)
            cmds.append(self._command())
        if not cmds:
            raise self._error(start, f"missing value for {context}")
        for stage, cmd in enumerate(cmds[1:], start=2):
            if isinstance(cmd.args[0], _Const | _Dot):
                raise self._error(cmd, f"non executable command in pipeline stage {stage}")
        text = self.source[start.pos : cmds[-1].pos + len(cmds[-1].text)]
        return _Pipe(tuple(decls), assign, tuple(cmds), start.pos, text)

    def _declarations(self, context: str) -> tuple[list[str], bool]:
        """`$x :=`, `$x =`, or in a range `$k, $v :=`; nothing (and no tokens used) otherwise."""
        saved = self.index
        first = self._next_non_space()
        if first.kind != "variable" or "." in first.text:
            self.index = saved
            return [], False
        names = [first.text]
        operator = self._next_non_space()
        if operator.kind == "comma":
            if context != "range":
                raise self._error(operator, f"too many declarations in {context}")
            second = self._next_non_space()
            if second.kind != "variable" or "." in second.text:
                raise self._error(second, "range can only initialize variables")
            names.append(second.text)
            operator = self._next_non_space()
            if operator.kind not in ("declare", "assign"):
                raise self._unexpected(operator, context)
        elif operator.kind not in ("declare", "assign"):
            self.index = saved
            return [], False
        if operator.kind == "assign":
            for name in names:
                self._check_defined(name, first)
        self.vars.extend(names)
        return names, operator.kind == "assign"

    def _command(self) -> _Command:
        """Space-separated operands, ending before `}}` or `)`, or after a `|`."""
        args: list[_Operand] = []
        while True:
            self._peek_non_space()
            operand = self._operand()
            if operand is not None:
                args.append(operand)
            token = self._next()
            if token.kind == "space":
                continue
            if token.kind in ("right", "rparen"):
                self.index -= 1
            elif token.kind != "pipe":
                raise self._unexpected(token, "operand")
            break
        if isinstance(args[0], _Const) and args[0].text == "nil":
            raise self._error(args[0], "nil is not a command")
        text = self.source[args[0].pos : args[-1].pos + len(args[-1].text)]
        return _Command(tuple(args), args[0].pos, text)

    def _operand(self) -> _Operand | None:
        """A term, plus a field chain if one follows a parenthesized pipeline: `(index .A 0).B`."""
        term = self._term()
        field = self._peek()
        if term is None or field.kind != "field":
            return term
        self._next()
        if not isinstance(term, _Pipe):
            raise self._error(field, f"unexpected . after term {_go_quote(term.text)}")
        text = self.source[term.pos : field.pos + len(field.text)]
        return _Chain(term, tuple(field.text.split(".")[1:]), term.pos, text)

    def _term(self) -> _Operand | None:
        token = self._next()
        kind, text, pos = token.kind, token.text, token.pos
        if kind == "ident" and text in ("true", "false", "nil"):
            return _Const({"true": True, "false": False, "nil": None}[text], pos, text)
        if kind == "ident":
            if text not in _FUNCS and text not in _SHORT_CIRCUIT:
                raise self._error(token, f'function "{text}" not defined')
            return _Ident(text, pos, text)
        if kind == "dot":
            return _Dot(pos, text)
        if kind == "field":
            return _Field(tuple(text.split(".")[1:]), pos, text)
        if kind == "variable":
            name, *names = text.split(".")
            self._check_defined(name, token)
            return _Variable(name, tuple(names), pos, text)
        if kind == "number":
            return _Const(_number(text), pos, text)
        if kind == "raw":
            return _Const(text[1:-1], pos, text)
        if kind == "string":
            value = _unquote(text)
            if value is None:
                raise self._error(token, f"invalid syntax: {text}")
            return _Const(value, pos, text)
        if kind == "lparen":
            pipe = self._pipeline("parenthesized pipeline", "rparen")
            return pipe._replace(pos=pos, text=self.source[pos : self.tokens[self.index - 1].pos + 1])
        self.index -= 1
        return None

    def _check_defined(self, name: str, token: _Token) -> None:
        if name not in self.vars:
            raise self._error(token, f'undefined variable "{name}"')

    def _expect_right(self, after: _Token) -> None:
        token = self._next_non_space()
        if token.kind != "right":
            raise self._unexpected(token, after.text)

    def _unexpected(self, token: _Token, context: str) -> UsageError:
        if token.kind == "eof":
            return self._error(token, "unexpected EOF")
        if token.kind == "right" and context == "parenthesized pipeline":
            return self._error(token, "unclosed left paren")
        if token.kind == "rparen":
            return self._error(token, "unexpected right paren")
        return self._error(token, f"unexpected {_go_quote(token.text)} in {context}")

    def _error(self, where: _Token | _Operand | _Command, message: str) -> UsageError:
        return _parse_error(self.source, where.pos, message)

    def _next(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _peek(self) -> _Token:
        return self.tokens[self.index]

    def _peek_non_space(self) -> _Token:
        while self.tokens[self.index].kind == "space":
            self.index += 1
        return self.tokens[self.index]

    def _next_non_space(self) -> _Token:
        self._peek_non_space()
        return self._next()


def _number(text: str) -> int | float:
    """A Go number constant: hex or decimal integer, or a float when it has a point or exponent."""
    if text.lstrip("+-")[:2] in ("0x", "0X"):
        return int(text, 16)
    return float(text) if any(char in text for char in ".eE") else int(text)


# ---------------------------------------------------------------------------------------------
# Execution.


class _ExecError(Exception):
    """An execution error and the node it happened at."""

    def __init__(self, node: _Operand | _Command, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message

    def for_user(self, source: str) -> UsageError:
        """The one-line error Docker prints: position, failing node, reason."""
        position = self.node.pos
        line = source.count("\n", 0, position) + 1
        column = position - (source.rfind("\n", 0, position) + 1)
        return UsageError(
            f"template parsing error: template: :{line}:{column}: "
            f'executing "" at <{self.node.text}>: {self.message}'
        )


_UNSET = object()  # no value piped in from a previous command


class Template:
    """A parsed template that can be executed many times (once per row)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = _Parser(source).parse()

    def execute(self, data: object, *, funcs: Mapping[str, _Func] = _FUNCS, partial: bool = False) -> str:
        """The output for `data`; with `partial`, an error ends the output instead of raising."""
        dot = _NO_VALUE if data is None else data
        run = _Execution(funcs, dot)
        try:
            run.walk(dot, self.nodes)
        except _ExecError as exc:
            if not partial:
                raise exc.for_user(self.source) from exc
        return "".join(run.out)


class _Execution:
    """The state of one execution: output so far and the variable stack (`$` at the bottom)."""

    def __init__(self, funcs: Mapping[str, _Func], data: object) -> None:
        self.funcs = funcs
        self.vars: list[tuple[str, object]] = [("$", data)]
        self.out: list[str] = []

    def walk(self, dot: object, nodes: list[_Node]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipe(dot, node.pipe)
                if not node.pipe.decls:
                    self.out.append(_printed(value))
            elif node.kind == "range":
                self.range(dot, node)
            else:
                mark = len(self.vars)
                value = self.pipe(dot, node.pipe)
                if value:
                    self.walk(value if node.kind == "with" else dot, node.body)
                elif node.else_body is not None:
                    self.walk(dot, node.else_body)
                del self.vars[mark:]

    def range(self, dot: object, node: _Control) -> None:
        """Like Go: the declared variables first hold the collection (so `{{else}}` sees it),
        then each iteration binds `$element` or `$key, $element`."""
        mark = len(self.vars)
        items = self.iterate(self.pipe(dot, node.pipe), node.pipe)
        iteration_mark = len(self.vars)
        for key, element in items:
            self.bind(node.pipe, (key, element)[2 - len(node.pipe.decls) :])
            self.walk(element, node.body)
            del self.vars[iteration_mark:]
        if not items and node.else_body is not None:
            self.walk(dot, node.else_body)
        del self.vars[mark:]

    def iterate(self, value: object, pipe: _Pipe) -> list[tuple[object, object]]:
        """(key, element) pairs as Go's range yields them: maps by sorted key, ints count up."""
        if isinstance(value, Mapping):
            return [(key, value[key]) for key in sorted(value)]
        if isinstance(value, list | tuple):
            return list(enumerate(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return [(number, number) for number in range(value)]
        if value is None or value is _NO_VALUE:
            return []
        raise _ExecError(pipe, f"range can't iterate over {_go_string(value)}")

    def pipe(self, dot: object, pipe: _Pipe) -> object:
        value = self.run(dot, pipe)
        self.bind(pipe, (value,) * len(pipe.decls))
        return value

    def bind(self, pipe: _Pipe, values: tuple[object, ...]) -> None:
        for name, value in zip(pipe.decls, values, strict=True):
            if pipe.assign:
                self.assign(name, value, pipe)
            else:
                self.vars.append((name, value))

    def run(self, dot: object, pipe: _Pipe) -> object:
        """Each command's result is the last argument of the next; nil becomes "no value"."""
        value: object = _UNSET
        for cmd in pipe.cmds:
            value = self.command(dot, cmd, value)
            if value is None:
                value = _NO_VALUE
        return value

    def command(self, dot: object, cmd: _Command, final: object) -> object:
        first, args = cmd.args[0], cmd.args[1:]
        if isinstance(first, _Ident):
            return self.call(dot, first.name, args, final, cmd)
        has_args = bool(args) or final is not _UNSET
        if isinstance(first, _Field | _Chain) or (isinstance(first, _Variable) and first.names):
            return self.operand(dot, first, has_args=has_args)
        if has_args:
            raise _ExecError(first, f"can't give argument to non-function {first.text}")
        return self.operand(dot, first)

    def operand(self, dot: object, node: _Operand, *, has_args: bool = False) -> object:
        if isinstance(node, _Const):
            return node.value
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Field):
            return self.fields(dot, node, has_args)
        if isinstance(node, _Variable):
            return self.fields(self.lookup(node.name, node), node, has_args)
        if isinstance(node, _Chain):
            return self.fields(self.operand(dot, node.operand), node, has_args)
        if isinstance(node, _Pipe):
            return self.pipe(dot, node)
        return self.call(dot, node.name, (), _UNSET, node)

    def fields(self, receiver: object, node: _Field | _Variable | _Chain, has_args: bool) -> object:
        """Follow `.A.B` through maps; a missing key gives "no value", a nil receiver an error."""
        for position, name in enumerate(node.names, start=1):
            if receiver is _NO_VALUE:
                return _NO_VALUE
            if isinstance(receiver, Mapping):
                if has_args and position == len(node.names):
                    raise _ExecError(node, f"{name} is not a method but has arguments")
                receiver = receiver.get(name, _NO_VALUE)
            elif receiver is None:
                raise _ExecError(node, f"nil pointer evaluating interface {{}}.{name}")
            else:
                raise _ExecError(node, f"can't evaluate field {name} in type {_go_type(receiver)}")
        return receiver

    def lookup(self, name: str, node: _Variable) -> object:
        for declared, value in reversed(self.vars):
            if declared == name:
                return value
        raise _ExecError(node, f"undefined variable: {name}")

    def assign(self, name: str, value: object, pipe: _Pipe) -> None:
        for position in range(len(self.vars) - 1, -1, -1):
            if self.vars[position][0] == name:
                self.vars[position] = (name, value)
                return
        raise _ExecError(pipe, f"undefined variable: {name}")

    def call(
        self,
        dot: object,
        name: str,
        args: tuple[_Operand, ...],
        final: object,
        node: _Operand | _Command,
    ) -> object:
        count = len(args) + (final is not _UNSET)
        if name in _SHORT_CIRCUIT:
            if not count:
                raise _ExecError(node, f"wrong number of args for {name}: want at least 1 got 0")
            return self.and_or(dot, name == "or", args, final)
        func = self.funcs[name]
        fixed = len(func.params) - func.variadic
        if count < fixed or (count > fixed and not func.variadic):
            want = f"at least {fixed}" if func.variadic else str(fixed)
            raise _ExecError(node, f"wrong number of args for {name}: want {want} got {count}")
        values = [self.operand(dot, arg) for arg in args]
        if final is not _UNSET:
            values.append(final)
        last = len(func.params) - 1
        bound = [_bind(value, func.params[min(i, last)], node) for i, value in enumerate(values)]
        try:
            return func.call(*bound)
        except _FuncError as exc:
            raise _ExecError(node, f"error calling {name}: {exc}") from exc

    def and_or(self, dot: object, is_or: bool, args: tuple[_Operand, ...], final: object) -> object:
        """Go's and/or: the first argument that decides the result, evaluating no further."""
        value: object = _NO_VALUE
        for arg in args:
            value = self.operand(dot, arg)
            if bool(value) == is_or:
                return value
        return value if final is _UNSET else final


def _bind(value: object, want: type | None, node: _Operand | _Command) -> object:
    """Check one argument against a parameter type as Go's reflection-based call does."""
    if value is _NO_VALUE:
        value = None
    if want is None:
        return value
    if value is None:
        raise _ExecError(node, f"invalid value; expected {_GO_PARAM_NAMES[want]}")
    if not isinstance(value, want) or isinstance(value, bool):
        raise _ExecError(
            node, f"wrong type for value; expected {_GO_PARAM_NAMES[want]}; got {_go_type(value)}"
        )
    return value
