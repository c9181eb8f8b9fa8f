"""The user-mode networks, pasta and slirp4netns, end to end: real helpers, real traffic, only on
127.0.0.1 and inside the namespaces the containers get.

As root through the CLI, then as an unprivileged user inside a user namespace (`unshare -rm`)
through the driver itself (tests/integration/usermode_probe.py), which is all a rootless engine
needs from a network driver. The host's own python3 is bind-mounted read-only into the busybox
containers where a UDP echo server is needed (busybox has none).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.core.drivers import DriverContext, DriverKind, DriverRegistry
from dockyard.plugins.builtin_drivers import dockyard_register_drivers
from tests.conftest import Dockyard, processes_naming

DRIVERS = ("pasta", "slirp4netns")
HOST_PYTHON = ("-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro")
UDP_ECHO = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('0.0.0.0', int(__import__('os').environ['UDP_PORT'])))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(512)\n"
    "    s.sendto(b'echo ' + data, peer)\n"
)
SERVERS = (
    "mkdir -p /www && echo hello from $(hostname) > /www/index.html && httpd -p 80 -h /www"
    ' && exec python3 -c "$UDP_ECHO"'
)
PROBE = Path(__file__).with_name("usermode_probe.py")
TUN = Path("/dev/net/tun")
NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
USERNS = ("unshare", "--user", "--map-root-user", "--mount", "--propagation", "private")


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    """Each user-mode driver in turn."""
    name = str(request.param)
    if shutil.which(name) is None:
        pytest.fail(f"{name} is not installed: run ./setup.sh")
    return name


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port free on the host's loopback right now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def greeter() -> Iterator[tuple[int, list[str]]]:
    """A TCP server on the host's 127.0.0.1 that greets each client; (port, clients seen)."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                client, peer = server.accept()
            except OSError:
                return
            seen.append(str(peer))
            with client:
                client.sendall(b"hello from the host\n")

    threading.Thread(target=serve, daemon=True).start()
    yield int(server.getsockname()[1]), seen
    server.close()


@pytest.fixture
def tun_open_to_all() -> Iterator[None]:
    """/dev/net/tun as distributions ship it (0666) for the test; its mode restored after."""
    mode = TUN.stat().st_mode & 0o7777
    TUN.chmod(0o666)
    try:
        yield
    finally:
        TUN.chmod(mode)


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A run directory the unprivileged user owns (pytest's own tmp_path is root's, 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="dockyard-usermode-"))
    os.chown(directory, 65534, 65534)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def http_get(port: int, timeout: float = 10) -> str:
    """GET / on 127.0.0.1:port, retrying while the server inside is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def udp_echo(port: int, timeout: float = 10) -> bytes:
    """Send "ping" to 127.0.0.1:port over UDP until an answer comes back."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(0.5)
        while True:
            client.sendto(b"ping", ("127.0.0.1", port))
            try:
                return client.recv(512)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


def host_default_gateway() -> str:
    """The host's IPv4 default gateway, which pasta copies into the container."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "default"], capture_output=True, text=True, check=True
    )
    return routes.stdout.split()[2]


def host_nameservers() -> list[str]:
    """The host's name servers a container can use (loopback ones cannot be)."""
    lines = Path("/etc/resolv.conf").read_text().splitlines()
    servers = [line.split()[1] for line in lines if line.startswith("nameserver") and len(line.split()) > 1]
    return [server for server in servers if not server.startswith("127.") and server != "::1"]


