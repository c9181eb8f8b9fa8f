"""Variable substitution and ARG/ENV scoping, as the Dockerfile reference documents them."""

from __future__ import annotations

import pytest

from dockyard.core.build.dockerfile import parse_dockerfile
from dockyard.core.build.expand import BuildArgs, GlobalScope, StageScope, expand_word
from dockyard.core.build.instructions import (
    Cmd,
    Copy,
    Env,
    Expose,
    Instruction,
    Label,
    Onbuild,
    Run,
    Stopsignal,
    User,
    Volume,
    Workdir,
)
from dockyard.core.errors import DockerfileError

VARIABLES = {"foo": "/bar", "empty": "", "path": "/usr/local/bin", "sp": "a b"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$foo", "/bar"),
        ("${foo}", "/bar"),
        ("${foo}/baz", "/bar/baz"),
        ("$foo_x", ""),  # the name runs on: foo_x is unset
        ("${foo}_x", "/bar_x"),
        ("${unset}", ""),
        ("${foo:-word}", "/bar"),
        ("${unset:-word}", "word"),
        ("${empty:-word}", "word"),
        ("${empty-word}", ""),
        ("${unset-word}", "word"),
        ("${foo:+word}", "word"),
        ("${unset:+word}", ""),
        ("${empty:+word}", ""),
        ("${empty+word}", "word"),
        ("${unset:-$foo}", "/bar"),
        ("${unset:-a b}", "a b"),
        ("${path#*/}", "usr/local/bin"),
        ("${path##*/}", "bin"),
        ("${path%/*}", "/usr/local"),
        ("${path%%/*}", ""),
        ("\\$foo", "$foo"),
        ("\\${foo}", "${foo}"),
        ("'$foo'", "$foo"),
        ('"$foo and $sp"', "/bar and a b"),
        ('"\\"quoted\\""', '"quoted"'),
        ('"a\\b"', "a\\b"),  # inside double quotes only " $ and the escape are escapable
        ("a\\ b", "a b"),
        ("$", "$"),
        ("a$", "a$"),
        ("$1", ""),
        ("$@x", "x"),
        ("trailing\\", "trailing"),
    ],
)
def test_substitution(word: str, expected: str) -> None:
    assert expand_word(word, VARIABLES.get) == expected


def test_backtick_escape() -> None:
    assert expand_word("`$foo \\x", VARIABLES.get, escape="`") == "$foo \\x"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${foo", "missing '}'"),
        ("${}", "bad substitution"),
        ("${:-x}", "bad substitution"),
        ("${foo:=x}", "unsupported modifier (=) in substitution"),
        ("${foo*}", "unsupported modifier (*) in substitution"),
        ("'open", "matching single-quote"),
        ('"open', "matching double-quote"),
        ("${unset:-x", "looking for matching }"),
        ("${unset:?must be set}", "unset: must be set"),
        ("${empty:?}", "empty: is not allowed to be unset"),
    ],
)
def test_substitution_errors(word: str, message: str) -> None:
    with pytest.raises(DockerfileError, match="failed to process") as caught:
        expand_word(word, VARIABLES.get)
    assert message in str(caught.value)


def scopes(
    text: str, build_args: dict[str, str] | None = None, image_env: tuple[str, ...] = ()
) -> tuple[GlobalScope, StageScope, list[Instruction], BuildArgs]:
    dockerfile = parse_dockerfile(text)
    args = BuildArgs(build_args)
    global_scope = GlobalScope(dockerfile.global_args, args, platform_args={"TARGETARCH": "amd64"})
    stage = StageScope(global_scope, image_env=image_env)
    steps = [stage.apply(instruction) for instruction in dockerfile.stages[0].instructions]
    return global_scope, stage, steps, args


def test_env_reference_example_substitutes_against_the_previous_line() -> None:
    _, stage, steps, _ = scopes("FROM busybox\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    assert steps[1] == Env(
        keyword="ENV",
        line=3,
        end_line=3,
        original="ENV abc=bye def=$abc",
        pairs=(("abc", "bye"), ("def", "hello")),
    )
    assert stage.config_env() == ["abc=bye", "def=hello", "ghi=bye"]


def test_env_forms_are_unquoted() -> None:
    _, stage, _, _ = scopes(
        'FROM a\nENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog MY_CAT=fluffy\nENV legacy  "a  b"  c\n'
    )
    assert stage.env == {
        "MY_NAME": "John Doe",
        "MY_DOG": "Rex The Dog",
        "MY_CAT": "fluffy",
        "legacy": "a  b  c",
    }


def test_image_env_is_the_starting_point() -> None:
    _, stage, steps, _ = scopes(
        "FROM a\nENV PATH=$PATH:/opt/bin\nWORKDIR $HOME/x\n", image_env=("PATH=/bin", "HOME=/root")
    )
    assert stage.env["PATH"] == "/bin:/opt/bin"
    assert isinstance(steps[1], Workdir) and steps[1].path == "/root/x"


