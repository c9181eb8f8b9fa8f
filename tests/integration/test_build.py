"""`build` end to end through the real CLI: every Dockerfile instruction, the cache, stages,
`.dockerignore`, failures, the ways of passing a context, the hello-world image, and images built
here running under podman after a trip through the reference registry.

Docker's classic builder is the reference for output, config and exit codes. Builds pass
`--network none` unless the network is the point; an ADD URL is fetched by the builder itself,
from an http.server on 127.0.0.1. The images most tests look at are built once per module (the
`everything` build) and each test checks one promise of it, so a failure names what broke.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Dockyard, tar_directory
from tests.integration.registry.support import Registry, start_registry
from tests.integration.test_storage_drivers_cli import DRIVERS, cli_for, dockyard_on_btrfs  # noqa: F401
from tests.mounts import detach_mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps need containers: root")

REPOSITORY = Path(__file__).resolve().parents[2]
NO_NETWORK = ("--network", "none")
RUN = ("run", "--rm", "--network", "none")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")


def write_context(base: Path, files: dict[str, str | bytes]) -> Path:
    """A build context `base/context` holding `files` (relative path -> content); a directory of
    its own, since the `dockyard` fixture keeps the test's store in tmp_path too."""
    directory = base / "context"
    directory.mkdir(parents=True)
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return directory


def config_of(cli: Dockyard, image: str) -> dict[str, Any]:
    """The image's runtime config, as `inspect --format '{{json .Config}}'` prints it."""
    config: dict[str, Any] = json.loads(cli("inspect", "--format", "{{json .Config}}", image).stdout)
    return config


def image_id(cli: Dockyard, image: str) -> str:
    return cli("inspect", "--format", "{{.Id}}", image).stdout.strip()


def steps_of(output: str) -> list[list[str]]:
    """The build output cut into steps: each a list of the step's lines, "Step N/M : ..." first."""
    steps: list[list[str]] = []
    for line in output.splitlines():
        if line.startswith("Step "):
            steps.append([line])
        elif steps:
            steps[-1].append(line)
    return steps


def ran(step: list[str]) -> bool:
    """Whether a step ran a container (RUN) rather than coming from the cache."""
    return any(line.startswith(" ---> Running in ") for line in step)


def cached(step: list[str]) -> bool:
    return " ---> Using cache" in step


