"""A stored container turned into the `ContainerSpec` an isolation driver starts, at each start.

Docker's rules live here: ENTRYPOINT and CMD, the environment (image, then `-e`, with PATH,
HOSTNAME, HOME and TERM filled in), `--user` through the image's passwd file, the working
directory, capabilities (`--cap-add`, `--cap-drop`, `--privileged`), `--security-opt`,
sysctls, limits, `--init`, and the mounts: the defaults, /etc/hostname, /etc/hosts and
/etc/resolv.conf, then volumes, binds and tmpfs in the order given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.core import defaults
from dockyard.core.containers import Container
from dockyard.core.drivers import NetworkAttachment
from dockyard.core.errors import DriverPrerequisites
from dockyard.core.spec import ContainerSpec, MountSpec, NamespaceSpec, ProcessSpec, Resources, User
from dockyard.core.users import resolve_user
from dockyard.core.volumes import VolumeStore

__all__ = ["ETC_FILES", "all_capabilities", "build_spec", "process_args", "process_env"]

# Static binaries only: the init runs inside images that may have no dynamic loader at all.
INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/catatonit", "/usr/libexec/podman/catatonit")
# The files of /etc every container gets its own copy of, bind-mounted from its directory.
ETC_FILES = ("hostname", "hosts", "resolv.conf")


def process_args(config: dict[str, Any]) -> list[str]:
    """Docker's rule: ENTRYPOINT followed by CMD (already overridden by the run's arguments)."""
    return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]


def process_env(config: dict[str, Any], *, hostname: str, home: str, tty: bool) -> list[str]:
    """The process environment: the container's Env plus the variables Docker always sets."""
    env = list(config.get("Env") or [])
    keys = {entry.partition("=")[0] for entry in env}
    if "PATH" not in keys:
        env.insert(0, f"PATH={defaults.DEFAULT_PATH}")
    env.append(f"HOSTNAME={hostname}")
    if tty and "TERM" not in keys:
        env.append("TERM=xterm")
    if "HOME" not in keys:
        env.append(f"HOME={home}")
    return env


def all_capabilities() -> tuple[str, ...]:
    """Every capability this kernel knows (`--privileged`)."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    return tuple(name for number, name in enumerate(defaults.CAPABILITY_NAMES) if number <= last)


def _capabilities(host: dict[str, Any]) -> tuple[str, ...]:
    if host.get("Privileged"):
        return all_capabilities()
    caps = list(defaults.DEFAULT_CAPABILITIES)
    for cap in host.get("CapAdd") or []:
        if cap == "ALL":
            caps = list(all_capabilities())
        elif cap not in caps:
            caps.append(cap)
    for cap in host.get("CapDrop") or []:
        caps = [] if cap == "ALL" else [existing for existing in caps if existing != cap]
    return tuple(caps)


def _security(host: dict[str, Any]) -> tuple[bool, str | None]:
    no_new_privileges = False
    seccomp: str | None = None if host.get("Privileged") else defaults.DEFAULT_SECCOMP_PROFILE
    for option in host.get("SecurityOpt") or []:
        key, sep, value = option.partition("=")
        if not sep:
            key, _, value = key.partition(":")
        if key == "no-new-privileges":
            no_new_privileges = (value or "true") == "true"
        elif key == "seccomp":
            seccomp = None if value == "unconfined" else value
    return no_new_privileges, seccomp


def _write_etc_files(container: Container, hostname: str, network: NetworkAttachment) -> list[MountSpec]:
    hosts = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    hosts.extend(f"{address}\t{name}" for name, address in network.extra_hosts)
    if network.ip_address:
        hosts.append(f"{network.ip_address}\t{hostname}")
    elif network.netns_path is None:
        hosts.append(f"127.0.1.1\t{hostname}")
    container.path("hosts").write_text("\n".join(hosts) + "\n")
    container.path("hostname").write_text(hostname + "\n")
    if network.dns_servers:
        resolv = "".join(f"nameserver {server}\n" for server in network.dns_servers)
    else:
        resolv = _host_resolv_conf(keep_loopback=network.netns_path is None)
    container.path("resolv.conf").write_text(resolv)
    return [
        MountSpec(f"/etc/{name}", "bind", str(container.path(name)), ("rbind", "rprivate"))
        for name in ETC_FILES
    ]


def _shared_etc_files(directory: Path) -> list[MountSpec]:
    """Bind another container's hostname, hosts and resolv.conf, as Docker shares them."""
    return [
        MountSpec(f"/etc/{name}", "bind", str(directory / name), ("rbind", "rprivate"))
        for name in ("hostname", "hosts", "resolv.conf")
    ]


