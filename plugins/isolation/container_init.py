"""Starting a container's first process, and a process inside a running container, as root.

The caller (the driver's `start` or `exec`) has validated the spec and prepared its cgroups.

start:  caller ── unshare(CLONE_NEWPID) or setns(pid) for its next child only ── fork ──┐
        (its own pid namespace is restored at once)                                     │
        container's first process, PID 1 of its namespace: non-dumpable, no imports ◄──┘
        allowed, default signals → join the cgroups → setns the joined namespaces,
        unshare the new ones (mount, UTS, IPC, network, cgroup) → loopback up → stdio,
        session, terminal → rootfs (mounts, pivot_root, /dev, hostname, sysctls, masks)
        → become (credentials, capabilities, seccomp, descriptors) → execve

exec:   the same fork, into the container's pid namespace; the child joins the container's
        cgroups, then its namespaces (mount last) → stdio → become → execve

Forking straight from the caller (no intermediate process) makes the container process the
caller's child, so its pid is the one fork returned, and the caller, a child subreaper that exits
right after, hands it to its own parent. The caller learns whether execve succeeded through the
exec report pipe (`exec_report`) before it returns.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dockyard.core.errors import DockyardError, DriverFailed, DriverNotSupported, UsageError
from dockyard.core.linux.cgroups import ContainerCgroups
from dockyard.core.linux.console import open_container_terminal, send_terminal
from dockyard.core.linux.namespaces import (
    CLONE_FLAGS,
    PROC_NAMES,
    SETNS_ORDER,
    same_namespace,
    setns,
    unshare,
)
from dockyard.core.linux.netdev import set_link_up
from dockyard.core.linux.process import reset_signals, set_dumpable
from dockyard.core.spec import ContainerSpec, NamespaceSpec, ProcessSpec
from dockyard.plugins.isolation.exec_report import await_exec, run_child
from dockyard.plugins.isolation.process_setup import ProcessPlan, become, failing, plan_process, setup_stdio
from dockyard.plugins.isolation.rootfs import INIT_PATH, enter_rootfs, plan_rootfs
from dockyard.plugins.isolation.sysctls import validate_sysctls

__all__ = ["exec_in_container", "start_container", "validate_spec"]


def validate_spec(spec: ContainerSpec) -> None:
    """Refuse what this driver cannot do or what would be unsafe, before anything is created."""
    if spec.uid_mappings or spec.gid_mappings or spec.namespace("user") is not None:
        raise DriverNotSupported(
            "the namespaces driver runs containers as the host's root: user namespaces and id "
            "mappings are the rootless driver's"
        )
    mount_ns = spec.namespace("mount")
    if mount_ns is None or mount_ns.path:
        raise DriverNotSupported("a container needs a new mount namespace (it cannot share or join one)")
    uts = spec.namespace("uts")
    if spec.hostname and (uts is None or uts.path):
        raise UsageError("a hostname needs the container's own UTS namespace")
    validate_sysctls(
        spec.sysctls,
        private_network=spec.namespace("network") is not None,
        private_ipc=spec.namespace("ipc") is not None,
    )


def start_container(
    spec: ContainerSpec,
    stdio: tuple[int, int, int],
    *,
    cgroups: ContainerCgroups,
    seccomp_cache: Path | None = None,
    console: int | None = None,
) -> int:
    """Fork the container's first process and return its pid once it has exec'd; compiled
    seccomp programs are kept in `seccomp_cache` (see process_setup.plan_process). With `console`
    the process's terminal comes from the container's own devpts and its master goes there."""
    rootfs = plan_rootfs(spec)
    process = plan_process(spec.process, init=INIT_PATH if spec.init else None, seccomp_cache=seccomp_cache)
    joined: list[tuple[str, int]] = []
    try:
        new_flags = 0
        for kind in SETNS_ORDER:
            entry = spec.namespace(kind)
            if entry is None or kind == "pid":
                continue
            if entry.path:
                joined.append((kind, _open_namespace(entry.path, kind)))
            else:
                new_flags |= CLONE_FLAGS[kind]
        network = spec.namespace("network")
        new_network = network is not None and not network.path

        def body() -> None:
            _enter(cgroups, joined)
            with failing("creating the container's namespaces"):
                unshare(new_flags)
            if new_network:
                with failing("bringing the loopback interface up"):
                    set_link_up("lo")
            if console is None:
                setup_stdio(stdio, terminal=spec.process.terminal)
            enter_rootfs(rootfs)
            if console is not None:
                _terminal_from_container(console, owner=process.uid)
            become(process)

        return _spawn(spec.namespace("pid"), body)
    finally:
        for _, fd in joined:
            os.close(fd)


def exec_in_container(
    spec: ContainerSpec,
    pid: int,
    process_spec: ProcessSpec,
    stdio: tuple[int, int, int],
    *,
    cgroups: ContainerCgroups,
    seccomp_cache: Path | None = None,
    console: int | None = None,
) -> int:
    """Fork a process that joins container `pid`'s cgroups and namespaces and execs `process_spec`;
    `console` as for `start_container`."""
    process: ProcessPlan = plan_process(process_spec, init=None, seccomp_cache=seccomp_cache)
    joined: list[tuple[str, int]] = []
    try:
        for kind in SETNS_ORDER:
            if kind in ("pid", "user") or spec.namespace(kind) is None:
                continue
            with failing(f"reading the {kind} namespace of process {pid}"):
                if not same_namespace(kind, pid):
                    joined.append((kind, _open_namespace(f"/proc/{pid}/ns/{PROC_NAMES[kind]}", kind)))
        pid_ns = NamespaceSpec("pid", f"/proc/{pid}/ns/pid") if spec.namespace("pid") is not None else None

        def body() -> None:
            _enter(cgroups, joined)
            if console is None:
                setup_stdio(stdio, terminal=process_spec.terminal)
            else:
                _terminal_from_container(console, owner=process.uid)
            become(process)

        return _spawn(pid_ns, body)
    finally:
        for _, fd in joined:
            os.close(fd)


def _spawn(pid_namespace: NamespaceSpec | None, body: Callable[[], object]) -> int:
    """Fork `body` into the right pid namespace, wait for its exec report, return its pid."""
    read_fd, write_fd = (_above_stdio(fd) for fd in os.pipe2(os.O_CLOEXEC))
    sys.stdout.flush()
    sys.stderr.flush()
    # Non-dumpable before the fork, so the child never is, not even for the instant before its
    # first instruction (the caller is a throwaway process: nothing else depends on it).
    with failing("making the process non-dumpable"):
        set_dumpable(False)
    try:
        try:
            with _children_in(pid_namespace), failing("forking the container process"):
                pid = os.fork()
                if pid == 0:
                    run_child(write_fd, lambda: _child(body))
        finally:
            os.close(write_fd)
        try:
            await_exec(read_fd)
        except DockyardError:
            os.waitpid(pid, 0)
            raise
        return pid
    finally:
        os.close(read_fd)


def _child(body: Callable[[], object]) -> None:
    """The first steps of any process entering a container."""
    set_dumpable(False)
    # Nothing may be imported from here on: once the mount namespace changes, an import would
    # read Python files from the container's filesystem. Everything needed is loaded already.
    sys.meta_path.clear()
    reset_signals()
    body()


def _terminal_from_container(console: int, *, owner: int) -> None:
    """Make a pty from the container's /dev/ptmx this process's terminal and send its master."""
    with failing("allocating the container's terminal from its /dev/ptmx"):
        master, slave = open_container_terminal(owner=owner)
    with failing("sending the container's terminal"):
        send_terminal(console, master)
    os.close(master)
    setup_stdio((slave, slave, slave), terminal=True)
    os.close(slave)


def _enter(cgroups: ContainerCgroups, joined: list[tuple[str, int]]) -> None:
    with failing("joining the container's cgroups"):
        cgroups.join()
    for kind, fd in joined:
        with failing(f"joining the {kind} namespace"):
            setns(fd, CLONE_FLAGS[kind])


@contextmanager
def _children_in(namespace: NamespaceSpec | None) -> Iterator[None]:
    """Make the caller's next children start in a new or given pid namespace, then restore."""
    if namespace is None:
        yield
        return
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with failing("entering the pid namespace"):
            if namespace.path:
                target = _open_namespace(namespace.path, "pid")
                try:
                    setns(target, CLONE_FLAGS["pid"])
                finally:
                    os.close(target)
            else:
                unshare(CLONE_FLAGS["pid"])
        yield
    finally:
        # Only the parent gets here: the child never leaves run_child. Rootless, the host's pid
        # namespace belongs to the host's user namespace, which refuses the way back (EPERM);
        # the caller is a throwaway process that exits next (IsolationDriver), so staying is safe.
        with contextlib.suppress(PermissionError):
            setns(own, CLONE_FLAGS["pid"])
        os.close(own)


def _open_namespace(path: str, kind: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise DriverFailed(f"cannot open the {kind} namespace {path}: {exc.strerror}") from exc


def _above_stdio(fd: int) -> int:
    """Keep the report pipe off descriptors 0-2, which the child overwrites with its stdio."""
    if fd > 2:
        return fd
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return moved

