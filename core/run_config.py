"""`create`/`run` flags turned into the container's stored configuration, Docker's shape.

Everything the user can get wrong is checked here, before anything is created, so a bad flag is
one line and exit status 125 with nothing left behind. The result is the `Config` and
`HostConfig` that `inspect` shows and that the container spec is built from at each start.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.core.errors import UsageError

__all__ = ["CreateOptions", "RestartPolicy", "environment", "merge_env", "parse_restart", "to_records"]

NAMESPACED_SYSCTL_PREFIXES = ("net.", "fs.mqueue.", "kernel.shm", "kernel.msg")
NAMESPACED_SYSCTLS = ("kernel.sem", "kernel.domainname", "kernel.hostname")
_SIGNAL = re.compile(r"(SIG)?[A-Z0-9+-]+|\d+")


@dataclass
class CreateOptions:
    """The flags `docker create` and `docker run` share, as the CLI collected them."""

    image: str
    command: list[str] = field(default_factory=list)
    name: str | None = None
    entrypoint: str | None = None
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    restart: str = "no"
    volumes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)
    sysctls: list[str] = field(default_factory=list)
    read_only: bool = False
    memory: str | None = None
    memory_swap: str | None = None
    cpus: str | None = None
    pids_limit: int | None = None
    init: bool = False
    network: str | None = None
    network_aliases: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    labels: list[str] = field(default_factory=list)
    stop_signal: str | None = None
    stop_timeout: int | None = None
    runtime: str | None = None
    pull: str = "missing"
    attach_stdout: bool = True
    attach_stderr: bool = True


@dataclass(frozen=True)
class RestartPolicy:
    """`--restart`: no, on-failure[:N], always, unless-stopped."""

    name: str
    maximum_retry_count: int = 0


def parse_restart(text: str) -> RestartPolicy:
    """Parse a `--restart` value the way Docker does."""
    name, _, count = text.partition(":")
    if name not in ("no", "on-failure", "always", "unless-stopped"):
        raise UsageError(f"invalid restart policy {text!r}")
    if count and name != "on-failure":
        raise UsageError(f"maximum retry count cannot be used with restart policy '{name}'")
    if count and (not count.isdigit()):
        raise UsageError(f"invalid restart policy {text!r}: maximum retry count must be a number")
    return RestartPolicy(name, int(count or 0))


def environment(env: list[str], env_files: list[str]) -> list[str]:
    """`-e` and `--env-file` entries as Docker reads them: files first, `NAME` alone takes the
    caller's value (and is dropped when the caller has none)."""
    entries: list[str] = []
    for env_file in env_files:
        try:
            lines = Path(env_file).read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"open {env_file}: {exc.strerror}") from exc
        entries.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    entries.extend(env)
    result = []
    for entry in entries:
        key, sep, _ = entry.partition("=")
        if not key or any(ch.isspace() for ch in key):
            raise UsageError(f"invalid environment variable: {entry}")
        if sep:
            result.append(entry)
        elif key in os.environ:
            result.append(f"{key}={os.environ[key]}")
    return result


def _sysctls(values: list[str]) -> dict[str, str]:
    sysctls: dict[str, str] = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid sysctl value {value!r}: expected KEY=VALUE")
        if not (key.startswith(NAMESPACED_SYSCTL_PREFIXES) or key in NAMESPACED_SYSCTLS):
            raise UsageError(f"sysctl {key!r} is not allowed: it is not namespaced")
        if any(char in setting for char in "\n\r=+") or any(char in key for char in "\n\r+ "):
            raise UsageError(f"invalid sysctl value {value!r}: it would set more than one key")
        sysctls[key] = setting
    return sysctls


def _security(options: CreateOptions) -> list[str]:
    allowed = []
    for option in options.security_opt:
        key, sep, value = option.partition("=")
        colon_value = ""
        if not sep:
            key, _, colon_value = key.partition(":")
        if key == "no-new-privileges":
            setting = value or colon_value or "true"
            if setting not in ("true", "false"):
                raise UsageError(f"invalid --security-opt {option!r}")
        elif key == "seccomp" and (value or colon_value):
            profile = value or colon_value
            if profile != "unconfined" and not Path(profile).is_file():
                raise UsageError(f"opening seccomp profile ({profile}) failed: no such file")
        elif key in ("label", "apparmor"):
            pass  # accepted for compatibility: this engine applies neither SELinux nor AppArmor
        else:
            raise UsageError(f"invalid --security-opt: {option!r}")
        allowed.append(option)
    return allowed


def _capabilities(values: list[str]) -> list[str]:
    caps = []
    for value in values:
        name = value.upper()
        if name != "ALL" and not name.startswith("CAP_"):
            name = "CAP_" + name
        if not re.fullmatch(r"ALL|CAP_[A-Z_]+", name):
            raise UsageError(f"invalid capability {value!r}")
        caps.append(name)
    return caps


