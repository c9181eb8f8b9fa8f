"""`network connect`/`disconnect` of a container that is running: the change happens in its
network namespace now, not at its next start.

Connect plugs the network's next free `ethN` into the namespace the container runs in; disconnect
takes that interface out. Both hold the container's release lock, so the container cannot be
torn down halfway, and both then rewrite the /etc/hosts of every peer on the networks concerned.
The network that made the namespace (the first one the container started with) holds it until
the container stops: disconnecting it from a running container is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dockyard.core.containers import Container
from dockyard.core.drivers import DriverKind, NamedNetworkDriver
from dockyard.core.engine import Engine
from dockyard.core.errors import ConflictError, UsageError

__all__ = ["connect_running", "disconnect_running", "is_live"]


def is_live(container: Container) -> bool:
    """Whether the container has a network namespace in use (running or paused)."""
    return container.running or container.status == "paused"


@contextmanager
def _still_live(engine: Engine, container: Container) -> Iterator[Container]:
    """The container reloaded under its release lock; ConflictError when it stopped meanwhile."""
    from dockyard.core.store import file_lock

    with file_lock(container.directory / "release.lock"):
        current = engine.containers.load(container.id)
        if not (current.directory / "spec.json").exists() or not is_live(current):
            raise ConflictError(f"container {current.name} is not running")
        yield current


def _free_interface(netns: Path) -> str:
    """The first `ethN` name the namespace does not use yet."""
    import socket

    from dockyard.core.linux.netns import call_inside

    names = {name for _, name in call_inside(netns, socket.if_nameindex)}
    return next(f"eth{index}" for index in range(len(names) + 1) if f"eth{index}" not in names)


def _named_driver(engine: Engine, record: dict[str, Any]) -> NamedNetworkDriver:
    driver = engine.driver(DriverKind.NETWORK, record["Driver"])
    if not isinstance(driver, NamedNetworkDriver):
        raise UsageError(f"the {record['Driver']} network driver does not serve user-defined networks")
    return driver


def connect_running(
    engine: Engine, container: Container, record: dict[str, Any], endpoint: dict[str, Any]
) -> None:
    """Attach the user-defined network `record` to the running container as `endpoint` says."""
    from dockyard.core.network_endpoints import endpoints_of
    from dockyard.core.network_hosts import refresh_peers
    from dockyard.core.network_settings import Endpoint, endpoint_fields
    from dockyard.core.networks import network_config
    from dockyard.core.store import new_id

    with _still_live(engine, container) as current:
        settings = dict(current.state.get("NetworkSettings") or {})
        sandbox = str(settings.get("SandboxKey") or "")
        if not sandbox:
            raise ConflictError(
                f"container {current.name} uses the host's network: it cannot join {record['Name']}"
            )
        driver = _named_driver(engine, record)
        config = network_config(record)
        attachment = driver.attach_network(
            current.id,
            network=config,
            hostname=current.config["Config"].get("Hostname") or current.id[:12],
            aliases=tuple(endpoint["Aliases"]),
            netns_path=sandbox,
            interface=_free_interface(Path(sandbox)),
        )
        try:
            fields = endpoint_fields(
                Endpoint(
                    network=record["Name"],
                    attachment=attachment,
                    network_id=record["Id"],
                    endpoint_id=new_id(),
                    aliases=tuple(endpoint["Aliases"]),
                    user_defined=True,
                )
            )
            current.config["Dockyard"]["Networks"] = {**endpoints_of(current), record["Name"]: endpoint}
            engine.containers.save_config(current)
            settings["Networks"] = {**(settings.get("Networks") or {}), record["Name"]: fields}
            engine.containers.update_state(current, NetworkSettings=settings)
        except BaseException:
            driver.detach_network(current.id, network=config)
            raise
    refresh_peers(engine, current)


def disconnect_running(engine: Engine, container: Container, record: dict[str, Any]) -> None:
    """Take network `record` out of the running container (not the one holding its namespace)."""
    from dockyard.core.network_endpoints import endpoints_of
    from dockyard.core.network_hosts import refresh_peers
    from dockyard.core.networks import network_config

    with _still_live(engine, container) as current:
        endpoints = endpoints_of(current)
        name = record["Name"]
        if name not in endpoints:
            raise ConflictError(f"container {current.id} is not connected to network {name}")
        if next(iter(endpoints)) == name:
            raise ConflictError(
                f"cannot disconnect running container {current.name} from {name}: the container's "
                "network namespace came with it (stop the container first)"
            )
        del endpoints[name]  # only the first network can be a built-in one: this one is user-defined
        _named_driver(engine, record).detach_network(current.id, network=network_config(record))
        current.config["Dockyard"]["Networks"] = endpoints
        engine.containers.save_config(current)
        settings = dict(current.state.get("NetworkSettings") or {})
        settings["Networks"] = {
            key: value for key, value in (settings.get("Networks") or {}).items() if key != name
        }
        engine.containers.update_state(current, NetworkSettings=settings)
    refresh_peers(engine, current, left=(name,))
