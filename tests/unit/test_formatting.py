"""`--format` behaves like Docker's: Go text/template output, docker/cli tables, go-units sizes."""

from __future__ import annotations

import pytest

from dockyard.core.errors import UsageError
from dockyard.core.formatting import format_rows
from dockyard.core.gotemplate import render
from dockyard.core.tabwriter import render_table
from dockyard.core.units import human_duration, human_duration_ago, human_size, parse_size

DATA = {
    "Name": "web",
    "Id": "a416a98b71e2",
    "Count": 3,
    "Zero": 0,
    "Ratio": 1.5,
    "Running": True,
    "Stopped": False,
    "Nil": None,
    "Empty": "",
    "List": ["a", "b", "c"],
    "Nums": [1, 2.5, None, True],
    "NoItems": [],
    "Labels": {"b": "2", "a": "1", "com.example.x": "y"},
    "Config": {"Image": "busybox", "Env": ["A=1", "B=2"], "Nested": {"Deep": "yes"}},
    "Ports": [{"Port": 80, "Proto": "tcp"}, {"Port": 53, "Proto": "udp"}],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("plain text", "plain text"),
        ("", ""),
        ("}} {", "}} {"),
        ("{{.Name}}", "web"),
        ("name={{.Name}} id={{.Id}}", "name=web id=a416a98b71e2"),
        ("{{.Config.Image}}", "busybox"),
        ("{{.Config.Nested.Deep}}", "yes"),
        ("{{ .Name }}", "web"),
        ("{{.Name | upper}}", "WEB"),
        ("{{.Name | upper | lower}}", "web"),
        ('{{"x" | printf "%s-%s" .Name}}', "web-x"),
        ("{{(index .Ports 1).Proto}}", "udp"),
        ("{{$.Name}}", "web"),
        ("{{with .Config}}{{$.Name}}:{{.Image}}{{end}}", "web:busybox"),
        ("{{$x := .Name}}{{$x}}", "web"),
        ('{{$x := 1}}{{$x = "two"}}{{$x}}', "two"),
        ('{{$n := len .List}}{{if eq $n 3}}three{{end}}', "three"),
        ("{{/* a comment */}}x", "x"),
        # whitespace trimming
        ("a  {{- .Name -}}  b", "awebb"),
        ("a \n\t{{- .Name}} b", "aweb b"),
        ("{{.Name -}}\n\n  !", "web!"),
        ("a {{- /* comment */ -}} b", "ab"),
        ("{{-3}}", "-3"),
        # if / else if / else / with / range
        ("{{if .Running}}up{{end}}", "up"),
        ("{{if .Stopped}}up{{else}}down{{end}}", "down"),
        ("{{if .Missing}}yes{{else}}no{{end}}", "no"),
        ("{{if .Nil}}yes{{else}}no{{end}}", "no"),
        ("{{if .Empty}}yes{{else}}no{{end}}", "no"),
        ("{{if .Zero}}yes{{else}}no{{end}}", "no"),
        ("{{if .NoItems}}yes{{else}}no{{end}}", "no"),
        ("{{if .List}}yes{{else}}no{{end}}", "yes"),
        ("{{if eq .Count 1}}one{{else if eq .Count 3}}three{{else}}many{{end}}", "three"),
        ("{{if eq .Count 1}}one{{else if eq .Count 2}}two{{else}}many{{end}}", "many"),
        ("{{with .Config.Nested}}{{.Deep}}{{end}}", "yes"),
        ("{{with .Empty}}set{{else}}unset{{end}}", "unset"),
        ("{{with .Missing}}a{{else with .Name}}b={{.}}{{end}}", "b=web"),
        ("{{range .List}}[{{.}}]{{end}}", "[a][b][c]"),
        ("{{range $i, $e := .List}}{{$i}}={{$e}} {{end}}", "0=a 1=b 2=c "),
        ("{{range $e := .List}}{{$e}}{{end}}", "abc"),
        ("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;com.example.x=y;"),
        ("{{range .Labels}}{{.}}{{end}}", "12y"),
        ("{{range .Ports}}{{.Port}}/{{.Proto}} {{end}}", "80/tcp 53/udp "),
        ("{{range .NoItems}}x{{else}}none{{end}}", "none"),
        ("{{range .Missing}}x{{else}}none{{end}}", "none"),
        ("{{range 3}}{{.}}{{end}}", "012"),
        ("{{range .List}}{{if eq . \"b\"}}B{{else}}{{.}}{{end}}{{end}}", "aBc"),
        ("{{range $i, $e := .List}}{{end}}{{len .List}}", "3"),
        # docker/cli functions
        ('{{join .List ","}}', "a,b,c"),
        ('{{join .Config.Env " "}}', "A=1 B=2"),
        ('{{join .Labels ","}}', "1,2,y"),
        ('{{join .Missing ","}}', ""),
        ('{{split "a:b:c" ":"}}', "[a b c]"),
        ('{{index (split "a:b:c" ":") 1}}', "b"),
        ('{{split "abc" ""}}', "[a b c]"),
        ('{{title "hello wide-world foo_bar"}}', "Hello Wide-World Foo_bar"),
        ('{{lower "MiXed"}} {{upper "MiXed"}}', "mixed MIXED"),
        ("[{{pad .Name 2 1}}]", "[  web ]"),
        ("[{{pad .Empty 2 1}}]", "[]"),
        ("{{truncate .Id 4}}", "a416"),
        ("{{truncate .Name 10}}", "web"),
        # Go builtins
        ('{{index .Labels "com.example.x"}}', "y"),
        ('{{index .Labels "nope"}}', "<no value>"),
        ("{{index .List 2}}", "c"),
        ('{{index .Config "Env" 1}}', "B=2"),
        ('{{index "abc" 0}}', "97"),
        ("{{len .List}} {{len .Labels}} {{len .Name}}", "3 3 3"),
        ("{{not .Running}} {{not .Empty}}", "false true"),
        ('{{and .Running "x"}} {{and .Stopped "x"}} {{and .Running .Zero}}', "x false 0"),
        ('{{or .Empty "fallback"}} {{or .Name "x"}} {{or .Zero .Empty}}', "fallback web "),
        ("{{if and .NoItems (index .NoItems 0)}}yes{{else}}short-circuit{{end}}", "short-circuit"),
        ("{{if or .List (index .NoItems 0)}}short-circuit{{end}}", "short-circuit"),
        ('{{eq .Name "web"}} {{eq .Count 1 2 3}} {{eq .Nil nil}} {{eq .Name nil}}',
         "true true true false"),
        ('{{ne .Name "db"}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}',
         "true true true true false"),
        ('{{print "a" 1 2 "b" true}}', "a1 2btrue"),
        ('{{println "a" 1}}', "a 1\n"),
        ("{{println}}", "\n"),
        # string literals
        ('{{"tab\\there"}}', "tab\there"),
        ('{{"\\u00e9\\x41\\101\\"\\\\"}}', 'éAA"\\'),
        ("{{`raw\\t{{}}`}}", "raw\\t{{}}"),
        ('{{"}}"}}', "}}"),
        ("{{0x1F}} {{1e3}} {{+7}} {{.5}}", "31 1000 7 0.5"),
    ],
)  # fmt: skip
def test_render(template: str, expected: str) -> None:
    assert render(template, DATA) == expected


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (None, "<no value>"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-42, "-42"),
        ("", ""),
        ("text", "text"),
        ([], "[]"),
        (["a", "b", "c"], "[a b c]"),
        ([1, [2, 3], None, True, "x y"], "[1 [2 3] <nil> true x y]"),
        ({}, "map[]"),
        ({"k2": "v2", "k1": "v1"}, "map[k1:v1 k2:v2]"),
        ({"b": [1, 2], "a": {"z": None}}, "map[a:map[z:<nil>] b:[1 2]]"),
        (1.0, "1"),
        (1.5, "1.5"),
        (-0.25, "-0.25"),
        (0.0, "0"),
        (-0.0, "-0"),
        (100.0, "100"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1.5e300, "1.5e+300"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1.2345e-7, "1.2345e-07"),
        (0.1 + 0.2, "0.30000000000000004"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (float("nan"), "NaN"),
    ],
)
def test_values_print_as_go_prints_them(value: object, printed: str) -> None:
    assert render("{{.V}}", {"V": value}) == printed


