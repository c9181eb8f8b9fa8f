"""The last steps of a process entering a container, shared by `start` and `exec`.

`plan_process` runs in the caller: it validates the ProcessSpec and prepares everything that can
fail for a reason the user should see early (unknown capability or rlimit, a hard limit above the
host's, an unreadable seccomp profile), including the compiled seccomp filter, so the child only
executes. `become` runs in the child, inside the container, and never returns:

    working directory -> rlimits -> bounding set -> no_new_privs -> [seccomp, see below]
    -> groups, gid, uid -> capabilities (permitted = effective = the set for uid 0, empty
    otherwise; inheritable and ambient empty) -> umask -> resolve the command in the container's
    PATH -> every descriptor above 2 close-on-exec -> [seccomp] -> execve

Seccomp goes last, just before execve, when no_new_privileges is set. Without it the kernel
lets only a CAP_SYS_ADMIN holder load a filter, so the filter is loaded before the credentials
and capabilities are dropped, and the calls that follow (setgroups, setresuid, capset, execve)
must be allowed by the profile, as runc does it. No PR_SET_KEEPCAPS is needed: root keeps its
capabilities across setresuid(0), and a non-root user keeps none (Docker's rule).
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from dockyard.core.defaults import DEFAULT_PATH
from dockyard.core.errors import (
    CommandNotExecutable,
    CommandNotFound,
    DockyardError,
    DriverFailed,
    DriverPrerequisites,
    UsageError,
)
from dockyard.core.linux import capabilities
from dockyard.core.linux.libc import libc
from dockyard.core.linux.process import mark_fds_cloexec, set_controlling_terminal, set_no_new_privileges
from dockyard.core.linux.seccomp import LoadableFilter, build_filter, load_profile
from dockyard.core.linux.seccomp_cache import CompiledFilter, cached_filter, export_program
from dockyard.core.spec import ProcessSpec

__all__ = ["ProcessPlan", "become", "failing", "plan_process", "setup_stdio"]

_RLIMITS = {name: getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}


@dataclass(frozen=True)
class ProcessPlan:
    """A validated process, ready for `become`."""

    args: tuple[str, ...]
    env: dict[str, str]
    search_path: str
    cwd: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    umask: int
    bounding: frozenset[int]
    effective: frozenset[int]
    no_new_privileges: bool
    seccomp: LoadableFilter | None
    rlimits: tuple[tuple[int, int, int], ...]
    # The container path of an init binary to run in front of the command, or None.
    init: str | None
    # False in a user namespace whose setgroups is denied (a single-id rootless mapping): the
    # supplementary groups cannot be changed there, so they are left as they are.
    setgroups: bool = True


def plan_process(process: ProcessSpec, *, init: str | None, seccomp_cache: Path | None = None) -> ProcessPlan:
    """Validate `process` and compile what it needs (UsageError, DriverPrerequisites, DriverFailed).

    With `seccomp_cache`, a directory, the seccomp program compiled for the same profile and
    capabilities by an earlier start is taken from there (core/linux/seccomp_cache.py).
    """
    if not process.args:
        raise UsageError("no command given to run")
    if not process.cwd.startswith("/"):
        raise UsageError(f"the working directory {process.cwd!r} is not an absolute path")
    env = {}
    for entry in process.env:
        name, equals, value = entry.partition("=")
        if not equals or not name:
            raise UsageError(f"invalid environment entry {entry!r}: expected NAME=VALUE")
        env[name] = value
    try:
        bounding = capabilities.capability_numbers(process.capabilities)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    capabilities.last_capability()  # read /proc now, on the host, not inside the container
    libc()
    user = process.user
    return ProcessPlan(
        args=process.args,
        env=env,
        search_path=env.get("PATH", DEFAULT_PATH),
        cwd=process.cwd,
        uid=user.uid,
        gid=user.gid,
        groups=tuple(user.additional_gids),
        umask=user.umask,
        bounding=bounding,
        effective=bounding if user.uid == 0 else frozenset(),
        no_new_privileges=process.no_new_privileges,
        seccomp=_seccomp(process, seccomp_cache),
        rlimits=_rlimits(process.rlimits),
        init=init,
        setgroups=_setgroups_allowed(),
    )


def setup_stdio(stdio: tuple[int, int, int], *, terminal: bool) -> None:
    """Install `stdio` as 0, 1, 2 in a new session; a terminal becomes the controlling one."""
    # Duplicate above 2 first: the three may overlap 0-2 in any order.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in stdio]
    for target, fd in enumerate(high):
        os.dup2(fd, target)
        os.close(fd)
    os.setsid()
    if terminal:
        set_controlling_terminal(0)


def become(plan: ProcessPlan) -> NoReturn:
    """Turn the calling process (inside the container) into the planned one and exec it."""
    try:
        os.chdir(plan.cwd)
        os.getcwd()  # raises if the directory is not reachable from the root (a leaked cwd)
    except OSError as exc:
        raise DriverFailed(f"cannot enter the working directory {plan.cwd}: {exc.strerror}") from exc
    with failing("setting resource limits"):
        for limit, soft, hard in plan.rlimits:
            resource.setrlimit(limit, (soft, hard))
    with failing("dropping privileges"):
        capabilities.drop_bounding(plan.bounding)
        if plan.no_new_privileges:
            set_no_new_privileges()
        if plan.seccomp is not None and not plan.no_new_privileges:
            plan.seccomp.load()
        if plan.setgroups:
            os.setgroups(list(plan.groups))
        os.setresgid(plan.gid, plan.gid, plan.gid)
        os.setresuid(plan.uid, plan.uid, plan.uid)
        capabilities.set_capabilities(
            permitted=plan.effective, effective=plan.effective, inheritable=frozenset()
        )
        capabilities.clear_ambient()
        os.umask(plan.umask)
    executable = _resolve(plan.args[0], plan.search_path)
    with failing("preparing to exec"):
        mark_fds_cloexec()
        if plan.seccomp is not None and plan.no_new_privileges:
            plan.seccomp.load()
    if plan.init:
        path, argv = plan.init, [plan.init, "--", *plan.args]
    else:
        path, argv = executable, list(plan.args)
    try:
        os.execve(path, argv, plan.env)
    except OSError as exc:
        raise _exec_error(path if plan.init else plan.args[0], exc) from exc


def _resolve(command: str, search_path: str) -> str:
    """The file execve should run for `command`, looked up as execvp does, as the final user."""
    if "/" in command:
        candidates = [command]
    else:
        candidates = [os.path.join(directory or ".", command) for directory in search_path.split(":")]
    denied = False
    for candidate in candidates:
        try:
            info = os.stat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            denied = True
            continue
        if stat.S_ISREG(info.st_mode) and os.access(candidate, os.X_OK):
            return candidate
        denied = True
    if denied:
        raise CommandNotExecutable(f'exec: "{command}": permission denied')
    if "/" in command:
        raise CommandNotFound(f'exec: "{command}": stat {command}: no such file or directory')
    raise CommandNotFound(f'exec: "{command}": executable file not found in $PATH')


def _exec_error(command: str, exc: OSError) -> DockyardError:
    message = f'exec: "{command}": {exc.strerror}'
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):  # e.g. a script's missing interpreter
        return CommandNotFound(message)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.ENOEXEC, errno.EISDIR):
        return CommandNotExecutable(message)
    return DriverFailed(message)


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups", encoding="ascii") as file:
            return file.read().strip() != "deny"
    except FileNotFoundError:
        return True


def _seccomp(process: ProcessSpec, cache_dir: Path | None) -> LoadableFilter | None:
    if process.seccomp_profile is None:
        return None
    path = process.seccomp_profile

    def compile_profile() -> CompiledFilter:
        profile = load_profile(path, capabilities=set(process.capabilities))
        return export_program(build_filter(profile))

    try:
        if cache_dir is None:
            return compile_profile()
        return cached_filter(path, process.capabilities, cache_dir=cache_dir, build=compile_profile)
    except FileNotFoundError as exc:
        raise DriverPrerequisites(f"seccomp profile {path} does not exist") from exc
    except ImportError as exc:
        raise DriverPrerequisites("seccomp needs the pyseccomp package and libseccomp.so.2") from exc
    except ValueError as exc:
        raise UsageError(f"invalid seccomp profile {path}: {exc}") from exc
    except OSError as exc:
        if exc.filename == path:
            raise DriverFailed(f"cannot read seccomp profile {path}: {exc.strerror}") from exc
        raise DriverFailed(f"libseccomp refused profile {path}: {exc.strerror}") from exc


def _rlimits(limits: tuple[tuple[str, int, int], ...]) -> tuple[tuple[int, int, int], ...]:
    planned = []
    for name, soft, hard in limits:
        key = name.upper() if name.upper().startswith("RLIMIT_") else f"RLIMIT_{name.upper()}"
        if key not in _RLIMITS:
            raise UsageError(f"unknown resource limit {name!r}")
        if soft > hard:
            raise UsageError(f"{key}: the soft limit {soft} exceeds the hard limit {hard}")
        _, current = resource.getrlimit(_RLIMITS[key])
        if current != resource.RLIM_INFINITY and hard > current:
            raise DriverFailed(
                f"cannot raise the hard {key} to {hard}: this process's hard limit is {current} and "
                "raising it needs CAP_SYS_RESOURCE"
            )
        planned.append((_RLIMITS[key], soft, hard))
    return tuple(planned)


@contextmanager
def failing(what: str) -> Iterator[None]:
    """Turn an OSError of one step into DriverFailed naming the step."""
    try:
        yield
    except OSError as exc:
        raise DriverFailed(f"{what}: {exc.strerror or exc}") from exc
