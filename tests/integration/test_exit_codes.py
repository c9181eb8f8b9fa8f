"""Docker's CLI exit statuses, command by command: 125 for a bad flag of any command and for any
error of `run`/`create`, 126/127 when the container's command cannot be invoked / is not found,
the container's own status when it ran, and 1 for every other failure."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Dockyard

NONE = ("--network", "none")

# (arguments, Docker's exit status); `busybox` is an image, `done` a container that exited 7,
# `sleeper` a running container, `keeper` a volume that `done` uses.
CASES: list[tuple[tuple[str, ...], int]] = [
    # a bad flag, whatever the command: 125
    (("run", "--bogus", "busybox"), 125),
    (("rm", "--bogus", "done"), 125),
    (("images", "--bogus"), 125),
    (("pull", "--bogus", "busybox"), 125),
    (("network", "rm", "--bogus", "none"), 125),
    (("volume", "rm", "--bogus", "keeper"), 125),
    # a missing object: 1
    (("rm", "nosuch"), 1),
    (("container", "rm", "nosuch"), 1),
    (("stop", "nosuch"), 1),
    (("start", "nosuch"), 1),
    (("logs", "nosuch"), 1),
    (("exec", "nosuch", "true"), 1),
    (("inspect", "nosuch"), 1),
    (("rmi", "nosuch"), 1),
    (("image", "rm", "nosuch"), 1),
    (("network", "rm", "nosuch"), 1),
    (("volume", "rm", "nosuch"), 1),
    (("--log-level", "error", "wait", "nosuch"), 1),
    (("pull", "127.0.0.1:1/nosuch"), 1),
    (("rm", "nosuch", "other"), 1),  # several names: each is tried, then the command exits 1
    # other failures of other commands: 1
    (("rmi", "busybox"), 1),  # in use by `done`
    (("rm", "sleeper"), 1),  # running
    (("network", "rm", "bridge"), 1),  # pre-defined
    (("volume", "rm", "keeper"), 1),  # in use by `done`
    (("images", "--filter", "bogus=1"), 1),  # the launcher's fast path
    # any error of run and create: 125
    (("run", "--pull", "never", "nosuch"), 125),
    (("create", "--pull", "never", "nosuch"), 125),
    (("container", "run", "--pull", "never", "nosuch"), 125),
    (("container", "create", "--name", "done", "busybox"), 125),  # the name is taken
    # the container's command cannot be found (127) or invoked (126)
    (("run", "--rm", *NONE, "busybox", "no-such-command"), 127),
    (("exec", "sleeper", "no-such-command"), 127),
    (("run", "--rm", *NONE, "busybox", "/etc/passwd"), 126),
    (("exec", "sleeper", "/etc/passwd"), 126),
    # the container's own status
    (("run", "--rm", *NONE, "busybox", "sh", "-c", "exit 3"), 3),
    (("container", "run", "--rm", *NONE, "busybox", "sh", "-c", "exit 4"), 4),
    (("exec", "sleeper", "sh", "-c", "exit 5"), 5),
    (("start", "-a", "done"), 7),
]


def test_every_command_exits_as_docker_does(dockyard: Dockyard, busybox_tar: Path) -> None:
    dockyard("import", str(busybox_tar), "busybox")
    dockyard("volume", "create", "keeper")
    dockyard(
        "run", *NONE, "--name", "done", "-v", "keeper:/data", "busybox", "sh", "-c", "exit 7", check=False
    )
    dockyard("run", "-d", *NONE, "--name", "sleeper", "busybox", "sleep", "300")
    try:
        statuses = {args: dockyard(*args, check=False) for args, _ in CASES}
    finally:
        dockyard("rm", "-f", "sleeper")
    wrong = [
        (" ".join(args), statuses[args].returncode, expected, statuses[args].stderr)
        for args, expected in CASES
        if statuses[args].returncode != expected
    ]
    assert wrong == []
    failed = [args for args, expected in CASES if expected in (1, 125)]
    assert all("Traceback" not in statuses[args].stderr for args in failed)
