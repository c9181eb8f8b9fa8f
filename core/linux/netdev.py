"""Network interface flags through the classic ioctls: enough to bring loopback up in a fresh
network namespace without a netlink library."""

from __future__ import annotations

import fcntl
import socket
import struct

__all__ = ["set_link_up"]

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFREQ = struct.Struct("16sH22x")  # struct ifreq: the name and ifr_flags, padded to 40 bytes


def set_link_up(name: str = "lo") -> None:
    """Set IFF_UP on interface `name` in the calling thread's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = _IFREQ.pack(name.encode(), 0)
        _, flags = _IFREQ.unpack(fcntl.ioctl(sock, _SIOCGIFFLAGS, request))
        fcntl.ioctl(sock, _SIOCSIFFLAGS, _IFREQ.pack(name.encode(), flags | _IFF_UP))
