"""The bridge network's pure parts: `-p` parsing, the address book, MACs, NetworkSettings."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from dockyard.core.drivers import NetworkAttachment, PortMapping
from dockyard.core.errors import ConflictError, UsageError
from dockyard.core.network_settings import Endpoint, network_settings
from dockyard.core.port_bindings import exposed_ports, parse_publish, port_mappings
from dockyard.plugins.network.bridge import host_nameservers, mac_for
from dockyard.plugins.network.bridge_ipam import free_subnet, locked_book


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_publish_forms_give_dockers_port_bindings() -> None:
    port = _free_port()
    bindings = parse_publish(
        [f"{port}:80", f"127.0.0.1:{port}:81", "53/udp", "127.0.0.1::82"],
        publish_all=True,
        image_exposed={"443/tcp": {}},
    )
    assert bindings == {
        "443/tcp": [{"HostIp": "", "HostPort": ""}],
        "80/tcp": [{"HostIp": "", "HostPort": str(port)}],
        "81/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
        "82/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
    }
    assert set(exposed_ports({"443/tcp": {}}, bindings) or {}) == set(bindings)


@pytest.mark.parametrize("spec", ["0", "65536", "x:80", "80/sctp", "1:2:3:4", "999.1.1.1:80:80", "80-81"])
def test_bad_publish_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_publish([spec], publish_all=False, image_exposed=None)


def test_a_listening_host_port_is_a_conflict() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConflictError, match="port is already allocated"):
            parse_publish([f"{port}:80"], publish_all=False, image_exposed=None)


def test_port_mappings_pick_ephemeral_ports() -> None:
    (mapping,) = port_mappings({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
    assert (mapping.container_port, mapping.protocol, mapping.host_ip) == (80, "tcp", "127.0.0.1")
    assert mapping.host_port > 0


def test_address_book_never_hands_out_an_address_twice(tmp_path: Path) -> None:
    with locked_book(tmp_path) as book:
        book.subnet = "172.30.0.0/16"
        first = book.allocate("a", ports=[["tcp", "", 8080, 80]])
    with locked_book(tmp_path) as book:
        second = book.allocate("b", ports=[])
        with pytest.raises(ConflictError):
            book.allocate("c", ports=[["tcp", "127.0.0.1", 8080, 80]])
        book.allocate("d", ports=[["udp", "", 8080, 80]])
    assert (first, second) == (IPv4Address("172.30.0.2"), IPv4Address("172.30.0.3"))
    with locked_book(tmp_path) as book:
        del book.leases["a"]
        assert book.allocate("e", ports=[]) == first


def test_free_subnet_avoids_host_routes() -> None:
    assert free_subnet([IPv4Network("192.0.2.0/24")]) == IPv4Network("172.30.0.0/16")
    assert free_subnet([IPv4Network("172.30.5.0/24")]) == IPv4Network("172.31.0.0/16")


def test_mac_follows_the_address_like_docker() -> None:
    assert mac_for(IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"


def test_loopback_nameservers_are_left_out(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\nnameserver 9.9.9.9\nsearch lan\nnameserver ::1\n")
    assert host_nameservers(resolv) == ("9.9.9.9",)


def test_network_settings_have_dockers_shape() -> None:
    attachment = NetworkAttachment(
        netns_path="/run/x",
        ip_address="172.30.0.2",
        gateway="172.30.0.1",
        mac_address="02:42:ac:1e:00:02",
        prefix_length=16,
        ports=(PortMapping(80, "tcp", "", 8080),),
    )
    settings = network_settings([Endpoint("bridge", attachment, network_id="n" * 64)], sandbox="/run/x")
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert settings["Networks"]["bridge"]["IPAddress"] == "172.30.0.2"
    assert (settings["IPAddress"], settings["Gateway"], settings["IPPrefixLen"]) == (
        "172.30.0.2",
        "172.30.0.1",
        16,
    )