@pytest.mark.parametrize(
    ("template", "data", "expected"),
    [
        ("{{.Missing}}", {}, "<no value>"),
        ("{{.A.B.C}}", {}, "<no value>"),
        ("{{.}}", None, "<no value>"),
        ("{{.Name}}", None, "<no value>"),
        ("{{.}}", "just a string", "just a string"),
        ("{{range .}}{{.}},{{end}}", [1, None, "x"], "1,<no value>,x,"),
        ('{{printf "%v" .Missing}}', {}, "<nil>"),
        ("{{json .Missing}}", {}, "null"),
    ],
)
def test_missing_and_nil_values(template: str, data: object, expected: str) -> None:
    assert render(template, data) == expected


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ({"b": 1, "a": [True, None, "x"]}, '{"b":1,"a":[true,null,"x"]}'),
        ({}, "{}"),
        ([], "[]"),
        ("<tag> & 'q' \"d\"", '"<tag> & \'q\' \\"d\\""'),
        ("tab\tnew\nline", '"tab\\tnew\\nline"'),
        ("ünïcode \u2028", '"ünïcode \\u2028"'),
        (1.0, "1"),
        (1.5, "1.5"),
        (1e6, "1000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (-2.5e-10, "-2.5e-10"),
        (12, "12"),
        (False, "false"),
    ],
)
def test_json_is_go_encoding_json(value: object, encoded: str) -> None:
    assert render("{{json .V}}", {"V": value}) == encoded