def _host_resolv_conf(*, keep_loopback: bool) -> str:
    """The host's resolv.conf; loopback name servers are useless from another network namespace."""
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return ""
    kept = [
        line
        for line in lines
        if keep_loopback
        or not (
            line.startswith("nameserver")
            and line.split()[1:2]
            and line.split()[1].startswith(("127.", "::1"))
        )
    ]
    return "\n".join(kept) + "\n"


def _user_mounts(container: Container, volumes: VolumeStore) -> list[MountSpec]:
    mounts = []
    for record in container.config["HostConfig"].get("Mounts") or []:
        options = ("rbind", "rprivate") + (() if record["RW"] else ("ro",))
        if record["Type"] == "bind":
            mounts.append(MountSpec(record["Destination"], "bind", record["Source"], options))
        elif record["Type"] == "volume":
            source = volumes.get(record["Name"])["Mountpoint"]
            mounts.append(MountSpec(record["Destination"], "bind", source, options))
        else:
            tmpfs_options = ("nosuid", "nodev", "noexec", *record.get("Options", ()))
            mounts.append(MountSpec(record["Destination"], "tmpfs", "tmpfs", tmpfs_options))
    return mounts


def _init_binary() -> str:
    for candidate in INIT_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise DriverPrerequisites("--init needs a static tini or catatonit: install Debian's tini package")


def _runtime_dir(container: Container) -> Path:
    path = container.path("runtime")
    path.mkdir(exist_ok=True)
    return path


def build_spec(
    container: Container,
    *,
    rootfs: Path,
    network: NetworkAttachment,
    volumes: VolumeStore,
    cgroup_parent: str,
    etc_from: Path | None = None,
) -> ContainerSpec:
    """The spec for starting `container` on `rootfs` with its network already attached;
    `etc_from` is another container's directory whose hostname, hosts and resolv.conf it shares
    (`--network container:NAME`)."""
    config = container.config["Config"]
    host = container.config["HostConfig"]
    hostname = config.get("Hostname") or container.id[:12]
    user = resolve_user(str(rootfs), config.get("User") or "")
    no_new_privileges, seccomp = _security(host)
    privileged = bool(host.get("Privileged"))
    namespaces = [NamespaceSpec(kind) for kind in ("pid", "mount", "uts", "ipc", "cgroup")]
    if network.netns_path is not None:
        namespaces.append(NamespaceSpec("network", network.netns_path))
    memory = int(host.get("Memory") or 0)
    swap = int(host.get("MemorySwap") or 0)
    process = ProcessSpec(
        args=tuple(process_args(config)),
        env=tuple(process_env(config, hostname=hostname, home=user.home, tty=bool(config.get("Tty")))),
        cwd=config.get("WorkingDir") or "/",
        user=User(uid=user.uid, gid=user.gid, additional_gids=user.additional_gids),
        terminal=bool(config.get("Tty")),
        capabilities=_capabilities(host),
        no_new_privileges=no_new_privileges,
        seccomp_profile=seccomp,
    )
    mounts = [
        *defaults.default_mounts(),
        *(_shared_etc_files(etc_from) if etc_from else _write_etc_files(container, hostname, network)),
        *_user_mounts(container, volumes),
    ]
    return ContainerSpec(
        id=container.id,
        rootfs=str(rootfs),
        process=process,
        hostname=hostname,
        mounts=tuple(mounts),
        namespaces=tuple(namespaces),
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        masked_paths=() if privileged else tuple(defaults.MASKED_PATHS),
        readonly_paths=() if privileged else tuple(defaults.READONLY_PATHS),
        sysctls=tuple(sorted((host.get("Sysctls") or {}).items())),
        resources=Resources(
            memory=memory or None,
            memory_swap=(swap if swap else None) if memory else None,
            cpus=(host.get("NanoCpus") or 0) / 1e9 or None,
            pids=host.get("PidsLimit") or None,
        ),
        init=_init_binary() if host.get("Init") else None,
        host_devices=privileged,
        cgroup_path=f"{cgroup_parent}/{container.id}",
        # A directory of the driver's own: the oci driver writes its bundle's config.json there.
        state_dir=str(_runtime_dir(container)),
    )
