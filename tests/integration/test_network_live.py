"""Networks of running containers and between networks: `network connect`/`disconnect` while a
container runs, isolation between bridges, outbound NAT, and what `inspect` shows of a stopped
container's networks. Real bridges, veths, nftables and traffic, only inside namespaces the tests
make and on addresses they choose."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.conftest import Dockyard
from tests.integration.test_bridge_network import HTTPD, _settings, free_port
from tests.integration.test_user_networks import other_host

__all__ = ["free_port", "other_host"]  # fixtures shared with the other network tests


def _ok(dockyard: Dockyard, *args: str, tries: int = 30) -> bool:
    """Whether the command succeeds within a few tries (a server inside may still be starting).

    Fetches run under busybox `timeout`: Debian's static busybox crashes on `wget -T`."""
    for _ in range(tries):
        if dockyard(*args, check=False).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def _address(dockyard: Dockyard, container: str, network: str) -> tuple[str, int]:
    """The container's address and prefix length on `network`, as inspect shows them."""
    networks: dict[str, dict[str, object]] = _settings(dockyard, container)["Networks"]  # type: ignore[assignment]
    return str(networks[network]["IPAddress"]), int(str(networks[network]["IPPrefixLen"]))


def _bridge_ports(dockyard: Dockyard, network: str) -> list[str]:
    """The host links enslaved to a user-defined network's bridge."""
    bridge = "dy-" + dockyard("network", "inspect", "-f", "{{.Id}}", network).stdout.strip()[:12]
    listing = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True)
    return listing.stdout.splitlines()


def test_connect_and_disconnect_a_running_container(dockyard: Dockyard, busybox: str) -> None:
    dockyard("network", "create", "livenet")  # a free subnet: concurrent test runs share the host
    dockyard("run", "-d", "--name", "peer", "--network", "livenet", busybox, "sleep", "60")
    dockyard("run", "-d", "--name", "mover", busybox, "sleep", "60")

    dockyard("network", "connect", "--alias", "kid", "livenet", "mover")
    addresses = dockyard("exec", "mover", "ip", "-o", "-4", "addr").stdout
    mine, prefix = _address(dockyard, "mover", "livenet")
    assert mine != _address(dockyard, "peer", "livenet")[0]
    assert "eth0    inet 172." in addresses and f"eth1    inet {mine}/{prefix}" in addresses
    assert "mover" in dockyard("exec", "peer", "cat", "/etc/hosts").stdout
    for name in ("mover", "kid"):
        assert _ok(dockyard, "exec", "peer", "ping", "-c", "1", "-W", "2", name)
    assert _ok(dockyard, "exec", "mover", "ping", "-c", "1", "-W", "2", "peer")
    assert len(_bridge_ports(dockyard, "livenet")) == 2

    dockyard("network", "disconnect", "livenet", "mover")
    assert "eth1" not in dockyard("exec", "mover", "ip", "-o", "link").stdout
    assert "livenet" not in _settings(dockyard, "mover")["Networks"]  # type: ignore[operator]
    assert "mover" not in dockyard("exec", "peer", "cat", "/etc/hosts").stdout
    assert len(_bridge_ports(dockyard, "livenet")) == 1
    # The network whose namespace the container runs in stays until it stops.
    refused = dockyard("network", "disconnect", "bridge", "mover", check=False)
    assert (
        refused.returncode == 1
        and refused.stderr.count("\n") == 1
        and "stop the container" in refused.stderr
    )
    # A connection made while running is undone when the container goes.
    dockyard("network", "connect", "livenet", "mover")
    dockyard("rm", "-f", "mover")
    assert len(_bridge_ports(dockyard, "livenet")) == 1


