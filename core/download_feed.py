"""A blob file read while it is still downloading: how a pull extracts a layer as it arrives.

The download thread writes the blob into its file and reports through a `DownloadFeed`: how many
bytes the file holds, that the download started over from zero, that it finished (verified) or that
it failed. A `FeedReader` reads the same file with pread(2) at its own offset and, when it has
caught up with the writer, waits for the next report, so decompression, hashing and extraction run
while the rest of the blob is still on the wire. The digest of the blob is known only at the end:
whatever was built from the stream stays staged until the download reports success.

A restart (a registry that ignored the range, a kept prefix that turned out wrong) or a failure
makes the reader raise DownloadInterrupted: what it returned so far may be stale, so the consumer
discards its work and, if the download still succeeds, reads the finished file again.
"""

from __future__ import annotations

import enum
import os
import threading
from pathlib import Path

__all__ = ["DownloadFeed", "DownloadInterrupted", "FeedReader"]

_CHUNK = 1 << 20


class DownloadInterrupted(Exception):
    """The download behind a FeedReader started over or failed: what was read may be stale."""


class _State(enum.Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DownloadFeed:
    """What a download thread tells the readers of its file (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._changed = threading.Condition()
        self._size = 0
        self._restarts = 0
        self._state = _State.RUNNING

    def advance(self, size: int) -> None:
        """The file now holds `size` bytes of the blob."""
        with self._changed:
            self._size = size
            self._changed.notify_all()

    def restart(self) -> None:
        """The download threw away what the file held and starts from zero."""
        with self._changed:
            self._restarts += 1
            self._size = 0
            self._changed.notify_all()

    def finish(self, *, verified: bool) -> None:
        """The download ended: the file is the whole, verified blob, or the download failed."""
        with self._changed:
            self._state = _State.DONE if verified else _State.FAILED
            self._changed.notify_all()

    @property
    def done(self) -> bool:
        """Whether the file is the whole, verified blob."""
        return self._state is _State.DONE

    def reader(self) -> FeedReader:
        """A reader of the blob from its first byte, as it arrives."""
        with self._changed:
            return FeedReader(self, self._restarts)

    def _wait(self, offset: int, restarts: int) -> int | None:
        """Wait until the file holds more than `offset` bytes; how many (None once done)."""
        with self._changed:
            while True:
                if restarts != self._restarts or self._state is _State.FAILED:
                    raise DownloadInterrupted(f"the download of {self.path.name} started over or failed")
                if self._state is _State.DONE:
                    return None
                if self._size > offset:
                    return self._size
                self._changed.wait()


class FeedReader:
    """Reads a blob file from the start while its download goes on; use as a context manager."""

    def __init__(self, feed: DownloadFeed, restarts: int) -> None:
        self._feed = feed
        self._restarts = restarts
        self._fd: int | None = None
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (1 MiB for -1), waiting for them to arrive; b"" at the blob's end."""
        while True:
            wanted = _CHUNK if size < 0 else size
            available = self._feed._wait(self._offset, self._restarts)
            if available is not None:
                wanted = min(wanted, available - self._offset)
            if self._fd is None:
                self._fd = os.open(self._feed.path, os.O_RDONLY | os.O_CLOEXEC)
            data = os.pread(self._fd, wanted, self._offset)
            if data or available is None:
                self._offset += len(data)
                return data
            # Nothing where the feed said bytes were: the download truncated its file to start
            # over and has not said so yet. That is not the end of the blob; the next wait
            # raises DownloadInterrupted once the restart is reported.

    def readable(self) -> bool:
        """Always True: this is a reader."""
        return True

    def close(self) -> None:
        """Close the file (the download goes on)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FeedReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
