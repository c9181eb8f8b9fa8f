"""A forward-only stream that tarfile can read in its random-access mode, one call per member.

tarfile's stream mode (`r|`) pulls its input 10 KiB at a time and copies it through an internal
buffer, so a 50 MB layer costs thousands of Python calls through every reader below it (hashing,
the bomb limit, decompression). Its random-access mode (`r:`) reads each header and each member's
content with a single `read` of exactly the size it needs, positioned with `seek`. A pull's layer
stream cannot seek, but tarfile only ever seeks forward (to skip content nobody read and the
padding after it), so this reader offers `seek` and `tell` over the stream: forward seeks read and
drop, backward ones are refused. Underneath, it reads large chunks, which keeps the calls into
zlib and hashlib few and large, where they run without the GIL.
"""

from __future__ import annotations

import io
from typing import BinaryIO

__all__ = ["ForwardReader"]

_CHUNK = 1 << 20


class ForwardReader:
    """Reads `raw` in large chunks and serves reads of any size; seeks only forward."""

    def __init__(self, raw: BinaryIO, *, chunk: int = _CHUNK) -> None:
        self._raw = raw
        self._chunk = chunk
        self._buffer = b""
        self._start = 0  # how much of the buffer has been served
        self._position = 0  # stream offset of buffer[_start]

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (fewer only at the end of the stream); all that is left for -1."""
        if size is None or size < 0:
            parts = [self._buffer[self._start :]]
            while chunk := self._raw.read(self._chunk):
                parts.append(chunk)
            self._buffer, self._start = b"", 0
            data = b"".join(parts)
            self._position += len(data)
            return data
        parts = []
        wanted = size
        while wanted:
            if self._start >= len(self._buffer):
                self._buffer, self._start = self._raw.read(self._chunk), 0
                if not self._buffer:
                    break
            piece = self._buffer[self._start : self._start + wanted]
            self._start += len(piece)
            wanted -= len(piece)
            parts.append(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to `offset`: forward by reading and dropping, back only within the last chunk."""
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR):
            raise io.UnsupportedOperation("a forward-only stream cannot seek from its end")
        back = self._position - target
        if 0 < back <= self._start:
            self._start -= back
            self._position = target
        elif back > 0:
            raise io.UnsupportedOperation(f"cannot seek back from {self._position} to {target}")
        while self._position < target:
            if not self.read(min(target - self._position, self._chunk)):
                break  # the end of the stream: the next read reports it
        return self._position

    def tell(self) -> int:
        """The stream offset of the next byte `read` returns."""
        return self._position

    def readable(self) -> bool:
        """Always True: this is a reader."""
        return True

    def seekable(self) -> bool:
        """True: tarfile asks, and forward seeks are all it makes."""
        return True
