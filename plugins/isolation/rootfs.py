"""A container's filesystem view, built by its first process in its new mount namespace.

Shared by the built-in isolation drivers. `plan_rootfs` runs in the caller and gathers what must be
read from the host (cgroup hierarchies, host devices); `enter_rootfs` runs in the container's first
process and, following runc's order:

1. makes every mount a slave of the host's (nothing the container mounts propagates back),
2. bind-mounts the root filesystem onto itself (pivot_root needs a mount point),
3. mounts `spec.mounts` in order, each target resolved inside the rootfs with RESOLVE_IN_ROOT and
   mounted through /proc/self/fd (an image's symlinked /dev or /proc cannot reach the host; proc
   and sysfs refuse a symlinked target outright), then the init binary at /dev/init,
4. pivot_root into the rootfs and detaches the old root,
5. fills a tmpfs /dev (device nodes, /dev/fd and friends), sets the hostname and sysctls, applies
   read-only paths, masked paths and a read-only root.

Inside a user namespace (rootless), where the kernel refuses mknod, v1 cgroup hierarchies and the
sysfs of a network namespace the user namespace does not own, the host's device nodes are
bind-mounted into /dev before the pivot, and /sys/fs/cgroup (and /sys with the host's network)
are the host's, bound recursively and read-only, as rootless Podman shows them.

Every failure is a DriverFailed naming the step.
"""

from __future__ import annotations

import errno
import os
import posixpath
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dockyard.core.errors import DriverFailed
from dockyard.core.linux import devices
from dockyard.core.linux.cgroups import Hierarchy, hierarchies
from dockyard.core.linux.idmaps import in_initial_user_namespace
from dockyard.core.linux.mounts import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    MountOptions,
    current_flags,
    mount,
    parse_options,
    pivot_root,
    umount2,
)
from dockyard.core.linux.paths import ensure_in_root, fd_path, open_in_root
from dockyard.core.spec import ContainerSpec, MountSpec
from dockyard.plugins.isolation.sysctls import write_sysctls

__all__ = ["INIT_PATH", "RootfsPlan", "enter_rootfs", "plan_rootfs"]

# Where `spec.init` is bind-mounted: on the /dev tmpfs, so the image is never modified.
INIT_PATH = "/dev/init"

