"""The `namespaces` isolation driver: containers as root with Linux namespaces, cgroups,
capabilities and seccomp, set up in Python (ctypes and `os`, no helper binary).

It is the default as root (priority 20). The work is split across modules shared with other
isolation drivers: `container_init` (forks, namespaces), `rootfs` (mounts, pivot_root),
`process_setup` (credentials, capabilities, seccomp, exec), `exec_report` (exec errors back to the
caller), `sysctls`; the system calls are in `dockyard.core.linux`. This module imports none of them
until a container is started, so loading the plugin stays cheap.

cgroups: each container gets `spec.cgroup_path` (default `dockyard/<id>`) below the starting
process's own cgroup in every mounted hierarchy; limits go to cgroup v2 when its tree can carry the
controller, else to the v1 hierarchy (see `dockyard.core.linux.cgroups`). Where they went is
recorded in `<state_dir>/cgroups.json`, so `exec`, `pause`, `usage` and `delete` find them from any
process, whatever cgroup that one runs in.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.core.drivers import Availability, DriverContext, ResourceUsage
from dockyard.core.errors import DockyardError, DriverFailed

if TYPE_CHECKING:
    from dockyard.core.linux.cgroups import ContainerCgroups
    from dockyard.core.spec import ContainerSpec, ProcessSpec

__all__ = ["NamespacesDriver", "probe_namespaces"]

_RECORD = "cgroups.json"


class NamespacesDriver:
    """Root containers from namespaces, cgroups, capabilities and seccomp (module docstring)."""

    name = "namespaces"

    def __init__(self, context: DriverContext) -> None:
        self._context = context
        # Compiled seccomp programs, kept across starts (core/linux/seccomp_cache.py).
        self._seccomp_cache = context.run_dir / "seccomp"

    def available(self) -> Availability:
        """Usable as root when this host lets a process create the namespaces a container needs."""
        if os.geteuid() != 0 or self._context.rootless:
            return Availability(False, "needs root (use the rootless driver)")
        problem = probe_namespaces_once_per_boot(self._context.run_dir)
        return Availability(not problem, problem)

    def start(self, spec: ContainerSpec, *, stdio: tuple[int, int, int], console: int | None = None) -> int:
        """Create the container's cgroups and start its first process; return its pid. With
        `console` and a terminal, the pty comes from the container's devpts (IsolationDriver)."""
        from dockyard.plugins.isolation import container_init

        container_init.validate_spec(spec)
        cgroups = self._create_cgroups(spec)
        try:
            return container_init.start_container(
                spec,
                stdio,
                cgroups=cgroups,
                seccomp_cache=self._seccomp_cache,
                console=console if spec.process.terminal else None,
            )
        except DockyardError:
            self._remove_quietly(cgroups)
            if spec.state_dir:
                (Path(spec.state_dir) / _RECORD).unlink(missing_ok=True)
            raise

    def exec(
        self,
        spec: ContainerSpec,
        *,
        pid: int,
        process: ProcessSpec,
        stdio: tuple[int, int, int],
        console: int | None = None,
    ) -> int:
        """Start `process` in the namespaces and cgroups of the container whose first process is
        `pid`; `console` as for `start`."""
        from dockyard.plugins.isolation import container_init

        return container_init.exec_in_container(
            spec,
            pid,
            process,
            stdio,
            cgroups=self._cgroups(spec),
            seccomp_cache=self._seccomp_cache,
            console=console if process.terminal else None,
        )

    def delete(self, spec: ContainerSpec) -> None:
        """Kill what is left in the container's cgroups and remove them; idempotent."""
        cgroups = self._cgroups(spec)
        try:
            cgroups.remove()
        except OSError as exc:
            raise DriverFailed(
                f"cannot remove the cgroups of container {spec.id}: {exc.strerror or exc}"
            ) from exc
        if spec.state_dir:
            (Path(spec.state_dir) / _RECORD).unlink(missing_ok=True)

    def pause(self, spec: ContainerSpec) -> None:
        """Freeze every process of the container (v1 freezer or v2 cgroup.freeze)."""
        self._freeze(spec, frozen=True)

    def resume(self, spec: ContainerSpec) -> None:
        """Thaw the container."""
        self._freeze(spec, frozen=False)

    def usage(self, spec: ContainerSpec) -> ResourceUsage:
        """CPU, memory and task counts from the container's cgroups."""
        try:
            return self._cgroups(spec).usage()
        except (OSError, ValueError) as exc:
            raise DriverFailed(f"cannot read the cgroups of container {spec.id}: {exc}") from exc

    def _freeze(self, spec: ContainerSpec, *, frozen: bool) -> None:
        try:
            self._cgroups(spec).freeze(frozen)
        except OSError as exc:
            action = "pause" if frozen else "resume"
            raise DriverFailed(f"cannot {action} container {spec.id}: {exc.strerror or exc}") from exc

    def _create_cgroups(self, spec: ContainerSpec) -> ContainerCgroups:
        from dockyard.core import store
        from dockyard.core.defaults import DEFAULT_DEVICE_RULES
        from dockyard.core.linux.cgroup_limits import apply_limits

        cgroups = self._plan_cgroups(spec)
        try:
            cgroups.create()
        except OSError as exc:
            raise DriverFailed(f"cannot create the cgroups of container {spec.id}: {exc}") from exc
        try:
            apply_limits(
                cgroups, spec.resources, device_rules=None if spec.host_devices else DEFAULT_DEVICE_RULES
            )
            if spec.state_dir:
                # cgroups end with a power cut: their record needs no fsync
                store.write_json(Path(spec.state_dir) / _RECORD, cgroups.to_dict(), durable=False)
        except (DockyardError, OSError):
            self._remove_quietly(cgroups)
            raise
        return cgroups

    def _cgroups(self, spec: ContainerSpec) -> ContainerCgroups:
        """The container's cgroups as recorded at start, or as `start` would place them now."""
        from dockyard.core import store
        from dockyard.core.linux.cgroups import ContainerCgroups

        if spec.state_dir:
            record = Path(spec.state_dir) / _RECORD
            if record.exists():
                try:
                    return ContainerCgroups.from_dict(store.read_json(record))
                except ValueError as exc:
                    raise DriverFailed(f"{record}: {exc}") from exc
        return self._plan_cgroups(spec)

    def _plan_cgroups(self, spec: ContainerSpec) -> ContainerCgroups:
        from dockyard.core.linux.cgroups import ContainerCgroups

        try:
            return ContainerCgroups.below_own(spec.cgroup_path or f"dockyard/{spec.id}")
        except (OSError, ValueError) as exc:
            raise DriverFailed(f"cannot place the cgroups of container {spec.id}: {exc}") from exc

    @staticmethod
    def _remove_quietly(cgroups: ContainerCgroups) -> None:
        """Roll back a half-made start; the original error is the one worth reporting."""
        try:
            cgroups.remove()
        except OSError:
            return


