"""Flushing new layers to disk after the command has returned, and what a crash costs.

A pull (or a load) writes hundreds of megabytes of layer files through the page cache. Waiting for
the disk to take them all before recording the image cost a third of a pull's time; podman and
Docker never flush layer data, and after a power loss their layers may hold empty files that
nothing detects. Dockyard flushes after the command returns and keeps durable notes of what is
not on disk yet:

1. Before a new layer is built, the command writes a note naming it (all of an image's new layers
   at once when they are staged together) and the boot it runs in (`unflushed/<id>.json`,
   fsync'd), and locks it.
2. Records that other images share (tags) and the image's own are fsync'd one by one as they are
   written; the layers, their records and their blobs are not.
3. When the command is done with the image, a detached process inherits the notes' locks, syncs
   the filesystems (syncfs(2)), removes the notes and exits.

The next command that opens the image store lists the notes (one failed listing when there are
none). A locked note belongs to a flush under way. A note from this boot whose flusher is gone (it
was killed) needs only the flush: the page cache still holds every byte. A note from an earlier
boot means the machine went down before the flush: the layers it names may hold torn files, so
every image using one of them is removed with its tags, and the layers and their blobs are
collected. The user pulls again; no image is ever left with a file silently emptied.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from dockyard.core.errors import DockyardError
from dockyard.core.log import get_logger
from dockyard.core.store import distinct_filesystems, fsync_directory, new_id, still_names, sync_filesystem

TYPE_CHECKING = False  # every command that lists images passes here: typing stays unloaded
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = ["FlushNotes", "settle_notes"]

NOTES_DIR = "unflushed"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

log = get_logger(__name__)


def boot_id() -> str:
    """This boot's random id: a note written under another one outlived a crash or a reboot."""
    return _BOOT_ID.read_text().strip()


class FlushNotes:
    """The locked notes of one command, each naming layers not yet on disk; `pay_later` hands
    them all to one detached flusher."""

    def __init__(self, image_home: Path, homes: Sequence[Path]) -> None:
        self._directory = image_home / NOTES_DIR
        self._homes = distinct_filesystems(*homes)
        self._notes: list[tuple[Path, int]] = []
        self.layers: set[str] = set()

    def add(self, layers: Sequence[str]) -> None:
        """Durably note that `layers` (chain ids) are about to be written and not flushed,
        before any of them exists; the note stays locked by this process and, later, by its
        flusher."""
        self._directory.mkdir(parents=True, exist_ok=True)
        path = self._directory / f"{new_id()}.json"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "wb") as note:
                note.write(json.dumps({"boot_id": boot_id(), "layers": list(layers)}).encode())
                note.flush()
                os.fsync(note.fileno())
            fsync_directory(self._directory)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._notes.append((path, fd))
        self.layers.update(layers)

    def pay_later(self) -> None:
        """Fork a detached process that syncs the filesystems of the homes, then removes the
        notes; return at once. The flusher keeps nothing of this process open but the notes, so
        no lock or pipe of the command outlives it."""
        if not self._notes:
            return
        try:
            pid = os.fork()
            if pid == 0:
                _flusher(self._notes, self._homes)
            os.waitpid(pid, 0)
        finally:
            for _, fd in self._notes:
                os.close(fd)
            self._notes.clear()


def settle_notes(
    image_home: Path, homes: Callable[[], Sequence[Path]], write_off: Callable[[set[str]], None]
) -> None:
    """Deal with the notes no flusher holds: flush the filesystems of `homes()` for this boot's,
    `write_off(layers)` for an earlier boot's (the layers may be torn), then remove the note."""
    directory = image_home / NOTES_DIR
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name.endswith(".json"):
            _settle(directory / name, homes, write_off)


def _settle(path: Path, homes: Callable[[], Sequence[Path]], write_off: Callable[[set[str]], None]) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # flushed meanwhile
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # its flusher (or its pull) is at work
        if not still_names(path, fd):
            return  # removed by its flusher just before we locked it
        note = _read_note(fd)
        if note.get("boot_id") == boot_id():
            for home in distinct_filesystems(*homes()):
                sync_filesystem(home)
        elif note:
            layers = set(note.get("layers", []))
            log.warning("removing images whose layers were not on disk before a crash", layers=sorted(layers))
            try:
                write_off(layers)
            except DockyardError as exc:  # the next command tries again; this one goes on
                log.warning(
                    "could not remove the images of an unflushed note", note=str(path), error=str(exc)
                )
                return
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _read_note(fd: int) -> dict[str, Any]:
    """A note's content; {} for one a crash cut short while it was written (before any layer
    it would have named was staged, so there is nothing to undo)."""
    with os.fdopen(os.dup(fd), "rb") as handle:
        data = handle.read()
    try:
        note = json.loads(data)
    except ValueError:
        return {}
    return note if isinstance(note, dict) else {}


def _flusher(notes: list[tuple[Path, int]], homes: Sequence[Path]) -> None:
    """The detached flusher's whole life (in a grandchild, so nobody waits for it): sync, remove
    the notes, exit. It never returns into the code it was forked from; if a sync fails, the
    notes stay for the next command to settle."""
    from dockyard.core.linux.process import close_fds_except

    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        close_fds_except({fd for _, fd in notes})
        null = os.open(os.devnull, os.O_RDWR)
        for standard in (0, 1, 2):
            os.dup2(null, standard)
        os.close(null)
        for home in homes:
            sync_filesystem(home)
        for note, _ in notes:
            note.unlink()
            fsync_directory(note.parent)
    finally:
        os._exit(0)
