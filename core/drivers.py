"""The driver contracts: what a storage, network or isolation driver implements.

A driver is registered, not imported: a plugin's `dockyard_register_drivers(register)` hook calls
`register.storage(...)`, `register.network(...)` or `register.isolation(...)` with a factory. The core
builds a driver with a context (where its state lives, its options) and talks to it only through the
protocols below. Construction does no I/O; `available()` says whether this host can use the driver
and, if not, why.

Storage follows the containers/storage split: base operations (create, create read-write, remove,
mount, unmount, exists, status, cleanup) and diff operations (apply diff, diff, changes, diff size).
Layer and container ids are opaque to the driver; the core hands it 64-hex names.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable

from dockyard.core.errors import DriverNotSupported, DriverPrerequisites, NotFoundError

if TYPE_CHECKING:
    from dockyard.core.spec import ContainerSpec, ProcessSpec

__all__ = [
    "Availability",
    "Change",
    "ChangeKind",
    "DetachedDiffs",
    "DriverContext",
    "DriverEntry",
    "DriverKind",
    "DriverRegistry",
    "IsolationDriver",
    "LayerDiff",
    "NamedNetworkDriver",
    "NetworkAttachment",
    "NetworkConfig",
    "NetworkDriver",
    "PortMapping",
    "ResourceUsage",
    "StagedDiff",
    "StorageDriver",
    "select_driver",
]


class DriverKind(enum.StrEnum):
    """The three kinds of driver a container is assembled from."""

    STORAGE = "storage"
    NETWORK = "network"
    ISOLATION = "isolation"


@dataclass(frozen=True)
class Availability:
    """Whether a driver can be used on this host; `reason` explains a refusal.

    `missing` distinguishes "install something and it will work" (prerequisites missing) from "this host
    cannot run it" (not supported), the two refusals a user acts on differently. `automatic` False
    means usable when named but passed over by automatic selection here, `reason` saying why (a
    rootless user's default network must reach somewhere, so an isolated one waits to be asked for).
    """

    usable: bool
    reason: str = ""
    missing: bool = False
    automatic: bool = True

    def raise_if_unusable(self, name: str) -> None:
        """Raise the matching driver error when the driver cannot be used."""
        if self.usable:
            return
        error = DriverPrerequisites if self.missing else DriverNotSupported
        raise error(f"{name} driver unavailable: {self.reason}")


@dataclass(frozen=True)
class DriverContext:
    """What a driver is given when it is built: its own state directory and its options."""

    home: Path
    run_dir: Path
    rootless: bool
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerDiff:
    """What applying a layer diff produced: the uncompressed tar's digest and its size in bytes."""

    digest: str
    size: int


class ChangeKind(enum.StrEnum):
    """One letter per change, as `docker diff` prints them."""

    ADDED = "A"
    CHANGED = "C"
    DELETED = "D"


@dataclass(frozen=True)
class Change:
    """A path (absolute inside the container) and how it differs from the parent layer."""

    path: str
    kind: ChangeKind


@runtime_checkable
class StorageDriver(Protocol):
    """Layers and container root filesystems on one kind of storage."""

    name: str

    def available(self) -> Availability:
        """Say whether this host can use the driver, and why not."""

    def status(self) -> dict[str, str]:
        """Key/value facts for `dockyard info` (backing filesystem, layer count, ...)."""

    def create_layer(self, layer_id: str, parent: str | None) -> None:
        """Create an empty read-only layer on top of `parent` (None for a base layer)."""

    def create_rw(self, container_id: str, parent: str | None) -> None:
        """Create a container's read-write layer on top of an image's top layer."""

    def exists(self, layer_id: str) -> bool:
        """Whether the layer or container layer exists."""

    def remove(self, layer_id: str) -> None:
        """Remove a layer; removing a mounted layer raises a ConflictError."""

    def mount(self, layer_id: str) -> Path:
        """Make the layer's full tree available and return where; mounts are reference counted."""

    def unmount(self, layer_id: str) -> None:
        """Drop one reference taken by `mount`, unmounting when none remain."""

    def apply_diff(self, layer_id: str, archive: BinaryIO) -> LayerDiff:
        """Apply an uncompressed OCI layer tar (whiteouts included) to an empty layer.

        Nothing outside the layer may be created, changed or removed, whatever the archive holds.
        """

    def diff(self, layer_id: str) -> Iterator[bytes]:
        """The layer's changes against its parent as an OCI layer tar stream, in chunks."""

    def changes(self, layer_id: str) -> list[Change]:
        """The layer's changes against its parent, path by path."""

    def diff_size(self, layer_id: str) -> int:
        """The size in bytes of what the layer adds to its parent."""

    def cleanup(self) -> None:
        """Release whatever the driver holds for this process (mounts it no longer needs)."""


@dataclass(frozen=True)
class StagedDiff:
    """A layer diff applied into a driver's scratch space but not yet a layer: what the archive
    produced, and where the driver keeps it until `DetachedDiffs.commit_diff`."""

    diff: LayerDiff
    location: Path


@runtime_checkable
class DetachedDiffs(Protocol):
    """Optional storage capability: applying a layer's diff apart from its parent, so an image's
    layers can be applied at the same time, each straight from its download.

    A driver whose layer holds only the layer's own entries (overlay: whiteouts are recorded, not
    carried out, and a layer never starts as a copy or snapshot of its parent) declares it by
    implementing these two methods; the core checks with `isinstance`. Drivers without it (vfs,
    btrfs) get `create_layer` and `apply_diff`, one layer after another.

    The core stages every missing layer of an image concurrently, each in a child process forked
    for it, checks each diff's digest, then commits them bottom first, so a parent is always
    committed before its child. `commit_diff` runs in the parent while the child still holds the
    `stage_diff` context open: a driver keeps nothing a commit needs outside the filesystem and
    the StagedDiff (which must pickle). A staged diff nothing can see until it is committed;
    leaving the context manager `stage_diff` returned discards whatever was not committed (a
    digest mismatch, a failed sibling), and a killed process leaves only scratch space for
    `cleanup()`. `commit_diff` need not flush anything to disk: the core flushes the filesystem
    after the command, under a note that undoes the image if the machine goes down first.
    """

    def stage_diff(self, archive: BinaryIO, *, base: bool) -> AbstractContextManager[StagedDiff]:
        """Apply an uncompressed layer tar into private scratch space; `base` says the layer will
        have no parent (whiteouts then hide nothing and may simply be carried out)."""

    def commit_diff(self, staged: StagedDiff, layer_id: str, parent: str | None) -> None:
        """Make a staged diff the layer `layer_id` on `parent` (which exists), atomically."""


@runtime_checkable
class NetworkDriver(Protocol):
    """Network attachments for containers: validate, set up, tear down (idempotently).

    `attach` runs before the container starts and returns the network namespace the container
    must join (a path) or None to share the host's; `detach` frees everything `attach` took and
    is safe to call twice.
    """

    name: str

    def available(self) -> Availability:
        """Say whether this host can use the driver, and why not."""

    def attach(
        self, container_id: str, *, hostname: str, ports: tuple[PortMapping, ...] = ()
    ) -> NetworkAttachment:
        """Prepare the container's network before it starts and publish `ports` on the host
        (a driver whose containers cannot be reached from the host ignores them)."""

    def detach(self, container_id: str) -> None:
        """Release the container's network; idempotent, best effort."""


@dataclass(frozen=True)
class NetworkConfig:
    """A user-defined network (`network create`) as its driver sees it.

    `subnet` and `gateway` are "" when the user gave none; `create_network` fills them in.
    `id` is the 64-hex id the core gave the network, stable for its lifetime.
    """

    name: str
    id: str
    subnet: str = ""
    gateway: str = ""
    internal: bool = False
    options: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class NamedNetworkDriver(NetworkDriver, Protocol):
    """A network driver that also serves user-defined networks (optional, on top of NetworkDriver).

    A driver without these methods still serves its built-in network (named after the driver)
    through `attach`/`detach`; `network create --driver NAME` refuses it. The core keeps the
    network records and the containers' /etc/hosts; the driver keeps its kernel objects and
    addresses. A container on several networks gets one `attach_network` per network, in order:
    the first (`netns_path` None) creates the namespace, the later ones join it with
    `interface` eth1, eth2, ...
    """

    def create_network(self, network: NetworkConfig) -> NetworkConfig:
        """Validate `network` and return it with its subnet and gateway chosen; an overlap with
        another network or a host route is a ConflictError, a malformed value a UsageError."""

    def remove_network(self, network: NetworkConfig) -> None:
        """Forget a network no container is attached to; idempotent."""

    def attach_network(
        self,
        container_id: str,
        *,
        network: NetworkConfig,
        hostname: str,
        aliases: tuple[str, ...] = (),
        ports: tuple[PortMapping, ...] = (),
        netns_path: str | None = None,
        interface: str = "eth0",
    ) -> NetworkAttachment:
        """Connect the container to `network`: in a new namespace when `netns_path` is None,
        else as `interface` inside that one. `aliases` are the extra names peers know it by."""

    def detach_network(self, container_id: str, *, network: NetworkConfig) -> None:
        """Undo `attach_network` for this network (the namespace goes with the attachment that
        created it); idempotent, best effort."""


@dataclass(frozen=True)
class PortMapping:
    """One published port: host address and port to container port, `tcp` or `udp`.

    `host_ip` "" means every host address; `host_port` is always a concrete port here (the core
    has already picked one for `-p 80`).
    """

    container_port: int
    protocol: str
    host_ip: str
    host_port: int


@dataclass(frozen=True)
class NetworkAttachment:
    """What a network driver set up: the namespace to join (None: the host's) and the names
    and addresses the container's /etc/hosts and /etc/resolv.conf should carry."""

    netns_path: str | None
    ip_address: str = ""
    gateway: str = ""
    mac_address: str = ""
    dns_servers: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()
    prefix_length: int = 0
    ports: tuple[PortMapping, ...] = ()


@dataclass(frozen=True)
class ResourceUsage:
    """A container's resource use, for `stats` and `top`."""

    cpu_seconds: float = 0.0
    memory_bytes: int = 0
    memory_limit: int = 0
    pids: int = 0
    # Bytes read from and written to block devices, 0 where the driver cannot tell.
    block_read: int = 0
    block_write: int = 0


@runtime_checkable
class IsolationDriver(Protocol):
    """Starts container processes inside their isolation and joins them for exec.

    `start` and `exec` are called in a process that has made itself a child subreaper
    (PR_SET_CHILD_SUBREAPER) and that exits right after: the driver may fork as it needs, and the
    process whose pid it returns is reparented to the caller's parent, the monitor or the CLI,
    which waits for it. Before the container's program runs, every file descriptor above 2 must be
    closed or close-on-exec, and a process entering a container must be non-dumpable.
    """

    name: str

    def available(self) -> Availability:
        """Say whether this host can use the driver, and why not."""

    def start(self, spec: ContainerSpec, *, stdio: tuple[int, int, int], console: int | None = None) -> int:
        """Start the container's first process with these descriptors as 0, 1, 2; return its pid.

        With `spec.process.terminal` the caller passes `console`, one end of a connected unix
        socket, instead of a terminal in `stdio`: the driver makes the process's pseudo-terminal
        from the container's own devpts (so `tty` names a /dev/pts/N that exists inside), makes
        its slave the process's 0, 1, 2 and controlling terminal, and sends the master over
        `console` (SCM_RIGHTS, one byte of data) before it returns. `stdio` is then unused.
        Without `console` a terminal process gets `stdio[0]` as its controlling terminal.
        """

    def exec(
        self,
        spec: ContainerSpec,
        *,
        pid: int,
        process: ProcessSpec,
        stdio: tuple[int, int, int],
        console: int | None = None,
    ) -> int:
        """Start `process` inside the running container whose first process is `pid`; `console`
        as for `start`, when `process.terminal`."""

    def delete(self, spec: ContainerSpec) -> None:
        """Release what `start` took beyond the process (cgroups, bundles); idempotent."""

    def pause(self, spec: ContainerSpec) -> None:
        """Freeze every process of the container."""

    def resume(self, spec: ContainerSpec) -> None:
        """Thaw a paused container."""

    def usage(self, spec: ContainerSpec) -> ResourceUsage:
        """Current resource use of the container's processes."""


DriverFactory = Callable[[DriverContext], object]


@dataclass(frozen=True)
class DriverEntry:
    """One registered driver: its kind, name, how to build it, who registered it, its priority.

    A higher priority wins automatic selection; 0 means "only when named or already in use".
    `target` is the factory or its import string (`module:attribute`); a string is imported only
    when `factory` is asked for, so registering a driver costs nothing until it is built.
    """

    kind: DriverKind
    name: str
    target: DriverFactory | str
    plugin: str
    priority: int = 0
    description: str = ""

    @property
    def factory(self) -> DriverFactory:
        """The callable that builds the driver, imported now when it was registered by name."""
        if isinstance(self.target, str):
            from dockyard.core.entrypoints import load_import_string

            factory: DriverFactory = load_import_string(self.target)
            return factory
        return self.target


class DriverRegistry:
    """Collects the drivers plugins register; passed to `dockyard_register_drivers`."""

    def __init__(self) -> None:
        self._entries: dict[tuple[DriverKind, str], DriverEntry] = {}

    def _add(self, entry: DriverEntry) -> None:
        key = (entry.kind, entry.name)
        if key in self._entries:
            other = self._entries[key].plugin
            raise ValueError(f"{entry.kind} driver {entry.name!r} registered twice ({other}, {entry.plugin})")
        self._entries[key] = entry

    def storage(
        self,
        name: str,
        factory: DriverFactory | str,
        *,
        plugin: str,
        priority: int = 0,
        description: str = "",
    ) -> None:
        """Register a storage driver built by `factory(context)`; `factory` may be an import
        string (`module:attribute`), imported only when the driver is built."""
        self._add(DriverEntry(DriverKind.STORAGE, name, factory, plugin, priority, description))

    def network(
        self,
        name: str,
        factory: DriverFactory | str,
        *,
        plugin: str,
        priority: int = 0,
        description: str = "",
    ) -> None:
        """Register a network driver built by `factory(context)`."""
        self._add(DriverEntry(DriverKind.NETWORK, name, factory, plugin, priority, description))

    def isolation(
        self,
        name: str,
        factory: DriverFactory | str,
        *,
        plugin: str,
        priority: int = 0,
        description: str = "",
    ) -> None:
        """Register an isolation driver built by `factory(context)`."""
        self._add(DriverEntry(DriverKind.ISOLATION, name, factory, plugin, priority, description))

    def of_kind(self, kind: DriverKind) -> list[DriverEntry]:
        """Every driver of one kind, highest priority first, then by name."""
        found = [entry for (k, _), entry in self._entries.items() if k is kind]
        return sorted(found, key=lambda entry: (-entry.priority, entry.name))

    def get(self, kind: DriverKind, name: str) -> DriverEntry:
        """The named driver, or a NotFoundError that lists the ones there are."""
        try:
            return self._entries[(kind, name)]
        except KeyError:
            names = ", ".join(entry.name for entry in self.of_kind(kind)) or "none"
            raise NotFoundError(f"unknown {kind} driver {name!r} (available: {names})") from None


def select_driver(
    registry: DriverRegistry,
    kind: DriverKind,
    *,
    explicit: str | None,
    in_use: Callable[[str], bool],
    build: Callable[[DriverEntry], object],
) -> DriverEntry:
    """Pick a driver: the one named, else the one whose state is already on disk, else by priority.

    `in_use(name)` tells whether a driver has state on disk; `build(entry)` makes a driver so its
    availability can be asked. A named driver that this host cannot use raises its refusal; when no
    driver is usable (or usable drivers are only for naming) every refusal is listed, drivers
    refused for the same reason together.
    """
    if explicit:
        return registry.get(kind, explicit)
    entries = registry.of_kind(kind)
    for entry in entries:
        if in_use(entry.name):
            return entry
    refusals: dict[str, list[str]] = {}
    for entry in entries:
        if entry.priority <= 0:
            continue
        availability = _availability(build(entry))
        if availability.usable and availability.automatic:
            return entry
        if not availability.usable:
            refusals.setdefault(availability.reason, []).append(entry.name)
    detail = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in refusals.items())
    raise DriverNotSupported(f"no usable {kind} driver ({detail or 'no driver registered'})")


def _availability(driver: object) -> Availability:
    check = getattr(driver, "available", None)
    if check is None:
        return Availability(False, "driver has no available() method")
    result = check()
    if not isinstance(result, Availability):
        return Availability(False, "driver's available() did not return an Availability")
    return result