def tar_bytes(entries: dict[str, bytes]) -> bytes:
    """An uncompressed tar of regular files, names exactly as given (`../` included)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(content), 1_700_000_000
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def gzip_tar(entries: dict[str, bytes]) -> bytes:
    import gzip

    return gzip.compress(tar_bytes(entries))


# --- shared store: one busybox import and the `everything` build for the whole module ------------


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Dockyard]:
    """A Dockyard root shared by this module's read-only tests, with busybox imported.

    At the end no container may be left (every RUN removes its own) and nothing may stay mounted.
    """
    base = tmp_path_factory.mktemp("build-shared")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKYARD_")}
    env["DOCKYARD_CONFIG"] = str(base / "no-config.toml")
    env["DOCKYARD_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    cli = Dockyard(base / "root", base / "run", env)
    cli("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar), "busybox")
    yield cli
    left = cli("ps", "-aq").stdout.split()
    leaked = detach_mounts_under(base)
    assert not left, f"containers left behind: {left}"
    assert not leaked, f"mounts left behind: {leaked}"


@pytest.fixture
def busybox(dockyard: Dockyard, busybox_tar: Path) -> str:
    """busybox imported as `busybox` into this test's own store; returns its id."""
    return dockyard("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar), "busybox").stdout.strip()


@dataclass
class Http:
    """A python http.server serving `directory` on 127.0.0.1."""

    directory: Path
    url: str


@pytest.fixture(scope="module")
def http_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Http]:
    directory = tmp_path_factory.mktemp("served")
    (directory / "remote.txt").write_text("served over http\n")
    (directory / "remote.tar").write_bytes(tar_bytes({"inside.txt": b"not unpacked"}))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Http(directory, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


EVERYTHING = """\
# A comment line, then a global ARG used by FROM
ARG BASE=busybox
FROM ${BASE} AS first
ENV GREETING=hello OTHER="two words"
ENV SINGLE one value
ENV PATH=$PATH:/extra/bin
ARG VERSION=1
RUN echo "$GREETING $VERSION" > /greet
RUN ["/bin/sh", "-c", "echo exec form: $OTHER > /exec"]
COPY *.txt /txts/
COPY dir /copied
COPY dir/sub/deep.txt /renamed
COPY --chown=nobody:nogroup a.txt /owned-by-name
COPY --chown=123:456 --chmod=640 b.txt /owned-by-number
COPY --chown=123 a.txt /owned-by-uid
ADD archive.tar.gz /unpacked/
ADD {url}/remote.txt /downloaded
ADD {url}/remote.tar /fetched.tar
WORKDIR relative
WORKDIR $SINGLE
RUN pwd > /pwd
USER nobody
RUN id -u > /tmp/uid-nobody
USER 123:456
RUN id -u > /tmp/uid-123 && id -g >> /tmp/uid-123
USER root
EXPOSE 80 53/udp 8000-8001
LABEL org.example.a=b "with space"=yes version=$VERSION
VOLUME /data /other
VOLUME ["/json"]
STOPSIGNAL SIGTERM
SHELL ["/bin/env", "VIA_SHELL=yes", "/bin/sh", "-c"]
RUN echo "$VIA_SHELL" > /shelled
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=2 CMD wget -q localhost || exit 1
MAINTAINER Ann Maintainer <ann@example.com>
ONBUILD RUN echo "triggered" > /triggered
CMD ["cat", "/greet"]
"""


@dataclass
class Built:
    """A build's output and the image it made."""

    stdout: str
    stderr: str
    tag: str


@pytest.fixture(scope="module")
def everything(shared: Dockyard, http_files: Http, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One build of a Dockerfile using every instruction (URL ADD from the local http.server)."""
    context = write_context(
        tmp_path_factory.mktemp("everything"),
        {
            "Dockerfile": EVERYTHING.replace("{url}", http_files.url),
            "a.txt": "a\n",
            "b.txt": "b\n",
            "not-copied.md": "md\n",
            "dir/c.txt": "c\n",
            "dir/sub/deep.txt": "deep\n",
            "archive.tar.gz": gzip_tar({"pkg/one.txt": b"one\n", "pkg/two.txt": b"two\n"}),
        },
    )
    result = shared(
        "build", *NO_NETWORK, "-t", "everything", "--build-arg", "VERSION=7",
        "--build-arg", "UNUSED=1", str(context),
    )
    return Built(result.stdout, result.stderr, "everything")


def run_in(cli: Dockyard, image: str, script: str) -> str:
    """`script`'s standard output in a container of `image` (entry point reset)."""
    return cli(*RUN, "--entrypoint", "", image, "/bin/sh", "-c", script).stdout


def test_config_instructions_land_in_the_image_config(shared: Dockyard, everything: Built) -> None:
    config = config_of(shared, everything.tag)
    assert config["Env"] == [
        f"{DEFAULT_PATH}:/extra/bin",
        "GREETING=hello",
        "OTHER=two words",
        "SINGLE=one value",
    ], "the default PATH is there to extend, as Docker's builder gives every stage one"
    assert config["Cmd"] == ["cat", "/greet"]
    assert config["Entrypoint"] is None
    assert config["WorkingDir"] == "/relative/one value"
    assert config["User"] == "root"
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert config["Labels"] == {"org.example.a": "b", "with space": "yes", "version": "7"}
    assert config["Volumes"] == {"/data": {}, "/other": {}, "/json": {}}
    assert config["StopSignal"] == "SIGTERM"
    assert config["Shell"] == ["/bin/env", "VIA_SHELL=yes", "/bin/sh", "-c"]
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
        "Interval": 5_000_000_000,
        "Timeout": 3_000_000_000,
        "StartPeriod": 1_000_000_000,
        "Retries": 2,
    }
    assert config["OnBuild"] == ['RUN echo "triggered" > /triggered']
    assert shared("inspect", "--format", "{{.Author}}", everything.tag).stdout.strip() == (
        "Ann Maintainer <ann@example.com>"
    )
    assert shared(*RUN, everything.tag).stdout == "hello 7\n", "CMD runs; RUN saw ENV and --build-arg"


def test_run_forms_environment_workdir_user_and_shell(shared: Dockyard, everything: Built) -> None:
    shown = run_in(shared, everything.tag, "cat /exec /pwd /tmp/uid-nobody /tmp/uid-123 /shelled")
    assert shown.splitlines() == [
        "exec form: two words",  # exec form, its own shell expands the ENV
        "/relative/one value",  # WORKDIR relative to the previous one, $SINGLE substituted
        "65534",  # USER nobody: RUN ran as that user
        "123",  # USER 123:456, not in /etc/passwd
        "456",
        "yes",  # RUN went through the SHELL
    ]
    assert run_in(shared, everything.tag, "pwd; echo $VERSION-unset") == "/relative/one value\n-unset\n", (
        "WORKDIR is the container's cwd; ARG values stay out of the image"
    )


def test_copy_globs_directories_owners_and_modes(shared: Dockyard, everything: Built) -> None:
    listing = run_in(
        shared,
        everything.tag,
        "cd / && for f in txts/* copied/* copied/sub/* renamed owned-by-name owned-by-number owned-by-uid;"
        ' do echo "$f $(stat -c "%u:%g %a" $f) $(cat $f 2>/dev/null | head -1)"; done',
    )
    assert listing.splitlines() == [
        "txts/a.txt 0:0 644 a",  # the glob matched the .txt files only
        "txts/b.txt 0:0 644 b",
        "copied/c.txt 0:0 644 c",  # a directory source copies its contents
        "copied/sub 0:0 755 ",
        "copied/sub/deep.txt 0:0 644 deep",
        "renamed 0:0 644 deep",  # a destination without / is the file's new name
        "owned-by-name 65534:65534 644 a",  # names from the image's /etc/passwd and /etc/group
        "owned-by-number 123:456 640 b",
        "owned-by-uid 123:123 644 a",  # a lone uid is the gid too
    ]
    assert run_in(shared, everything.tag, "ls /copied /txts").splitlines() == [
        "/copied:", "c.txt", "sub", "", "/txts:", "a.txt", "b.txt",
    ], "the directory's contents, not the directory; the glob left not-copied.md out"


def test_add_unpacks_local_archives_and_downloads_urls(shared: Dockyard, everything: Built) -> None:
    shown = run_in(
        shared,
        everything.tag,
        "cat /unpacked/pkg/one.txt /unpacked/pkg/two.txt /downloaded;"
        " stat -c '%a %u' /downloaded /fetched.tar; tar -tf /fetched.tar",
    )
    assert shown.splitlines() == [
        "one",
        "two",
        "served over http",
        "600 0",  # a URL's file is mode 0600, as Docker's ADD makes it
        "600 0",
        "inside.txt",  # a downloaded archive stays an archive
    ]


def test_output_history_and_unconsumed_build_args(shared: Dockyard, everything: Built) -> None:
    lines = everything.stdout.splitlines()
    total = EVERYTHING.count("\n") - 1  # every line is an instruction but the comment
    assert lines[0] == f"Step 1/{total} : ARG BASE=busybox"
    assert lines[1] == f"Step 2/{total} : FROM ${{BASE}} AS first"
    steps = steps_of(everything.stdout)
    assert len(steps) == total
    run_steps = [step for step in steps if step[0].split(" : ")[1].startswith("RUN")]
    assert len(run_steps) == 6 and all(ran(step) for step in run_steps)
    for step in run_steps:
        assert step[-2].startswith("Removing intermediate container ")
        assert re.fullmatch(r" ---> [0-9a-f]{12}", step[-1])
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in lines
    built = image_id(shared, everything.tag)
    assert lines[-2:] == [f"Successfully built {built[7:19]}", "Successfully tagged everything:latest"]

    template = "{{.CreatedBy}}|{{.Size}}"
    history = shared("history", "--no-trunc", "--format", template, everything.tag).stdout.splitlines()
    rows = [line.rsplit("|", 1) for line in history]
    assert len(rows) == total - 2 + 1, "one entry per step after FROM (the global ARG is none), plus the base"
    assert rows[0] == ['/bin/sh -c #(nop)  CMD ["cat", "/greet"]', "0B"]
    assert ["|1 VERSION=7 /bin/sh -c echo \"$GREETING $VERSION\" > /greet", "8B"] in rows
    assert ["/bin/sh -c #(nop)  ENV SINGLE=one value", "0B"] in rows
    copies = [row for row in rows if row[0].startswith("/bin/sh -c #(nop) COPY ")]
    assert len(copies) == 6 and all(row[1].endswith("B") for row in copies)
    labels = [row[0].split()[4].partition(":")[0] for row in copies]
    assert labels == ["file", "file", "file", "file", "dir", "multi"], "newest first, as Docker labels them"
    assert copies[-1][1] == "4B", "*.txt: a.txt and b.txt"


def test_onbuild_triggers_run_in_a_child_build(shared: Dockyard, everything: Built, tmp_path: Path) -> None:
    context = write_context(tmp_path, {"Dockerfile": "FROM everything\nRUN cat /triggered\n"})
    output = shared("build", *NO_NETWORK, "-t", "child", str(context)).stdout
    assert "# Executing 1 build trigger" in output
    assert "triggered\n" in output, "the trigger ran before the child's own RUN"
    assert config_of(shared, "child")["OnBuild"] is None, "triggers are not inherited by the child"
    assert run_in(shared, "child", "cat /triggered") == "triggered\n"


def test_entrypoint_forms_and_the_base_cmd(shared: Dockyard, tmp_path: Path) -> None:
    context = write_context(
        tmp_path,
        {
            "exec.Dockerfile": 'FROM busybox\nENTRYPOINT ["echo", "exec"]\n',
            "shell.Dockerfile": "FROM busybox\nCMD [\"kept\"]\nENTRYPOINT echo shell form\n",
        },
    )
    build = ("build", *NO_NETWORK, "-q")
    shared(*build, "-t", "entry-exec", "-f", str(context / "exec.Dockerfile"), str(context))
    config = config_of(shared, "entry-exec")
    assert config["Entrypoint"] == ["echo", "exec"]
    assert config["Cmd"] is None, "an ENTRYPOINT drops the CMD the base image had"
    assert shared(*RUN, "entry-exec").stdout == "exec\n"
    assert shared(*RUN, "entry-exec", "more", "args").stdout == "exec more args\n"

    shared(*build, "-t", "entry-shell", "-f", str(context / "shell.Dockerfile"), str(context))
    config = config_of(shared, "entry-shell")
    assert config["Entrypoint"] == ["/bin/sh", "-c", "echo shell form"]
    assert config["Cmd"] == ["kept"], "a CMD of this Dockerfile stays"
    assert shared(*RUN, "entry-shell", "ignored").stdout == "shell form\n", "arguments go to sh as $0"


# --- parsing ---------------------------------------------------------------------------------------


def test_continuations_comments_and_the_escape_directive(shared: Dockyard, tmp_path: Path) -> None:
    dockerfile = (
        "# escape=`\n"
        "# a comment before the first instruction\n"
        "FROM busybox\n"
        "RUN echo one `\n"
        "# a comment inside a continuation is dropped\n"
        "    two > /joined\n"
        "ENV WINDOWS=C:\\data\\file.txt\n"
        "CMD cat /joined\n"
    )
    context = write_context(tmp_path, {"Dockerfile": dockerfile})
    output = shared("build", *NO_NETWORK, "-t", "escaped", str(context)).stdout
    assert len(steps_of(output)) == 4, output
    assert "WINDOWS=C:\\data\\file.txt" in config_of(shared, "escaped")["Env"], "a backslash is plain text"
    assert shared(*RUN, "escaped").stdout == "one two\n"


def test_parse_error_names_the_line(dockyard: Dockyard, tmp_path: Path) -> None:
    context = write_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo ok \\\n  && echo on\nBOGUS x\n"})
    result = dockyard("build", *NO_NETWORK, "-t", "never", str(context), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("Dockerfile parse error line 4: unknown instruction: BOGUS")
    assert result.stdout == "", "nothing ran"
    assert dockyard("images", "-q").stdout == ""


# --- the cache -------------------------------------------------------------------------------------

CACHED_DOCKERFILE = """\
FROM busybox
ARG FLAVOUR=plain
RUN echo first > /first
COPY one.txt /
RUN cat /one.txt
COPY two.txt /
RUN echo "$FLAVOUR" && cat /two.txt
"""


def test_a_rebuild_with_nothing_changed_runs_no_step(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    context = write_context(tmp_path, {"Dockerfile": CACHED_DOCKERFILE, "one.txt": "1\n", "two.txt": "2\n"})
    first = dockyard("build", *NO_NETWORK, "-t", "cached", str(context)).stdout
    assert sum(ran(step) for step in steps_of(first)) == 3
    built = image_id(dockyard, "cached")

    again = dockyard("build", *NO_NETWORK, "-t", "cached", str(context)).stdout
    steps = steps_of(again)
    assert not any(ran(step) for step in steps), again
    assert all(cached(step) for step in steps[1:]), again
    assert image_id(dockyard, "cached") == built

    for name in ("one.txt", "two.txt", "Dockerfile"):
        os.utime(context / name, (1_000_000_000, 1_000_000_000))
    touched = dockyard("build", *NO_NETWORK, str(context)).stdout
    assert all(cached(step) for step in steps_of(touched)[1:]), "mtimes alone never invalidate"
    assert f"Successfully built {built[7:19]}" in touched

    everything_again = dockyard("build", *NO_NETWORK, "--no-cache", str(context)).stdout
    steps = steps_of(everything_again)
    assert not any(cached(step) for step in steps) and sum(ran(step) for step in steps) == 3


def test_a_changed_file_reruns_from_its_copy_on(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    context = write_context(tmp_path, {"Dockerfile": CACHED_DOCKERFILE, "one.txt": "1\n", "two.txt": "2\n"})
    dockyard("build", *NO_NETWORK, str(context))
    (context / "two.txt").write_text("changed\n")
    steps = steps_of(dockyard("build", *NO_NETWORK, "-t", "changed", str(context)).stdout)
    assert [cached(step) for step in steps[1:]] == [True, True, True, True, False, False]
    assert ran(steps[-1]) and "changed" in steps[-1]
    assert dockyard(*RUN, "changed", "cat", "/two.txt").stdout == "changed\n"

    (context / "one.txt").chmod(0o600)
    steps = steps_of(dockyard("build", *NO_NETWORK, str(context)).stdout)
    assert [cached(step) for step in steps[1:]] == [True, True, False, False, False, False], (
        "the mode is part of what COPY keys on"
    )


def test_a_changed_build_arg_reruns_the_run_using_it(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    context = write_context(tmp_path, {"Dockerfile": CACHED_DOCKERFILE, "one.txt": "1\n", "two.txt": "2\n"})
    dockyard("build", *NO_NETWORK, "--build-arg", "FLAVOUR=salty", str(context))
    same = steps_of(dockyard("build", *NO_NETWORK, "--build-arg", "FLAVOUR=salty", str(context)).stdout)
    assert all(cached(step) for step in same[1:])
    other = steps_of(dockyard("build", *NO_NETWORK, "--build-arg", "FLAVOUR=sweet", str(context)).stdout)
    assert [cached(step) for step in other[1:]] == [True, False, False, False, False, False], (
        "the first RUN after the ARG keys on its value (|1 FLAVOUR=...); every later step is on a new parent"
    )
    assert "sweet" in other[-1]


# --- stages ----------------------------------------------------------------------------------------

STAGES = """\
FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact && echo junk > /out/junk
FROM scratch AS final
COPY --from=builder /out/artifact /artifact
COPY --from=busybox /bin/busybox /bin/busybox
CMD ["/bin/busybox", "cat", "/artifact"]
FROM final AS extra
COPY --from=0 /out/junk /junk
"""


def test_target_stops_at_its_stage_and_tags_only_it(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    context = write_context(tmp_path, {"Dockerfile": STAGES})
    output = dockyard("build", *NO_NETWORK, "--target", "final", "-t", "app", str(context)).stdout
    assert "Step 6/8 : CMD" in output and "Step 7/8" not in output, "the stage after the target is skipped"
    tags = dockyard("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(tags) == ["<none>:<none>", "app:latest", "busybox:latest"], (
        "the builder stage's image stays untagged"
    )
    assert dockyard(*RUN, "app").stdout == "built\n"
    listing = dockyard(*RUN, "app", "/bin/busybox", "ls", "/").stdout.split()
    assert "out" not in listing and "junk" not in listing and "artifact" in listing
    assert dockyard(*RUN, "app", "/bin/busybox", "ls", "/bin").stdout == "busybox\n", (
        "COPY --from=busybox (an image) copied just the one file"
    )
    assert len(json.loads(dockyard("inspect", "app").stdout)[0]["RootFS"]["Layers"]) == 2

    dockyard("build", *NO_NETWORK, "-t", "all-stages", str(context))
    assert dockyard(*RUN, "all-stages", "/bin/busybox", "cat", "/junk").stdout == "junk\n", (
        "FROM an earlier stage, COPY --from by index"
    )
    bad = dockyard("build", *NO_NETWORK, "--target", "nowhere", str(context), check=False)
    assert bad.returncode == 1 and "nowhere" in bad.stderr


def test_dockerignore_excludes_and_reincludes(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    context = write_context(
        tmp_path,
        {
            ".dockerignore": "secret.txt\nlogs/*.log\n!logs/important.log\n",
            "Dockerfile": "FROM busybox\nCOPY logs /logs\nCOPY . /all\n",
            "Dockerfile.secret": "FROM busybox\nCOPY secret.txt /\n",
            "secret.txt": "secret\n",
            "keep.txt": "keep\n",
            "logs/debug.log": "debug\n",
            "logs/important.log": "important\n",
            "logs/readme": "readme\n",
        },
    )
    dockyard("build", *NO_NETWORK, "-t", "ignoring", str(context))
    shown = dockyard(*RUN, "ignoring", "sh", "-c", "ls /logs; ls -A /all").stdout.split()
    assert shown == [
        "important.log", "readme",  # /logs: debug.log excluded, important.log re-included
        ".dockerignore", "Dockerfile", "Dockerfile.secret", "keep.txt", "logs",
    ]
    secret = str(context / "Dockerfile.secret")
    refused = dockyard("build", *NO_NETWORK, "-f", secret, str(context), check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(
        "COPY failed: file not found in build context or excluded by .dockerignore: "
        "stat secret.txt: file does not exist"
    )


def test_add_refuses_an_archive_escaping_its_destination(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    context = write_context(
        tmp_path,
        {
            "Dockerfile": "FROM busybox\nADD evil.tar /opt/\n",
            "evil.tar": tar_bytes({"fine.txt": b"fine", "../../escaped.txt": b"escaped"}),
        },
    )
    before = dockyard("images", "-aq").stdout
    result = dockyard("build", *NO_NETWORK, "-t", "evil", str(context), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "evil.tar: entry '../../escaped.txt' points outside the destination"
    )
    assert dockyard("images", "-aq").stdout == before, "no step image, no tag"
    written = [path for path in Path(tmp_path).rglob("escaped.txt")]
    assert written == [] and not Path("/escaped.txt").exists() and not Path("/opt/escaped.txt").exists()

    outside = tmp_path / "outside"
    outside.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        archive.addfile(link)
        through = tarfile.TarInfo("link/pwned")
        through.size = 4
        archive.addfile(through, io.BytesIO(b"evil"))
    (context / "Dockerfile").write_text("FROM busybox\nADD through-link.tar /opt/\n")
    (context / "through-link.tar").write_bytes(buffer.getvalue())
    result = dockyard("build", *NO_NETWORK, "-t", "evil", str(context), check=False)
    assert result.returncode == 1 and "symlink" in result.stderr, result.stderr
    assert list(outside.iterdir()) == [], "nothing was written through the archive's symlink"
    assert dockyard("images", "-aq").stdout == before


# --- failures --------------------------------------------------------------------------------------


def test_a_failing_run_stops_the_build_with_its_code(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    context = write_context(
        tmp_path,
        {
            "Dockerfile": "FROM busybox\nRUN echo before\nCMD [\"good\"]\n",
            "Dockerfile.fail": "FROM busybox\nRUN echo before\nRUN echo oops >&2; exit 3\nRUN echo after\n",
        },
    )
    dockyard("build", *NO_NETWORK, "-t", "app", str(context))
    good = image_id(dockyard, "app")
    failing = str(context / "Dockerfile.fail")
    tags = ("-t", "app", "-t", "fresh")
    result = dockyard("build", *NO_NETWORK, *tags, "-f", failing, str(context), check=False)
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "Error: The command '/bin/sh -c echo oops >&2; exit 3' returned a non-zero code: 3"
    ]
    steps = steps_of(result.stdout)
    assert steps[-1][0] == "Step 3/4 : RUN echo oops >&2; exit 3", "the build stopped at the failing step"
    assert "oops" in steps[-1], "the RUN's standard error is part of the build output, as Docker's"
    assert cached(steps[1]), "the steps before it were kept (cached from the first build)"
    assert "Successfully" not in result.stdout
    assert dockyard("ps", "-aq").stdout == "", "the failed step's container is removed"
    assert image_id(dockyard, "app") == good, "the tag did not move"
    assert dockyard("inspect", "fresh", check=False).returncode != 0, "no tag was created"

    exec_form = write_context(tmp_path / "exec", {"Dockerfile": 'FROM busybox\nRUN ["sh", "-c", "exit 7"]\n'})
    result = dockyard("build", *NO_NETWORK, str(exec_form), check=False)
    assert result.returncode == 7
    assert "The command 'sh -c exit 7' returned a non-zero code: 7" in result.stderr


# --- the ways of calling build ---------------------------------------------------------------------


def test_files_stdin_quiet_labels_tags_and_the_alias(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    context = write_context(
        tmp_path,
        {
            "Dockerfile": "FROM busybox\nRUN false\n",
            "other/Build.file": "FROM busybox\nCOPY keep.txt /\nCMD [\"cat\", \"/keep.txt\"]\n",
            "keep.txt": "kept\n",
        },
    )
    # -f another file, -q, repeated -t, --label
    quiet = dockyard(
        "build", *NO_NETWORK, "-q", "-f", str(context / "other/Build.file"), "-t", "one", "-t", "two:v2",
        "--label", "owner=me", "--label", "empty", str(context),
    ).stdout
    assert IMAGE_ID.fullmatch(quiet.strip()) and quiet.count("\n") == 1, "-q prints only the id"
    assert image_id(dockyard, "one") == image_id(dockyard, "two:v2") == quiet.strip()
    assert config_of(dockyard, "one")["Labels"] == {"owner": "me", "empty": ""}
    assert dockyard(*RUN, "two:v2").stdout == "kept\n"
    failed = dockyard("build", *NO_NETWORK, "-q", str(context), check=False)  # its Dockerfile: RUN false
    assert failed.returncode == 1 and failed.stdout == ""
    assert "Step 2/2 : RUN false" in failed.stderr, "-q shows the kept output when the build fails"
    assert failed.stderr.endswith("Error: The command '/bin/sh -c false' returned a non-zero code: 1\n")

    # -f - : the Dockerfile on stdin, the directory as the context
    dockerfile = b"FROM busybox\nCOPY keep.txt /from-stdin\n"
    result = dockyard.run_bytes(
        "build", *NO_NETWORK, "-t", "stdin-file", "-f", "-", str(context), input=dockerfile
    )
    assert result.returncode == 0, result.stderr
    assert dockyard(*RUN, "stdin-file", "cat", "/from-stdin").stdout == "kept\n"

    # build - : a Dockerfile on stdin, no context at all
    stdin_only = b"FROM busybox\nRUN echo hi\n"
    result = dockyard.run_bytes("build", *NO_NETWORK, "-t", "no-context", "-", input=stdin_only)
    assert result.returncode == 0 and b" ---> Running in " in result.stdout, result.stderr
    result = dockyard.run_bytes("build", *NO_NETWORK, "-", input=b"FROM busybox\nCOPY keep.txt /\n")
    assert result.returncode == 1 and b"keep.txt" in result.stderr, "no context: nothing to copy"

    # build - : a tar context on stdin, with -f naming a file inside it
    archive = tar_directory(context)
    result = dockyard.run_bytes(
        "image", "build", *NO_NETWORK, "-t", "from-tar", "-f", "other/Build.file", "-", input=archive
    )
    assert result.returncode == 0, result.stderr
    assert b"Successfully tagged from-tar:latest" in result.stdout, "the `image build` alias"
    assert dockyard(*RUN, "from-tar").stdout == "kept\n"


# --- the hello-world image, a committed base, every storage driver ---------------------------------


def test_hello_world_builds_from_source_and_runs(dockyard: Dockyard, tmp_path: Path) -> None:
    source = REPOSITORY / "images" / "hello-world"
    context = tmp_path / "hello-world"
    context.mkdir()
    shutil.copy(source / "Dockerfile", context / "Dockerfile")
    subprocess.run(
        ["gcc", "-static", "-Os", "-s", "-o", str(context / "hello"), str(source / "hello.c")], check=True
    )
    output = dockyard("build", "-t", "hello-world", str(context)).stdout
    assert "Step 3/3 : CMD [\"/hello\"]" in output and "Successfully tagged hello-world:latest" in output
    inspected = json.loads(dockyard("inspect", "hello-world").stdout)[0]
    assert inspected["Config"]["Cmd"] == ["/hello"] and len(inspected["RootFS"]["Layers"]) == 1
    assert inspected["Config"]["Env"] == [DEFAULT_PATH], "Docker's hello-world carries the default PATH too"
    shown = dockyard("run", "--rm", "hello-world").stdout
    assert "Hello from Dockyard!" in shown and "steps" in shown


def test_a_build_from_a_committed_image(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    dockyard(*RUN[:1], "--network", "none", "--name", "work", "busybox", "sh", "-c", "echo installed > /tool")
    dockyard("commit", "work", "committed:1")
    dockyard("rm", "work")
    context = write_context(
        tmp_path, {"Dockerfile": "ARG BASE=busybox\nFROM $BASE\nRUN cat /tool > /copy-of-tool\n"}
    )
    dockyard("build", *NO_NETWORK, "--build-arg", "BASE=committed:1", "-t", "on-committed", str(context))
    assert dockyard(*RUN, "on-committed", "cat", "/copy-of-tool").stdout == "installed\n"
    assert len(json.loads(dockyard("inspect", "on-committed").stdout)[0]["RootFS"]["Layers"]) == 3


@pytest.mark.parametrize("driver", DRIVERS)
def test_builds_on_every_storage_driver(
    request: pytest.FixtureRequest, driver: str, busybox_tar: Path, tmp_path: Path
) -> None:
    cli: Dockyard = request.getfixturevalue("cli_for")(driver)
    flag = ("--storage-driver", driver)
    cli(*flag, "import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar), "busybox")
    context = write_context(
        tmp_path,
        {
            "Dockerfile": "FROM busybox\nWORKDIR /app\nCOPY data.txt .\n"
            "RUN cat data.txt > copy.txt && rm /bin/vi\nCMD [\"sh\", \"-c\", \"cat copy.txt; ls /bin/vi\"]\n",
            "data.txt": "on every driver\n",
        },
    )
    cli(*flag, "build", *NO_NETWORK, "-t", "driven", str(context))
    result = cli(*flag, *RUN, "driven", check=False)
    assert result.stdout == "on every driver\n" and "/bin/vi" in result.stderr, "the RUN's deletion is kept"
    assert cli(*flag, "inspect", "--format", "{{.GraphDriver.Name}}", "driven").stdout.strip() == driver
    again = cli(*flag, "build", *NO_NETWORK, "-t", "driven", str(context)).stdout
    assert " ---> Running in " not in again


# --- interoperability: the registry, skopeo and podman ---------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    server = start_registry(tmp_path_factory.mktemp("build-registry"))
    yield server
    server.stop()


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[list[str]]:
    """podman with a private store (vfs) and a short runroot (podman caps its length)."""
    runroot = Path(tempfile.mkdtemp(prefix="dy-podman-"))
    store = ["--root", str(tmp_path / "podman"), "--runroot", str(runroot), "--storage-driver", "vfs"]
    yield ["podman", *store]
    subprocess.run(["podman", *store, "system", "reset", "-f"], capture_output=True, check=False)
    shutil.rmtree(runroot, ignore_errors=True)


def peer(*argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result


@pytest.mark.slow
def test_built_images_run_under_podman_after_a_push(
    dockyard: Dockyard, busybox: str, registry: Registry, podman: list[str], tmp_path: Path
) -> None:
    dockyard.env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    context = write_context(
        tmp_path,
        {
            "Dockerfile": "FROM busybox\nENV WHO=podman\nCOPY greeting.txt /etc/\n"
            'RUN echo "$WHO" >> /etc/greeting.txt\nCMD ["cat", "/etc/greeting.txt"]\n',
            "greeting.txt": "built by dockyard, run by\n",
        },
    )
    target = f"{registry.host}/built/greeting:1"
    dockyard("build", *NO_NETWORK, "-t", target, str(context))
    digest = dockyard("push", target).stdout.split()[-3]

    inspected = json.loads(peer("skopeo", "inspect", "--tls-verify=false", f"docker://{target}").stdout)
    assert inspected["Digest"] == digest and len(inspected["Layers"]) == 3
    assert f"{DEFAULT_PATH}" in inspected["Env"] and "WHO=podman" in inspected["Env"]

    peer(*podman, "pull", "--tls-verify=false", target)
    shown = peer(*podman, "run", "--rm", "--network", "none", target).stdout
    assert shown == "built by dockyard, run by\npodman\n"
