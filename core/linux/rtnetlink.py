"""A small rtnetlink client on a raw socket: the handful of link, address and route requests a
container's network needs, without importing a netlink library on every `run`.

Each request is one message answered by one acknowledgement; a kernel refusal is an OSError with
the kernel's errno (EEXIST, ENODEV, ...), as a failed system call would be. A socket belongs to
the network namespace of the thread that opened it, so open one inside `netns.entered(...)` to
configure a container's side.
"""

from __future__ import annotations

import os
import socket
import struct
from ipaddress import IPv4Address, IPv4Interface

__all__ = ["Rtnetlink"]

_RTM_NEWLINK, _RTM_DELLINK, _RTM_NEWADDR, _RTM_NEWROUTE = 16, 17, 20, 24
_NLMSG_ERROR = 2
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_EXCL, _NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MASTER, _IFLA_LINKINFO, _IFLA_NET_NS_FD = 1, 3, 10, 18, 28
_IFLA_INFO_KIND, _IFLA_INFO_DATA, _VETH_INFO_PEER = 1, 2, 1
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_RTA_GATEWAY = 5
_IFF_UP = 0x1
_RT_TABLE_MAIN, _RTPROT_BOOT, _RT_SCOPE_UNIVERSE, _RTN_UNICAST = 254, 3, 0, 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefix length, flags, scope, index
# rtmsg: family, destination and source lengths, tos, table, protocol, scope, type, flags
_RTMSG = struct.Struct("=BBBBBBBBI")


def _attribute(kind: int, payload: bytes) -> bytes:
    """One rtattr (length, type, payload), padded to four bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _link_info(kind: str, data: bytes = b"") -> bytes:
    inner = _attribute(_IFLA_INFO_KIND, kind.encode())
    return _attribute(_IFLA_LINKINFO, inner + (_attribute(_IFLA_INFO_DATA, data) if data else b""))


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


class Rtnetlink:
    """An rtnetlink socket of the calling thread's network namespace; use it as a context manager."""

    def __init__(self) -> None:
        self._socket = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        self._socket.bind((0, 0))
        self._sequence = 0

    def __enter__(self) -> Rtnetlink:
        return self

    def __exit__(self, *_: object) -> None:
        self._socket.close()

    def _request(self, kind: int, flags: int, body: bytes) -> None:
        """Send one request and wait for its acknowledgement; a refusal is OSError(errno)."""
        self._sequence += 1
        flags |= _NLM_F_REQUEST | _NLM_F_ACK
        self._socket.send(_HEADER.pack(_HEADER.size + len(body), kind, flags, self._sequence, 0) + body)
        while True:
            reply = self._socket.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(reply):
                length, reply_kind, _, sequence, _ = _HEADER.unpack_from(reply, offset)
                if reply_kind == _NLMSG_ERROR and sequence == self._sequence:
                    (code,) = struct.unpack_from("=i", reply, offset + _HEADER.size)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                offset += max(length, _HEADER.size) + (-length % 4)

    def _set_link(self, index: int, *, up: bool, attributes: bytes = b"") -> None:
        flags = _IFF_UP if up else 0
        self._request(_RTM_NEWLINK, 0, _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, _IFF_UP) + attributes)

    def add_bridge(self, name: str) -> int:
        """Create bridge `name` (EEXIST when it is there); its index."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attribute(_IFLA_IFNAME, _name(name))
        self._request(_RTM_NEWLINK, _NLM_F_CREATE | _NLM_F_EXCL, body + _link_info("bridge"))
        return socket.if_nametoindex(name)

    def add_veth(self, name: str, *, peer: str, peer_netns_fd: int, peer_mac: str) -> int:
        """Create veth `name` here whose peer is born as `peer` with `peer_mac` in the namespace
        `peer_netns_fd` refers to (so its name can be eth0 at once); the host end's index."""
        peer_body = (
            _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            + _attribute(_IFLA_IFNAME, _name(peer))
            + _attribute(_IFLA_ADDRESS, _mac(peer_mac))
            + _attribute(_IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
        )
        body = (
            _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            + _attribute(_IFLA_IFNAME, _name(name))
            + _link_info("veth", _attribute(_VETH_INFO_PEER, peer_body))
        )
        self._request(_RTM_NEWLINK, _NLM_F_CREATE | _NLM_F_EXCL, body)
        return socket.if_nametoindex(name)

    def set_up(self, index: int, *, master: int = 0) -> None:
        """Bring link `index` up, enslaved to link `master` when given."""
        self._set_link(
            index, up=True, attributes=_attribute(_IFLA_MASTER, struct.pack("=I", master)) if master else b""
        )

    def add_address(self, index: int, address: IPv4Interface) -> None:
        """Put `address` (with its prefix) on link `index`."""
        packed = address.ip.packed
        body = _IFADDR.pack(socket.AF_INET, address.network.prefixlen, 0, _RT_SCOPE_UNIVERSE, index)
        body += _attribute(_IFA_LOCAL, packed) + _attribute(_IFA_ADDRESS, packed)
        self._request(_RTM_NEWADDR, _NLM_F_CREATE | _NLM_F_EXCL, body)

    def add_default_route(self, gateway: IPv4Address) -> None:
        """Route everything not local through `gateway` (main table)."""
        body = _RTMSG.pack(
            socket.AF_INET, 0, 0, 0, _RT_TABLE_MAIN, _RTPROT_BOOT, _RT_SCOPE_UNIVERSE, _RTN_UNICAST, 0
        )
        self._request(
            _RTM_NEWROUTE, _NLM_F_CREATE | _NLM_F_EXCL, body + _attribute(_RTA_GATEWAY, gateway.packed)
        )

    def delete_link(self, name: str) -> None:
        """Delete link `name` (a veth takes its peer along); ENODEV when there is none."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attribute(_IFLA_IFNAME, _name(name))
        self._request(_RTM_DELLINK, 0, body)
