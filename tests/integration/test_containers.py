"""Containers end to end through the real CLI: real namespaces, real mounts, the real monitor."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import Dockyard, wait_until

ID = re.compile(r"^[0-9a-f]{64}$")


def _state(dockyard: Dockyard, name: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(dockyard("inspect", "--format", "{{json .State}}", name).stdout)
    return result


def test_run_prints_output_and_returns_the_exit_code(dockyard: Dockyard, busybox: str) -> None:
    result = dockyard("run", "--name", "hello", busybox, "echo", "hello from a container")
    assert result.stdout == "hello from a container\n"
    failing = dockyard("run", busybox, "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert failing.returncode == 3
    assert failing.stderr == "oops\n" and failing.stdout == ""
    listing = dockyard("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
    assert any(line.startswith("hello Exited (0)") for line in listing)
    assert any("Exited (3)" in line for line in listing)


def test_exit_codes_125_126_127(dockyard: Dockyard, busybox: str) -> None:
    missing = dockyard("run", busybox, "/no/such/binary", check=False)
    assert missing.returncode == 127, missing.stderr
    assert "no such file or directory" in missing.stderr
    not_in_path = dockyard("run", busybox, "no-such-command", check=False)
    assert not_in_path.returncode == 127 and "executable file not found in $PATH" in not_in_path.stderr
    not_executable = dockyard("run", busybox, "/etc/passwd", check=False)
    assert not_executable.returncode == 126, not_executable.stderr
    bad_flag = dockyard("run", "--memory", "lots", busybox, "true", check=False)
    assert bad_flag.returncode == 125 and bad_flag.stderr.count("\n") == 1
    no_image = dockyard("run", "no-such-image", "true", check=False)
    assert no_image.returncode == 125


def test_stdin_is_piped_with_dash_i(dockyard: Dockyard, busybox: str) -> None:
    result = dockyard("run", "-i", "--rm", busybox, "cat", input=b"through the pipe\n")
    assert result.stdout == "through the pipe\n"
    assert dockyard("ps", "-aq").stdout == "", "--rm leaves nothing behind"
    runtime = dockyard.runroot / "containers"
    assert not runtime.exists() or list(runtime.iterdir()) == [], "nor a runtime directory"


def test_detached_lifecycle(dockyard: Dockyard, busybox: str) -> None:
    started = dockyard("run", "-d", "--name", "sleeper", busybox, "sh", "-c", "echo up; exec sleep 300")
    container_id = started.stdout.strip()
    assert ID.match(container_id)
    header, row = dockyard("ps").stdout.splitlines()
    assert header.split()[:3] == ["CONTAINER", "ID", "IMAGE"]
    assert row.startswith(container_id[:12]) and "Up " in row and row.endswith("sleeper")
    wait_until(lambda: dockyard("logs", "sleeper").stdout == "up\n")
    assert _state(dockyard, "sleeper")["Running"] is True
    assert dockyard("inspect", "-f", "{{.State.Status}}", container_id[:6]).stdout == "running\n"

    removing = dockyard("rm", "sleeper", check=False)
    assert removing.returncode == 1 and "stop the container" in removing.stderr

    begun = time.monotonic()
    dockyard("stop", "-t", "1", "sleeper")
    assert time.monotonic() - begun < 8
    state = _state(dockyard, "sleeper")
    # PID 1 in its own namespace ignores SIGTERM it has no handler for: killed after the timeout.
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    dockyard("start", "sleeper")
    assert _state(dockyard, "sleeper")["Running"] is True
    dockyard("kill", "sleeper")
    assert dockyard("wait", "sleeper").stdout.strip() == "137"
    dockyard("rm", "sleeper")
    assert dockyard("ps", "-aq").stdout == ""


def test_init_forwards_stop_signal(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-d", "--init", "--name", "reaped", busybox, "sleep", "300")
    begun = time.monotonic()
    dockyard("stop", "-t", "20", "reaped")
    assert time.monotonic() - begun < 10, "tini passes SIGTERM on, so sleep ends without the timeout"
    assert _state(dockyard, "reaped")["ExitCode"] == 143
    tree = dockyard("run", "--rm", "--init", busybox, "ps", "-o", "pid,comm").stdout.split()
    assert tree[2:4] == ["1", "init"], tree


def test_stop_honours_stopsignal_and_falls_back_to_kill(dockyard: Dockyard, busybox: str) -> None:
    dockyard(
        "run",
        "-d",
        "--name",
        "stubborn",
        "--stop-signal",
        "USR1",
        busybox,
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done",
    )
    time.sleep(0.5)
    dockyard("stop", "-t", "1", "stubborn")
    assert _state(dockyard, "stubborn")["ExitCode"] == 137
    assert "got-usr1" in dockyard("logs", "stubborn").stdout


def test_logs_options(dockyard: Dockyard, busybox: str) -> None:
    dockyard(
        "run",
        "--name",
        "chatty",
        busybox,
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; done; echo err >&2",
    )
    logs = dockyard("logs", "chatty")
    assert logs.stdout == "line1\nline2\nline3\nline4\nline5\n" and logs.stderr == "err\n"
    assert dockyard("logs", "--tail", "2", "chatty").stdout == "line5\n"
    stamped = dockyard("logs", "-t", "--tail", "1", "chatty").stderr
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z err\n$", stamped)
    assert dockyard("logs", "--since", "1h", "chatty").stdout.count("line") == 5
    follow = subprocess.Popen(
        dockyard.command("logs", "-f", "chatty"), env=dockyard.env, stdout=subprocess.PIPE
    )
    output, _ = follow.communicate(timeout=20)
    assert output.count(b"line") == 5, "-f on a stopped container returns at once"


def test_follow_streams_until_exit(dockyard: Dockyard, busybox: str) -> None:
    dockyard(
        "run",
        "-d",
        "--name",
        "ticker",
        busybox,
        "sh",
        "-c",
        "for i in 1 2 3; do echo tick$i; sleep 0.3; done",
    )
    follow = subprocess.run(
        dockyard.command("logs", "-f", "ticker"), env=dockyard.env, capture_output=True, timeout=30
    )
    assert follow.stdout == b"tick1\ntick2\ntick3\n"


def test_ps_filters_formats_and_generated_names(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "--name", "done", busybox, "true")
    dockyard("run", "-d", "--name", "busy", "-l", "team=yard", busybox, "sleep", "300")
    generated = dockyard("create", busybox, "true").stdout.strip()
    name = dockyard("inspect", "-f", "{{.Name}}", generated).stdout.strip()
    assert re.match(r"^/[a-z]+_[a-z]+\d?$", name)
    assert dockyard("ps", "--format", "{{.Names}}").stdout.split() == ["busy"]
    assert dockyard("ps", "-a", "-f", "status=exited", "--format", "{{.Names}}").stdout.split() == ["done"]
    assert dockyard("ps", "-a", "-f", "status=created", "-q").stdout.strip() == generated[:12]
    assert dockyard("ps", "-a", "-f", "name=bus", "--format", "{{.Names}}").stdout.split() == ["busy"]
    assert dockyard("ps", "-a", "-f", "ancestor=busybox", "-q").stdout.count("\n") == 3
    assert dockyard("ps", "-f", "label=team=yard", "-q", "--no-trunc").stdout.strip() != ""
    assert dockyard("ps", "-a", "-n", "1", "-q").stdout.strip() == generated[:12]
    assert json.loads(dockyard("ps", "--format", "{{json .}}").stdout)["Names"] == "busy"
    assert '"sleep 300"' in dockyard("ps").stdout
    conflict = dockyard("create", "--name", "busy", busybox, "true", check=False)
    assert conflict.returncode == 125 and "already in use" in conflict.stderr
    dockyard("rm", "-f", "busy")


def test_twenty_concurrent_detached_runs(dockyard: Dockyard, busybox: str) -> None:
    processes = [
        subprocess.Popen(
            dockyard.command("run", "-d", busybox, "sleep", "60"),
            env=dockyard.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(20)
    ]
    ids = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        ids.append(out.decode().strip())
    assert len(set(ids)) == 20
    names = dockyard("ps", "--format", "{{.Names}}").stdout.split()
    assert len(names) == 20 and len(set(names)) == 20
    dockyard("rm", "-f", *ids)
    assert dockyard("ps", "-aq").stdout == ""


def test_ps_tells_the_truth_after_the_monitor_is_killed(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-d", "--name", "orphan", busybox, "sleep", "2")
    state_file = dockyard.root / "containers"
    (container_dir,) = [p for p in state_file.iterdir() if len(p.name) == 64]
    monitor_pid = json.loads((container_dir / "state.json").read_text())["MonitorPid"]
    os.kill(monitor_pid, signal.SIGKILL)
    assert "Up " in dockyard("ps", "--format", "{{.Status}}").stdout
    wait_until(lambda: "Exited" in dockyard("ps", "-a", "--format", "{{.Status}}").stdout, timeout=30)
    assert dockyard("ps", "-q").stdout == ""


def test_killed_cli_leaves_the_container_running(dockyard: Dockyard, busybox: str) -> None:
    cli = subprocess.Popen(
        dockyard.command("run", "--name", "survivor", busybox, "sleep", "300"), env=dockyard.env
    )
    wait_until(lambda: "survivor" in dockyard("ps", "--format", "{{.Names}}").stdout)
    cli.kill()
    cli.wait()
    assert dockyard("ps", "--format", "{{.Names}} {{.State}}").stdout == "survivor running\n"
    dockyard("rm", "-f", "survivor")


def test_rm_force_and_volumes(dockyard: Dockyard, busybox: str, tmp_path: Path) -> None:
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("hello")
    dockyard("volume", "create", "named")
    result = dockyard(
        "run",
        "--rm",
        "-v",
        f"{host_dir}:/host:ro",
        "-v",
        "named:/named",
        "-v",
        "/anon",
        "--tmpfs",
        "/scratch",
        busybox,
        "sh",
        "-c",
        "cat /host/from-host; echo kept > /named/file; touch /host/x 2>/dev/null || echo read-only; "
        "grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs",
    )
    assert result.stdout == "helloread-only\ntmpfs\n"
    again = dockyard("run", "--rm", "-v", "named:/named", busybox, "cat", "/named/file")
    assert again.stdout == "kept\n"
    volumes = dockyard("volume", "ls", "-q").stdout.split()
    assert volumes == ["named"], "--rm removes anonymous volumes, keeps named ones"


def test_restart_policy_is_kept_without_a_daemon(dockyard: Dockyard, busybox: str) -> None:
    dockyard(
        "run", "-d", "--name", "flaky", "--restart", "on-failure:2", busybox, "sh", "-c", "echo try; exit 1"
    )
    wait_until(lambda: _state(dockyard, "flaky")["Status"] == "exited", timeout=30)
    assert dockyard("inspect", "-f", "{{.RestartCount}}", "flaky").stdout == "2\n"
    assert dockyard("logs", "flaky").stdout == "try\ntry\ntry\n"


def test_stop_cancels_a_restart_policy_between_two_runs(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-d", "--name", "looping", "--restart", "unless-stopped", busybox, "sh", "-c", "exit 3")
    wait_until(lambda: int(dockyard("inspect", "-f", "{{.RestartCount}}", "looping").stdout) >= 3)
    wait_until(lambda: _state(dockyard, "looping")["Status"] == "restarting")
    dockyard("stop", "looping")
    state = _state(dockyard, "looping")
    assert (state["Status"], state["ExitCode"]) == ("exited", 3), "stopped, not restarting forever"
    count = dockyard("inspect", "-f", "{{.RestartCount}}", "looping").stdout
    time.sleep(1)
    assert dockyard("inspect", "-f", "{{.RestartCount}}", "looping").stdout == count

    dockyard("run", "-d", "--name", "again", "--restart", "always", busybox, "sh", "-c", "exit 1")
    wait_until(lambda: _state(dockyard, "again")["Status"] == "restarting")
    dockyard("rm", "-f", "again")  # between two runs: no process to kill, the policy is cancelled
    assert "again" not in dockyard("ps", "-a", "--format", "{{.Names}}").stdout


def test_oci_runtime_runs_the_same_spec(dockyard: Dockyard, busybox: str) -> None:
    result = dockyard(
        "run", "--rm", "--runtime", "oci", busybox, "sh", "-c", "echo $HOSTNAME; exit 4", check=False
    )
    assert result.returncode == 4 and len(result.stdout.strip()) == 12
    container_id = dockyard(
        "run", "-d", "--name", "via-runc", "--runtime", "oci", busybox, "sleep", "300"
    ).stdout
    assert dockyard("inspect", "-f", "{{.Dockyard.IsolationDriver}}", "via-runc").stdout == "oci\n"
    assert dockyard("exec", "via-runc", "hostname").stdout.strip() == container_id[:12]
    dockyard("rm", "-f", "via-runc")
    assert dockyard("ps", "-aq").stdout == ""


def test_attached_cli_forwards_signals(dockyard: Dockyard, busybox: str) -> None:
    script = "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done"
    cli = subprocess.Popen(
        dockyard.command("run", "--rm", busybox, "sh", "-c", script),
        env=dockyard.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert cli.stdout is not None
    assert cli.stdout.readline() == "ready\n"
    cli.send_signal(signal.SIGTERM)
    output, _ = cli.communicate(timeout=30)
    assert output == "got-term\n" and cli.returncode == 7
    assert dockyard("ps", "-aq").stdout == ""
