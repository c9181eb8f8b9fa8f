"""Container sysctls: which keys a container may set, and writing them under its /proc/sys.

Only keys the kernel scopes to a namespace the container owns are allowed, the list Docker and runc
allow: `net.*` with a private network namespace, `kernel.shm*`, `kernel.msg*`, `kernel.sem` and
`fs.mqueue.*` with a private IPC namespace. Anything else would change the host. Values must be
one plain setting: a `+`, `=`, newline or NUL could smuggle a second one into tools that parse
`key=value` lists (the CVE-2022-0811 pattern), so they are refused here even though Dockyard writes
each value to its own file.
"""

from __future__ import annotations

import re

from dockyard.core.errors import UsageError

__all__ = ["validate_sysctls", "write_sysctls"]

_KEY = re.compile(r"[a-z0-9_]+(?:\.[A-Za-z0-9_@:-]+)+")
_IPC_KEYS = re.compile(r"kernel\.(?:shm[a-z_]*|msg[a-z_]*|sem)|fs\.mqueue\.[a-z_]+")
_FORBIDDEN = ("+", "=", "\n", "\r", "\0")


def validate_sysctls(
    sysctls: tuple[tuple[str, str], ...], *, private_network: bool, private_ipc: bool
) -> None:
    """Raise UsageError for a key outside the container's namespaces or a smuggling value."""
    for key, value in sysctls:
        if not _KEY.fullmatch(key):
            raise UsageError(f"invalid sysctl name {key!r}")
        if any(mark in value for mark in _FORBIDDEN):
            raise UsageError(
                f"invalid value for sysctl {key}: {value!r} (one plain value only: no '+', '=' or newlines)"
            )
        if key.startswith("net."):
            if not private_network:
                raise UsageError(f"sysctl {key} is not allowed with the host's network namespace")
        elif _IPC_KEYS.fullmatch(key):
            if not private_ipc:
                raise UsageError(f"sysctl {key} is not allowed with the host's IPC namespace")
        else:
            raise UsageError(
                f"sysctl {key} is not allowed: only net.*, kernel.shm*, kernel.msg*, kernel.sem and "
                "fs.mqueue.* are scoped to a container's namespaces"
            )


def write_sysctls(sysctls: tuple[tuple[str, str], ...]) -> None:
    """Write validated sysctls under /proc/sys (call it inside the container's mount namespace)."""
    for key, value in sysctls:
        with open(f"/proc/sys/{key.replace('.', '/')}", "w", encoding="ascii") as file:
            file.write(value)
