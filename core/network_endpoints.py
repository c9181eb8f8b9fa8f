"""Which networks a container is on, and attaching and detaching them through their drivers.

`--network` names a user-defined network, a driver's built-in network (`bridge`, `host`, `none`,
...), or `container:NAME`; nothing picks the highest-priority usable driver's built-in network,
through the driver registry. The choice is recorded in the container's `Dockyard.Networks`:
network name -> {Driver, NetworkID, Aliases, UserDefined}, in attach order (`network connect`
appends, `disconnect` removes). A built-in network goes through the driver's `attach`/`detach`;
a user-defined one through the optional `attach_network`/`detach_network` (drivers.py).

`container:NAME` is no driver: the container joins the running target's namespace and shares
its /etc/hosts, /etc/hostname and /etc/resolv.conf, as Docker's do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dockyard.core.containers import Container
from dockyard.core.drivers import DriverKind, NamedNetworkDriver, NetworkAttachment, PortMapping
from dockyard.core.engine import Engine
from dockyard.core.errors import ConflictError, NotFoundError, UsageError

__all__ = ["Joined", "NetworkPlan", "attach_all", "detach_all", "endpoints_of", "plan_networks"]

CONTAINER_MODE = "container:"


@dataclass(frozen=True)
class NetworkPlan:
    """What `create` records: HostConfig.NetworkMode, the first network's driver, the endpoints,
    and the hostname the container must take ("" to keep its own)."""

    mode: str
    driver: str
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    hostname: str = ""


@dataclass(frozen=True)
class Joined:
    """What `attach_all` set up: the attachment the container starts with, the NetworkSettings
    `inspect` shows, and whose /etc files to mount (None: the container's own)."""

    attachment: NetworkAttachment
    settings: dict[str, Any]
    etc_from: Path | None = None


def plan_networks(
    engine: Engine, *, network: str | None, aliases: list[str], publishes: bool, hostname: str | None
) -> NetworkPlan:
    """Resolve `--network` (and check `--network-alias`, `-p`, `-h` against it) at create time."""
    if network and network.startswith(CONTAINER_MODE):
        if publishes:
            raise UsageError("conflicting options: port publishing and the container type network mode")
        if hostname:
            raise UsageError("conflicting options: hostname and the network mode")
        target = engine.containers.resolve(network[len(CONTAINER_MODE) :])
        own_hostname = target.config["Config"].get("Hostname") or target.id[:12]
        return NetworkPlan(mode=f"{CONTAINER_MODE}{target.id}", driver="", hostname=own_hostname)
    from dockyard.core.networks import builtin_record

    record = engine.networks.find(network) if network else None
    user_defined = record is not None
    if record is None:
        try:
            entry = engine.select_driver(DriverKind.NETWORK, network or engine.settings.network_driver)
        except NotFoundError:
            if not network:
                raise
            raise NotFoundError(f"network {network} not found") from None
        record = builtin_record(entry.name)
        if aliases:
            raise UsageError("network-scoped alias is supported only for containers in user defined networks")
    endpoint = {
        "Driver": record["Driver"],
        "NetworkID": record["Id"],
        "Aliases": list(aliases),
        "UserDefined": user_defined,
    }
    return NetworkPlan(
        mode=network or "default", driver=record["Driver"], endpoints={record["Name"]: endpoint}
    )


def endpoints_of(container: Container) -> dict[str, dict[str, Any]]:
    """The container's networks in attach order; a container from before `Networks` existed is
    on its driver's built-in network."""
    names = container.config.get("Dockyard", {})
    if "Networks" in names:  # records are stored with sorted keys: "Index" keeps attach order
        return dict(sorted(names["Networks"].items(), key=lambda item: int(item[1].get("Index", 0))))
    driver = names.get("NetworkDriver", "")
    if not driver:
        return {}
    from dockyard.core.networks import builtin_record

    return {
        driver: {
            "Driver": driver,
            "NetworkID": builtin_record(driver)["Id"],
            "Aliases": [],
            "UserDefined": False,
        }
    }


def _container_mode_target(engine: Engine, container: Container) -> Container | None:
    mode = str(container.config["HostConfig"].get("NetworkMode") or "")
    if not mode.startswith(CONTAINER_MODE):
        return None
    try:
        target = engine.containers.load(mode[len(CONTAINER_MODE) :])
    except NotFoundError:
        raise NotFoundError(f"cannot join network of a non existent container: {mode[10:22]}") from None
    if not target.running:
        raise ConflictError(f"cannot join network of a non running container: {target.name}")
    return target


def attach_all(engine: Engine, container: Container, *, ports: tuple[PortMapping, ...]) -> Joined:
    """Attach every network of the container, the first one creating its namespace; undo the
    ones done when a later one fails."""
    target = _container_mode_target(engine, container)
    if target is not None:
        key = str((target.state.get("NetworkSettings") or {}).get("SandboxKey") or "")
        attachment = NetworkAttachment(netns_path=key or None)
        return Joined(attachment, _settings([], sandbox=""), etc_from=target.directory)
    from dockyard.core.store import new_id

    hostname = container.config["Config"].get("Hostname") or container.id[:12]
    done: list[tuple[str, dict[str, Any], NetworkAttachment]] = []
    try:
        for index, (name, endpoint) in enumerate(endpoints_of(container).items()):
            attachment = _attach_one(
                engine,
                container,
                name,
                endpoint,
                hostname=hostname,
                ports=ports if index == 0 else (),
                netns_path=done[0][2].netns_path if done else None,
                interface=f"eth{index}",
            )
            done.append((name, {**endpoint, "EndpointID": new_id()}, attachment))
        if not done:
            raise UsageError(f"container {container.name} is connected to no network")
        first = done[0][2]
        linked = first.extra_hosts + _linked_hosts(engine, container)
    except BaseException:
        _detach_endpoints(engine, container, [(name, endpoint) for name, endpoint, _ in reversed(done)])
        raise
    return Joined(replace(first, extra_hosts=linked), _settings(done, sandbox=first.netns_path or ""))


def _linked_hosts(engine: Engine, container: Container) -> tuple[tuple[str, str], ...]:
    """Docker's legacy `--link NAME:ALIAS`: an /etc/hosts entry naming the running target by
    its alias, short id and name, at its address on the default network (else its first)."""
    entries = []
    for link in container.config["HostConfig"].get("Links") or []:
        target_name, _, alias = link.partition(":")
        try:
            target = engine.containers.resolve(target_name)
        except NotFoundError:
            raise NotFoundError(f"could not get container for {target_name}") from None
        settings = target.state.get("NetworkSettings") or {}
        address = settings.get("IPAddress") or next(
            (
                fields.get("IPAddress")
                for fields in (settings.get("Networks") or {}).values()
                if fields.get("IPAddress")
            ),
            "",
        )
        if not target.running or not address:
            raise ConflictError(
                f"Cannot link to a non running container: /{target.name} AS /{container.name}/{alias}"
            )
        entries.append((" ".join(dict.fromkeys([alias, target.id[:12], target.name])), str(address)))
    return tuple(entries)


def _attach_one(
    engine: Engine,
    container: Container,
    name: str,
    endpoint: dict[str, Any],
    *,
    hostname: str,
    ports: tuple[PortMapping, ...],
    netns_path: str | None,
    interface: str,
) -> NetworkAttachment:
    driver = engine.driver(DriverKind.NETWORK, endpoint["Driver"])
    if not endpoint.get("UserDefined"):
        if interface != "eth0":
            raise ConflictError(f"container cannot be connected to the built-in network {name} and others")
        attachment: NetworkAttachment = driver.attach(container.id, hostname=hostname, ports=ports)
        return attachment
    from dockyard.core.networks import network_config

    if not isinstance(driver, NamedNetworkDriver):
        raise UsageError(f"the {endpoint['Driver']} network driver does not serve user-defined networks")
    if interface != "eth0" and netns_path is None:
        raise ConflictError(f"container shares the host's network: it cannot also join {name}")
    return driver.attach_network(
        container.id,
        network=network_config(engine.networks.get(endpoint["NetworkID"])),
        hostname=hostname,
        aliases=tuple(endpoint.get("Aliases") or ()),
        ports=ports,
        netns_path=netns_path,
        interface=interface,
    )


def detach_all(engine: Engine, container: Container) -> None:
    """Detach every network of the container, last attached first; safe to call twice."""
    if str(container.config["HostConfig"].get("NetworkMode") or "").startswith(CONTAINER_MODE):
        return
    endpoints = list(endpoints_of(container).items())
    _detach_endpoints(engine, container, list(reversed(endpoints)))


def _detach_endpoints(
    engine: Engine, container: Container, endpoints: list[tuple[str, dict[str, Any]]]
) -> None:
    for _name, endpoint in endpoints:
        driver = engine.driver(DriverKind.NETWORK, endpoint["Driver"])
        if not endpoint.get("UserDefined"):
            driver.detach(container.id)
            continue
        from dockyard.core.networks import network_config

        try:
            record = engine.networks.get(endpoint["NetworkID"])
        except NotFoundError:
            continue  # removed with `rm -f` of the network's last user; nothing left to free
        driver.detach_network(container.id, network=network_config(record))


def _settings(done: list[tuple[str, dict[str, Any], NetworkAttachment]], *, sandbox: str) -> dict[str, Any]:
    """Docker's NetworkSettings: top-level address fields for the default network only."""
    from dockyard.core.network_settings import Endpoint, network_settings

    return network_settings(
        [
            Endpoint(
                network=name,
                attachment=attachment,
                network_id=endpoint["NetworkID"],
                endpoint_id=endpoint["EndpointID"],
                aliases=tuple(endpoint.get("Aliases") or ()),
                user_defined=bool(endpoint.get("UserDefined")),
            )
            for name, endpoint, attachment in done
        ],
        sandbox=sandbox,
    )
