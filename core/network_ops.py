"""`network create/ls/inspect/rm/prune/connect/disconnect` with Docker's rules and messages.

The records live in the NetworkStore (core/networks.py); the driver chooses and checks subnets
(`create_network`) and forgets them (`remove_network`). A network any container refers to, in
whatever state, cannot be removed. `connect`/`disconnect` change a running container at once
(network_live) and a stopped one from its next start.
"""

from __future__ import annotations

from typing import Any

from dockyard.core.containers import Container
from dockyard.core.drivers import DriverKind, NamedNetworkDriver
from dockyard.core.engine import Engine
from dockyard.core.errors import ConflictError, NotFoundError, UsageError

__all__ = [
    "all_networks",
    "connect",
    "create_network",
    "disconnect",
    "find_network",
    "inspect_network",
    "network_users",
    "prune_networks",
    "remove_network",
]


def _builtin_records(engine: Engine) -> list[dict[str, Any]]:
    """One built-in network per registered network driver this host can use."""
    from dockyard.core.networks import builtin_record

    found = []
    for entry in engine.hooks.drivers.of_kind(DriverKind.NETWORK):
        if engine.build_driver(entry).available().usable:
            found.append(builtin_record(entry.name))
    return sorted(found, key=lambda record: str(record["Name"]))


def all_networks(engine: Engine) -> list[dict[str, Any]]:
    """The built-in networks, then the user-defined ones."""
    return [*_builtin_records(engine), *engine.networks.all()]


def find_network(engine: Engine, text: str) -> dict[str, Any]:
    """A network by name, id or unique id prefix; Docker's message when there is none."""
    record = engine.networks.find(text)
    if record is not None:
        return record
    for builtin in _builtin_records(engine):
        if text in (builtin["Name"], builtin["Id"]) or (len(text) >= 3 and builtin["Id"].startswith(text)):
            return builtin
    raise NotFoundError(f"network {text} not found")


def network_users(engine: Engine, network_id: str) -> list[Container]:
    """Every container, whatever its state, that is on the network."""
    from dockyard.core.network_endpoints import endpoints_of

    return [
        container
        for container in engine.containers.list()
        if any(endpoint["NetworkID"] == network_id for endpoint in endpoints_of(container).values())
    ]


def inspect_network(engine: Engine, record: dict[str, Any]) -> dict[str, Any]:
    """Docker's `network inspect` object: the record with the containers attached right now."""
    members = {}
    for container in network_users(engine, record["Id"]):
        fields = ((container.state.get("NetworkSettings") or {}).get("Networks") or {}).get(record["Name"])
        if not fields:
            continue
        address = fields.get("IPAddress") or ""
        members[container.id] = {
            "Name": container.name,
            "EndpointID": fields.get("EndpointID", ""),
            "MacAddress": fields.get("MacAddress", ""),
            "IPv4Address": f"{address}/{fields.get('IPPrefixLen', 0)}" if address else "",
            "IPv6Address": "",
        }
    shown = {key: value for key, value in record.items() if key != "Options"}
    return {**shown, "Containers": members, "Options": record.get("Options") or {}}


def _named_driver(engine: Engine, name: str | None) -> tuple[str, NamedNetworkDriver]:
    """The driver for a new network: the one named, else the highest-priority usable one that
    serves user-defined networks."""
    entries = (
        [engine.hooks.drivers.get(DriverKind.NETWORK, name)]
        if name
        else engine.hooks.drivers.of_kind(DriverKind.NETWORK)
    )
    for entry in entries:
        driver = engine.build_driver(entry)
        if isinstance(driver, NamedNetworkDriver) and (name or driver.available().usable):
            driver.available().raise_if_unusable(entry.name)
            return entry.name, driver
    if name:
        raise UsageError(f'only one instance of "{name}" network is allowed')
    raise UsageError("no usable network driver serves user-defined networks")