@functools.cache
def probe_namespaces() -> str:
    """Why namespaces cannot be created here ("" when they can): a child tries, once per process."""
    from dockyard.core.linux.namespaces import CLONE_FLAGS, unshare
    from dockyard.core.linux.paths import open_in_root

    flags = 0
    for kind in ("mount", "pid", "uts", "ipc", "network", "cgroup"):
        flags |= CLONE_FLAGS[kind]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            unshare(flags)
            code = 2
            os.close(open_in_root(os.open("/", os.O_PATH), "/"))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {
        0: "",
        1: "this host does not let root create namespaces (unshare failed)",
        2: "the kernel lacks openat2 (Linux 5.6 or later is needed)",
    }.get(os.waitstatus_to_exitcode(status), "the namespace probe failed")


def probe_namespaces_once_per_boot(run_dir: Path) -> str:
    """`probe_namespaces`, its success remembered in `run_dir` until the next boot: the probe
    forks this large process, about 7 ms of every `run`. A failure is probed again every time."""
    marker = run_dir / "namespaces-probed"
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text()
    except OSError:
        return probe_namespaces()
    with contextlib.suppress(OSError):
        if marker.read_text() == boot:
            return ""
    problem = probe_namespaces()
    if not problem:
        with contextlib.suppress(OSError):
            run_dir.mkdir(parents=True, exist_ok=True)
            marker.write_text(boot)
    return problem