def test_json_of_everything_keeps_key_order() -> None:
    assert render("{{json .Config}}", DATA) == (
        '{"Image":"busybox","Env":["A=1","B=2"],"Nested":{"Deep":"yes"}}'
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{{printf "%s|%v|%d" "a" .L 42}}', "a|[1 2]|42"),
        ('{{printf "[%5s][%-5s][%5d][%-5d][%05d]" "ab" "ab" 42 42 42}}',
         "[   ab][ab   ][   42][42   ][00042]"),
        ('{{printf "%+d %x %X %#x %o %b" 5 255 255 255 8 5}}', "+5 ff FF 0xff 10 101"),
        ('{{printf "%.2f %8.3f %e %g %g %.3g" 3.14159 2.5 1234.5 1e6 0.5 3.14159}}',
         "3.14    2.500 1.234500e+03 1e+06 0.5 3.14"),
        ('{{printf "%q" "say \\"hi\\"\\n"}}', '"say \\"hi\\"\\n"'),
        ('{{printf "%t %v" true false}}', "true false"),
        ('{{printf "%T %T %T %T %T" 1 "s" 1.5 .L .M}}',
         "int string float64 []interface {} map[string]interface {}"),
        ('{{printf "%x" "hi"}}', "6869"),
        ('{{printf "%.2s" "abcdef"}}', "ab"),
        ('{{printf "100%%"}}', "100%"),
        ('{{printf "%d %d" 1}}', "1 %!d(MISSING)"),
        ('{{printf "%d" "x"}}', "%!d(string=x)"),
        ('{{printf "%s" 5}}', "%!s(int=5)"),
        ('{{printf "%f" 5}}', "%!f(int=5)"),
        ('{{printf "x" 1 "y"}}', "x%!(EXTRA int=1, string=y)"),
    ],
)  # fmt: skip
def test_printf_maps_go_verbs(template: str, expected: str) -> None:
    assert render(template, {"L": [1, 2], "M": {}}) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.Name", "template: :1: unclosed action"),
        ("a\nb {{.Name", "template: :2: unclosed action"),
        ("{{foo .Name}}", 'template: :1: function "foo" not defined'),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{else}}", "template: :1: unexpected {{else}}"),
        ("{{if .Name}}x", "template: :1: unexpected EOF"),
        ("{{range .List}}x{{else}}y", "template: :1: unexpected EOF"),
        ("{{if .A}}{{else}}{{else}}{{end}}", "template: :1: expected end; found {{else}}"),
        ("{{}}", "template: :1: missing value for command"),
        ("{{if}}{{end}}", "template: :1: missing value for if"),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        ("{{$x = 1}}", 'template: :1: undefined variable "$x"'),
        ("{{if true}}{{$x := 1}}{{end}}{{$x}}", 'template: :1: undefined variable "$x"'),
        ("{{.Name | 3}}", "template: :1: non executable command in pipeline stage 2"),
        ("{{(.Name}}", "template: :1: unclosed left paren"),
        ("{{.Name)}}", "template: :1: unexpected right paren"),
        ('{{"abc}}', "template: :1: unterminated quoted string"),
        ('{{"\\q"}}', 'template: :1: invalid syntax: "\\q"'),
        ("{{nil}}", "template: :1: nil is not a command"),
        ("{{.Name = 1}}", 'template: :1: unexpected "=" in operand'),
        ("{{/* comment }}", "template: :1: unclosed comment"),
        ("{{/* comment */ .Name}}", "template: :1: comment ends before closing delimiter"),
        ('{{template "x"}}', "template: :1: {{template}} is not supported"),
        ('{{"s".Field}}', 'template: :1: unexpected . after term "\\"s\\""'),
        ("{{.Name | |}}", 'template: :1: unexpected "|" in command'),
        ("{{$a, $b := .List}}", "template: :1: too many declarations in command"),
    ],
)
def test_parse_errors_read_like_docker(template: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        render(template, DATA)
    assert str(caught.value) == f"template parsing error: {message}"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{.Nil.Field}}", 'template: :1:2: executing "" at <.Nil.Field>: '
         "nil pointer evaluating interface {}.Field"),
        ("{{.Name.Field}}", 'template: :1:2: executing "" at <.Name.Field>: '
         "can't evaluate field Field in type string"),
        ("x\n  {{.List.Field}}", 'template: :2:4: executing "" at <.List.Field>: '
         "can't evaluate field Field in type []interface {}"),
        ("{{.Name 1}}", 'template: :1:2: executing "" at <.Name>: '
         "Name is not a method but has arguments"),
        ('{{"x" | .Name}}', 'template: :1:8: executing "" at <.Name>: '
         "Name is not a method but has arguments"),
        ("{{$x := 1}}{{$x 2}}", 'template: :1:13: executing "" at <$x>: '
         "can't give argument to non-function $x"),
        ("{{upper 1}}", 'template: :1:2: executing "" at <upper 1>: '
         "wrong type for value; expected string; got int"),
        ("{{upper .Missing}}", 'template: :1:2: executing "" at <upper .Missing>: '
         "invalid value; expected string"),
        ("{{upper}}", 'template: :1:2: executing "" at <upper>: '
         "wrong number of args for upper: want 1 got 0"),
        ('{{upper "a" "b"}}', 'template: :1:2: executing "" at <upper "a" "b">: '
         "wrong number of args for upper: want 1 got 2"),
        ("{{index}}", 'template: :1:2: executing "" at <index>: '
         "wrong number of args for index: want at least 1 got 0"),
        ("{{and}}", 'template: :1:2: executing "" at <and>: '
         "wrong number of args for and: want at least 1 got 0"),
        ("{{index .List 5}}", 'template: :1:2: executing "" at <index .List 5>: '
         "error calling index: index out of range: 5"),
        ('{{index .List "a"}}', 'template: :1:2: executing "" at <index .List "a">: '
         "error calling index: cannot index slice/array with type string"),
        ('{{index .Nil "a"}}', 'template: :1:2: executing "" at <index .Nil "a">: '
         "error calling index: index of untyped nil"),
        ('{{index .Count "a"}}', 'template: :1:2: executing "" at <index .Count "a">: '
         "error calling index: can't index item of type int"),
        ("{{len .Count}}", 'template: :1:2: executing "" at <len .Count>: '
         "error calling len: len of type int"),
        ('{{eq .Count "3"}}', 'template: :1:2: executing "" at <eq .Count "3">: '
         "error calling eq: incompatible types for comparison"),
        ("{{eq .List .List}}", 'template: :1:2: executing "" at <eq .List .List>: '
         "error calling eq: non-comparable type [a b c]: []interface {}"),
        ("{{lt true false}}", 'template: :1:2: executing "" at <lt true false>: '
         "error calling lt: invalid type for comparison"),
        ("{{lt 1 1.5}}", 'template: :1:2: executing "" at <lt 1 1.5>: '
         "error calling lt: incompatible types for comparison"),
        ('{{join .Name ","}}', 'template: :1:2: executing "" at <join .Name ",">: '
         "error calling join: expected slice, got string"),
        ("{{truncate .Name -1}}", 'template: :1:2: executing "" at <truncate .Name -1>: '
         "error calling truncate: runtime error: slice bounds out of range [:-1]"),
        ("{{range .Name}}{{end}}", 'template: :1:8: executing "" at <.Name>: '
         "range can't iterate over web"),
        ("{{json .V}}", 'template: :1:2: executing "" at <json .V>: '
         "error calling json: json: unsupported value: NaN"),
    ],
)  # fmt: skip
def test_execution_errors_read_like_docker(template: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        render(template, {**DATA, "V": float("nan")})
    assert str(caught.value) == f"template parsing error: {message}"


# docker/cli's cli/command/formatter/image.go
IMAGES_TABLE = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
    "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
)
IMAGES_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
}
BUSYBOX = {
    "Repository": "busybox",
    "Tag": "latest",
    "Digest": "<none>",
    "ID": "a416a98b71e2",
    "CreatedSince": "2 months ago",
    "CreatedAt": "2024-05-01 10:00:00 +0000 UTC",
    "Size": "4.26MB",
}
HELLO = {**BUSYBOX, "Repository": "hello-world", "ID": "d2c94e258dcb", "CreatedSince": ""}


