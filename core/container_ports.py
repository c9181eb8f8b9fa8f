"""`port`: a container's published ports, `80/tcp -> 0.0.0.0:8080`, as Docker lists them.

What is published lives in the container's network settings (`NetworkSettings.Ports` in its
state, written by the network driver that published them); before a start, the requested
`HostConfig.PortBindings` stand in. Both are Docker's map, `"80/tcp": [{"HostIp", "HostPort"}]`.
"""

from __future__ import annotations

from dockyard.core.containers import Container
from dockyard.core.errors import NotFoundError

__all__ = ["port_lines"]


def _bindings(container: Container) -> dict[str, list[dict[str, str]]]:
    settings = container.state.get("NetworkSettings") or {}
    ports = settings.get("Ports") or container.config["HostConfig"].get("PortBindings") or {}
    return {key: list(value or []) for key, value in ports.items()}


def _address(binding: dict[str, str]) -> str:
    host, port = binding.get("HostIp") or "0.0.0.0", binding.get("HostPort", "")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _sort_key(private: str) -> tuple[int, str]:
    number, _, protocol = private.partition("/")
    return (int(number) if number.isdigit() else 0, protocol)


def port_lines(container: Container, private: str | None = None) -> list[str]:
    """Every `PRIVATE -> HOST:PORT` line, or with `private` (`80`, `80/udp`) its `HOST:PORT`s."""
    bindings = _bindings(container)
    if private is None:
        return [
            f"{key} -> {_address(binding)}"
            for key in sorted(bindings, key=_sort_key)
            for binding in bindings[key]
        ]
    key = private if "/" in private else f"{private}/tcp"
    found = [_address(binding) for binding in bindings.get(key, [])]
    if not found:
        raise NotFoundError(f"No public port '{key}' published for {container.name}")
    return found
