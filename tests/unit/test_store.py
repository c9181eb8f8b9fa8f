"""State primitives: atomic writes, locks, scratch space and its recovery after a kill."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import struct
import threading
import time
from pathlib import Path

import pytest

from dockyard.core.errors import StoreError
from dockyard.core.linux.fsflags import mark_unrelated_subtrees
from dockyard.core.store import (
    atomic_write,
    clean_stale_scratch,
    file_lock,
    read_json,
    scratch_dir,
    write_json,
)


def test_atomic_write_replaces_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "record.json"
    write_json(path, {"a": 1})
    write_json(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["record.json"], "no temporary file left"
    atomic_write(tmp_path / "secret", b"x", mode=0o600)
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_corrupt_record_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StoreError):
        read_json(tmp_path / "bad.json")
    assert read_json(tmp_path / "missing.json", default={}) == {}


def test_non_blocking_lock_reports_busy(tmp_path: Path) -> None:
    lock = tmp_path / "lock"
    with file_lock(lock) as held:
        assert held
        with file_lock(lock, blocking=False) as second:
            # flock locks belong to open file descriptions: a second open in one process conflicts.
            assert second is False


def test_a_removed_lock_file_is_never_held_twice(tmp_path: Path) -> None:
    """A holder removes the lock file as it lets go; the waiter that then wins the removed file's
    lock takes the new file's instead, so it and a newcomer cannot both hold the lock."""
    lock = tmp_path / "lock"
    events: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def waiter() -> None:
        with file_lock(lock, removable=True):
            events.append("waiter holds")
            with file_lock(lock, blocking=False, removable=True) as newcomer:
                events.append(f"newcomer held: {newcomer}")
            holding.set()
            release.wait(10)

    with file_lock(lock, removable=True):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.2)  # the waiter is blocked on this file's lock
        assert events == []
    assert holding.wait(10)
    assert events == ["waiter holds", "newcomer held: False"]
    assert lock.exists(), "the waiter holds a new lock file"
    release.set()
    thread.join()
    assert not lock.exists(), "each holder removed its file as it let go"


def _inode_flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, 0x80086601, bytes(4)))[0])  # FS_IOC_GETFLAGS
    finally:
        os.close(fd)


def test_scratch_parent_spreads_its_directories(tmp_path: Path) -> None:
    """Each scratch directory holds a tree of its own (a layer being built): its parent is marked
    chattr +T, so ext4 places each in a block group of its own, not all beside their parent."""
    assert _inode_flags(tmp_path) & 0x00020000 == 0, "tests run on ext4 (the machine's root filesystem)"
    with scratch_dir(tmp_path) as scratch:
        assert scratch.is_dir()
    assert _inode_flags(tmp_path) & 0x00020000, "FS_TOPDIR_FL set"


def test_spreading_is_only_a_hint_where_unsupported() -> None:
    """tmpfs knows no such flag: marking a directory there changes nothing and raises nothing."""
    shm = Path("/dev/shm")
    with scratch_dir(shm) as scratch:
        mark_unrelated_subtrees(scratch)
    assert not scratch.exists()


def _hold_scratch_then_sleep(parent: str) -> None:
    with scratch_dir(Path(parent)):
        time.sleep(60)


def test_stale_scratch_is_cleaned_live_scratch_is_kept(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    victim = context.Process(target=_hold_scratch_then_sleep, args=(str(tmp_path),))
    victim.start()
    live = context.Process(target=_hold_scratch_then_sleep, args=(str(tmp_path),))
    deadline = time.monotonic() + 10
    while not any(p.is_dir() for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    live.start()
    while sum(p.is_dir() for p in tmp_path.iterdir()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    removed = clean_stale_scratch(tmp_path)
    try:
        assert len(removed) == 1
        assert sum(p.is_dir() for p in tmp_path.iterdir()) == 1, "the live one stays"
    finally:
        assert live.pid is not None
        os.kill(live.pid, signal.SIGKILL)
        live.join()