_RESTRICTIVE = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
_DEVICE_BIND = parse_options(("bind", "nosuid", "noexec"))
_FILESYSTEMS = {"tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "bind"}


@dataclass(frozen=True)
class RootfsPlan:
    """What `enter_rootfs` needs, read from the host before the container's process exists."""

    spec: ContainerSpec
    cgroup_hierarchies: tuple[Hierarchy, ...]
    device_nodes: tuple[devices.DeviceNode, ...]
    populate_dev: bool
    # In a user namespace: device nodes are bound from the host, some kernel mounts are binds.
    user_namespace: bool = False


def plan_rootfs(spec: ContainerSpec) -> RootfsPlan:
    """Check the mounts and read the host facts the container's mounts need."""
    for entry in spec.mounts:
        if not entry.destination.startswith("/"):
            raise DriverFailed(f"mount destination {entry.destination!r} is not an absolute path")
        if entry.type not in _FILESYSTEMS and not parse_options(entry.options).is_bind:
            raise DriverFailed(f"unsupported mount type {entry.type!r} at {entry.destination}")
    if not os.path.isdir(spec.rootfs):
        raise DriverFailed(f"root filesystem {spec.rootfs} is not a directory")
    populate = any(m.destination.rstrip("/") == "/dev" and m.type == "tmpfs" for m in spec.mounts)
    with _step("reading the host's cgroup mounts and devices"):
        cgroups = tuple(hierarchies()) if any(m.type == "cgroup" for m in spec.mounts) else ()
        nodes = tuple(devices.host_devices()) if spec.host_devices else devices.MINIMAL_DEVICES
        user_namespace = not in_initial_user_namespace()
    return RootfsPlan(spec, cgroups, nodes, populate, user_namespace)


def enter_rootfs(plan: RootfsPlan) -> None:
    """Build the container's mounts and pivot into its root (in the container's first process)."""
    spec = plan.spec
    with _step("making the mount tree a slave of the host's"):
        mount(None, "/", None, MS_REC | MS_SLAVE)
    with _step(f"bind-mounting the root filesystem {spec.rootfs}"):
        mount(spec.rootfs, spec.rootfs, None, MS_BIND | MS_REC)
    root_fd = os.open(spec.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for entry in spec.mounts:
            with _step(f"mounting {entry.type} on {entry.destination}"):
                _mount(root_fd, entry, plan)
        if plan.populate_dev and plan.user_namespace:
            for node in plan.device_nodes:
                with _step(f"binding the host's /dev/{node.path}"):
                    _bind(root_fd, f"/dev/{node.path}", f"/dev/{node.path}", _DEVICE_BIND)
        if spec.init:
            with _step(f"mounting the init binary {spec.init} at {INIT_PATH}"):
                _bind(root_fd, INIT_PATH, spec.init, parse_options(("bind", "ro", "nosuid", "nodev")))
        with _step(f"creating the working directory {spec.process.cwd}"):
            os.close(ensure_in_root(root_fd, spec.process.cwd, directory=True))
        with _step("pivoting into the root filesystem"):
            _pivot(root_fd)
    finally:
        os.close(root_fd)
    _finish(plan)


def _mount(root_fd: int, entry: MountSpec, plan: RootfsPlan) -> None:
    options = parse_options(entry.options)
    if entry.type == "bind" or options.is_bind:
        _bind(root_fd, entry.destination, entry.source, options)
        return
    if plan.user_namespace and _refused_in_user_namespace(entry, plan.spec):
        source = "/sys/fs/cgroup" if entry.type == "cgroup" else "/sys"
        _bind(root_fd, entry.destination, source, parse_options(("rbind", "ro", *entry.options)))
        return
    if entry.type == "cgroup":
        _cgroup(root_fd, entry.destination, options, plan.cgroup_hierarchies)
        return
    # proc and sysfs on a symlink are refused, as runc does: nothing legitimate needs it.
    strict = entry.type in ("proc", "sysfs")
    target = ensure_in_root(root_fd, entry.destination, directory=True, no_symlinks=strict)
    try:
        try:
            mount(entry.source or entry.type, fd_path(target), entry.type, options.flags, options.data)
        except OSError as exc:
            if not (plan.user_namespace and entry.type == "devpts" and exc.errno == errno.EINVAL):
                raise
            # A single-id user namespace has no tty group (gid 5) to give the terminals.
            data = ",".join(word for word in options.data.split(",") if not word.startswith("gid="))
            mount(entry.source or entry.type, fd_path(target), entry.type, options.flags, data)
    finally:
        os.close(target)
    _propagate(root_fd, entry.destination, options)


def _refused_in_user_namespace(entry: MountSpec, spec: ContainerSpec) -> bool:
    """cgroup mounts, and sysfs when the container shares the host's network namespace."""
    return entry.type == "cgroup" or (entry.type == "sysfs" and spec.namespace("network") is None)


def _bind(root_fd: int, destination: str, source: str, options: MountOptions) -> None:
    directory = stat.S_ISDIR(os.stat(source).st_mode)
    target = ensure_in_root(root_fd, destination, directory=directory)
    try:
        mount(source, fd_path(target), None, MS_BIND | (options.flags & MS_REC))
    finally:
        os.close(target)
    extra = options.flags & ~(MS_BIND | MS_REC)
    if extra:
        # A bind mount takes its flags in a remount; keep whatever the source already restricts.
        with _opened(root_fd, destination) as mounted:
            kept = current_flags(fd_path(mounted)) & _RESTRICTIVE
            mount(None, fd_path(mounted), None, MS_BIND | MS_REMOUNT | extra | kept)
    _propagate(root_fd, destination, options)


def _cgroup(root_fd: int, destination: str, options: MountOptions, found: tuple[Hierarchy, ...]) -> None:
    """cgroup2 alone on a pure v2 host; else a tmpfs holding each hierarchy, named as on the host.

    Inside the container's cgroup namespace each mount shows the container's own cgroup as root.
    """
    v1 = [h for h in found if h.version == 1]
    v2 = [h for h in found if h.version == 2]
    target = ensure_in_root(root_fd, destination, directory=True, no_symlinks=True)
    try:
        if not v1:
            mount("cgroup2", fd_path(target), "cgroup2", options.flags)
            return
        mount("tmpfs", fd_path(target), "tmpfs", options.flags & ~MS_RDONLY, "mode=755")
    finally:
        os.close(target)
    with _opened(root_fd, destination) as top:
        for hierarchy in [*v1, *v2]:
            name = posixpath.basename(hierarchy.mount_point) if hierarchy.version == 1 else "unified"
            os.mkdir(name, 0o755, dir_fd=top)
            sub = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=top)
            try:
                fstype = "cgroup" if hierarchy.version == 1 else "cgroup2"
                mount(fstype, fd_path(sub), fstype, options.flags, hierarchy.mount_data)
            finally:
                os.close(sub)
        if options.flags & MS_RDONLY:
            mount(None, fd_path(top), None, MS_BIND | MS_REMOUNT | options.flags)


def _propagate(root_fd: int, destination: str, options: MountOptions) -> None:
    if not options.propagation:
        return
    with _opened(root_fd, destination) as mounted:
        for change in options.propagation:
            mount(None, fd_path(mounted), None, change)


def _pivot(root_fd: int) -> None:
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(root_fd)
        pivot_root(".", ".")
        # The old root is now stacked on "/": detach it, after making sure the detach cannot
        # propagate to the host's mounts.
        os.fchdir(old_root)
        mount(None, ".", None, MS_SLAVE | MS_REC)
        umount2(".", MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def _finish(plan: RootfsPlan) -> None:
    """The steps that happen inside the new root, where every path is the container's."""
    spec = plan.spec
    if plan.populate_dev:
        with _step("creating device nodes in /dev"):
            if not plan.user_namespace:
                devices.create_nodes(plan.device_nodes)
            devices.create_symlinks()
    if spec.hostname:
        with _step(f"setting the hostname to {spec.hostname!r}"):
            socket.sethostname(spec.hostname)
    if spec.sysctls:
        with _step("writing sysctls"):
            write_sysctls(spec.sysctls)
    for path in spec.readonly_paths:
        with _step(f"making {path} read-only"):
            _readonly(path)
    for path in spec.masked_paths:
        with _step(f"masking {path}"):
            _mask(path)
    if spec.readonly_rootfs:
        with _step("making the root filesystem read-only"):
            mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | current_flags("/"))


def _readonly(path: str) -> None:
    try:
        mount(path, path, None, MS_BIND | MS_REC)
    except FileNotFoundError:
        return
    mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | current_flags(path))


def _mask(path: str) -> None:
    try:
        directory = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if directory:
        mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    else:
        mount("/dev/null", path, None, MS_BIND)


@contextmanager
def _opened(root_fd: int, path: str) -> Iterator[int]:
    """An O_PATH descriptor of `path` in the root, resolved again so it sees what was mounted."""
    fd = open_in_root(root_fd, path)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def _step(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise DriverFailed(f"{what}: {exc.strerror or exc}") from exc