def test_docker_images_header_line() -> None:
    out = format_rows("", [BUSYBOX], headers=IMAGES_HEADERS, default=IMAGES_TABLE)
    assert out.splitlines()[0] == "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE"
    assert out == (
        "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE\n"
        "busybox      latest    a416a98b71e2   2 months ago   4.26MB\n"
    )


def test_render_table_matches_docker_images() -> None:
    headers = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    row = ["busybox", "latest", "a416a98b71e2", "2 months ago", "4.26MB"]
    assert render_table(headers, [row]) == (
        "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE\n"
        "busybox      latest    a416a98b71e2   2 months ago   4.26MB\n"
    )


def test_table_columns_grow_and_else_branches_render() -> None:
    out = format_rows("table", [BUSYBOX, HELLO], headers=IMAGES_HEADERS, default=IMAGES_TABLE)
    assert out == (
        "REPOSITORY    TAG       IMAGE ID       CREATED        SIZE\n"
        "busybox       latest    a416a98b71e2   2 months ago   4.26MB\n"
        "hello-world   latest    d2c94e258dcb   N/A            4.26MB\n"
    )


def test_empty_table_prints_only_the_header() -> None:
    out = format_rows("", [], headers=IMAGES_HEADERS, default=IMAGES_TABLE)
    assert out == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"