def _resources(options: CreateOptions) -> dict[str, int]:
    from dockyard.core.units import parse_size

    memory = parse_size(options.memory) if options.memory else 0
    if options.memory and memory < 6 * 1024 * 1024:
        raise UsageError("Minimum memory limit allowed is 6MB")
    swap = 0
    if options.memory_swap:
        swap = -1 if options.memory_swap == "-1" else parse_size(options.memory_swap)
        if not memory:
            raise UsageError("You should always set the Memory limit when using Memoryswap limit")
        if swap != -1 and swap < memory:
            raise UsageError("Minimum memoryswap limit should be larger than memory limit")
    nano_cpus = 0
    if options.cpus:
        try:
            cpus = float(options.cpus)
        except ValueError:
            raise UsageError(f"invalid argument {options.cpus!r} for --cpus") from None
        if cpus <= 0 or cpus > (os.cpu_count() or 1):
            raise UsageError(
                f"range of CPUs is from 0.01 to {os.cpu_count() or 1}.00, as there are only "
                f"{os.cpu_count() or 1} CPUs available"
            )
        nano_cpus = int(cpus * 1e9)
    if options.pids_limit is not None and options.pids_limit < -1:
        raise UsageError("invalid --pids-limit")
    return {
        "Memory": memory,
        "MemorySwap": swap,
        "NanoCpus": nano_cpus,
        "PidsLimit": options.pids_limit if options.pids_limit and options.pids_limit > 0 else 0,
    }


def _labels(values: list[str]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, _, setting = value.partition("=")
        if not key:
            raise UsageError(f"invalid label {value!r}")
        labels[key] = setting
    return labels


def _stop_signal(value: str | None) -> str | None:
    if value is None:
        return None
    if not _SIGNAL.fullmatch(value.upper()):
        raise UsageError(f"invalid signal: {value}")
    return value


def _links(links: list[str]) -> list[str]:
    """`--link NAME[:ALIAS]` entries as `NAME:ALIAS` (the alias defaults to the name)."""
    result = []
    for link in links:
        name, _, alias = link.partition(":")
        if not name or ":" in alias:
            raise UsageError(f"invalid link format: {link!r}: expected NAME[:ALIAS]")
        result.append(f"{name.removeprefix('/')}:{alias or name.removeprefix('/')}")
    return result


def to_records(options: CreateOptions, *, image_config: dict[str, Any], image_name: str) -> dict[str, Any]:
    """The `Config` and `HostConfig` of a new container, validated."""
    from dockyard.core.mounts import parse_mounts
    from dockyard.core.port_bindings import exposed_ports, parse_publish

    restart = parse_restart(options.restart)
    if options.auto_remove and restart.name != "no":
        raise UsageError("Conflicting options: --restart and --rm")
    runtime_config = image_config.get("config") or {}
    labels = dict(runtime_config.get("Labels") or {})
    labels.update(_labels(options.labels))
    entrypoint: list[str] | None
    if options.entrypoint is not None:
        entrypoint = [options.entrypoint] if options.entrypoint else []
        cmd = list(options.command)
    else:
        entrypoint = runtime_config.get("Entrypoint")
        cmd = list(options.command) or list(runtime_config.get("Cmd") or [])
    if not (entrypoint or []) + cmd:
        raise UsageError("No command specified")
    mounts = parse_mounts(options.volumes, options.mounts, options.tmpfs)
    port_bindings = parse_publish(
        options.publish, publish_all=options.publish_all, image_exposed=runtime_config.get("ExposedPorts")
    )
    config = {
        "Hostname": options.hostname or "",
        "Domainname": "",
        "User": options.user if options.user is not None else runtime_config.get("User", ""),
        "AttachStdin": options.interactive,
        "AttachStdout": options.attach_stdout,
        "AttachStderr": options.attach_stderr,
        "ExposedPorts": exposed_ports(runtime_config.get("ExposedPorts"), port_bindings),
        "Tty": options.tty,
        "OpenStdin": options.interactive,
        "StdinOnce": options.interactive,
        "Env": merge_env(runtime_config.get("Env") or [], environment(options.env, options.env_files)),
        "Cmd": cmd or None,
        "Image": image_name,
        "Volumes": runtime_config.get("Volumes"),
        "WorkingDir": options.workdir or runtime_config.get("WorkingDir") or "",
        "Entrypoint": entrypoint or None,
        "OnBuild": None,
        "Labels": labels,
        "StopSignal": _stop_signal(options.stop_signal) or runtime_config.get("StopSignal"),
        "StopTimeout": options.stop_timeout,
    }
    host_config = {
        "Binds": list(options.volumes) or None,
        "NetworkMode": options.network or "default",
        "Links": _links(options.links) or None,
        "PortBindings": port_bindings,
        "PublishAllPorts": options.publish_all,
        "RestartPolicy": {"Name": restart.name, "MaximumRetryCount": restart.maximum_retry_count},
        "AutoRemove": options.auto_remove,
        "Mounts": mounts,
        "CapAdd": _capabilities(options.cap_add) or None,
        "CapDrop": _capabilities(options.cap_drop) or None,
        "Privileged": options.privileged,
        "ReadonlyRootfs": options.read_only,
        "SecurityOpt": _security(options) or None,
        "Sysctls": _sysctls(options.sysctls) or None,
        "Init": options.init,
        "Runtime": options.runtime or "",
        **_resources(options),
    }
    return {"Config": config, "HostConfig": host_config}


def merge_env(image_env: list[str], overrides: list[str]) -> list[str]:
    """`overrides` replacing the entries of the same names in `image_env`, new names appended."""
    merged = {entry.partition("=")[0]: entry for entry in image_env}
    for entry in overrides:
        merged[entry.partition("=")[0]] = entry
    return list(merged.values())