def create_network(
    engine: Engine,
    *,
    name: str,
    driver: str | None,
    subnet: str,
    gateway: str,
    internal: bool,
    labels: dict[str, str],
) -> dict[str, Any]:
    """Record a new network once its driver has chosen or accepted its subnet."""
    from dockyard.core.drivers import NetworkConfig
    from dockyard.core.networks import builtin_record, valid_network_name
    from dockyard.core.store import new_id
    from dockyard.core.timestamps import now_rfc3339

    valid_network_name(name)
    driver_name, network_driver = _named_driver(engine, driver)
    with engine.networks.locked():
        if engine.networks.find(name) is not None or name in {r["Name"] for r in _builtin_records(engine)}:
            raise ConflictError(f"network with name {name} already exists")
        config = network_driver.create_network(
            NetworkConfig(name=name, id=new_id(), subnet=subnet, gateway=gateway, internal=internal)
        )
        record = {
            **builtin_record(driver_name),
            "Name": name,
            "Id": config.id,
            "Created": now_rfc3339(),
            "IPAM": {
                "Driver": "default",
                "Options": {},
                "Config": [{"Subnet": config.subnet, "Gateway": config.gateway}],
            },
            "Internal": internal,
            "Labels": labels,
        }
        try:
            engine.networks.add(record)
        except BaseException:
            network_driver.remove_network(config)
            raise
    return record


def remove_network(engine: Engine, text: str) -> None:
    """Delete a user-defined network no container is on (Docker's messages otherwise)."""
    from dockyard.core.networks import network_config

    record = find_network(engine, text)
    if engine.networks.find(record["Id"]) is None:
        raise ConflictError(f"{record['Name']} is a pre-defined network and cannot be removed")
    with engine.networks.locked():
        users = network_users(engine, record["Id"])
        if users:
            names = ", ".join(container.name for container in users)
            raise ConflictError(
                f"error while removing network: network {record['Name']} id {record['Id']} "
                f"has active endpoints ({names})"
            )
        driver = engine.driver(DriverKind.NETWORK, record["Driver"])
        driver.remove_network(network_config(record))
        engine.networks.delete(record)


def prune_networks(engine: Engine) -> list[str]:
    """Remove every user-defined network no container is on; their names."""
    removed = []
    for record in engine.networks.all():
        if not network_users(engine, record["Id"]):
            remove_network(engine, record["Id"])
            removed.append(str(record["Name"]))
    return removed


def connect(engine: Engine, text: str, container: Container, *, aliases: list[str]) -> None:
    """Add a user-defined network to a container: at once when it runs (network_live), else
    from its next start."""
    record = find_network(engine, text)
    if engine.networks.find(record["Id"]) is None:
        raise UsageError(f"container cannot be connected to the built-in network {record['Name']}")
    from dockyard.core.network_endpoints import CONTAINER_MODE, endpoints_of
    from dockyard.core.network_live import connect_running, is_live

    if str(container.config["HostConfig"].get("NetworkMode") or "").startswith(CONTAINER_MODE):
        raise ConflictError("container sharing network namespace with another container cannot be connected")
    endpoints = endpoints_of(container)
    if record["Name"] in endpoints:
        raise ConflictError(f"endpoint with name {container.name} already exists in network {record['Name']}")
    endpoint = {
        "Index": 1 + max((int(endpoint.get("Index", 0)) for endpoint in endpoints.values()), default=-1),
        "Driver": record["Driver"],
        "NetworkID": record["Id"],
        "Aliases": list(aliases),
        "UserDefined": True,
    }
    if is_live(container):
        connect_running(engine, container, record, endpoint)
        return
    endpoints[record["Name"]] = endpoint
    container.config["Dockyard"]["Networks"] = endpoints
    engine.containers.save_config(container)


def disconnect(engine: Engine, text: str, container: Container) -> None:
    """Remove a network from a container: at once when it runs (network_live), else from its
    next start."""
    record = find_network(engine, text)
    from dockyard.core.network_endpoints import endpoints_of
    from dockyard.core.network_live import disconnect_running, is_live

    if is_live(container):
        disconnect_running(engine, container, record)
        return

    endpoints = endpoints_of(container)
    if record["Name"] not in endpoints:
        raise ConflictError(f"container {container.id} is not connected to network {record['Name']}")
    del endpoints[record["Name"]]
    container.config["Dockyard"]["Networks"] = endpoints
    if not endpoints:
        container.config["Dockyard"]["NetworkDriver"] = ""
    engine.containers.save_config(container)
