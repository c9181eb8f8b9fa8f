"""Transparent decompression of layer and import streams by their magic bytes.

gzip, bzip2 and xz come from the standard library; zstd needs the `zstandard` package and says so
when it is missing. A stream with no known magic is passed through as an uncompressed tar.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO, cast

from dockyard.core.errors import DriverPrerequisites

__all__ = ["open_decompressed"]

_GZIP = b"\x1f\x8b"
_BZIP2 = b"BZh"
_XZ = b"\xfd7zXZ\x00"
_ZSTD = b"\x28\xb5\x2f\xfd"


def open_decompressed(raw: BinaryIO) -> BinaryIO:
    """A reader yielding the decompressed bytes of `raw`, whatever its compression."""
    buffered: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    head = buffered.peek(6)[:6]
    if head.startswith(_GZIP):
        import gzip

        return cast(BinaryIO, gzip.GzipFile(fileobj=buffered, mode="rb"))
    if head.startswith(_BZIP2):
        import bz2

        return cast(BinaryIO, bz2.BZ2File(buffered, mode="rb"))
    if head.startswith(_XZ):
        import lzma

        return cast(BinaryIO, lzma.LZMAFile(buffered, mode="rb"))
    if head.startswith(_ZSTD):
        try:
            import zstandard
        except ImportError as exc:
            raise DriverPrerequisites("zstd-compressed content needs the 'zstandard' Python package") from exc
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(buffered))
    return cast(BinaryIO, buffered)
