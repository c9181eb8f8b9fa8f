"""Drive one user-mode network driver by hand, for tests that run it as an unprivileged user
inside a user namespace (`unshare -rm`), where the CLI's rootless mode is not needed to prove
the driver itself works.

    python usermode_probe.py DRIVER RUN_DIR HOST_PORT

Prints one JSON line with the driver's availability; when usable, attaches a container whose
namespace holds a TCP server on port 80 greeting every client, publishes it on
127.0.0.1:HOST_PORT, prints a second JSON line with the attachment, waits for a line on stdin,
detaches and prints a last line.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path

from dockyard.core.drivers import DriverContext, DriverKind, DriverRegistry, PortMapping
from dockyard.core.linux.netns import call_inside
from dockyard.plugins.builtin_drivers import dockyard_register_drivers

CONTAINER_ID = "ab" * 32
GREETING = b"hello from the namespace\n"


def serve(server: socket.socket) -> None:
    """Greet every client until the server socket is closed."""
    while True:
        try:
            client, _ = server.accept()
        except OSError:
            return
        with client:
            client.sendall(GREETING)


def main(driver_name: str, run_dir: str, host_port: int) -> None:
    registry = DriverRegistry()
    dockyard_register_drivers(register=registry)
    entry = registry.get(DriverKind.NETWORK, driver_name)
    driver = entry.factory(DriverContext(home=Path(run_dir) / "home", run_dir=Path(run_dir), rootless=True))
    availability = driver.available()  # type: ignore[attr-defined]
    print(json.dumps({"usable": availability.usable, "reason": availability.reason}), flush=True)
    if not availability.usable:
        return
    port = PortMapping(container_port=80, protocol="tcp", host_ip="127.0.0.1", host_port=host_port)
    attachment = driver.attach(CONTAINER_ID, hostname="probe", ports=(port,))  # type: ignore[attr-defined]
    assert attachment.netns_path is not None
    server = call_inside(Path(attachment.netns_path), lambda: socket.create_server(("0.0.0.0", 80)))
    threading.Thread(target=serve, args=(server,), daemon=True).start()
    print(json.dumps({"ip": attachment.ip_address, "netns": attachment.netns_path}), flush=True)
    sys.stdin.readline()
    server.close()
    driver.detach(CONTAINER_ID)  # type: ignore[attr-defined]
    driver.detach(CONTAINER_ID)  # type: ignore[attr-defined]  # idempotent
    print(json.dumps({"detached": True}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
