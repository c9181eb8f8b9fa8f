"""What a user-mode network helper configured inside a namespace: the interface's IPv4 address,
prefix length and MAC, and the default gateway.

pasta copies the host's addressing and slirp4netns picks its own; reading the result back from
the namespace (classic ioctls and /proc/thread-self/net/route, no netlink library to import) is
what lets `inspect` report the truth whichever helper set it up.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from dockyard.core.errors import DriverFailed

__all__ = ["InterfaceAddress", "read_interface"]

_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B
_SIOCGIFHWADDR = 0x8927
_IFREQ = struct.Struct("16s16s8x")  # struct ifreq: the name and a sockaddr, padded to 40 bytes


@dataclass(frozen=True)
class InterfaceAddress:
    """An interface's IPv4 configuration as the container sees it."""

    address: str
    prefix_length: int
    mac: str
    gateway: str


def read_interface(netns_path: Path, interface: str) -> InterfaceAddress:
    """Read `interface`'s address, prefix, MAC and the default gateway inside `netns_path`."""
    from dockyard.core.linux.netns import call_inside

    try:
        return call_inside(netns_path, lambda: _read(interface))
    except OSError as exc:
        raise DriverFailed(f"cannot read {interface}'s address in {netns_path}: {exc}") from exc


def _read(interface: str) -> InterfaceAddress:
    """The reading itself, in the calling thread's namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        address = _sockaddr_ip(_ioctl(sock, _SIOCGIFADDR, interface))
        netmask = _sockaddr_ip(_ioctl(sock, _SIOCGIFNETMASK, interface))
        mac = ":".join(f"{byte:02x}" for byte in _ioctl(sock, _SIOCGIFHWADDR, interface)[2:8])
    gateway = _default_gateway(Path("/proc/thread-self/net/route").read_text())
    prefix = bin(int(IPv4Address(netmask))).count("1")
    return InterfaceAddress(address=address, prefix_length=prefix, mac=mac, gateway=gateway)


def _ioctl(sock: socket.socket, request: int, interface: str) -> bytes:
    """The sockaddr half of the ifreq an interface ioctl fills in."""
    _, sockaddr = _IFREQ.unpack(fcntl.ioctl(sock, request, _IFREQ.pack(interface.encode(), b"")))
    return bytes(sockaddr)


def _sockaddr_ip(sockaddr: bytes) -> str:
    """The address of a sockaddr_in: family (2 bytes), port (2), then the four address bytes."""
    return socket.inet_ntoa(sockaddr[4:8])


def _default_gateway(route_table: str) -> str:
    """The gateway of the 0.0.0.0/0 route in /proc/net/route's table, "" when there is none."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == "00000000" and fields[7] == "00000000":
            return socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
    return ""
