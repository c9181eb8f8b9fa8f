"""User-defined networks, names between containers, container:NAME and every mode's network view,
with real bridges, veths, nftables and traffic (only inside namespaces the tests make and on
addresses they choose)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import Dockyard
from tests.integration.test_bridge_network import HTTPD, _settings, free_port

__all__ = ["free_port"]  # a fixture shared with the bridge tests


def _retry(dockyard: Dockyard, *args: str, tries: int = 50) -> str:
    """Run a command until it succeeds (a server inside may still be starting); its output."""
    for _ in range(tries):
        result = dockyard(*args, check=False)
        if result.returncode == 0:
            return str(result.stdout)
        time.sleep(0.1)
    raise AssertionError(f"{args} kept failing: {result.stderr}")


def _hosts(dockyard: Dockyard, name: str) -> str:
    return str(dockyard("exec", name, "cat", "/etc/hosts").stdout)


def test_bridge_is_the_default_network_as_root(dockyard: Dockyard, busybox: str) -> None:
    addresses = dockyard("run", "--rm", busybox, "ip", "-o", "-4", "addr").stdout
    assert " eth0 " in addresses and "inet 172." in addresses
    dockyard("create", "--name", "plain", busybox, "true")
    assert dockyard("inspect", "-f", "{{.Dockyard.NetworkDriver}}", "plain").stdout == "bridge\n"


def test_names_and_aliases_resolve_on_a_user_network_both_ways(dockyard: Dockyard, busybox: str) -> None:
    dockyard("network", "create", "appnet")
    dockyard("run", "-d", "--name", "early", "--network", "appnet", busybox, "sleep", "60")
    server = dockyard(
        "run",
        "-d",
        "--name",
        "server",
        "--network",
        "appnet",
        "--network-alias",
        "web",
        busybox,
        "sh",
        "-c",
        HTTPD,
    ).stdout.strip()
    for host in ("server", "web", server[:12]):
        assert _retry(dockyard, "exec", "early", "wget", "-qO-", f"http://{host}/").startswith("hello from")
    assert "1 packets received" in dockyard("exec", "server", "ping", "-c", "1", "-W", "2", "early").stdout
    later = dockyard(
        "run", "--rm", "--network", "appnet", busybox, "wget", "-qO-", "http://web/", check=False
    ).stdout
    assert later.startswith("hello from")
    settings = _settings(dockyard, "server")
    endpoint = settings["Networks"]["appnet"]  # type: ignore[index]
    network_id = dockyard("network", "inspect", "-f", "{{.Id}}", "appnet").stdout.strip()
    assert endpoint["NetworkID"] == network_id and endpoint["Aliases"] == ["web"]
    assert endpoint["IPAddress"].startswith("172.") and len(endpoint["EndpointID"]) == 64
    assert settings["IPAddress"] == ""  # as Docker: the top-level fields are the default bridge's
    dockyard("rm", "-f", "server")
    assert "server" not in _hosts(dockyard, "early")


def test_default_bridge_resolves_no_names(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-d", "--name", "quiet", busybox, "sleep", "60")
    dockyard("run", "-d", "--name", "other", busybox, "sleep", "60")
    assert "quiet" not in _hosts(dockyard, "other")
    result = dockyard("exec", "other", "ping", "-c", "1", "-W", "1", "quiet", check=False)
    assert result.returncode != 0


def test_network_ls_inspect_rm_prune(dockyard: Dockyard, busybox: str) -> None:
    created = dockyard(
        "network",
        "create",
        "--subnet",
        "10.231.0.0/24",
        "--gateway",
        "10.231.0.254",
        "--label",
        "team=a",
        "lab",
    ).stdout.strip()
    lines = dockyard("network", "ls").stdout.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    names = {line.split()[1] for line in lines[1:]}
    assert {"bridge", "host", "none", "lab"} <= names
    assert dockyard("network", "ls", "-q", "--filter", "name=lab").stdout == created[:12] + "\n"
    assert dockyard("network", "ls", "--filter", "label=team=a", "--format", "{{.Name}}").stdout == "lab\n"
    assert dockyard("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}").stdout == "lab\n"
    [record] = json.loads(dockyard("network", "inspect", "lab").stdout)
    assert record["Id"] == created and record["Driver"] == "bridge" and record["Scope"] == "local"
    assert record["IPAM"]["Config"] == [{"Subnet": "10.231.0.0/24", "Gateway": "10.231.0.254"}]
    assert record["Labels"] == {"team": "a"} and record["Containers"] == {}
    dockyard("run", "-d", "--name", "member", "--network", "lab", busybox, "sleep", "60")
    [record] = json.loads(dockyard("network", "inspect", "lab").stdout)
    [member] = record["Containers"].values()
    assert member["Name"] == "member" and member["IPv4Address"] == "10.231.0.1/24"
    in_use = dockyard("network", "rm", "lab", check=False)
    assert in_use.returncode != 0 and "has active endpoints" in in_use.stderr
    builtin = dockyard("network", "rm", "bridge", check=False)
    assert "bridge is a pre-defined network and cannot be removed" in builtin.stderr
    dockyard("rm", "-f", "member")
    dockyard("network", "create", "spare")
    assert dockyard("network", "prune", "-f").stdout.split() == ["Deleted", "Networks:", "lab", "spare"]
    missing = dockyard("network", "inspect", "lab", check=False)
    assert missing.returncode != 0 and "network lab not found" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--subnet", "10.232.0.0/33"), 'invalid subnet "10.232.0.0/33"'),
        (("--subnet", "10.232.0.7/24"), 'invalid subnet "10.232.0.7/24"'),
        (
            ("--subnet", "10.232.0.0/24", "--gateway", "10.233.0.1"),
            "no matching subnet for gateway 10.233.0.1",
        ),
        (("--gateway", "10.232.0.1"), "a gateway needs a subnet"),
    ],
)
def test_bad_network_options_are_one_line_errors(
    dockyard: Dockyard, args: tuple[str, ...], message: str
) -> None:
    result = dockyard("network", "create", *args, "broken", check=False)
    assert result.returncode == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "broken" not in dockyard("network", "ls").stdout


def test_overlapping_subnets_and_names_are_refused(dockyard: Dockyard) -> None:
    dockyard("network", "create", "--subnet", "10.234.0.0/16", "first")
    overlap = dockyard("network", "create", "--subnet", "10.234.5.0/24", "second", check=False)
    assert (
        overlap.returncode == 1 and "Pool overlaps with other one on this address space" in overlap.stderr
    )
    again = dockyard("network", "create", "first", check=False)
    assert again.returncode == 1 and "network with name first already exists" in again.stderr


def test_container_network_mode_shares_namespace_and_files(dockyard: Dockyard, busybox: str) -> None:
    dockyard("run", "-d", "--name", "base", "-h", "basehost", busybox, "sleep", "60")
    own = dockyard("exec", "base", "ip", "-o", "-4", "addr").stdout
    joined = dockyard(
        "run",
        "--rm",
        "--network",
        "container:base",
        busybox,
        "sh",
        "-c",
        "ip -o -4 addr; echo; hostname; cat /etc/hosts",
    ).stdout
    addresses, _, rest = joined.partition("\n\n")
    assert addresses + "\n" == own and " eth0 " in own
    assert rest.startswith("basehost\n") and rest.split("\n", 1)[1] == _hosts(dockyard, "base")
    refused = dockyard("create", "--network", "container:base", "-p", "80:80", busybox, "true", check=False)
    assert refused.returncode == 125
    assert "conflicting options: port publishing and the container type network mode" in refused.stderr
    dockyard("create", "--name", "joiner", "--network", "container:base", busybox, "true")
    settings = _settings(dockyard, "joiner")
    assert settings["Networks"] == {}


def test_none_has_only_loopback_and_host_sees_host_links(dockyard: Dockyard, busybox: str) -> None:
    links = dockyard("run", "--rm", "--network", "none", busybox, "ip", "-o", "link").stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    seen = dockyard("run", "--rm", "--network", "host", busybox, "ip", "-o", "link").stdout
    first_host_link = host_links.splitlines()[1].split(":")[1].strip().split("@")[0]
    assert f" {first_host_link}" in seen
    files = dockyard(
        "run", "--rm", "--network", "none", "-h", "alone", busybox, "cat", "/etc/hosts", "/etc/hostname"
    )
    assert "127.0.0.1\tlocalhost" in files.stdout and files.stdout.endswith("alone\n")


def test_connect_and_disconnect_a_stopped_container(dockyard: Dockyard, busybox: str) -> None:
    dockyard("network", "create", "--subnet", "10.235.0.0/24", "front")
    dockyard("network", "create", "--subnet", "10.236.0.0/24", "back")
    dockyard("create", "--name", "multi", "--network", "front", busybox, "ip", "-o", "-4", "addr")
    dockyard("network", "connect", "--alias", "db", "back", "multi")
    output = dockyard("start", "-a", "multi").stdout
    assert "eth0    inet 10.235.0.2/24" in output and "eth1    inet 10.236.0.2/24" in output
    dockyard("network", "disconnect", "front", "multi")
    output = dockyard("start", "-a", "multi").stdout
    assert "10.235." not in output and "eth0    inet 10.236.0.2/24" in output


@pytest.fixture
def other_host() -> Iterator[tuple[str, str]]:
    """A network namespace joined to the host by a veth: ("name", the host side's address)."""
    name = f"dyhost{os.getpid()}"
    host_side, peer = f"dyh{os.getpid()}"[:15], f"dyp{os.getpid()}"[:15]
    commands = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_side, "type", "veth", "peer", "name", peer, "netns", name],
        ["ip", "addr", "add", "10.237.0.1/30", "dev", host_side],
        ["ip", "link", "set", host_side, "up"],
        ["ip", "-n", name, "addr", "add", "10.237.0.2/30", "dev", peer],
        ["ip", "-n", name, "link", "set", peer, "up"],
        ["ip", "-n", name, "link", "set", "lo", "up"],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        yield name, "10.237.0.1"
    finally:
        subprocess.run(["ip", "link", "del", host_side], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def test_published_port_answers_another_host(
    dockyard: Dockyard, busybox: str, free_port: int, other_host: tuple[str, str]
) -> None:
    namespace, address = other_host
    dockyard("run", "-d", "--name", "web", "-p", f"{free_port}:80", busybox, "sh", "-c", HTTPD)
    fetch = (
        "import sys, urllib.request; "
        "print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode(), end='')"
    )
    url = f"http://{address}:{free_port}/"
    for _ in range(50):
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, "python3", "-c", fetch, url], capture_output=True, text=True
        )
        if result.returncode == 0:
            break
        time.sleep(0.1)
    assert result.stdout.startswith("hello from"), result.stderr


