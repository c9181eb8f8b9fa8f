"""The container spec: everything an isolation driver needs to start a container, and nothing more.

The core builds it from the CLI's flags and the image config (`core/container_spec.py`); an
isolation driver turns it into namespaces, mounts, credentials, capabilities, seccomp and cgroup
limits. It is plain data that round-trips through JSON, because the monitor hands it to a throwaway
child process that starts the container, and because the `oci` driver writes it out as an OCI
runtime-spec `config.json`.

Paths inside the container are absolute container paths; `rootfs` and bind sources are host paths.
A namespace listed without a path is created new; one with a path is joined; a kind not listed is
shared with the host (`--network host`, `--pid host`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "ContainerSpec",
    "IdMapping",
    "MountSpec",
    "NamespaceSpec",
    "ProcessSpec",
    "Resources",
    "User",
]

NAMESPACE_KINDS = ("pid", "mount", "uts", "ipc", "network", "cgroup", "user")


@dataclass(frozen=True)
class User:
    """Numeric credentials the process runs with, resolved from the image's passwd/group files."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    umask: int = 0o022


@dataclass(frozen=True)
class ProcessSpec:
    """One process: what to run, as whom, with which privileges."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: User = field(default_factory=User)
    terminal: bool = False
    # Capability names as the kernel spells them (CAP_CHOWN, ...): the bounding, permitted and
    # effective sets of a root process. Inheritable and ambient sets are always empty; a non-root
    # user keeps none effective (Docker's rule).
    capabilities: tuple[str, ...] = ()
    no_new_privileges: bool = False
    # Path of a seccomp profile in the format of containers-common's seccomp.json, or None for
    # unconfined.
    seccomp_profile: str | None = None
    # Resource limits as (name, soft, hard), e.g. ("RLIMIT_NOFILE", 1024, 4096).
    rlimits: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class MountSpec:
    """A mount inside the container: bind, tmpfs, proc, sysfs, devpts, mqueue, ..."""

    destination: str
    type: str
    source: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class NamespaceSpec:
    """A namespace to create (path None) or to join (path of an nsfs file or /proc/PID/ns/KIND)."""

    kind: str
    path: str | None = None


@dataclass(frozen=True)
class IdMapping:
    """One line of a uid_map or gid_map: container id, host id, count."""

    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class Resources:
    """cgroup limits; None means unlimited. A driver that cannot apply one must refuse, not ignore."""

    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    pids: int | None = None


@dataclass(frozen=True)
class ContainerSpec:
    """A whole container, ready for an isolation driver."""

    id: str
    rootfs: str
    process: ProcessSpec
    hostname: str = ""
    mounts: tuple[MountSpec, ...] = ()
    namespaces: tuple[NamespaceSpec, ...] = ()
    readonly_rootfs: bool = False
    # Paths hidden (a bind of /dev/null or an empty read-only tmpfs) and remounted read-only.
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    resources: Resources = field(default_factory=Resources)
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    # A host path of an init binary (tini, catatonit) to run as PID 1 in front of the process.
    init: str | None = None
    # Every host device visible (`--privileged`) instead of the minimal /dev.
    host_devices: bool = False
    # Where the container's cgroup lives, relative to each hierarchy's root: dockyard/<id>.
    cgroup_path: str = ""
    # A directory the driver may use for its own state (OCI bundle, pid files, ...).
    state_dir: str = ""

    def namespace(self, kind: str) -> NamespaceSpec | None:
        """The namespace entry of `kind`, or None when it is shared with the host."""
        return next((ns for ns in self.namespaces if ns.kind == kind), None)

    def to_json(self) -> str:
        """Serialize for the monitor's starter process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ContainerSpec:
        """The inverse of `to_json`."""
        data: dict[str, Any] = json.loads(text)
        process = data["process"]
        return cls(
            **{
                **data,
                "process": ProcessSpec(
                    **{
                        **process,
                        "args": tuple(process["args"]),
                        "env": tuple(process["env"]),
                        "user": User(
                            **{
                                **process["user"],
                                "additional_gids": tuple(process["user"]["additional_gids"]),
                            }
                        ),
                        "capabilities": tuple(process["capabilities"]),
                        "rlimits": tuple(tuple(limit) for limit in process["rlimits"]),
                    }
                ),
                "mounts": tuple(
                    MountSpec(**{**mount, "options": tuple(mount["options"])}) for mount in data["mounts"]
                ),
                "namespaces": tuple(NamespaceSpec(**ns) for ns in data["namespaces"]),
                "masked_paths": tuple(data["masked_paths"]),
                "readonly_paths": tuple(data["readonly_paths"]),
                "sysctls": tuple(tuple(pair) for pair in data["sysctls"]),
                "resources": Resources(**data["resources"]),
                "uid_mappings": tuple(IdMapping(**m) for m in data["uid_mappings"]),
                "gid_mappings": tuple(IdMapping(**m) for m in data["gid_mappings"]),
            }
        )