def real_uid(pid: int) -> int:
    """The real user id a process runs as, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def test_published_tcp_and_udp_ports_answer_on_loopback(
    dockyard: Dockyard, busybox: str, driver: str
) -> None:
    # The same UDP port number on both sides: Debian 12's pasta loses the replies of a translated
    # UDP port (HOST != CTR) on loopback, and slirp4netns 1.2 drops a loopback client's replies
    # under --disable-host-loopback; TCP is published translated, 80 inside.
    tcp, udp = free_port(), free_port(socket.SOCK_DGRAM)
    dockyard(
        "run", "-d", "--name", "web", "-h", "web", "--network", driver, *HOST_PYTHON,
        "-e", f"UDP_ECHO={UDP_ECHO}", "-e", f"UDP_PORT={udp}",
        "-p", f"{tcp}:80", "-p", f"127.0.0.1:{udp}:{udp}/udp", busybox, "sh", "-c", SERVERS,
    )  # fmt: skip
    assert http_get(tcp) == "hello from web\n"
    if driver == "pasta":
        assert udp_echo(udp) == b"echo ping"
    assert sorted(dockyard("port", "web").stdout.splitlines()) == sorted(
        [f"80/tcp -> 0.0.0.0:{tcp}", f"{udp}/udp -> 127.0.0.1:{udp}"]
    )
    settings = json.loads(dockyard("inspect", "--format", "{{json .NetworkSettings}}", "web").stdout)
    if driver == "slirp4netns":
        assert (settings["IPAddress"], settings["Gateway"], settings["IPPrefixLen"]) == (
            "10.0.2.100",
            "10.0.2.2",
            24,
        )
    else:  # pasta copies the host's addressing
        assert settings["Gateway"] == host_default_gateway()
        host_addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        assert f" {settings['IPAddress']}/{settings['IPPrefixLen']} " in host_addresses
    assert settings["Networks"][driver]["IPAddress"] == settings["IPAddress"]


def test_resolv_conf_and_hosts(dockyard: Dockyard, busybox: str, driver: str) -> None:
    shown = dockyard(
        "run", "--rm", "-h", "probe", "--network", driver, busybox,
        "sh", "-c", "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; ip -4 -o addr show eth0",
    ).stdout  # fmt: skip
    resolv, hosts, eth0 = shown.split("---\n")
    address = eth0.split()[3].split("/")[0]
    if driver == "slirp4netns":
        assert resolv == "nameserver 10.0.2.3\n"
    else:
        assert [
            line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")
        ] == host_nameservers()
    assert f"{address}\tprobe" in hosts.splitlines()
    assert "host.containers.internal" not in hosts


def test_host_loopback_is_out_of_reach_by_default(
    dockyard: Dockyard, busybox: str, driver: str, greeter: tuple[int, list[str]]
) -> None:
    port, seen = greeter
    # The container's own loopback must not lead to the host's (pasta's -T/-U default is "auto");
    # slirp4netns's host address 10.0.2.2 must not either (--disable-host-loopback). pasta's
    # gateway is the host's real one, off limits here: only allow_host_loopback maps it.
    targets = ["127.0.0.1"] + (["10.0.2.2"] if driver == "slirp4netns" else [])
    for target in targets:
        result = dockyard(
            "run", "--rm", "--network", driver, busybox, "nc", "-w", "2", target, str(port), check=False
        )
        assert "hello from the host" not in result.stdout
    assert seen == []


# slirp4netns only: its host address 10.0.2.2 lives inside its own user-mode stack, whereas
# pasta's mapped gateway is the host's real gateway address, which tests must never target
# (a mapping that failed would send the packet out).
@pytest.mark.parametrize("driver", ["slirp4netns"])
def test_host_loopback_when_allowed(driver: str, tmp_path: Path, greeter: tuple[int, list[str]]) -> None:
    from dockyard.core.linux.netns import call_inside

    port, seen = greeter
    registry = DriverRegistry()
    dockyard_register_drivers(register=registry)
    context = DriverContext(
        home=tmp_path / "home",
        run_dir=tmp_path / "run",
        rootless=False,
        options={"allow_host_loopback": "true"},
    )
    network = registry.get(DriverKind.NETWORK, driver).factory(context)
    container_id = "cd" * 32
    attachment = network.attach(container_id, hostname="probe")  # type: ignore[attr-defined]
    try:
        assert attachment.netns_path is not None
        assert ("host.containers.internal", attachment.gateway) in attachment.extra_hosts

        def greet() -> bytes:
            with socket.create_connection((attachment.gateway, port), timeout=5) as client:
                return client.recv(100)

        assert call_inside(Path(attachment.netns_path), greet) == b"hello from the host\n"
        assert len(seen) == 1
    finally:
        network.detach(container_id)  # type: ignore[attr-defined]
    network.detach(container_id)  # type: ignore[attr-defined]  # idempotent
    assert processes_naming(container_id) == []
    assert not (tmp_path / "run" / "netns" / container_id).exists()


def test_detach_leaves_no_process_and_no_namespace(dockyard: Dockyard, busybox: str, driver: str) -> None:
    port = free_port()
    container_id = dockyard(
        "run", "-d", "--network", driver, "-p", f"{port}:80", busybox, "sleep", "300"
    ).stdout.strip()
    run_dir = dockyard.runroot / "network" / driver
    record = json.loads((run_dir / "helpers" / f"{container_id}.json").read_text())
    assert record["pid"] in processes_naming(container_id)
    assert (run_dir / "netns" / container_id).exists()
    dockyard("rm", "-f", container_id)
    assert processes_naming(container_id) == []
    assert list((run_dir / "netns").iterdir()) == []
    assert list((run_dir / "helpers").iterdir()) == []
    with socket.create_server(("0.0.0.0", port)):  # the published port is free again
        pass


def test_missing_helper_is_a_one_line_error(
    dockyard: Dockyard, busybox: str, driver: str, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    dockyard.env["PATH"] = str(empty)
    result = dockyard("run", "--rm", "--network", driver, busybox, "true", check=False)
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1
    assert f"{driver} driver unavailable: the {driver} command is missing" in result.stderr
    assert "--network none and --network host still work" in result.stderr
    assert "unavailable: the" in dockyard("info").stdout
    assert dockyard("run", "--rm", "--network", "none", busybox, "echo", "still").stdout == "still\n"


def run_probe(driver: str, run_dir: Path, port: int) -> subprocess.Popen[str]:
    """The driver probe as the unprivileged user `nobody`, inside a user namespace of its own."""
    return subprocess.Popen(
        [*NOBODY, *USERNS, sys.executable, str(PROBE), driver, str(run_dir), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_unusable_tun_is_explained_to_an_unprivileged_user(driver: str, nobody_dir: Path) -> None:
    if TUN.stat().st_mode & 0o006 == 0o006:
        pytest.fail("/dev/net/tun is open to everyone here; this test needs it restricted (0600)")
    probe = run_probe(driver, nobody_dir, free_port())
    out, err = probe.communicate(timeout=60)
    assert probe.returncode == 0, err
    reason = json.loads(out.splitlines()[0])["reason"]
    assert reason.startswith("/dev/net/tun (mode 0600) cannot be opened by this user")
    assert reason.endswith("--network none and --network host still work")


def test_works_for_an_unprivileged_user_in_a_user_namespace(
    driver: str, nobody_dir: Path, tun_open_to_all: None
) -> None:
    port = free_port()
    probe = run_probe(driver, nobody_dir, port)
    assert probe.stdout is not None and probe.stdin is not None
    try:
        assert json.loads(probe.stdout.readline()) == {"usable": True, "reason": ""}
        attached = json.loads(probe.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            assert client.recv(100) == b"hello from the namespace\n"
        helpers = processes_naming("ab" * 32)
        assert helpers and all(real_uid(pid) == 65534 for pid in helpers)
        probe.stdin.write("\n")
        probe.stdin.flush()
        assert json.loads(probe.stdout.readline()) == {"detached": True}
    finally:
        _, err = probe.communicate(timeout=60)
    assert probe.returncode == 0, err
    assert processes_naming("ab" * 32) == []
    assert not Path(attached["netns"]).exists()
