"""Dockerfile parsing: directives, continuations, forms, flags, stages and Docker's errors."""

from __future__ import annotations

import pytest

from dockyard.core.build.dockerfile import parse_dockerfile, parse_instruction
from dockyard.core.build.instructions import (
    Add,
    Arg,
    Cmd,
    Command,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
    parse_duration,
)
from dockyard.core.errors import DockerfileError, UsageError


def only(text: str) -> object:
    """The single instruction after `FROM scratch`."""
    (instruction,) = parse_dockerfile("FROM scratch\n" + text).stages[0].instructions
    return instruction


def test_escape_directive_backtick_windows_example() -> None:
    # The Dockerfile reference's example: with `, a trailing backslash is an ordinary character.
    dockerfile = parse_dockerfile(
        "# escape=`\n\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n"
    )
    copy, run = dockerfile.stages[0].instructions
    assert dockerfile.escape == "`" and dockerfile.directives == {"escape": "`"}
    assert isinstance(copy, Copy) and copy.sources == ("testfile.txt",) and copy.dest == "c:\\"
    assert isinstance(run, Run) and run.command == Command(("dir c:\\",), shell_form=True)
    assert (run.line, run.end_line) == (5, 5)


def test_backslash_escape_joins_the_windows_example_into_one_line() -> None:
    dockerfile = parse_dockerfile("FROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n")
    (copy,) = dockerfile.stages[0].instructions
    assert isinstance(copy, Copy) and copy.sources == ("testfile.txt", "c:RUN", "dir") and copy.dest == "c:"


