"""Layer blobs as streams: decompression with an expansion limit, and reproducible gzip.

A compressed layer is verified against its digest before it is opened, but the digest says nothing
about how far it expands: a few megabytes of gzip or zstd can stand for terabytes (a decompression
bomb). So every decompressed stream is capped at `EXPANSION_RATIO` times the compressed size plus
`EXPANSION_FLOOR`; crossing the cap raises a ContentError and the layer being built is removed like
any failed layer. Real layers stay far below it: typical ratios are 2-5, and a layer would need to be
almost nothing but runs of zeros to reach it.

gzip is decoded in 1 MiB reads with the output of each call bounded, rather than through
`gzip.GzipFile` (8 KiB reads, a second CRC in Python): it is the hot loop of a pull. The decoder is
ISA-L's inflate (the `isal` package, the same zlib interface), which takes less than half of
zlib's CPU time for the same stream; compressing stays with zlib, whose output is the reproducible one.

Compressing is deterministic (gzip without a name or timestamp, fixed level), so compressing the
same tar twice gives the same blob, which is what keeps a pushed digest stable.
"""

from __future__ import annotations

import enum
import gzip
import shutil
from pathlib import Path
from typing import Any, BinaryIO, cast

from isal import isal_zlib
from isal.igzip_lib import IsalError

from dockyard.core.errors import ContentError, DriverPrerequisites

__all__ = [
    "EXPANSION_FLOOR",
    "EXPANSION_RATIO",
    "Compression",
    "LimitedReader",
    "compress_gzip",
    "open_layer",
    "sniff",
]

EXPANSION_RATIO = 256
EXPANSION_FLOOR = 32 << 20
GZIP_LEVEL = 6
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS
_READ_SIZE = 1 << 20


class Compression(enum.StrEnum):
    """How a layer blob is compressed."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


class LimitedReader:
    """A decompressing reader capped at `limit` bytes; corrupt input becomes a ContentError.

    `errors` are the decompressor's own exceptions for corrupt or truncated input.
    """

    def __init__(self, raw: BinaryIO, limit: int, *, errors: tuple[type[Exception], ...] = ()) -> None:
        self._raw = raw
        self._limit = limit
        self._errors: tuple[type[Exception], ...] = (EOFError, *errors)
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        """Read from the wrapped stream, counting against the limit."""
        try:
            chunk = self._raw.read(size)
        except self._errors as exc:
            raise ContentError(f"layer blob cannot be decompressed: {exc}") from exc
        self.count += len(chunk)
        if self.count > self._limit:
            raise ContentError(f"layer expands beyond {self._limit} bytes (decompression bomb?): refusing it")
        return chunk

    def readable(self) -> bool:
        """Always True: this is a reader."""
        return True


class _GzipReader:
    """Decodes a gzip stream (any number of members) with ISA-L, a bounded 1 MiB at a time."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._decoder = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
        self._input = b""
        self._in_member = False
        self._output = b""
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        """Up to `size` decompressed bytes (what is at hand for -1); b"" at the end of the stream."""
        if self._offset >= len(self._output):
            self._output, self._offset = self._fill(), 0
        end = len(self._output) if size < 0 else self._offset + size
        chunk = self._output[self._offset : end]
        self._offset += len(chunk)
        return chunk

    def _fill(self) -> bytes:
        while True:
            if not self._input:
                self._input = self._raw.read(_READ_SIZE)
                if not self._input:
                    if not self._in_member:
                        return b""
                    output = self._decode(b"")  # output the decoder still holds back
                    if output:
                        return output
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
            if not self._in_member and not self._input.strip(b"\0"):
                self._input = b""  # zero padding after the last member, as gzip(1) allows
                continue
            self._in_member = True
            output = self._decode(self._input)
            if output:
                return output

    def _decode(self, data: bytes) -> bytes:
        output = self._decoder.decompress(data, _READ_SIZE)
        if self._decoder.eof:
            # Everything after the member is in unused_data. unconsumed_tail may still hold a copy
            # of it (left from an earlier call that hit the output limit): never use both.
            self._input = self._decoder.unused_data
            self._decoder = isal_zlib.decompressobj(wbits=_GZIP_WBITS)
            self._in_member = False
        else:
            self._input = self._decoder.unconsumed_tail
        return output


def sniff(path: Path) -> Compression:
    """The compression of a blob file, by its magic bytes (archives do not always say)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.NONE


def open_layer(raw: BinaryIO, compression: Compression, *, compressed_size: int) -> BinaryIO:
    """The uncompressed tar stream of a layer blob, capped against decompression bombs."""
    if compression is Compression.NONE:
        return raw
    limit = compressed_size * EXPANSION_RATIO + EXPANSION_FLOOR
    stream: Any
    errors: tuple[type[Exception], ...]
    if compression is Compression.GZIP:
        stream = _GzipReader(raw)
        errors = (cast("type[Exception]", IsalError),)  # isal's stubs call the class an instance
    else:
        try:
            import zstandard
        except ImportError as exc:
            raise DriverPrerequisites("zstd-compressed layers need the 'zstandard' Python package") from exc
        stream = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        errors = (zstandard.ZstdError,)
    return cast(BinaryIO, LimitedReader(stream, limit, errors=errors))


def compress_gzip(source: Path, destination: Path) -> None:
    """Write a reproducible gzip of `source`: no file name, mtime 0, a fixed level."""
    with (
        source.open("rb") as raw,
        destination.open("wb") as out,
        gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=GZIP_LEVEL, mtime=0) as packed,
    ):
        shutil.copyfileobj(raw, packed, 1 << 20)
