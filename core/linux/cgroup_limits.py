"""A container's resource limits (`Resources`) written to its cgroups, v2 or v1 per controller.

Docker's meanings: `memory` in bytes; `memory_swap` the total of memory and swap (-1: unlimited
swap), so it needs `memory`; `cpus` a number of CPUs, applied as a CFS quota per 100 ms period;
`pids` the most tasks at once (0 or less: unlimited). A limit the host cannot apply is refused
with DriverPrerequisites, never skipped.
"""

from __future__ import annotations

import os

from dockyard.core.errors import DriverFailed, DriverPrerequisites, UsageError
from dockyard.core.linux.cgroups import ContainerCgroups, write
from dockyard.core.spec import Resources

__all__ = ["CPU_PERIOD_US", "apply_limits", "limit_writes", "unified_controllers_for"]

CPU_PERIOD_US = 100_000

_SWAP_HINT = "swap accounting is off (boot with swapaccount=1, or use cgroup v2 with swap)"


def unified_controllers_for(cgroups: ContainerCgroups, resources: Resources) -> set[str]:
    """The v2 controllers the limits need enabled above the container's cgroup."""
    wanted = {
        "memory": resources.memory is not None or resources.memory_swap is not None,
        "cpu": resources.cpus is not None,
        "pids": resources.pids is not None,
    }
    return {
        name for name, needed in wanted.items() if needed and (cgroups.controller(name) or (0, ""))[0] == 2
    }


def limit_writes(
    cgroups: ContainerCgroups, resources: Resources, *, device_rules: tuple[str, ...] | None
) -> list[tuple[str, str]]:
    """The (file, value) writes that apply `resources`, in order; `device_rules` (v1 devices
    cgroup allow lines, None for every device) apply where a v1 devices hierarchy exists."""
    writes: list[tuple[str, str]] = []
    if resources.memory is not None or resources.memory_swap is not None:
        writes += _memory(cgroups, resources)
    if resources.cpus is not None:
        if resources.cpus < 0.01:
            raise UsageError(f"cpus must be at least 0.01, not {resources.cpus}")
        version, directory = _need(cgroups, "cpu")
        quota = round(resources.cpus * CPU_PERIOD_US)
        if version == 2:
            writes.append((os.path.join(directory, "cpu.max"), f"{quota} {CPU_PERIOD_US}"))
        else:
            writes.append((os.path.join(directory, "cpu.cfs_period_us"), str(CPU_PERIOD_US)))
            writes.append((os.path.join(directory, "cpu.cfs_quota_us"), str(quota)))
    if resources.pids is not None:
        _, directory = _need(cgroups, "pids")
        writes.append(
            (os.path.join(directory, "pids.max"), str(resources.pids) if resources.pids > 0 else "max")
        )
    devices = cgroups.controller("devices")
    if device_rules is not None and devices is not None and devices[0] == 1:
        writes.append((os.path.join(devices[1], "devices.deny"), "a"))
        writes += [(os.path.join(devices[1], "devices.allow"), rule) for rule in device_rules]
    return writes


def apply_limits(
    cgroups: ContainerCgroups, resources: Resources, *, device_rules: tuple[str, ...] | None
) -> None:
    """Write the limits into the (created) cgroups; DriverFailed says which write failed."""
    enable = unified_controllers_for(cgroups, resources)
    try:
        cgroups.enable_unified(enable)
    except OSError as exc:
        raise DriverFailed(
            f"cannot enable the {', '.join(sorted(enable))} cgroup v2 controllers above "
            f"{cgroups.unified}: {exc.strerror} (cgroup v2 cannot enable controllers below a "
            "cgroup that holds processes: start Dockyard from a cgroup of its own)"
        ) from exc
    for path, value in limit_writes(cgroups, resources, device_rules=device_rules):
        if not os.path.exists(path):
            raise DriverPrerequisites(f"cannot apply a limit: {path} does not exist")
        try:
            write(path, value)
        except OSError as exc:
            raise DriverFailed(f"cannot write {value!r} to {path}: {exc.strerror}") from exc


def _memory(cgroups: ContainerCgroups, resources: Resources) -> list[tuple[str, str]]:
    memory, swap = resources.memory, resources.memory_swap
    if memory is None:
        raise UsageError("a memory+swap limit needs a memory limit")
    if swap is not None and swap != -1 and swap < memory:
        raise UsageError(f"the memory+swap limit ({swap}) is smaller than the memory limit ({memory})")
    version, directory = _need(cgroups, "memory")
    if version == 2:
        writes = [(os.path.join(directory, "memory.max"), str(memory))]
        if swap is not None:
            swap_file = os.path.join(directory, "memory.swap.max")
            if not os.path.exists(swap_file):
                raise DriverPrerequisites(f"cannot limit swap: {_SWAP_HINT}")
            writes.append((swap_file, "max" if swap == -1 else str(swap - memory)))
        return writes
    writes = [(os.path.join(directory, "memory.limit_in_bytes"), str(memory))]
    if swap is not None:
        swap_file = os.path.join(directory, "memory.memsw.limit_in_bytes")
        if not os.path.exists(swap_file):
            raise DriverPrerequisites(f"cannot limit swap: {_SWAP_HINT}")
        writes.append((swap_file, str(swap)))
    return writes


def _need(cgroups: ContainerCgroups, controller: str) -> tuple[int, str]:
    found = cgroups.controller(controller)
    if found is None:
        raise DriverPrerequisites(
            f"the {controller} cgroup controller is not available here (neither cgroup v2 with "
            f"{controller} nor a v1 {controller} hierarchy is mounted)"
        )
    return found
