"""The `pasta` network driver: Debian's passt in its namespace mode, what Podman now prefers for
rootless containers.

pasta joins the container's namespace, creates `eth0` there as a tap device and configures it
with a copy of the host's addressing (address, routes), then forks into the background and
translates the namespace's traffic to ordinary sockets on the host: no privilege, no firewall
rule. Published ports are pasta's own listening sockets (`-t`/`-u` HOST:CTR), the reverse
direction (`-T`/`-U`, container loopback to host) is off, and `--no-map-gw` keeps the host's
loopback out of reach unless `allow_host_loopback` is set. pasta also leaves by itself when the
namespace file goes; the recorded pid makes `detach` certain. As root it is told to stay root
(`--runas 0`): the pasta of Debian 12 drops to `nobody` first and then cannot enter the
namespace; it still confines itself (its own mount and pid namespaces, seccomp).

Shared life cycle and files: usermode.py. Priority 8: above slirp4netns, below bridge and none,
so a rootless engine without them picks pasta first.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dockyard.core.drivers import PortMapping
from dockyard.core.errors import DriverFailed
from dockyard.plugins.network.usermode import INTERFACE, UserModeNetworkDriver

__all__ = ["PastaNetworkDriver", "port_options"]

START_TIMEOUT = 30.0


def port_options(ports: tuple[PortMapping, ...]) -> list[str]:
    """pasta's forwarding options: one `-t`/`-u` per published port, `none` for an empty kind
    (an absent `-u` would forward the TCP ports' numbers over UDP too)."""
    options = []
    for protocol, flag in (("tcp", "-t"), ("udp", "-u")):
        specs = [_spec(port) for port in ports if port.protocol == protocol] or ["none"]
        options += [item for spec in specs for item in (flag, spec)]
    return options


def _spec(port: PortMapping) -> str:
    """HOST:CTR, with the host address in front (`ADDR/HOST:CTR`) when one is given."""
    mapping = f"{port.host_port}:{port.container_port}"
    return f"{port.host_ip}/{mapping}" if port.host_ip else mapping


class PastaNetworkDriver(UserModeNetworkDriver):
    """A pasta process per container (see the module docstring)."""

    name = "pasta"
    command = "pasta"
    package = "passt"

    def start_helper(self, container_id: str, netns_path: Path, ports: tuple[PortMapping, ...]) -> None:
        """Run pasta against the namespace; it configures eth0, writes its pid file and forks."""
        from dockyard.plugins.network import helper_process

        pid_file = self.helper_file(container_id, "pid")
        command = [
            "pasta",
            "--config-net",
            "--quiet",
            "--netns",
            str(netns_path),
            "--pid",
            str(pid_file),
            "--ns-ifname",
            INTERFACE,
            *port_options(ports),
            "-T",
            "none",
            "-U",
            "none",
        ]
        if not self.allow_host_loopback:
            command.append("--no-map-gw")
        if os.geteuid() == 0:
            command += ["--runas", "0"]
        with open(self.helper_file(container_id, "log"), "wb") as log:
            try:
                result = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=START_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                raise self.helper_failure(
                    container_id, f"did not start within {START_TIMEOUT:.0f} s"
                ) from None
            except OSError as exc:
                raise DriverFailed(f"cannot run pasta: {exc.strerror}") from exc
        if result.returncode != 0:
            raise self.helper_failure(container_id, f"exited {result.returncode}")
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError) as exc:
            raise self.helper_failure(container_id, "left no pid file") from exc
        helper_process.record(self.helper_file(container_id, "json"), pid)

    def dns_servers(self) -> tuple[str, ...]:
        """The host's own name servers: pasta carries the queries to them like any traffic
        (loopback ones are left out, and none at all means the host's file minus those)."""
        from dockyard.plugins.network.bridge import host_nameservers

        return host_nameservers()
