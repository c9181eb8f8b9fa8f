"""A blob file read while a real thread is still writing it: bytes in order, restarts refused."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from dockyard.core.download_feed import DownloadFeed, DownloadInterrupted


def _write_slowly(feed: DownloadFeed, data: bytes, *, restart_at: int | None = None) -> None:
    with feed.path.open("wb") as out:
        for offset in range(0, len(data), 1000):
            if offset == restart_at:
                out.seek(0)
                out.truncate()
                feed.restart()
            out.write(data[offset : offset + 1000])
            out.flush()
            feed.advance(out.tell())
    feed.finish(verified=True)


def test_a_reader_follows_the_download_to_its_end(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    feed = DownloadFeed(tmp_path / "blob")
    writer = threading.Thread(target=_write_slowly, args=(feed, data))
    with feed.reader() as reader:
        writer.start()
        chunks = []
        while chunk := reader.read(4096):
            chunks.append(chunk)
    writer.join()
    assert b"".join(chunks) == data and feed.done


def test_a_download_that_starts_over_interrupts_its_reader(tmp_path: Path) -> None:
    feed = DownloadFeed(tmp_path / "blob")
    writer = threading.Thread(
        target=_write_slowly, args=(feed, os.urandom(20_000)), kwargs={"restart_at": 10_000}
    )
    with feed.reader() as reader, pytest.raises(DownloadInterrupted):
        writer.start()
        while reader.read(1000):
            pass
    writer.join()


def test_a_failed_download_interrupts_a_waiting_reader(tmp_path: Path) -> None:
    feed = DownloadFeed(tmp_path / "blob")
    failing = threading.Timer(0.1, feed.finish, kwargs={"verified": False})
    failing.start()
    with feed.reader() as reader, pytest.raises(DownloadInterrupted):
        reader.read(10)
    failing.join()
