"""Docker's defaults for a container, in one place: capabilities, masked and read-only paths,
the standard mounts, the seccomp profile and the device rules, plus a builder of a default spec.

The lifecycle code starts from `default_spec` and applies the user's flags; tests use it to get
the spec Docker would run a plain `docker run IMAGE CMD` with.
"""

from __future__ import annotations

from dockyard.core.linux.capability_names import CAPABILITY_NAMES
from dockyard.core.spec import ContainerSpec, MountSpec, NamespaceSpec, ProcessSpec, Resources, User

__all__ = [
    "CAPABILITY_NAMES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_DEVICE_RULES",
    "DEFAULT_MOUNTS",
    "DEFAULT_NAMESPACES",
    "DEFAULT_PATH",
    "DEFAULT_SECCOMP_PROFILE",
    "MASKED_PATHS",
    "READONLY_PATHS",
    "default_mounts",
    "default_spec",
]

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# The seccomp profile of Debian's golang-github-containers-common (the one podman uses; Docker's
# default profile has the same rules).
DEFAULT_SECCOMP_PROFILE = "/usr/share/containers/seccomp.json"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Every namespace kind but user (root's containers share the host's users), all created new.
DEFAULT_NAMESPACES = tuple(
    NamespaceSpec(kind) for kind in ("pid", "mount", "uts", "ipc", "network", "cgroup")
)

DEFAULT_MOUNTS = (
    MountSpec("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
    MountSpec("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    MountSpec(
        "/dev/pts",
        "devpts",
        "devpts",
        ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
    ),
    MountSpec("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    MountSpec("/sys/fs/cgroup", "cgroup", "cgroup", ("nosuid", "noexec", "nodev", "relatime", "ro")),
    MountSpec("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    MountSpec("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
)

# Device cgroup rules (cgroup v1 devices.allow syntax) after denying everything: any node may be
# created (mknod), only these may be opened. Docker's list.
DEFAULT_DEVICE_RULES = (
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",  # null
    "c 1:5 rwm",  # zero
    "c 1:7 rwm",  # full
    "c 1:8 rwm",  # random
    "c 1:9 rwm",  # urandom
    "c 5:0 rwm",  # tty
    "c 5:1 rwm",  # console
    "c 5:2 rwm",  # ptmx
    "c 136:* rwm",  # pts
    "c 10:200 rwm",  # net/tun
)


def default_mounts() -> tuple[MountSpec, ...]:
    """Docker's standard mounts (/proc, a tmpfs /dev, /dev/pts, /sys, its cgroups, mqueue, shm)."""
    return DEFAULT_MOUNTS


def default_spec(
    container_id: str,
    rootfs: str,
    args: tuple[str, ...],
    *,
    hostname: str = "",
    env: tuple[str, ...] = (),
    user: User | None = None,
    cwd: str = "/",
    terminal: bool = False,
    resources: Resources | None = None,
    state_dir: str = "",
) -> ContainerSpec:
    """The spec `docker run` would use for `args` in `rootfs`: Docker's capabilities, masked and
    read-only paths, standard mounts, new namespaces, the default seccomp profile, PATH set.

    The hostname defaults to the first 12 characters of the id, as Docker's does.
    """
    if not any(entry.startswith("PATH=") for entry in env):
        env = (f"PATH={DEFAULT_PATH}", *env)
    return ContainerSpec(
        id=container_id,
        rootfs=rootfs,
        process=ProcessSpec(
            args=args,
            env=env,
            cwd=cwd,
            user=user or User(),
            terminal=terminal,
            capabilities=DEFAULT_CAPABILITIES,
            seccomp_profile=DEFAULT_SECCOMP_PROFILE,
        ),
        hostname=hostname or container_id[:12],
        mounts=default_mounts(),
        namespaces=DEFAULT_NAMESPACES,
        masked_paths=MASKED_PATHS,
        readonly_paths=READONLY_PATHS,
        resources=resources or Resources(),
        cgroup_path=f"dockyard/{container_id}",
        state_dir=state_dir,
    )
