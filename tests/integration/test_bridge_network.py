"""The bridge network end to end: real veths, a real bridge, real nftables, real traffic, only
on 127.0.0.1 and inside the namespaces the containers get."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Dockyard

HTTPD = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture
def free_port() -> Iterator[int]:
    """A TCP port free on the host right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    yield port


def _get(url: str, timeout: float = 10) -> str:
    """GET `url` (always on 127.0.0.1), retrying while the server inside is still starting."""
    assert url.startswith("http://127.0.0.1:")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _settings(dockyard: Dockyard, name: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(
        dockyard("inspect", "--format", "{{json .NetworkSettings}}", name).stdout
    )
    return result


def _host_network_state() -> list[str]:
    """What a container on the bridge could leak: links, addresses, firewall rules.

    A link's carrier and operational state are left out: dockyard0 loses its carrier when its
    last port goes, and the kernel reports that up to a second late (linkwatch), so two snapshots
    of the same links can differ there.
    """
    link, addr, rules = (
        subprocess.run(command, capture_output=True, text=True, check=True).stdout
        for command in (["ip", "-o", "link"], ["ip", "-o", "addr"], ["nft", "-s", "list", "ruleset"])
    )
    return [re.sub(r"NO-CARRIER,|,LOWER_UP| state [A-Z]+", "", link), addr, rules]


def test_published_port_answers_on_loopback(dockyard: Dockyard, busybox: str, free_port: int) -> None:
    dockyard(
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "bridge",
        "-p",
        f"{free_port}:80",
        busybox,
        "sh",
        "-c",
        HTTPD,
    )
    assert _get(f"http://127.0.0.1:{free_port}/").startswith("hello from")
    assert dockyard("port", "web").stdout == f"80/tcp -> 0.0.0.0:{free_port}\n"
    settings = _settings(dockyard, "web")
    address = str(settings["IPAddress"])
    assert address.startswith("172.") and settings["IPPrefixLen"] == 16
    assert str(settings["Gateway"]).endswith(".1")
    octets = [int(part) for part in address.split(".")]
    assert settings["MacAddress"] == "02:42:" + ":".join(f"{octet:02x}" for octet in octets)
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(free_port)}]}
    assert settings["Networks"]["bridge"]["IPAddress"] == address  # type: ignore[index]


def test_ephemeral_and_loopback_bound_ports(dockyard: Dockyard, busybox: str) -> None:
    dockyard(
        "run", "-d", "--name", "web", "--network", "bridge", "-p", "127.0.0.1::80", busybox, "sh", "-c", HTTPD
    )
    line = dockyard("port", "web", "80").stdout.strip()
    host, _, port = line.rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert _get(f"http://127.0.0.1:{port}/").startswith("hello from")


def test_containers_reach_each_other(dockyard: Dockyard, busybox: str) -> None:
    dockyard(
        "run", "-d", "--name", "server", "--network", "bridge", "-h", "server", busybox, "sh", "-c", HTTPD
    )
    address = _settings(dockyard, "server")["IPAddress"]
    fetched = ""
    for _ in range(50):
        result = dockyard(
            "run", "--rm", "--network", "bridge", busybox, "wget", "-qO-", f"http://{address}/", check=False
        )
        if result.returncode == 0:
            fetched = result.stdout
            break
        time.sleep(0.1)
    assert fetched == "hello from server\n"


def test_concurrent_runs_get_unique_addresses(dockyard: Dockyard, busybox: str) -> None:
    count = 20
    runs = [
        subprocess.Popen(
            dockyard.command(
                "run", "-d", "--name", f"c{index}", "--network", "bridge", busybox, "sleep", "60"
            ),
            env=dockyard.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for index in range(count)
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    addresses = [_settings(dockyard, f"c{index}")["IPAddress"] for index in range(count)]
    assert len(set(addresses)) == count and all(addresses)


def test_port_in_use_fails_before_start(dockyard: Dockyard, busybox: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = dockyard(
            "run", "-d", "--network", "bridge", "-p", f"{port}:80", busybox, "sleep", "60", check=False
        )
    assert result.returncode != 0
    assert f"{port} failed: port is already allocated" in result.stderr
    assert dockyard("ps", "-aq").stdout == ""


@pytest.mark.parametrize("spec", ["80:99999", "http", "1.2.3:80:80", "80/sctp", "8080-8090:80"])
def test_bad_publish_is_a_usage_error(dockyard: Dockyard, busybox: str, spec: str) -> None:
    result = dockyard("create", "--network", "bridge", "-p", spec, busybox, "true", check=False)
    assert result.returncode == 125
    assert len(result.stderr.strip().splitlines()) == 1
    assert spec in result.stderr


def test_publish_all_uses_exposed_ports(dockyard: Dockyard, busybox_tar: Path) -> None:
    dockyard("import", "-c", "EXPOSE 80", str(busybox_tar), "exposing")
    dockyard("create", "--name", "exp", "-P", "exposing", "true")
    bindings = json.loads(dockyard("inspect", "--format", "{{json .HostConfig.PortBindings}}", "exp").stdout)
    assert bindings == {"80/tcp": [{"HostIp": "", "HostPort": ""}]}


def _traces(container_id: str) -> list[str]:
    """The lines of links, addresses and firewall rules that name one container: its veth
    (`dy` + 11 characters of its id) or its rules' comment. Other containers on this host (other
    roots, other tests) share dockyard0, so only a container's own traces can be compared."""
    veth, comment = "dy" + container_id[:11], f"dockyard:{container_id}"
    return [
        line
        for output in _host_network_state()
        for line in output.splitlines()
        if veth in line or comment in line
    ]


def test_nothing_leaks(dockyard: Dockyard, busybox: str, free_port: int) -> None:
    # dockyard0 and its table stay up once made (as docker0 does), so the host's whole network
    # state after the first cycle is the reference the 49 others must come back to.
    reference: list[str] = []
    for rounds in range(50):
        container_id = dockyard(
            "create", "--network", "bridge", "-p", f"{free_port}:80", "-p", "53/udp", busybox, "sleep", "60"
        ).stdout.strip()
        dockyard("start", container_id)
        if rounds == 0:
            assert "dockyard0" in _host_network_state()[0]
            assert len([line for line in _traces(container_id) if "dnat" in line]) == 4
        netns = str(_settings(dockyard, container_id)["SandboxKey"])
        dockyard("rm", "-f", container_id)
        assert _traces(container_id) == [] and not Path(netns).exists()
        if rounds == 0:
            reference = _host_network_state()
    assert _host_network_state() == reference, "the cycles changed the host's links, addresses or rules"


def test_a_port_another_container_publishes_is_refused(
    dockyard: Dockyard, busybox: str, free_port: int
) -> None:
    dockyard(
        "run",
        "-d",
        "--name",
        "first",
        "--network",
        "bridge",
        "-p",
        f"{free_port}:80",
        busybox,
        "sh",
        "-c",
        HTTPD,
    )
    result = dockyard(
        "run",
        "-d",
        "--name",
        "second",
        "--network",
        "bridge",
        "-p",
        f"{free_port}:80",
        busybox,
        "sleep",
        "60",
        check=False,
    )
    assert result.returncode != 0
    assert "port is already allocated" in result.stderr
    assert _get(f"http://127.0.0.1:{free_port}/").startswith("hello from")
    refused = dockyard("ps", "-aq", "--no-trunc", "--filter", "name=second").stdout.strip()
    assert refused and _traces(refused) == []  # the refused container's veth was rolled back