@pytest.mark.parametrize(
    ("text", "escape", "directives"),
    [
        ("#directive=value\n# escape=`\nFROM x\n", "\\", {}),  # unknown directive ends them
        ("# escape=`\nFROM x\n", "`", {"escape": "`"}),
        ("#\t  EsCaPe = ` \nFROM x\n", "`", {"escape": "`"}),
        (
            "# syntax=docker/dockerfile:1\n# escape=`\nFROM x\n",
            "`",
            {"syntax": "docker/dockerfile:1", "escape": "`"},
        ),
        ("# About my dockerfile\n# escape=`\nFROM x\n", "\\", {}),  # a comment first
        ("\n# escape=`\nFROM x\n", "\\", {}),  # a blank line first
        ("FROM x\n# escape=`\n", "\\", {}),  # after an instruction: a comment
    ],
)
def test_parser_directives_only_at_the_top(text: str, escape: str, directives: dict[str, str]) -> None:
    dockerfile = parse_dockerfile(text)
    assert (dockerfile.escape, dockerfile.directives) == (escape, directives)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# escape=`\n# escape=\\\nFROM x\n",
            "Dockerfile parse error line 2: only one escape parser directive",
        ),
        ("# escape=x\nFROM x\n", "Dockerfile parse error line 1: invalid ESCAPE 'x'. Must be ` or \\"),
        ("FROM x\nRUNN echo\n", "Dockerfile parse error line 2: unknown instruction: RUNN"),
        ("FROM x\n\nrunn echo\n", "Dockerfile parse error line 3: unknown instruction: RUNN"),
        ("RUN echo\n", "Dockerfile parse error line 1: no build stage in current context"),
        ("FROM a b\n", "Dockerfile parse error line 1: FROM requires either one argument, or three"),
        ("FROM a AS 1x\n", "Dockerfile parse error line 1: invalid name for build stage"),
        ("FROM a AS x\nFROM b AS X\n", "Dockerfile parse error line 2: duplicate stage name 'x'"),
        ("FROM a\nCOPY only\n", "Dockerfile parse error line 2: COPY requires at least two arguments"),
        ("FROM a\nCOPY --form=x a b\n", "Dockerfile parse error line 2: Unknown flag: form"),
        (
            "FROM a\nSHELL /bin/sh -c\n",
            "Dockerfile parse error line 2: SHELL requires the arguments to be in JSON",
        ),
        ("FROM a\nENV\n", "Dockerfile parse error line 2: ENV requires at least one argument"),
        ("FROM a\nENV onlykey\n", "Dockerfile parse error line 2: ENV must have two arguments"),
        ("FROM a\nENV a=1 b\n", "Dockerfile parse error line 2: Syntax error - can't find = in 'b'"),
        ("FROM a\nLABEL =x\n", "Dockerfile parse error line 2: LABEL names can not be blank"),
        ("FROM a\nARG =x\n", "Dockerfile parse error line 2: ARG names can not be blank"),
        ("FROM a\nEXPOSE\n", "Dockerfile parse error line 2: EXPOSE requires at least one argument"),
        ("FROM a\nUSER\n", "Dockerfile parse error line 2: USER requires exactly one argument"),
        ("FROM a\nCMD [1, 2]\n", "Dockerfile parse error line 2: when using JSON array syntax"),
        (
            "FROM a\nHEALTHCHECK NONE x\n",
            "Dockerfile parse error line 2: HEALTHCHECK NONE takes no arguments",
        ),
        ("FROM a\nHEALTHCHECK RUN x\n", 'Dockerfile parse error line 2: Unknown type "RUN" in HEALTHCHECK'),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "line 2: --retries cannot be negative"),
        ("FROM a\nHEALTHCHECK --interval=1us CMD x\n", "line 2: Interval '1us' cannot be less than 1ms"),
        ("FROM a\nONBUILD ONBUILD RUN x\n", "line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM a\nONBUILD FROM b\n", "line 2: FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD MAINTAINER b\n", "line 2: MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM a\nONBUILD RUNN b\n", "line 2: unknown instruction: RUNN"),
        ("# just a comment\n\n", "the Dockerfile cannot be empty"),
        ("ARG x=1\n", "dockerfile contains no stages to build"),
    ],
)
def test_errors_read_like_docker(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse_dockerfile(text)
    assert message in str(caught.value)
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 125


def test_error_carries_its_line() -> None:
    with pytest.raises(DockerfileError) as caught:
        parse_dockerfile("FROM a\nRUN ok\nBOGUS\n")
    assert caught.value.line == 3


def test_continuations_skip_comment_and_blank_lines_and_keep_line_numbers() -> None:
    dockerfile = parse_dockerfile(
        "FROM busybox\r\n"
        "RUN echo hello \\\r\n"
        "# a comment inside the continuation\n"
        "\n"
        "    # an indented one too\n"
        "world\n"
        "  # a comment on its own\n"
        "RUN a \\  \n"
        "  b\n"
    )
    first, second = dockerfile.stages[0].instructions
    assert isinstance(first, Run) and first.command.args == ("echo hello world",)
    assert (first.line, first.end_line) == (2, 6)
    assert first.original == "RUN echo hello world"
    assert isinstance(second, Run) and second.command.args == ("a   b",) and second.line == 8


def test_continuation_at_end_of_file_and_bom() -> None:
    (run,) = parse_dockerfile("\ufeffFROM a\nRUN x \\").stages[0].instructions
    assert isinstance(run, Run) and run.command.args == ("x",)


@pytest.mark.parametrize(
    ("line", "kind", "command"),
    [
        ('RUN ["echo", "a b"]', Run, Command(("echo", "a b"), shell_form=False)),
        ("RUN echo a b", Run, Command(("echo a b",), shell_form=True)),
        ('RUN ["echo", "a"] extra', Run, Command(('["echo", "a"] extra',), shell_form=True)),  # not JSON
        ("RUN [not json", Run, Command(("[not json",), shell_form=True)),
        ('CMD ["sh"]', Cmd, Command(("sh",), shell_form=False)),
        ("CMD []", Cmd, Command((), shell_form=False)),
        ("cmd   echo  $HOME", Cmd, Command(("echo  $HOME",), shell_form=True)),
        ('ENTRYPOINT ["/bin/app", "--flag"]', Entrypoint, Command(("/bin/app", "--flag"), shell_form=False)),
        ("ENTRYPOINT exec top -b", Entrypoint, Command(("exec top -b",), shell_form=True)),
    ],
)
def test_exec_and_shell_forms(line: str, kind: type, command: Command) -> None:
    instruction = only(line)
    assert isinstance(instruction, kind)
    assert instruction.command == command  # type: ignore[attr-defined]


def test_shell_instruction() -> None:
    shell = only('SHELL ["powershell", "-command"]')
    assert isinstance(shell, Shell) and shell.args == ("powershell", "-command")


@pytest.mark.parametrize(
    ("line", "pairs"),
    [
        ('ENV MY_NAME="John Doe"', (("MY_NAME", '"John Doe"'),)),
        ("ENV MY_DOG=Rex\\ The\\ Dog", (("MY_DOG", "Rex\\ The\\ Dog"),)),
        ("ENV MY_CAT=fluffy", (("MY_CAT", "fluffy"),)),
        ('ENV MY_NAME="John Doe" MY_DOG=Rex\\ The\\ Dog MY_CAT=fluffy',
         (("MY_NAME", '"John Doe"'), ("MY_DOG", "Rex\\ The\\ Dog"), ("MY_CAT", "fluffy"))),
        ("ENV MY_VAR my-value", (("MY_VAR", "my-value"),)),
        ("ENV ONE TWO= THREE=world", (("ONE", "TWO= THREE=world"),)),  # the legacy form: one pair
        ("ENV key  value with   spaces", (("key", "value with   spaces"),)),
        ("ENV empty=", (("empty", ""),)),
        ("ENV a='x y' b=\"it's\"", (("a", "'x y'"), ("b", '"it\'s"'))),
    ],
)  # fmt: skip
def test_env_forms_keep_quotes_for_substitution(line: str, pairs: tuple[tuple[str, str], ...]) -> None:
    env = only(line)
    assert isinstance(env, Env) and env.pairs == pairs


def test_label_and_maintainer() -> None:
    label = only('LABEL "com.example.vendor"="ACME Incorporated" version=1.0 description="a b"')
    assert isinstance(label, Label)
    assert label.pairs == (
        ('"com.example.vendor"', '"ACME Incorporated"'),
        ("version", "1.0"),
        ("description", '"a b"'),
    )
    maintainer = only("MAINTAINER Jane <jane@example.com>")
    assert isinstance(maintainer, Maintainer) and maintainer.name == "Jane <jane@example.com>"


def test_arg_forms() -> None:
    arg = only('ARG user1 buildno=1 msg="a b"')
    assert isinstance(arg, Arg) and arg.args == (("user1", None), ("buildno", "1"), ("msg", '"a b"'))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("COPY a b /dest/", Copy(keyword="COPY", line=2, end_line=2, original="COPY a b /dest/",
                                 sources=("a", "b"), dest="/dest/")),
        ('COPY ["a b", "/x y/"]', Copy(keyword="COPY", line=2, end_line=2, original='COPY ["a b", "/x y/"]',
                                       sources=("a b",), dest="/x y/")),
        ("COPY --from=build --chown=1:2 --chmod=644 /out /in",
         Copy(keyword="COPY", line=2, end_line=2,
              original="COPY --from=build --chown=1:2 --chmod=644 /out /in",
              flags=("--from=build", "--chown=1:2", "--chmod=644"), sources=("/out",), dest="/in",
              from_stage="build", chown="1:2", chmod="644")),
        ('ADD --chown="a b" --checksum=sha256:00 x.tar /', Add(
            keyword="ADD", line=2, end_line=2, original='ADD --chown="a b" --checksum=sha256:00 x.tar /',
            flags=("--chown=a b", "--checksum=sha256:00"), sources=("x.tar",), dest="/",
            chown="a b", checksum="sha256:00")),
    ],
)  # fmt: skip
def test_copy_and_add(line: str, expected: Copy) -> None:
    assert only(line) == expected