def test_user_networks_are_isolated_from_each_other_and_nat_works(
    dockyard: Dockyard, busybox: str, other_host: tuple[str, str], tmp_path: Path
) -> None:
    dockyard("network", "create", "left")  # free subnets: concurrent test runs share the host
    dockyard("network", "create", "right")
    dockyard("run", "-d", "--name", "server", "--network", "left", busybox, "sh", "-c", HTTPD)
    dockyard("run", "-d", "--name", "neighbour", "--network", "left", busybox, "sleep", "60")
    dockyard("run", "-d", "--name", "stranger", "--network", "right", busybox, "sleep", "60")
    dockyard("run", "-d", "--name", "defaulted", busybox, "sleep", "60")
    server = f"http://{_address(dockyard, 'server', 'left')[0]}/"
    stranger = _address(dockyard, "stranger", "right")[0]
    assert _ok(dockyard, "exec", "neighbour", "timeout", "3", "wget", "-qO-", server)
    for outsider in ("stranger", "defaulted"):
        blocked = dockyard("exec", outsider, "timeout", "3", "wget", "-qO-", server, check=False)
        assert blocked.returncode != 0, f"{outsider} reached another network's container"
    blocked = dockyard("exec", "server", "ping", "-c", "1", "-W", "1", stranger, check=False)
    assert blocked.returncode != 0

    # Outbound NAT: a server in another "host" namespace with no route back to the container subnets.
    namespace, _ = other_host
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("outside\n")
    outside = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            namespace,
            "busybox",
            "httpd",
            "-f",
            "-p",
            "10.237.0.2:8099",
            "-h",
            str(tmp_path / "www"),
        ]
    )
    try:
        for name in ("neighbour", "stranger", "defaulted"):
            assert _ok(dockyard, "exec", name, "timeout", "3", "wget", "-qO-", "http://10.237.0.2:8099/"), (
                name
            )
    finally:
        outside.terminate()
        outside.wait()


def test_inspect_shows_a_stopped_containers_networks(dockyard: Dockyard, busybox: str) -> None:
    dockyard("network", "create", "quiet")
    dockyard("create", "--name", "idle", "--network", "quiet", "--network-alias", "calm", busybox, "true")
    networks = json.loads(dockyard("inspect", "-f", "{{json .NetworkSettings.Networks}}", "idle").stdout)
    record_id = dockyard("network", "inspect", "-f", "{{.Id}}", "quiet").stdout.strip()
    assert list(networks) == ["quiet"]
    assert networks["quiet"]["NetworkID"] == record_id and networks["quiet"]["Aliases"] == ["calm"]
    assert networks["quiet"]["IPAddress"] == "" and networks["quiet"]["MacAddress"] == ""
    dockyard("create", "--name", "plain", busybox, "true")
    plain = json.loads(dockyard("inspect", "-f", "{{json .NetworkSettings}}", "plain").stdout)
    assert list(plain["Networks"]) == ["bridge"] and plain["IPAddress"] == ""


def test_link_names_the_target_in_hosts(dockyard: Dockyard, busybox: str) -> None:
    target = dockyard("run", "-d", "--name", "db", busybox, "sh", "-c", HTTPD).stdout.strip()
    address = _settings(dockyard, "db")["IPAddress"]
    hosts = dockyard("run", "--rm", "--link", "db:database", busybox, "cat", "/etc/hosts").stdout
    assert f"{address}\tdatabase {target[:12]} db" in hosts.splitlines()
    assert _ok(dockyard, "run", "--rm", "--link", "db", busybox, "timeout", "3", "wget", "-qO-", "http://db/")
    dockyard("create", "--name", "client", "--link", "/db:database", busybox, "true")
    links = dockyard("inspect", "-f", "{{json .HostConfig.Links}}", "client").stdout
    assert json.loads(links) == ["db:database"]
    dockyard("stop", "-t", "0", "db")
    stopped = dockyard("start", "client", check=False)
    assert (
        stopped.returncode != 0
        and "Cannot link to a non running container: /db AS /client/database" in stopped.stderr
    )
    missing = dockyard("run", "--rm", "--link", "nosuch:x", busybox, "true", check=False)
    assert missing.returncode == 125 and "could not get container for nosuch" in missing.stderr
    bad = dockyard("run", "--rm", "--link", "a:b:c", busybox, "true", check=False)
    assert bad.returncode == 125 and bad.stderr.count("\n") == 1 and "invalid link format" in bad.stderr