def test_global_args_only_reach_from_unless_redeclared() -> None:
    text = (
        "ARG VERSION=1.0\nARG IMAGE=busybox:$VERSION\nFROM $IMAGE\n"
        "RUN echo $VERSION\nLABEL before=$VERSION\nARG VERSION\nLABEL after=$VERSION\n"
    )
    global_scope, stage, steps, _ = scopes(text)
    assert global_scope.expand_from(parse_dockerfile(text).stages[0].from_).image == "busybox:1.0"
    assert isinstance(steps[0], Run) and steps[0].command.args == ("echo $VERSION",)  # RUN: the shell's job
    assert isinstance(steps[1], Label) and steps[1].pairs == (("before", ""),)
    assert isinstance(steps[3], Label) and steps[3].pairs == (("after", "1.0"),)
    assert stage.run_environment() == ["VERSION=1.0"]


def test_build_args_override_defaults_and_unused_ones_are_reported() -> None:
    text = "ARG V=1\nFROM busybox:$V\nARG user=someuser\nARG other\nUSER $user\n"
    global_scope, stage, steps, args = scopes(
        text, {"V": "2", "user": "what_user", "nobody": "x", "HTTP_PROXY": "p"}
    )
    assert global_scope.expand_from(parse_dockerfile(text).stages[0].from_).image == "busybox:2"
    assert isinstance(steps[2], User) and steps[2].user == "what_user"
    assert stage.args == {"user": "what_user", "other": None}
    assert args.unconsumed() == ["nobody"]  # the proxy is predefined, V and user were declared


def test_env_wins_over_arg() -> None:
    # The reference's example: ENV CONT_IMG_VER beats --build-arg CONT_IMG_VER.
    text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nLABEL v=$CONT_IMG_VER\n"
    _, stage, steps, _ = scopes(text, {"CONT_IMG_VER": "v2.0.1"})
    assert isinstance(steps[2], Label) and steps[2].pairs == (("v", "v1.0.0"),)
    assert stage.run_environment() == ["CONT_IMG_VER=v1.0.0"]
    assert stage.arg_environment() == {}


def test_arg_and_env_combined_default_pattern() -> None:
    text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n"
    assert scopes(text)[1].env == {"CONT_IMG_VER": "v1.0.0"}
    assert scopes(text, {"CONT_IMG_VER": "v2.0.1"})[1].env == {"CONT_IMG_VER": "v2.0.1"}


def test_redeclared_arg_without_default_keeps_its_value_and_args_chain() -> None:
    _, stage, _, _ = scopes("FROM a\nARG A=1 B=${A}2\nARG A\n")
    assert stage.args == {"A": "1", "B": "12"}


def test_predefined_proxy_args_reach_run_without_declaration() -> None:
    _, stage, _, args = scopes("FROM a\nENV x=1\n", {"http_proxy": "http://proxy:3128", "unused": "1"})
    assert stage.run_environment() == ["x=1", "http_proxy=http://proxy:3128"]
    assert stage.config_env() == ["x=1"]  # never in the image
    assert stage.lookup("http_proxy") == "http://proxy:3128"
    assert args.unconsumed() == ["unused"]


def test_platform_args_in_global_scope_and_when_declared() -> None:
    text = "FROM busybox-$TARGETARCH\nLABEL a=$TARGETARCH\nARG TARGETARCH\nLABEL b=$TARGETARCH\n"
    global_scope, _, steps, _ = scopes(text)
    assert global_scope.expand_from(parse_dockerfile(text).stages[0].from_).image == "busybox-amd64"
    assert isinstance(steps[0], Label) and steps[0].pairs == (("a", ""),)
    assert isinstance(steps[2], Label) and steps[2].pairs == (("b", "amd64"),)


def test_instructions_that_substitute() -> None:
    text = (
        "FROM a\nENV d=/data p=8080 u=app\n"
        "COPY --chown=$u:$u --from=${stage:-builder} src/$u ${d}/\n"
        'EXPOSE $p 9090/udp\nVOLUME ["$d"]\nUSER ${u}\nWORKDIR $d/w\nSTOPSIGNAL SIG${sig:-TERM}\n'
        "CMD echo $d\nONBUILD COPY $d /x\n"
    )
    _, _, steps, _ = scopes(text)
    copy = steps[1]
    assert isinstance(copy, Copy)
    assert (copy.sources, copy.dest, copy.chown, copy.from_stage) == (
        ("src/app",),
        "/data/",
        "app:app",
        "builder",
    )
    assert isinstance(steps[2], Expose) and steps[2].ports == ("8080", "9090/udp")
    assert isinstance(steps[3], Volume) and steps[3].paths == ("/data",)
    assert [getattr(step, "user", None) for step in steps].count("app") == 1
    assert isinstance(steps[5], Workdir) and steps[5].path == "/data/w"
    assert isinstance(steps[6], Stopsignal) and steps[6].signal == "SIGTERM"
    assert isinstance(steps[7], Cmd) and steps[7].command.args == ("echo $d",)  # left to the shell
    assert isinstance(steps[8], Onbuild) and steps[8].expression == "COPY $d /x"  # stored as written


def test_expose_splits_an_expanded_list() -> None:
    _, _, steps, _ = scopes('FROM a\nENV PORTS="80 443"\nEXPOSE $PORTS\n')
    assert isinstance(steps[1], Expose) and steps[1].ports == ("80", "443")