def test_escaped_tabs_from_the_command_line_become_columns() -> None:
    # The shell hands Docker a backslash and a "t"; docker/cli turns it into a tab.
    out = format_rows(
        r"table {{.Repository}}\t{{.Tag | upper}}", [BUSYBOX], headers=IMAGES_HEADERS, default=""
    )
    assert out == "REPOSITORY   TAG\nbusybox      LATEST\n"


def test_header_functions_keep_titles_intact() -> None:
    fmt = (
        "table {{.Repository | upper}}\t{{json .Tag}}\t{{truncate .ID 3}}\t{{lower .Size}}"
        '\t{{pad .Digest 1 1}}|{{join .Tag ","}}|{{title .CreatedAt}}'
    )
    header = format_rows(fmt, [], headers=IMAGES_HEADERS, default="").splitlines()[0]
    assert header == "REPOSITORY   TAG       IMAGE ID   SIZE       DIGEST |TAG|CREATED AT"


def test_unknown_header_fields_and_header_errors_stay_partial() -> None:
    out = format_rows(
        "table {{.Repository}}\t{{.Nope}}", [BUSYBOX], headers=IMAGES_HEADERS, default=""
    )
    assert out == "REPOSITORY   <no value>\nbusybox      <no value>\n"
    # Docker ignores an error while writing the header and keeps what was written before it.
    out = format_rows("table {{.Repository}}\t{{.ID.X}}", [], headers=IMAGES_HEADERS, default="")
    assert out == "REPOSITORY   \n"


