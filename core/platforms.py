"""The host's platform in OCI terms (`linux/amd64`), for configs and platform selection."""

from __future__ import annotations

import platform

__all__ = ["host_architecture", "host_os"]

_ARCHITECTURES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_architecture() -> str:
    """The OCI architecture name of this machine (GOARCH spelling)."""
    machine = platform.machine()
    return _ARCHITECTURES.get(machine, machine)


def host_os() -> str:
    """The OCI operating system name of this machine."""
    return platform.system().lower()