def test_a_crashed_containers_address_is_reclaimed(dockyard: Dockyard, busybox: str) -> None:
    dockyard("network", "create", "--subnet", "10.238.0.0/24", "crashy")
    dockyard("run", "-d", "--name", "lost", "--network", "crashy", busybox, "sleep", "60")
    netns = str(_settings(dockyard, "lost")["SandboxKey"])
    subprocess.run(["umount", netns], check=True)
    os.unlink(netns)  # what a crash that lost the container's state leaves: a lease and a veth
    dockyard("run", "-d", "--name", "next", "--network", "crashy", busybox, "sleep", "60")
    assert _settings(dockyard, "next")["Networks"]["crashy"]["IPAddress"] == "10.238.0.2"  # type: ignore[index]


def test_user_networks_leave_nothing_behind(dockyard: Dockyard, busybox: str, free_port: int) -> None:
    state = [["ip", "-o", "link"], ["ip", "-o", "addr"], ["nft", "-s", "list", "ruleset"]]

    def mine() -> list[str]:
        outputs = [subprocess.run(c, capture_output=True, text=True, check=True).stdout for c in state]
        return [
            "\n".join(line for line in out.splitlines() if "dy-" in line or "dockyard_" in line)
            for out in outputs
        ]

    before = mine()
    dockyard("network", "create", "--internal", "cycle")
    for _ in range(10):
        name = dockyard(
            "create", "--network", "cycle", "-p", f"{free_port}:80", busybox, "sleep", "60"
        ).stdout.strip()
        dockyard("start", name)
        dockyard("rm", "-f", name)
    dockyard("network", "rm", "cycle")
    assert mine() == before