def test_non_table_formats_print_one_line_per_row() -> None:
    rows = [BUSYBOX, HELLO]
    out = format_rows(r"  {{.Repository}}:{{.Tag}}\n", rows, headers=IMAGES_HEADERS, default="")
    assert out == "busybox:latest\n\nhello-world:latest\n\n"
    assert format_rows("{{.ID}}", [], headers=IMAGES_HEADERS, default="") == ""


def test_json_format_is_one_object_per_line() -> None:
    out = format_rows("json", [{"ID": "x", "Size": 3}], headers=IMAGES_HEADERS, default="")
    assert out == '{"ID":"x","Size":3}\n'


def test_row_errors_raise() -> None:
    with pytest.raises(UsageError, match="can't evaluate field X in type string"):
        format_rows("table {{.ID.X}}", [BUSYBOX], headers=IMAGES_HEADERS, default="")
    with pytest.raises(UsageError, match='function "nope" not defined'):
        format_rows("{{nope}}", [], headers=IMAGES_HEADERS, default="")


def test_tabwriter_columns_are_blocks_of_consecutive_lines() -> None:
    # A line with fewer cells ends the column above it: Go's elastic tabstops.
    out = render_table(["A", "B", "C"], [["1"], ["22222222222222", "x", "y"], ["3", "", "z"]])
    assert out == (
        "A         B         C\n"
        "1\n"
        "22222222222222   x         y\n"
        "3                          z\n"
    )


def test_tabwriter_counts_wide_characters_twice() -> None:
    out = render_table(["NAME", "X"], [["日本語日本語日本語", "1"], ["é", "2"]])
    assert out == "NAME                 X\n日本語日本語日本語   1\né                    2\n"


@pytest.mark.parametrize(
    ("size", "precision", "expected"),
    [
        (0, 3, "0B"),
        (856, 3, "856B"),
        (999, 3, "999B"),
        (1000, 3, "1kB"),
        (13_300, 3, "13.3kB"),
        (4_261_234, 3, "4.26MB"),
        (4_261_234, 4, "4.261MB"),
        (1_230_000_000, 3, "1.23GB"),
        (999_999, 3, "1e+03kB"),
        (10**15, 3, "1PB"),
        (10**27, 3, "1e+03YB"),
        (1.5, 3, "1.5B"),
    ],
)
def test_human_size(size: float, precision: int, expected: str) -> None:
    assert human_size(size, precision=precision) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "Less than a second"),
        (0, "Less than a second"),
        (0.99, "Less than a second"),
        (1, "1 second"),
        (59.9, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3599, "59 minutes"),
        (3600, "About an hour"),
        (5399, "About an hour"),
        (5400, "2 hours"),
        (47 * 3600, "47 hours"),
        (2 * 86400, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (59 * 86400, "8 weeks"),
        (60 * 86400, "2 months"),
        (729 * 86400, "24 months"),
        (730 * 86400, "2 years"),
        (5 * 365 * 86400, "5 years"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected
    assert human_duration_ago(seconds) == expected + " ago"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("100", 100),
        ("100b", 100),
        ("100B", 100),
        ("1k", 1024),
        ("1K", 1024),
        ("1kb", 1024),
        ("1KiB", 1024),
        ("512m", 512 * 1024**2),
        ("512M", 512 * 1024**2),
        ("1g", 1024**3),
        ("1.5GB", 3 * 1024**3 // 2),
        ("2 GiB", 2 * 1024**3),
        ("1t", 1024**4),
        ("1p", 1024**5),
        (".5k", 512),
        ("1.k", 1024),
        ("32 ", 32),
        ("1.7", 1),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid size: ''"),
        ("m", "invalid size: 'm'"),
        ("-1", "invalid size: '-1'"),
        ("-1m", "invalid size: '-1m'"),
        ("1.2.3m", "invalid size: '1.2.3m'"),
        ("5x", "invalid suffix: 'x'"),
        ("5X", "invalid suffix: 'x'"),
        ("1bb", "invalid suffix: 'bb'"),
        ("1kbb", "invalid suffix: 'kbb'"),
        ("1kx", "invalid suffix: 'kx'"),
        ("1MiBs", "invalid suffix: 'MiBs'"),
        ("1 2m", "invalid suffix: '2m'"),
    ],
)
def test_parse_size_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_size(text)
    assert str(caught.value) == message
