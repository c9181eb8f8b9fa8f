"""The bridge driver's firewall: one nftables table, `inet dockyard`, driven through `nft -f -`.

The table masquerades the bridge's outbound traffic and, for published ports, DNATs host
addresses (prerouting) and the host's own traffic, 127.0.0.1 included (output), to the
container. Loopback-sourced packets leaving on the bridge are masqueraded to the gateway so the
container can answer them. Every per-container rule carries the comment `dockyard:<id>`, which is
how `remove_rules` finds it; the whole table goes when the last container detaches. The default
network's table is `inet dockyard`; each user-defined network has its own (`inet dockyard_<id>`).
"""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv4Address, IPv4Network

from dockyard.core.drivers import PortMapping
from dockyard.core.errors import DriverFailed, DriverPrerequisites
from dockyard.plugins.network.bridge import BRIDGE, USER_BRIDGE_PREFIX

__all__ = ["add_rules", "create_table", "delete_table", "remove_rules"]

TABLE = "inet dockyard"


def _nft(*args: str, script: str = "") -> str:
    """Run `nft` (with `script` on stdin when given); its stdout, or DriverFailed with its stderr."""
    try:
        result = subprocess.run(["nft", *args], input=script, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise DriverPrerequisites("the bridge network needs the nft command (Debian: nftables)") from exc
    if result.returncode != 0:
        raise DriverFailed(f"nft failed: {result.stderr.strip()}")
    return result.stdout


def create_table(*, bridge: str, subnet: IPv4Network, table: str = TABLE, internal: bool = False) -> None:
    """(Re)create the table with its chains and the masquerade rules, replacing a stale one.

    The forward chain keeps networks apart as Docker does: nothing from this bridge is forwarded
    to another of ours (`dockyard0`, `dy-*`), and each network's table says so for its own
    bridge, so no pair of networks talks either way. An `internal` network gets no masquerade
    and drops whatever would enter or leave the bridge from or to any other link: its
    containers reach only each other.
    """
    if internal:
        forward = f"""
        iifname "{bridge}" oifname != "{bridge}" drop
        oifname "{bridge}" iifname != "{bridge}" drop"""
    else:
        forward = "".join(
            f"""
        iifname "{bridge}" oifname "{other}" oifname != "{bridge}" drop"""
            for other in (BRIDGE, f"{USER_BRIDGE_PREFIX}*")
        )
    masquerade = "" if internal else f'ip saddr {subnet} oifname != "{bridge}" masquerade'
    _nft(
        "-f",
        "-",
        script=f"""
add table {table}
delete table {table}
table {table} {{
    chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
    chain output {{ type nat hook output priority -100; policy accept; }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        {masquerade}
        ip saddr 127.0.0.0/8 oifname "{bridge}" masquerade
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;{forward}
    }}
}}
""",
    )


def delete_table(table: str = TABLE) -> None:
    """Remove the table and everything in it; a missing table is already removed."""
    _nft("-f", "-", script=f"add table {table}\ndelete table {table}\n")


def add_rules(
    container_id: str, *, address: IPv4Address, ports: tuple[PortMapping, ...], table: str = TABLE
) -> None:
    """DNAT each of `ports` to the container at `address`, from other hosts and from this one."""
    lines: list[str] = []
    for port in ports:
        match = "fib daddr type local" if port.host_ip in ("", "0.0.0.0") else f"ip daddr {port.host_ip}"
        rule = (
            f"{match} {port.protocol} dport {port.host_port} "
            f'dnat ip to {address}:{port.container_port} comment "dockyard:{container_id}"'
        )
        lines.extend(f"add rule {table} {chain} {rule}" for chain in ("prerouting", "output"))
    if lines:
        _nft("-f", "-", script="\n".join(lines) + "\n")


def remove_rules(container_id: str, *, table: str = TABLE) -> None:
    """Delete every rule commented `dockyard:<container_id>`; none left is already removed."""
    listing = _nft("-j", "-a", "list", "table", *table.split()) if _table_exists(table) else ""
    comment = f"dockyard:{container_id}"
    deletes = [
        f"delete rule {table} {item['rule']['chain']} handle {item['rule']['handle']}"
        for item in (json.loads(listing)["nftables"] if listing else [])
        if "rule" in item and item["rule"].get("comment") == comment
    ]
    if deletes:
        _nft("-f", "-", script="\n".join(deletes) + "\n")


def _table_exists(table: str) -> bool:
    """Whether the table is there (listing a missing one is an error, not an empty answer)."""
    return any(line.split()[1:] == table.split() for line in _nft("list", "tables").splitlines())
