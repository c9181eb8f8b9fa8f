"""Can this host mount overlays where the overlay driver keeps its layers, and with what?

The answer comes from a tiny test mount made where the layers will live (in the driver home, or
beside it while it does not exist yet, so that asking leaves no driver state behind): a lower
directory holding one file, an upper and a work directory; the file must show through the mount,
and deleting it must leave a whiteout in the upper. The kernel is tried first; where it refuses,
fuse-overlayfs is the fallback. A refusal names its cause, the kernel's and the fallback's:

    backing filesystem is overlay: nested overlay not supported
    overlay is not supported on a tmpfs upper in a user namespace
    overlay in a user namespace needs Linux 5.11 or later (this is 5.10.0)
    ...; fuse-overlayfs, the fallback, is not installed          (prerequisites missing)

A usable verdict is cached in the driver's run directory (cleared at boot, keyed by kernel, home
and settings), so commands after the first read it instead of mounting; a refusal is not cached,
so installing what was missing takes effect at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from dockyard.core import store
from dockyard.core.drivers import Availability
from dockyard.core.errors import StoreError
from dockyard.core.mountinfo import backing_filesystem
from dockyard.plugins.storage.overlay_mounts import (
    KERNEL,
    Stack,
    make_work_removable,
    mount,
    unmount,
)

__all__ = ["FUSE_PROGRAM", "Verdict", "probe"]

FUSE_PROGRAM = "fuse-overlayfs"
_USERNS_KERNEL = (5, 11)
_CACHE = "probe.json"


@dataclass(frozen=True)
class Verdict:
    """Whether overlays can be mounted for the driver home, and the program that mounts them
    (`KERNEL` or the path of a FUSE program; empty when unusable)."""

    availability: Availability
    program: str = ""


def probe(home: Path, run_dir: Path, *, rootless: bool, mount_program: str) -> Verdict:
    """The verdict for `home`: from the cache, else from a test mount.

    `mount_program` is "" (the kernel, else fuse-overlayfs), "kernel" (never FUSE) or the name
    or path of a FUSE program to use instead of the kernel.
    """
    parent = home if home.is_dir() else home.parent
    fstype = backing_filesystem(parent)
    key = {
        "kernel": os.uname().release,
        "home": str(home),
        "filesystem": fstype,
        "rootless": rootless,
        "mount_program": mount_program,
    }
    cached = _cached(run_dir / _CACHE, key)
    if cached is not None:
        return cached
    verdict = _decide(parent, fstype, rootless=rootless, mount_program=mount_program)
    if verdict.availability.usable:
        with contextlib.suppress(OSError):  # a cache that cannot be written is only slower
            store.write_json(run_dir / _CACHE, {"key": key, "program": verdict.program})
    return verdict


def _cached(path: Path, key: dict[str, object]) -> Verdict | None:
    try:
        record = store.read_json(path, default={})
    except StoreError:
        return None  # a torn or foreign record: probe again and overwrite it
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    if not isinstance(record.get("program"), str):
        return None
    return Verdict(Availability(True), record["program"])


def _decide(parent: Path, fstype: str, *, rootless: bool, mount_program: str) -> Verdict:
    if mount_program not in ("", KERNEL):
        return _fuse(parent, mount_program, "")
    kernel = _kernel(parent, fstype, rootless=rootless)
    if kernel.usable or mount_program == KERNEL:
        return Verdict(kernel, KERNEL if kernel.usable else "")
    return _fuse(parent, FUSE_PROGRAM, kernel.reason)


def _kernel(parent: Path, fstype: str, *, rootless: bool) -> Availability:
    """Whether the kernel mounts overlays here, and why not."""
    if fstype == "overlay":
        return Availability(False, "backing filesystem is overlay: nested overlay not supported")
    release = os.uname().release
    if rootless and _version(release) < _USERNS_KERNEL:
        return Availability(
            False, f"overlay in a user namespace needs Linux 5.11 or later (this is {release})"
        )
    try:
        _trial(parent, KERNEL, rootless=rootless)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            return Availability(
                False, "the kernel has no overlay filesystem (modprobe overlay)", missing=True
            )
        if rootless and fstype == "tmpfs":
            return Availability(False, "overlay is not supported on a tmpfs upper in a user namespace")
        if rootless and exc.errno == errno.EPERM:
            return Availability(
                False, "mounting needs CAP_SYS_ADMIN: not root and not in a user namespace of its own"
            )
        return Availability(False, f"the kernel refused a test overlay mount on {fstype}: {exc}")
    return Availability(True)


def _fuse(parent: Path, program: str, kernel_reason: str) -> Verdict:
    """The verdict for a FUSE program, after the kernel's refusal (if it was asked)."""
    before = f"{kernel_reason}; " if kernel_reason else ""
    found = shutil.which(program)
    if found is None:
        fallback = ", the fallback," if kernel_reason else ""
        return Verdict(Availability(False, f"{before}{program}{fallback} is not installed", missing=True))
    try:
        _trial(parent, found, rootless=False)
    except OSError as exc:
        return Verdict(Availability(False, f"{before}{program} failed a test mount: {exc}"))
    return Verdict(Availability(True), found)


def _trial(parent: Path, program: str, *, rootless: bool) -> None:
    """Mount a one-file overlay in scratch space under `parent`, delete the file through it and
    check the whiteout; raise OSError if any step fails. The mount is always undone."""
    parent.mkdir(parents=True, exist_ok=True)
    with store.scratch_dir(parent) as scratch:
        for name in ("lower", "upper", "work", "merged"):
            (scratch / name).mkdir()
        (scratch / "lower" / "probe").write_bytes(b"")
        stack = Stack(lowers=("lower",), upper="upper", work="work")
        mount(stack, scratch / "merged", cwd=scratch, program=program, rootless=rootless)
        try:
            os.unlink(scratch / "merged" / "probe")
        finally:
            unmount(scratch / "merged", fuse=program != KERNEL)
            make_work_removable(scratch / "work")
        _check_whiteout(scratch / "upper")


def _check_whiteout(upper: Path) -> None:
    """The deleted file must have left a whiteout (a 0:0 device, or a `.wh.` file for FUSE)."""
    try:
        found = os.lstat(upper / "probe")
    except FileNotFoundError:
        if (upper / ".wh.probe").exists():
            return
        raise OSError(errno.EIO, "deleting a lower file left no whiteout") from None
    if not (stat.S_ISCHR(found.st_mode) and found.st_rdev == 0):
        raise OSError(errno.EIO, "deleting a lower file left something other than a whiteout")


def _version(release: str) -> tuple[int, int]:
    """(major, minor) of a kernel release string such as "6.18.44-fc"."""
    numbers = release.split("-")[0].split(".")
    return int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 0
