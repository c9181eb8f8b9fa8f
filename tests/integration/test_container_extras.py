"""exec, top, stats, pause, rename, port, cp, prune, events and system df/prune through the real CLI."""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import tarfile
import termios
import time
from pathlib import Path

from tests.conftest import Dockyard, processes_naming, wait_until
from tests.terminal import Terminal


def _read_file(dockyard: Dockyard, container: str, path: str) -> bytes:
    """A file's content through `cp CONTAINER:PATH -` (works paused and stopped, unlike exec)."""
    result = subprocess.run(
        dockyard.command("cp", f"{container}:{path}", "-"), capture_output=True, env=dockyard.env, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        member = archive.next()
        assert member is not None and member.name == os.path.basename(path)
        handle = archive.extractfile(member)
        assert handle is not None
        return handle.read()


def test_exec_output_and_exit_codes(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-d", "--name", "target", busybox, "sleep", "300")
    assert dockyard("exec", "target", "echo", "hello").stdout == "hello\n"
    split = dockyard("exec", "target", "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (split.returncode, split.stdout, split.stderr) == (7, "out\n", "err\n")
    assert dockyard("exec", "-i", "target", "cat", input=b"piped in\n").stdout == "piped in\n"
    assert dockyard("exec", "target", "cat", input=b"not forwarded").stdout == "", "no -i: no stdin"
    not_executable = dockyard("exec", "target", "/etc/passwd", check=False)
    assert not_executable.returncode == 126 and "permission denied" in not_executable.stderr
    missing = dockyard("exec", "target", "no-such-command", check=False)
    assert missing.returncode == 127 and "executable file not found" in missing.stderr
    no_terminal = dockyard("exec", "-it", "target", "sh", input=b"", check=False)
    assert no_terminal.returncode == 1 and "the input device is not a TTY" in no_terminal.stderr
    dockyard("kill", "target")
    dockyard("wait", "target")
    stopped = dockyard("exec", "target", "true", check=False)
    assert stopped.returncode == 1 and "is not running" in stopped.stderr


def test_exec_joins_the_container_with_its_settings(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-d", "--name", "host1", "-h", "inside", "-e", "FROM_RUN=1", busybox, "sleep", "300")
    result = dockyard(
        "exec", "-e", "EXTRA=yes", "-w", "/tmp", "host1",
        "sh", "-c", "echo $FROM_RUN $EXTRA; pwd; hostname; tr '\\0' ' ' < /proc/1/cmdline",
    )  # fmt: skip
    assert result.stdout.splitlines() == ["1 yes", "/tmp", "inside", "sleep 300 "]
    assert dockyard("exec", "-u", "nobody", "host1", "id", "-u").stdout == "65534\n"
    assert dockyard("exec", "-u", "nobody", "host1", "sh", "-c", "echo $HOME").stdout == "/nonexistent\n"
    descriptors = dockyard("exec", "host1", "ls", "/proc/self/fd").stdout.split()
    assert set(descriptors) <= {"0", "1", "2", "3"}, f"a host descriptor leaked in: {descriptors}"
    assert dockyard("exec", "host1", "readlink", "/proc/self/fd/1").stdout.startswith("pipe:")


def test_exec_detach_leaves_the_process_running(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-d", "--name", "bg", busybox, "sleep", "300")
    begun = time.monotonic()
    detached = dockyard("exec", "-d", "bg", "sh", "-c", "sleep 0.5; echo finished > /tmp/marker")
    assert detached.stdout == "" and time.monotonic() - begun < 5
    wait_until(lambda: dockyard("exec", "bg", "cat", "/tmp/marker", check=False).stdout == "finished\n")


def test_exec_it_through_a_real_terminal(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-dt", "--name", "shell", busybox, "sleep", "300")
    terminal = Terminal(dockyard.command("exec", "-it", "shell", "sh"), dockyard.env)
    terminal.expect(b"# ")
    terminal.send(b"echo sum=$((40+2)); [ -t 0 ] && [ -t 1 ] && echo on-a-terminal; stty size\n")
    terminal.expect(b"sum=42")
    terminal.expect(b"on-a-terminal")
    terminal.expect(b"33 111", timeout=5)  # the user's terminal size reached the container's
    # The terminal is the container's own: its /dev/pts/N exists inside, next to the first one's.
    terminal.send(b"tty; ls /dev/pts/ | tr -s ' \\n' , ; echo\n")
    terminal.expect(b"/dev/pts/1\r\n")
    terminal.expect(b"0,1,ptmx")
    terminal.send(b"exit 3\n")
    assert terminal.close() == 3


def test_run_it_through_a_real_terminal(dockyard: Dockyard, busybox: str) -> None:
    terminal = Terminal(dockyard.command("run", "-it", "--name", "console", busybox, "sh"), dockyard.env)
    terminal.expect(b"# ")
    terminal.send(b"echo hi\n")
    terminal.expect(b"hi\r\n")
    # The container's own terminal (from its devpts, not the host's), and it follows resizes.
    terminal.send(b"tty; [ -c $(tty) ] && echo exists-inside\n")
    terminal.expect(b"/dev/pts/0\r\nexists-inside")
    terminal.resize(40, 120)
    terminal.send(b"stty size\n")
    terminal.expect(b"40 120", timeout=5)
    terminal.send(b"exit\n")
    assert terminal.close() == 0
    assert dockyard("inspect", "-f", "{{.State.Status}}", "console").stdout == "exited\n"


def test_top_pause_unpause_and_rename(dockyard: Dockyard, busybox: str) -> None:
    script = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done"
    dockyard("run", "-d", "--name", "counter", busybox, "sh", "-c", script)
    header, *rows = dockyard("top", "counter").stdout.splitlines()
    assert header.split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert any(row.endswith(script) for row in rows), rows
    assert dockyard("top", "counter", "-o", "pid,comm").stdout.splitlines()[0].split() == ["PID", "COMMAND"]

    wait_until(lambda: _read_file(dockyard, "counter", "/tmp/count").strip() != b"")
    dockyard("pause", "counter")
    assert dockyard("ps", "--format", "{{.Status}}").stdout.strip().endswith("(Paused)")
    assert dockyard("inspect", "-f", "{{.State.Paused}}", "counter").stdout == "true\n"
    frozen = _read_file(dockyard, "counter", "/tmp/count")
    time.sleep(0.5)
    assert _read_file(dockyard, "counter", "/tmp/count") == frozen, "a paused process kept counting"
    refused = dockyard("exec", "counter", "true", check=False)
    assert refused.returncode == 1 and "is paused" in refused.stderr
    dockyard("unpause", "counter")
    wait_until(lambda: _read_file(dockyard, "counter", "/tmp/count") != frozen)
    assert dockyard("unpause", "counter", check=False).returncode == 1

    dockyard("rename", "counter", "renamed")
    assert dockyard("inspect", "-f", "{{.Name}}", "renamed").stdout == "/renamed\n"
    assert dockyard("inspect", "counter", check=False).returncode != 0
    assert dockyard("port", "renamed").stdout == ""
    assert dockyard("port", "renamed", "80", check=False).returncode != 0

    dockyard("pause", "renamed")
    begun = time.monotonic()
    dockyard("kill", "renamed")
    assert dockyard("wait", "renamed").stdout == "137\n"
    assert time.monotonic() - begun < 10, "kill thaws a paused container"


def test_cp_both_ways_never_leaves_the_container(dockyard: Dockyard, busybox: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "secret").write_text("HOST SECRET\n")
    dockyard("run", "-d", "--name", "files", busybox, "sleep", "300")
    setup = (
        f"mkdir -p /data/sub {canary}; echo inside > /data/sub/file; echo decoy > {canary}/secret; "
        f"ln -s {canary}/secret /data/abs; ln -s ../../../../../../../..{canary}/secret /data/rel; "
        f"ln -s {canary} /data/dirlink"
    )
    dockyard("exec", "files", "sh", "-c", setup)
    out = tmp_path / "out"
    out.mkdir()

    dockyard("cp", "files:/data", str(out))
    assert (out / "data" / "sub" / "file").read_text() == "inside\n"
    assert os.readlink(out / "data" / "abs") == f"{canary}/secret", "a symlink is copied as a symlink"
    dockyard("cp", "-L", "files:/data/abs", str(out / "followed"))
    dockyard("cp", "-L", "files:/data/rel", str(out / "followed-rel"))
    for copy in ("followed", "followed-rel"):
        assert (out / copy).read_text() == "decoy\n", "-L resolves inside the container, not on the host"

    source = tmp_path / "upload"
    source.write_text("uploaded\n")
    dockyard("cp", str(source), "files:/data/dirlink/")
    assert dockyard("exec", "files", "cat", f"{canary}/upload").stdout == "uploaded\n"
    assert sorted(p.name for p in canary.iterdir()) == ["secret"], "nothing was written on the host"
    assert (canary / "secret").read_text() == "HOST SECRET\n"
    dockyard("cp", str(source), "files:/data/abs")
    assert dockyard("exec", "files", "cat", f"{canary}/secret").stdout == "uploaded\n"
    assert (canary / "secret").read_text() == "HOST SECRET\n"

    tree = tmp_path / "tree"
    (tree / "nested").mkdir(parents=True)
    (tree / "nested" / "leaf").write_text("leaf\n")
    (tree / "nested" / "leaf").chmod(0o640)
    os.chown(tree / "nested" / "leaf", 1234, 1234)
    dockyard("cp", f"{tree}/.", "files:/data")
    listing = dockyard("exec", "files", "ls", "-ln", "/data/nested/leaf").stdout.split()
    assert listing[0] == "-rw-r-----" and listing[2:4] == ["0", "0"], "copies in belong to root"
    dockyard("cp", "-a", str(tree / "nested" / "leaf"), "files:/data/kept-owner")
    assert dockyard("exec", "files", "stat", "-c", "%u:%g", "/data/kept-owner").stdout == "1234:1234\n"
    dockyard("kill", "files")
    dockyard("wait", "files")
    dockyard("cp", "files:/data/nested/leaf", str(out / "from-stopped"))
    assert (out / "from-stopped").read_text() == "leaf\n"
    dockyard("cp", str(source), "files:/data/sub/while-stopped")
    assert _read_file(dockyard, "files", "/data/sub/while-stopped") == b"uploaded\n"
    missing = dockyard("cp", "files:/no/such", str(out), check=False)
    assert missing.returncode == 1 and "Could not find the file /no/such" in missing.stderr


def test_stats_no_stream_shows_the_memory_limit(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-d", "--name", "limited", "-m", "64m", busybox, "sleep", "300")
    header, row = dockyard("stats", "--no-stream").stdout.splitlines()
    assert header.split() == [
        "CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
        "NET", "I/O", "BLOCK", "I/O", "PIDS",
    ]  # fmt: skip
    assert "limited" in row and "/ 64MiB" in row
    formatted = dockyard("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "limited")
    name, usage, _, limit, pids = formatted.stdout.split()
    assert (name, limit, pids) == ("limited", "64MiB", "1") and usage.endswith("B")


def test_container_prune_removes_only_stopped_containers(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "--name", "finished", busybox, "true")
    created = dockyard("create", "--name", "fresh", busybox, "true").stdout.strip()
    running = dockyard("run", "-d", "--name", "alive", busybox, "sleep", "300").stdout.strip()
    declined = dockyard("container", "prune", input=b"n\n")
    assert "WARNING! This will remove all stopped containers." in declined.stdout
    assert len(dockyard("ps", "-aq").stdout.split()) == 3
    pruned = dockyard("container", "prune", "-f").stdout.splitlines()
    assert pruned[0] == "Deleted Containers:" and created in pruned and running not in pruned
    assert len(pruned) == 5, "two ids, a blank line, the total"
    assert pruned[-1].startswith("Total reclaimed space: ")
    assert dockyard("ps", "-aq", "--no-trunc").stdout.split() == [running]


def test_events_for_a_run_and_their_filters(dockyard: Dockyard, busybox: str) -> None:
    follower = subprocess.Popen(
        dockyard.command("events", "--filter", "event=start", "--format", "{{.Actor.Attributes.name}}"),
        env=dockyard.env,
        stdout=subprocess.PIPE,
    )
    try:
        time.sleep(0.5)
        dockyard("run", "--rm", "--name", "brief", busybox, "true")
        assert follower.stdout is not None
        ready, _, _ = select.select([follower.stdout], [], [], 20)
        assert ready and follower.stdout.readline() == b"brief\n"
    finally:
        follower.terminate()
        follower.wait(timeout=10)
    past = dockyard("events", "--since", "1h", "--until", "0s", "--filter", "type=container").stdout
    lines = past.splitlines()
    assert [line.split()[2] for line in lines] == ["create", "start", "die", "destroy"]
    assert all(line.split()[1] == "container" and "name=brief" in line for line in lines)
    assert "exitCode=0" in lines[2]
    images = dockyard("events", "--since", "1h", "--until", "0s", "--filter", "type=image").stdout
    assert [line.split()[2] for line in images.splitlines()] == ["import", "tag"]
    record = json.loads(
        dockyard("events", "--since", "1h", "--until", "0s", "-f", "event=die", "--format", "json").stdout
    )
    assert record["Type"] == "container" and record["Actor"]["Attributes"]["image"] == "busybox"
    assert isinstance(record["timeNano"], int) and record["time"] == record["timeNano"] // 1_000_000_000
    later = dockyard("events", "--since", "0s", "--until", "0s").stdout
    assert later == "", "--since now shows none of the past"


def test_system_df_and_prune(dockyard: Dockyard, busybox: str, busybox_tar: Path) -> None:
    dockyard("import", str(busybox_tar))  # a dangling image
    dockyard("run", "--name", "old", "-v", "/anon", busybox, "sh", "-c", "echo x > /anon/written")
    dockyard("run", "-d", "--name", "kept", busybox, "sleep", "300")
    header, *rows = dockyard("system", "df").stdout.splitlines()
    assert header.split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [row.split()[0] for row in rows] == ["Images", "Containers", "Local", "Build"]
    assert rows[0].split()[1:3] == ["2", "1"] and rows[1].split()[1:3] == ["2", "1"]
    assert rows[2].split()[2:4] == ["1", "1"], "one volume, in use"
    assert dockyard("system", "df", "--format", "{{.Type}}={{.TotalCount}}").stdout.splitlines()[1] == (
        "Containers=2"
    )
    output = dockyard("system", "prune", "-f", "-a", "--volumes").stdout
    assert "Deleted Containers:" in output and "Deleted Images:" in output and "Deleted Volumes:" in output
    assert dockyard("volume", "ls", "-q").stdout == ""
    assert output.splitlines()[-1].startswith("Total reclaimed space: ")
    assert dockyard("ps", "-a", "--format", "{{.Names}}").stdout == "kept\n"
    assert dockyard("images", "-q").stdout.count("\n") == 1, "the image a container uses is kept"


def test_export_then_import_keeps_the_containers_files(
    dockyard: Dockyard, busybox: str, tmp_path: Path
) -> None:
    dockyard("run", "--name", "maker", busybox, "sh", "-c", "echo made-inside > /made; rm /etc/group")
    archive = tmp_path / "maker.tar"
    dockyard("export", "-o", str(archive), "maker")
    listing = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True, check=True).stdout
    assert "made" in listing.split() or "./made" in listing.split()
    assert "etc/group" not in listing and "./etc/group" not in listing
    dockyard("import", str(archive), "exported")
    result = dockyard("run", "--rm", "exported", "/bin/cat", "/made")
    assert result.stdout == "made-inside\n"
    refused = dockyard("export", "no-such-container", check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("Error: No such container")
    assert not list(tmp_path.glob(".tmp-*")), "no half-written archive is left"


def test_detach_keys_leave_the_container_running(dockyard: Dockyard, busybox: str) -> None:
    run = dockyard.command("run", "-it", "--detach-keys", "ctrl-a,x", "--name", "keys", busybox, "sh")
    terminal = Terminal(run, dockyard.env)
    terminal.expect(b"# ")
    terminal.send(b"\x10\x11echo still-attached\n")  # Docker's default keys mean nothing now
    terminal.expect(b"still-attached\r\n")
    terminal.send(b"\x01x")
    terminal.expect(b"read escape sequence")
    assert terminal.close() == 0
    assert dockyard("inspect", "-f", "{{.State.Status}}", "keys").stdout == "running\n"

    again = Terminal(dockyard.command("attach", "--detach-keys", "ctrl-b", "keys"), dockyard.env)
    deadline = time.monotonic() + 20
    while termios.tcgetattr(again.master)[3] & termios.ECHO and time.monotonic() < deadline:
        time.sleep(0.05)  # attached once the CLI made the terminal raw (earlier keys are flushed)
    again.send(b"echo ba''ck\n")
    again.expect(b"back\r\n")
    again.send(b"\x02")
    again.expect(b"read escape sequence")
    assert again.close() == 0

    refused = dockyard("run", "--detach-keys", "alt-x", "--name", "never", busybox, "true", check=False)
    assert (refused.returncode, refused.stderr) == (125, "Error: Invalid detach keys (alt-x) provided\n")
    assert "never" not in dockyard("ps", "-a", "--format", "{{.Names}}").stdout


def _holders() -> set[int]:
    """Pids of the pty holders on this host."""
    return set(processes_naming("pty_holder"))


def _cat(dockyard: Dockyard, container: str, path: str) -> str:
    return dockyard("exec", container, "cat", path, check=False).stdout


def _sleeper(dockyard: Dockyard, busybox: str) -> str:
    dockyard("run", "-d", "--name", "sleeper", busybox, "sleep", "300")
    return "sleeper"


def test_exec_detached_with_a_tty_runs_on_its_own_terminal_until_it_exits(
    dockyard: Dockyard, busybox: str
) -> None:
    sleeper = _sleeper(dockyard, busybox)
    before = _holders()
    script = (
        "echo $$ > /tmp/pid; tty > /tmp/tty; i=0;"
        " while [ $i -lt 4000 ]; do echo filling the terminal $i; i=$((i+1)); done;"
        " echo written > /tmp/done; read -t 300 line; echo $? > /tmp/read"
    )
    begun = time.monotonic()
    detached = dockyard("exec", "-d", "-t", sleeper, "sh", "-c", script)
    assert (detached.returncode, detached.stdout, detached.stderr) == (0, "", "")
    assert time.monotonic() - begun < 5
    # More output than a pty buffers: it reaches the end only because someone drains the master.
    wait_until(lambda: _cat(dockyard, sleeper, "/tmp/done") == "written\n")
    assert _cat(dockyard, sleeper, "/tmp/tty").startswith("/dev/pts/")
    holders = _holders() - before
    assert len(holders) == 1, "one holder keeps the terminal while the process runs"
    assert _cat(dockyard, sleeper, "/tmp/read") == "", "the process still waits on its terminal"
    dockyard("exec", sleeper, "sh", "-c", "kill $(cat /tmp/pid)")
    wait_until(lambda: not (holders & _holders()))


def test_exec_it_detaches_with_the_keys_and_the_process_keeps_running(
    dockyard: Dockyard, busybox: str
) -> None:
    sleeper = _sleeper(dockyard, busybox)
    before = _holders()
    command = dockyard.command("exec", "-it", "--detach-keys", "ctrl-a,x", sleeper, "sh")
    terminal = Terminal(command, dockyard.env)
    terminal.expect(b"# ")
    terminal.send(b"echo $$ > /tmp/shell; echo sta''rted\n")
    terminal.expect(b"started\r\n")
    terminal.send(b"\x01x")
    terminal.expect(b"read escape sequence")
    assert terminal.close() == 0
    shell = _cat(dockyard, sleeper, "/tmp/shell").strip()
    assert shell and dockyard("exec", sleeper, "kill", "-0", shell, check=False).returncode == 0
    holders = _holders() - before
    assert len(holders) == 1
    dockyard("exec", sleeper, "kill", "-HUP", shell)
    wait_until(lambda: not (holders & _holders()))

    default = Terminal(dockyard.command("exec", "-it", sleeper, "sh"), dockyard.env)
    default.expect(b"# ")
    default.send(b"\x10\x11")
    default.expect(b"read escape sequence")
    assert default.close() == 0

    refused = dockyard("exec", "--detach-keys", "alt-x", sleeper, "true", check=False)
    assert (refused.returncode, refused.stderr) == (1, "Error: Invalid detach keys (alt-x) provided\n")
