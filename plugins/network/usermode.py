"""What the user-mode network drivers (pasta, slirp4netns) share: a namespace per container with
a tap device served by a helper process in user space, which opens the host-side sockets itself.

No bridge, veth or firewall rule is involved, so the drivers need no privilege on the host: they
work as root and equally from inside a user namespace (rootless), where the process holds
CAP_SYS_ADMIN over the namespaces it creates. Each container has:

    <run_dir>/netns/<id>            its network namespace, pinned like `none`'s (netns_files)
    <run_dir>/helpers/<id>.json     the helper's pid and start time (helper_process)
    <run_dir>/helpers/<id>.*        the helper's log and whatever else it needs (pid file, socket)

`detach` stops the helper, unpins the namespace and deletes those files; calling it twice, or on
a half-made attachment, is safe.

By default the container cannot reach the host's loopback services, as Podman's defaults have
it; the driver option `allow_host_loopback=true` maps the gateway address to the host's
127.0.0.1 and names it `host.containers.internal` (and `host.docker.internal`) in /etc/hosts.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
from abc import ABC, abstractmethod
from pathlib import Path

from dockyard.core.drivers import Availability, DriverContext, NetworkAttachment, PortMapping
from dockyard.core.errors import DriverFailed

__all__ = ["INTERFACE", "TUN_DEVICE", "UserModeNetworkDriver", "ensure_ports_free"]

INTERFACE = "eth0"
TUN_DEVICE = Path("/dev/net/tun")
STILL_WORKS = "--network none and --network host still work"
HOST_NAMES = ("host.containers.internal", "host.docker.internal")
_CAP_SYS_ADMIN = 21
_TRUE = ("1", "true", "yes", "on")


def ensure_ports_free(ports: tuple[PortMapping, ...]) -> None:
    """Refuse, with Docker's message, a published host port something else already holds.

    The helpers bind the host ports themselves and older ones go on silently without a port they
    could not take; probing first turns that into an error before the container starts.
    """
    for port in ports:
        kind = socket.SOCK_DGRAM if port.protocol == "udp" else socket.SOCK_STREAM
        family = socket.AF_INET6 if ":" in port.host_ip else socket.AF_INET
        with socket.socket(family, kind) as probe:
            if kind == socket.SOCK_STREAM:  # as servers do: a closed connection's TIME_WAIT is no owner
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((port.host_ip, port.host_port))
            except OSError as exc:
                from dockyard.core.port_bindings import privileged_port_refusal

                where = f"{port.host_ip or '0.0.0.0'}:{port.host_port}"
                if exc.errno == errno.EADDRINUSE:
                    raise DriverFailed(f"Bind for {where} failed: port is already allocated") from None
                reason = privileged_port_refusal(port.host_port) if exc.errno == errno.EACCES else ""
                raise DriverFailed(
                    f"cannot publish {where}/{port.protocol}: {reason or exc.strerror}"
                ) from exc


class UserModeNetworkDriver(ABC):
    """The shared life cycle; a subclass names its command and starts its helper."""

    name = ""
    command = ""
    package = ""

    def __init__(self, context: DriverContext) -> None:
        self._netns = context.run_dir / "netns"
        self._helpers = context.run_dir / "helpers"
        self.allow_host_loopback = context.options.get("allow_host_loopback", "").lower() in _TRUE

    def available(self) -> Availability:
        """Usable with the helper installed, /dev/net/tun openable and namespaces creatable."""
        if shutil.which(self.command) is None:
            reason = f"the {self.command} command is missing (Debian: {self.package})"
            return Availability(False, f"{reason}; {STILL_WORKS}", missing=True)
        refusal = _tun_refusal()
        if refusal:
            return Availability(False, f"{refusal}; {STILL_WORKS}", missing=not TUN_DEVICE.exists())
        if not _has_cap_sys_admin():
            reason = (
                "creating a network namespace needs CAP_SYS_ADMIN (run as root or inside the rootless "
                "user namespace)"
            )
            return Availability(False, f"{reason}; {STILL_WORKS}")
        return Availability(True)

    def attach(
        self, container_id: str, *, hostname: str, ports: tuple[PortMapping, ...] = ()
    ) -> NetworkAttachment:
        """Make the namespace, start the helper on it with `ports` published, read back the address."""
        from dockyard.plugins.network import netns_files
        from dockyard.plugins.network.netns_address import read_interface

        ensure_ports_free(ports)
        path = netns_files.path_for(self._netns, container_id)
        netns_files.reserve(path, container_id)
        try:
            netns_files.create(path, container_id)
            self._helpers.mkdir(parents=True, exist_ok=True)
            self.start_helper(container_id, path, ports)
            interface = read_interface(path, INTERFACE)
        except BaseException:
            self.detach(container_id)
            raise
        extra_hosts = (
            tuple((name, interface.gateway) for name in HOST_NAMES) if self.allow_host_loopback else ()
        )
        return NetworkAttachment(
            netns_path=str(path),
            ip_address=interface.address,
            gateway=interface.gateway,
            mac_address=interface.mac,
            dns_servers=self.dns_servers(),
            extra_hosts=extra_hosts,
            prefix_length=interface.prefix_length,
            ports=ports,
        )

    def detach(self, container_id: str) -> None:
        """Stop the helper, unpin the namespace, delete the helper's files; idempotent."""
        from dockyard.plugins.network import helper_process, netns_files

        helper_process.stop(self.helper_file(container_id, "json"))
        netns_files.remove(netns_files.path_for(self._netns, container_id))
        if self._helpers.is_dir():
            for leftover in self._helpers.glob(f"{container_id}.*"):
                leftover.unlink(missing_ok=True)

    def helper_file(self, container_id: str, suffix: str) -> Path:
        """One of the container's helper files (`json` record, `log`, ...)."""
        return self._helpers / f"{container_id}.{suffix}"

    def helper_failure(self, container_id: str, what: str) -> DriverFailed:
        """An error naming what failed and the helper's last words from its log."""
        try:
            lines = self.helper_file(container_id, "log").read_text(errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        said = [line.strip() for line in lines if line.strip() and "syslog" not in line]
        detail = f": {said[-1]}" if said else ""
        return DriverFailed(f"{self.command} {what} for container {container_id[:12]}{detail}")

    @abstractmethod
    def start_helper(self, container_id: str, netns_path: Path, ports: tuple[PortMapping, ...]) -> None:
        """Start the helper on the namespace with `ports` published, and record it with
        helper_process.record before anything else can fail, so `detach` can stop it."""

    @abstractmethod
    def dns_servers(self) -> tuple[str, ...]:
        """The name servers the container's /etc/resolv.conf lists."""


def _tun_refusal() -> str:
    """Why /dev/net/tun cannot be used by this process, or "" when it can."""
    try:
        os.close(os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC))
    except FileNotFoundError:
        return f"{TUN_DEVICE} is missing (load the tun module: modprobe tun)"
    except PermissionError:
        mode = stat.S_IMODE(TUN_DEVICE.stat().st_mode)
        return (
            f"{TUN_DEVICE} (mode {mode:04o}) cannot be opened by this user "
            "(distributions ship it 0666; an administrator restricted it)"
        )
    except OSError as exc:
        return f"{TUN_DEVICE} cannot be opened: {exc.strerror}"
    return ""


def _has_cap_sys_admin() -> bool:
    """Whether this process holds CAP_SYS_ADMIN in its own user namespace (root, or a userns)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> _CAP_SYS_ADMIN & 1)
    return False