def test_run_mount_flags_are_kept_raw() -> None:
    run = only("RUN --mount=type=cache,target=/root/.cache --network=none make")
    assert isinstance(run, Run)
    assert run.mounts == ("type=cache,target=/root/.cache",) and run.network == "none"
    assert run.flags == ("--mount=type=cache,target=/root/.cache", "--network=none")
    assert run.command.args == ("make",)


def test_double_dash_ends_flags() -> None:
    run = only("RUN -- --not-a-flag")
    assert isinstance(run, Run) and run.command.args == ("--not-a-flag",) and run.flags == ()


@pytest.mark.parametrize(
    ("line", "kind", "field", "value"),
    [
        ("EXPOSE 80/tcp 443  53/udp", Expose, "ports", ("80/tcp", "443", "53/udp")),
        ('VOLUME ["/data", "/logs"]', Volume, "paths", ("/data", "/logs")),
        ("VOLUME /var/log /var/db", Volume, "paths", ("/var/log", "/var/db")),
        ("USER patrick:staff", User, "user", "patrick:staff"),
        ("WORKDIR /path to/x", Workdir, "path", "/path to/x"),
        ("STOPSIGNAL SIGKILL", Stopsignal, "signal", "SIGKILL"),
    ],
)
def test_simple_instructions(line: str, kind: type, field: str, value: object) -> None:
    instruction = only(line)
    assert isinstance(instruction, kind) and getattr(instruction, field) == value


