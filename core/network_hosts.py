"""Names on user-defined networks without a DNS daemon: every member's /etc/hosts lists its peers.

A container's /etc/hosts is the file the engine bind-mounts (containers/<id>/hosts); below a
marker line it carries, for every container sharing one of its user-defined networks, the peer's
address with its name, its `--network-alias`es and its short id. Whenever a container joins or
leaves, every member's file is rewritten in place (the bind mount pins the inode, so a new file
would go unseen), under the networks' lock, from the containers' recorded NetworkSettings: the
result does not depend on the order concurrent joins happen in. The default bridge and the other
built-in networks resolve no names, as Docker's default bridge does not.
"""

from __future__ import annotations

from collections.abc import Iterable

from dockyard.core.containers import Container
from dockyard.core.engine import Engine

__all__ = ["MARKER", "refresh_peers"]

MARKER = "# dockyard: containers on the same user-defined networks"


def _user_networks(container: Container) -> dict[str, tuple[str, list[str]]]:
    """The user-defined networks the container is attached to now: name -> (address, aliases)."""
    endpoints = container.config.get("Dockyard", {}).get("Networks") or {}
    attached = (container.state.get("NetworkSettings") or {}).get("Networks") or {}
    return {
        name: (str(fields.get("IPAddress") or ""), list(endpoints[name].get("Aliases") or []))
        for name, fields in attached.items()
        if name in endpoints and endpoints[name].get("UserDefined") and fields.get("IPAddress")
    }


def _peer_lines(member: Container, members: Iterable[Container]) -> list[str]:
    own = _user_networks(member)
    lines = []
    for peer in members:
        if peer.id == member.id:
            continue
        for name, (address, aliases) in _user_networks(peer).items():
            if name in own:
                names = dict.fromkeys([peer.name, *aliases, peer.id[:12]])
                lines.append(f"{address}\t{' '.join(names)}")
    return lines


def _rewrite(container: Container, lines: list[str]) -> None:
    """Replace what follows the marker in the container's hosts file, keeping its inode."""
    try:
        with open(container.path("hosts"), "r+") as hosts:
            own = hosts.read().split(MARKER, 1)[0].rstrip("\n") + "\n"
            text = own + (MARKER + "\n" + "\n".join(lines) + "\n" if lines else "")
            hosts.seek(0)
            hosts.write(text)
            hosts.truncate()
    except FileNotFoundError:
        return  # removed meanwhile: nobody reads it any more


def refresh_peers(engine: Engine, container: Container, *, left: Iterable[str] = ()) -> None:
    """After `container` joined or left its user-defined networks: rewrite the hosts file of
    every container on those networks (the container's own included); `left` names networks it
    is no longer recorded on, whose members must forget it too."""
    touched = (
        set(left)
        | set(_user_networks(container))
        | {
            name
            for name, endpoint in (container.config.get("Dockyard", {}).get("Networks") or {}).items()
            if endpoint.get("UserDefined")
        }
    )
    if not touched:
        return
    with engine.networks.locked():
        members: list[Container] = [
            member for member in engine.containers.list() if set(_user_networks(member)) & touched
        ]
        for member in {member.id: member for member in [*members, container]}.values():
            _rewrite(member, _peer_lines(member, members))
