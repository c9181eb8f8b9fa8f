"""A ContainerSpec written out as an OCI runtime-spec `config.json` (runtime-spec 1.0.2).

Everything the `namespaces` driver does has its OCI field, so runc, crun or gVisor run the same
container; the seccomp profile is reduced to this process and architecture by the same code
(`dockyard.core.linux.seccomp`) and embedded.
"""

from __future__ import annotations

from typing import Any

from dockyard.core.defaults import DEFAULT_DEVICE_RULES
from dockyard.core.errors import DriverFailed, DriverPrerequisites, UsageError
from dockyard.core.linux import devices
from dockyard.core.linux.cgroup_limits import CPU_PERIOD_US
from dockyard.core.linux.seccomp import Profile, load_profile
from dockyard.core.spec import ContainerSpec, MountSpec, ProcessSpec
from dockyard.plugins.isolation.rootfs import INIT_PATH

__all__ = ["OCI_VERSION", "config_for", "process_for"]

OCI_VERSION = "1.0.2"


def config_for(spec: ContainerSpec) -> dict[str, Any]:
    """The bundle's config.json for `spec` (root.path is the rootfs itself)."""
    mounts = [_mount(entry) for entry in spec.mounts]
    if spec.init:
        mounts.append(_mount(MountSpec(INIT_PATH, "bind", spec.init, ("bind", "ro", "nosuid", "nodev"))))
    linux: dict[str, Any] = {
        "namespaces": [{"type": ns.kind, **({"path": ns.path} if ns.path else {})} for ns in spec.namespaces],
        "maskedPaths": list(spec.masked_paths),
        "readonlyPaths": list(spec.readonly_paths),
        "resources": _resources(spec),
        "cgroupsPath": spec.cgroup_path or f"dockyard/{spec.id}",
    }
    if spec.uid_mappings or spec.gid_mappings:
        linux["uidMappings"] = [_mapping(m.container_id, m.host_id, m.size) for m in spec.uid_mappings]
        linux["gidMappings"] = [_mapping(m.container_id, m.host_id, m.size) for m in spec.gid_mappings]
    if spec.sysctls:
        linux["sysctl"] = dict(spec.sysctls)
    if spec.process.seccomp_profile:
        linux["seccomp"] = _seccomp(spec.process)
    if spec.host_devices:
        linux["devices"] = [
            {
                "path": f"/dev/{node.path}",
                "type": node.kind,
                "major": node.major,
                "minor": node.minor,
                "fileMode": node.mode,
                "uid": node.uid,
                "gid": node.gid,
            }
            for node in devices.host_devices()
        ]
    return {
        "ociVersion": OCI_VERSION,
        "process": process_for(spec.process, init=spec.init is not None),
        "root": {"path": spec.rootfs, "readonly": spec.readonly_rootfs},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": linux,
    }


def process_for(process: ProcessSpec, *, init: bool = False) -> dict[str, Any]:
    """The OCI `process` object (also what `runc exec --process` reads)."""
    user = process.user
    effective = list(process.capabilities) if user.uid == 0 else []
    return {
        "terminal": process.terminal,
        "user": {
            "uid": user.uid,
            "gid": user.gid,
            "umask": user.umask,
            "additionalGids": list(user.additional_gids),
        },
        "args": [INIT_PATH, "--", *process.args] if init else list(process.args),
        "env": list(process.env),
        "cwd": process.cwd,
        "capabilities": {
            "bounding": list(process.capabilities),
            "effective": effective,
            "permitted": effective,
            "inheritable": [],
            "ambient": [],
        },
        "rlimits": [
            {
                "type": name if name.upper().startswith("RLIMIT_") else f"RLIMIT_{name.upper()}",
                "soft": soft,
                "hard": hard,
            }
            for name, soft, hard in process.rlimits
        ],
        "noNewPrivileges": process.no_new_privileges,
    }


def _mount(entry: MountSpec) -> dict[str, Any]:
    options = list(entry.options)
    if entry.type == "bind" and not {"bind", "rbind"} & set(options):
        options.insert(0, "bind")
    return {
        "destination": entry.destination,
        "type": entry.type,
        "source": entry.source or entry.type,
        "options": options,
    }


def _resources(spec: ContainerSpec) -> dict[str, Any]:
    limits = spec.resources
    resources: dict[str, Any] = {
        "devices": _device_rules(None if spec.host_devices else DEFAULT_DEVICE_RULES)
    }
    if limits.memory_swap is not None and limits.memory is None:
        raise UsageError("a memory+swap limit needs a memory limit")
    if limits.memory is not None:
        resources["memory"] = {"limit": limits.memory}
        if limits.memory_swap is not None:
            resources["memory"]["swap"] = limits.memory_swap
    if limits.cpus is not None:
        resources["cpu"] = {"quota": round(limits.cpus * CPU_PERIOD_US), "period": CPU_PERIOD_US}
    if limits.pids is not None:
        resources["pids"] = {"limit": limits.pids if limits.pids > 0 else -1}
    return resources


def _device_rules(rules: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """cgroup v1 `devices.allow` lines as OCI device rules, after denying everything."""
    if rules is None:
        return [{"allow": True, "access": "rwm"}]
    converted: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for rule in rules:
        kind, numbers, access = rule.split()
        major, minor = numbers.split(":")
        entry: dict[str, Any] = {"allow": True, "type": kind, "access": access}
        if major != "*":
            entry["major"] = int(major)
        if minor != "*":
            entry["minor"] = int(minor)
        converted.append(entry)
    return converted


def _mapping(container_id: int, host_id: int, size: int) -> dict[str, int]:
    return {"containerID": container_id, "hostID": host_id, "size": size}


def _seccomp(process: ProcessSpec) -> dict[str, Any]:
    path = process.seccomp_profile or ""
    try:
        profile: Profile = load_profile(path, capabilities=set(process.capabilities))
    except FileNotFoundError as exc:
        raise DriverPrerequisites(f"seccomp profile {path} does not exist") from exc
    except OSError as exc:
        raise DriverFailed(f"cannot read seccomp profile {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"invalid seccomp profile {path}: {exc}") from exc
    result: dict[str, Any] = {
        "defaultAction": profile.default_action,
        "architectures": list(profile.architectures),
        "syscalls": [
            {
                "names": list(rule.names),
                "action": rule.action,
                **({"errnoRet": rule.errno_ret} if rule.errno_ret is not None else {}),
                "args": [
                    {"index": arg.index, "value": arg.value, "valueTwo": arg.value_two, "op": arg.op}
                    for arg in rule.args
                ],
            }
            for rule in profile.rules
        ],
    }
    if profile.default_errno_ret is not None:
        result["defaultErrnoRet"] = profile.default_errno_ret
    return result
