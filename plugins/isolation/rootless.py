"""The `rootless` isolation driver: containers of an unprivileged user, inside their user namespace.

A rootless command runs as root of the user's own user namespace (`dockyard.core.user_namespace`
enters it, mapped to the user and their /etc/subuid range), so a container is made exactly as the
`namespaces` driver makes one (same `container_init`, `rootfs`, `process_setup`), one level down:
its pid, mount, UTS, IPC, network and cgroup namespaces are owned by that user namespace, which
is what lets an ordinary user create them. `rootfs` adapts what the kernel refuses there (device
nodes, cgroup and host-network sysfs mounts become binds of the host's).

It is its own driver rather than a mode of `namespaces` because the two differ exactly where a
user must be told something: which one `info` shows usable (and why the other is not), and
cgroups. The host's cgroup files belong to real root, so this driver uses cgroups only where the
user was delegated a cgroup v2 subtree (systemd's `Delegate=yes` for user sessions): there it
puts each container in a cgroup of its own and applies `--memory`, `--cpus` and `--pids-limit`.
Elsewhere containers run in the user's cgroup without limits, and a limit asked for is refused
with a line that names what is missing, never dropped silently.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dockyard.core.drivers import Availability, ResourceUsage
from dockyard.core.errors import DriverPrerequisites
from dockyard.plugins.isolation.namespaces import NamespacesDriver, probe_namespaces

if TYPE_CHECKING:
    from dockyard.core.linux.cgroups import ContainerCgroups
    from dockyard.core.spec import ContainerSpec, Resources

__all__ = ["RootlessDriver", "delegated_cgroup"]

# Each limit flag and the v2 controller it needs.
_LIMIT_CONTROLLERS = {"--memory": "memory", "--cpus": "cpu", "--pids-limit": "pids"}


class RootlessDriver(NamespacesDriver):
    """Containers in the user's user namespace; cgroups only when delegated (module docstring)."""

    name = "rootless"

    def available(self) -> Availability:
        """Usable by a rootless command, which runs as root of the user's user namespace."""
        if not self._context.rootless:
            return Availability(False, "for users without root (as root, namespaces is used)")
        if os.geteuid() != 0:
            return Availability(False, "runs inside Dockyard's user namespace, which the CLI enters")
        problem = probe_namespaces()
        return Availability(not problem, problem)

    def start(self, spec: ContainerSpec, *, stdio: tuple[int, int, int], console: int | None = None) -> int:
        """Refuse limits without a delegated cgroup, then start as the namespaces driver does."""
        requested = _requested_limits(spec.resources)
        if requested:
            base, problem = delegated_cgroup({_LIMIT_CONTROLLERS[flag] for flag in requested})
            if base is None:
                raise DriverPrerequisites(
                    f"{', '.join(requested)}: rootless limits need a cgroup v2 subtree delegated "
                    "to this user, and "
                    f"{problem}; run without them (containers run fine unlimited)"
                )
        return super().start(spec, stdio=stdio, console=console)

    def pause(self, spec: ContainerSpec) -> None:
        """Freeze the container: only with a delegated cgroup v2 subtree."""
        self._need_own_cgroup(spec, "pause")
        super().pause(spec)

    def resume(self, spec: ContainerSpec) -> None:
        """Thaw the container."""
        self._need_own_cgroup(spec, "unpause")
        super().resume(spec)

    def usage(self, spec: ContainerSpec) -> ResourceUsage:
        """Resource use from the container's own cgroup, which needs a delegated subtree."""
        self._need_own_cgroup(spec, "stats")
        return super().usage(spec)

    def _need_own_cgroup(self, spec: ContainerSpec, action: str) -> None:
        if not self._cgroups(spec).directories():
            _, problem = delegated_cgroup(set())
            raise DriverPrerequisites(
                f"{action} needs the container in a cgroup of its own, which rootless needs a "
                f"delegated cgroup v2 subtree for: {problem or 'it was started without one'}"
            )

    def _plan_cgroups(self, spec: ContainerSpec) -> ContainerCgroups:
        """The container's v2 cgroup below the user's delegated one, or none at all."""
        from dockyard.core.linux.cgroups import ContainerCgroups

        base, _ = delegated_cgroup(set())
        if base is None:
            return ContainerCgroups()
        full = super()._plan_cgroups(spec)
        return ContainerCgroups(full.unified, {}, full.unified_base, full.unified_controllers)


def delegated_cgroup(controllers: set[str]) -> tuple[str | None, str]:
    """The caller's cgroup v2 directory if the user may manage it with `controllers`, else why not."""
    from dockyard.core.linux.cgroups import ContainerCgroups

    try:
        own = ContainerCgroups.below_own("dockyard")
    except (OSError, ValueError) as exc:
        return None, f"cannot read this process's cgroups: {exc}"
    base = own.unified_base
    if base is None:
        return None, "this host mounts no cgroup v2 hierarchy"
    if not all(os.access(os.path.join(base, name), os.W_OK) for name in ("", "cgroup.procs")):
        return None, f"{base} belongs to root (no subtree was delegated to this user)"
    missing = sorted(controllers - own.unified_controllers)
    if missing:
        return None, f"{base} lacks the {', '.join(missing)} controller(s)"
    return base, ""


def _requested_limits(resources: Resources) -> list[str]:
    requested = []
    if resources.memory is not None or resources.memory_swap is not None:
        requested.append("--memory")
    if resources.cpus is not None:
        requested.append("--cpus")
    if resources.pids is not None:
        requested.append("--pids-limit")
    return requested