def test_healthcheck() -> None:
    check = only(
        "HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --retries=3 CMD curl -f http://x/"
    )
    assert isinstance(check, Healthcheck)
    assert check.test == ("CMD-SHELL", "curl -f http://x/")
    assert (check.interval, check.timeout, check.start_period, check.retries) == (
        300 * 10**9, 3 * 10**9, 90 * 10**9, 3,
    )  # fmt: skip
    exec_form = only('HEALTHCHECK CMD ["/bin/check", "-q"]')
    assert isinstance(exec_form, Healthcheck) and exec_form.test == ("CMD", "/bin/check", "-q")
    none = only("HEALTHCHECK none")
    assert isinstance(none, Healthcheck) and none.test == ("NONE",)


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("1s", 10**9),
        ("1.5h", 5400 * 10**9),
        ("1m30s", 90 * 10**9),
        ("250ms", 250 * 10**6),
        ("10us", 10**4),
    ],
)
def test_go_durations(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "5", "1x", "s", "1s2"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_onbuild_wraps_an_instruction() -> None:
    onbuild = only("ONBUILD ADD . /app/src")
    assert isinstance(onbuild, Onbuild) and onbuild.expression == "ADD . /app/src"
    assert isinstance(onbuild.trigger, Add) and onbuild.trigger.dest == "/app/src"


def test_parse_instruction_for_triggers() -> None:
    run = parse_instruction("RUN /usr/local/bin/python-build --dir /app/src")
    assert isinstance(run, Run) and run.command.args == ("/usr/local/bin/python-build --dir /app/src",)


def test_stages_global_args_and_targets() -> None:
    dockerfile = parse_dockerfile(
        "ARG VERSION=latest\n"
        "FROM --platform=$BUILDPLATFORM busybox:$VERSION AS Build\n"
        "RUN make\n"
        "FROM scratch\n"
        "COPY --from=build /out /\n"
        'CMD ["/out"]\n'
    )
    assert [arg.args for arg in dockerfile.global_args] == [(("VERSION", "latest"),)]
    build, final = dockerfile.stages
    assert build.from_ == From(
        keyword="FROM", line=2, end_line=2,
        original="FROM --platform=$BUILDPLATFORM busybox:$VERSION AS Build",
        flags=("--platform=$BUILDPLATFORM",), image="busybox:$VERSION", name="build",
        platform="$BUILDPLATFORM",
    )  # fmt: skip
    assert build.name == "build" and len(build.instructions) == 1
    assert final.name is None and final.index == 1 and len(final.instructions) == 2
    assert (
        dockerfile.stage("BUILD") is build
        and dockerfile.stage("1") is final
        and dockerfile.stage("x") is None
    )
    assert dockerfile.target(None) is final and dockerfile.target("Build") is build
    assert len(dockerfile.instructions) == 6
    with pytest.raises(DockerfileError, match="failed to reach build target nope in Dockerfile"):
        dockerfile.target("nope")


def test_keywords_are_case_insensitive_and_original_text_is_kept() -> None:
    (run,) = parse_dockerfile("from a\n  run   echo  hi  \n").stages[0].instructions
    assert isinstance(run, Run) and run.keyword == "RUN" and run.original == "run   echo  hi"
