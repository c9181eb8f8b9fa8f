"""On-disk state primitives: atomic record writes, file locks, scratch space and ids.

Every record is written to a temporary file in the same directory, flushed to disk and renamed over
the old one, so a reader sees the old record or the new one and a killed writer leaves at most a
stray temporary file. Read-modify-write sequences hold an exclusive `flock`, which the kernel drops
when the holder dies, so a killed command never leaves a lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path

from dockyard.core.errors import StoreError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO


__all__ = [
    "TEMP_PREFIX",
    "atomic_output",
    "atomic_write",
    "clean_stale_scratch",
    "distinct_filesystems",
    "file_lock",
    "fsync_directory",
    "new_id",
    "read_json",
    "scratch_dir",
    "still_names",
    "sync_filesystem",
    "write_json",
]

TEMP_PREFIX = ".tmp-"


def new_id() -> str:
    """A fresh random 64-hex id, the shape Docker uses for containers."""
    return os.urandom(32).hex()


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `data` so that no reader ever sees a partial file; `durable` also
    survives a power cut (fsync), which runtime state on tmpfs does not need."""
    import tempfile  # writers only: listing commands never pay for it

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if durable:
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if durable:
        fsync_directory(path.parent)


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A file handle whose contents replace `path` only when the block ends without error.

    For user-named outputs (`save -o`, `export -o`): a failed or interrupted write leaves the old
    file, or none, never a truncated archive under the requested name.
    """
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    try:
        with temp.open("wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc}") from exc
    finally:
        temp.unlink(missing_ok=True)


def fsync_directory(directory: Path) -> None:
    """Make the entries of `directory` (a rename, a new or removed file) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, record: Any, *, durable: bool = True) -> None:
    """Atomically write a JSON record (`durable`: see atomic_write)."""
    atomic_write(path, json.dumps(record, indent=1, sort_keys=True).encode() + b"\n", durable=durable)


def sync_filesystem(path: Path) -> None:
    """Flush everything written to the filesystem holding the directory `path` (syncfs(2)): one
    barrier instead of an fsync per file, before the record that makes those files reachable."""
    import ctypes  # writers only

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            raise StoreError(f"cannot flush {path} to disk: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def distinct_filesystems(*homes: Path) -> list[Path]:
    """The directories among `homes` that exist, one per filesystem (what syncfs needs)."""
    seen: dict[int, Path] = {}
    for home in homes:
        if home.is_dir():
            seen.setdefault(home.stat().st_dev, home)
    return list(seen.values())


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON record; a missing file gives `default`, a corrupt one a StoreError.

    An empty file counts as missing: a record written without `durable` and cut short by a power
    loss before the flush that covers it (atomic writes never leave one otherwise).
    """
    try:
        with path.open("rb") as handle:
            data = handle.read()
        if not data:
            raise FileNotFoundError(errno.ENOENT, "empty record", str(path))
        return json.loads(data)
    except FileNotFoundError:
        if default is None:
            raise
        return default
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


@contextlib.contextmanager
def file_lock(
    path: Path, *, shared: bool = False, blocking: bool = True, removable: bool = False
) -> Iterator[bool]:
    """Hold an flock on `path` (created if needed); yields False when non-blocking and busy.

    A `removable` lock's file is removed by its holder as it lets go, so such locks leave no
    files behind; every user of that file must say `removable`. Such a lock is only held once
    `path` still names the locked file: a waiter that wins the lock of a file its holder removed
    tries again with the one there now, so two processes never hold "the" lock at once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    if not blocking:
        flags |= fcntl.LOCK_NB
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, flags)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) and not blocking:
                    yield False
                    return
                raise
            if removable and not still_names(path, fd):
                continue  # its holder removed the file meanwhile: lock the one there now
            try:
                yield True
            finally:
                if removable:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            return
        finally:
            os.close(fd)


def still_names(path: Path, fd: int) -> bool:
    """Whether `path` is still the open file `fd` (a lock file its holder may have removed)."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(fd))
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def scratch_dir(parent: Path) -> Iterator[Path]:
    """A private working directory under `parent`, removed afterwards.

    Its lock file is taken before the directory exists and held while it is in use, so
    `clean_stale_scratch` can tell a directory left by a killed command from one still in use.
    What is built in one scratch directory (a layer, an unpacked archive) has nothing to do with
    its siblings': `parent` is marked so, and the filesystem may give each its own block group.
    """
    import shutil

    from dockyard.core.linux.fsflags import mark_unrelated_subtrees

    path = parent / f"{TEMP_PREFIX}{new_id()[:16]}"
    with file_lock(path.with_name(path.name + ".lock"), removable=True):  # makes `parent` too
        mark_unrelated_subtrees(parent)
        try:
            path.mkdir()
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


def clean_stale_scratch(parent: Path) -> list[Path]:
    """Remove scratch directories (and their locks) whose owner died; returns what was removed."""
    import shutil

    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for lock in parent.glob(f"{TEMP_PREFIX}*.lock"):
        with file_lock(lock, blocking=False, removable=True) as acquired:
            if not acquired:
                continue
            path = lock.with_name(lock.name.removesuffix(".lock"))
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed
