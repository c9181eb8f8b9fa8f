"""Rootless commands run as root of the user's own user namespace, which one keeper process holds.

A user without root cannot mount overlays, chown files to other ids or create most namespaces on
the host, but is root inside a user namespace of their own. So a rootless command enters one
before it touches storage, as Podman's pause process lets every podman command do:

    first command:  fork a keeper ── unshare(user, mount) ── waits ──► exec `sleep infinity`
                    the CLI maps the keeper's namespace (newuidmap/newgidmap, or single ids)
    every command:  setns into the keeper's user namespace, then into its mount namespace

Sharing one namespace pair keeps what commands build between them: the same id mapping for every
layer extracted (files owned by other users land on the mapped subordinate ids) and the same
mount namespace, where the storage driver's mounts outlive the command that made them and where
containers, their monitors and later `exec`s meet. The keeper's pid, start time and mapping are
recorded in `<runroot>/userns.json` (runroot is under $XDG_RUNTIME_DIR, cleared at logout), which
is also what `info` reports. A process that is already uid 0, on the host or inside the keeper's
namespace (a container's monitor calling the CLI), enters nothing.

The storage root and runroot are created mode 0700: another user's commands, in a namespace of
their own, get "permission denied" on them rather than a view of this user's containers.
"""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.core.errors import DriverNotSupported, DriverPrerequisites, StoreError
from dockyard.core.procs import start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from dockyard.core.config import Settings
    from dockyard.core.linux.idmaps import IdMapPlan

__all__ = ["RECORD", "describe", "enter"]

RECORD = "userns.json"
_LOCK = "userns.lock"


def enter(settings: Settings) -> None:
    """Join (starting it first if needed) the keeper's user and mount namespaces; no-op as uid 0."""
    if os.geteuid() == 0:
        return
    for directory in (settings.root, settings.runroot):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    from dockyard.core import store

    with store.file_lock(settings.runroot / _LOCK):
        record = _living_record(settings.runroot)
        started = record is None
        if record is None:
            record = _start_keeper(settings.runroot)
        _join(int(record["pid"]))
    if started and record.get("mode") == "single":
        from dockyard.core.log import get_logger

        get_logger(__name__).warning(
            "rootless with a single-id mapping: files owned by other users in images are kept "
            "as root's (" + str(record.get("reason")) + ")"
        )


def describe(runroot: Path) -> dict[str, Any]:
    """What `info` shows: the mode, the maps and why (an empty dict when no keeper is running)."""
    record = _living_record(runroot)
    if record is None:
        return {}
    return {key: record[key] for key in ("mode", "uid_map", "gid_map", "reason", "helpers")}


def _living_record(runroot: Path) -> dict[str, Any] | None:
    from dockyard.core import store

    try:
        record = store.read_json(runroot / RECORD)
    except FileNotFoundError:
        return None
    except StoreError:
        return None  # a torn or foreign record: start a fresh keeper, which rewrites it
    if not isinstance(record, dict) or start_time(int(record.get("pid", 0))) != record.get("start_time"):
        return None
    return record


def _start_keeper(runroot: Path) -> dict[str, Any]:
    """Fork the keeper into new user and mount namespaces, map them, record it; return the record."""
    import shutil

    from dockyard.core import store
    from dockyard.core.linux.idmaps import plan_id_maps, write_id_maps

    plan = plan_id_maps(uid=os.getuid(), gid=os.getgid())
    sleep = shutil.which("sleep") or "/bin/sleep"
    created_read, created_write = os.pipe()
    mapped_read, mapped_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the keeper; it never returns
        _keeper(created_write, mapped_read, sleep)
    os.close(created_write)
    os.close(mapped_read)
    try:
        if os.read(created_read, 1) != b"u":
            raise DriverNotSupported(
                "this host does not let unprivileged users create user namespaces "
                "(see sysctl user.max_user_namespaces); rootless Dockyard needs them"
            )
        try:
            write_id_maps(pid, plan)
        except OSError as exc:
            raise DriverPrerequisites(f"cannot map the user namespace: {exc.strerror or exc}") from exc
        os.write(mapped_write, b"m")
    except BaseException:
        _reap(pid)
        raise
    finally:
        os.close(created_read)
        os.close(mapped_write)
    record = {"pid": pid, "start_time": start_time(pid), **_mapping(plan)}
    store.write_json(runroot / RECORD, record)
    return record


def _keeper(created: int, mapped: int, sleep: str) -> None:  # pragma: no cover - runs forked
    """In the child: new namespaces, wait to be mapped, then hold them as a sleeping process."""
    from dockyard.core.linux.namespaces import CLONE_FLAGS, unshare

    code = 1
    try:
        os.setsid()
        unshare(CLONE_FLAGS["user"] | CLONE_FLAGS["mount"])
        os.write(created, b"u")
        if os.read(mapped, 1) == b"m":
            null = os.open(os.devnull, os.O_RDWR)
            for target in (0, 1, 2):
                os.dup2(null, target)
            os.chdir("/")
            os.execv(sleep, ["sleep", "infinity"])
    except OSError:
        code = 2
    finally:
        os._exit(code)


def _reap(pid: int) -> None:
    import contextlib
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _mapping(plan: IdMapPlan) -> dict[str, Any]:
    def text(lines: tuple[tuple[int, int, int], ...]) -> str:
        return ",".join(f"{inside}:{outside}:{count}" for inside, outside, count in lines)

    return {
        "mode": "single" if plan.single else "subordinate",
        "uid_map": text(plan.uid_map),
        "gid_map": text(plan.gid_map),
        "helpers": " ".join(plan.helpers or ()),
        "reason": plan.reason,
    }


def _join(pid: int) -> None:
    """setns into the keeper's user namespace, then its mount namespace, keeping the cwd."""
    from dockyard.core.linux.namespaces import CLONE_FLAGS, setns

    try:
        cwd: str | None = os.getcwd()
    except FileNotFoundError:
        cwd = None
    descriptors = []
    try:
        for kind, name in (("user", "user"), ("mount", "mnt")):
            descriptors.append((kind, os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
        for kind, fd in descriptors:
            setns(fd, CLONE_FLAGS[kind])
    except OSError as exc:
        raise DriverNotSupported(
            f"cannot enter the rootless user namespace of process {pid}: {exc.strerror or exc}"
        ) from exc
    finally:
        for _, fd in descriptors:
            os.close(fd)
    if cwd is not None:
        try:
            os.chdir(cwd)
        except OSError:
            os.chdir("/")
