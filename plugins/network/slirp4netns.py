"""The `slirp4netns` network driver: libslirp's user-mode TCP/IP stack behind a tap device, the
rootless network Podman used before pasta and the fallback when pasta is missing.

slirp4netns runs in the foreground for as long as the container's network lives; it is started
detached (its own session) with `--configure` (eth0 gets 10.0.2.100/24, gateway 10.0.2.2, DNS
10.0.2.3), MTU 65520 (the throughput knob), `--disable-host-loopback` unless the driver option
`allow_host_loopback` is set (then 10.0.2.2 is the host's 127.0.0.1), and an API socket through
which each published port is added (`add_hostfwd`). It confines itself (`--enable-sandbox`,
`--enable-seccomp`); because its sandbox detaches the old root with every mount below it, it
is started in a private mount namespace of its own, or on a host whose / is shared (systemd's
default) the unmount would propagate and unpin namespace files, ours and others'.

Shared life cycle and files: usermode.py. Priority 6, below pasta.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
from pathlib import Path
from typing import Any

from dockyard.core.drivers import PortMapping
from dockyard.core.errors import DriverFailed
from dockyard.plugins.network.usermode import INTERFACE, UserModeNetworkDriver

__all__ = ["DNS_SERVER", "Slirp4netnsNetworkDriver"]

DNS_SERVER = "10.0.2.3"
MTU = 65520
READY_TIMEOUT = 30.0


class Slirp4netnsNetworkDriver(UserModeNetworkDriver):
    """A slirp4netns process per container (see the module docstring)."""

    name = "slirp4netns"
    command = "slirp4netns"
    package = "slirp4netns"

    def start_helper(self, container_id: str, netns_path: Path, ports: tuple[PortMapping, ...]) -> None:
        """Start slirp4netns on the namespace, wait until eth0 is configured, publish `ports`."""
        from dockyard.plugins.network import helper_process

        # Relative to the helpers directory (its working directory): a socket path must fit in
        # sun_path's 108 bytes, which a deep --runroot and a 64-hex id would not.
        api_socket = self.helper_file(container_id, "sock").name
        ready_read, ready_write = os.pipe()
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "slirp4netns",
            "--configure",
            f"--mtu={MTU}",
            "--api-socket",
            api_socket,
            "--enable-sandbox",
            "--enable-seccomp",
            f"--ready-fd={ready_write}",
            "--netns-type=path",
            str(netns_path),
            INTERFACE,
        ]
        if not self.allow_host_loopback:
            command.insert(command.index("--configure"), "--disable-host-loopback")
        try:
            with open(self.helper_file(container_id, "log"), "wb") as log:
                process = subprocess.Popen(
                    command,
                    cwd=self._helpers,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(ready_write,),
                    start_new_session=True,
                )
        except OSError as exc:
            os.close(ready_read)
            raise DriverFailed(f"cannot run slirp4netns: {exc.strerror}") from exc
        finally:
            os.close(ready_write)
        try:
            helper_process.record(self.helper_file(container_id, "json"), process.pid)
            self._wait_ready(container_id, ready_read)
        finally:
            os.close(ready_read)
        for port in ports:
            self._publish(container_id, port)

    def dns_servers(self) -> tuple[str, ...]:
        """slirp4netns's own resolver, which forwards to the host's."""
        return (DNS_SERVER,)

    def _wait_ready(self, container_id: str, ready: int) -> None:
        """Block until slirp4netns writes its "1" on the ready pipe (it closes it on failure)."""
        readable, _, _ = select.select([ready], [], [], READY_TIMEOUT)
        if not readable:
            raise self.helper_failure(container_id, f"was not ready within {READY_TIMEOUT:.0f} s")
        if os.read(ready, 1) != b"1":
            raise self.helper_failure(container_id, "exited while configuring the namespace")

    def _publish(self, container_id: str, port: PortMapping) -> None:
        """Ask slirp4netns, through its API socket, to forward one host port into the container."""
        arguments = {
            "proto": port.protocol,
            "host_addr": port.host_ip or "0.0.0.0",
            "host_port": port.host_port,
            "guest_port": port.container_port,
        }
        answer = self._api(container_id, {"execute": "add_hostfwd", "arguments": arguments})
        if "error" in answer:
            where = f"{arguments['host_addr']}:{port.host_port}/{port.protocol}"
            raise DriverFailed(f"slirp4netns cannot publish {where}: {answer['error'].get('desc', answer)}")

    def _api(self, container_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """One request on the API socket and its JSON answer (the socket is reached through an
        O_PATH descriptor of its directory, for the same sun_path limit as above)."""
        directory = os.open(self._helpers, os.O_PATH | os.O_CLOEXEC)
        name = self.helper_file(container_id, "sock").name
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as api:
                api.settimeout(READY_TIMEOUT)
                api.connect(f"/proc/self/fd/{directory}/{name}")
                api.sendall(json.dumps(request).encode())
                api.shutdown(socket.SHUT_WR)
                reply = b"".join(iter(lambda: api.recv(4096), b""))
        except OSError as exc:
            raise DriverFailed(
                f"cannot talk to slirp4netns for container {container_id[:12]}: {exc}"
            ) from exc
        finally:
            os.close(directory)
        try:
            answer: dict[str, Any] = json.loads(reply)
        except ValueError as exc:
            raise DriverFailed(f"slirp4netns answered {reply[:200]!r}") from exc
        return answer
