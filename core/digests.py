"""Content digests: validation before any use in a path or URL, and hashing while streaming.

Only `sha256` (64 lowercase hex) and `sha512` (128) are accepted, as the OCI image spec registers;
anything else, `sha256:../x` included, is an InvalidDigest before it reaches a file name.
"""

from __future__ import annotations

import re

from dockyard.core.errors import InvalidDigest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO


__all__ = ["HashingReader", "HashingWriter", "digest_hex", "sha256_digest", "validate_digest"]

_LENGTHS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-f]+")


def validate_digest(digest: str) -> str:
    """Return `digest` unchanged if it is a well-formed supported digest, else raise InvalidDigest."""
    algorithm, sep, hexpart = digest.partition(":")
    if not sep or algorithm not in _LENGTHS:
        raise InvalidDigest(f"invalid digest {digest!r}: unsupported or missing algorithm")
    if len(hexpart) != _LENGTHS[algorithm] or not _HEX.fullmatch(hexpart):
        raise InvalidDigest(
            f"invalid digest {digest!r}: expected {_LENGTHS[algorithm]} lowercase hex characters"
        )
    return digest


def digest_hex(digest: str) -> str:
    """The hex part of a validated digest, safe to use as a file name."""
    return validate_digest(digest).partition(":")[2]


def sha256_digest(data: bytes) -> str:
    """The `sha256:` digest of `data`."""
    import hashlib  # loads OpenSSL: only when something is hashed

    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingReader:
    """A read-only stream that hashes (sha256) and counts everything read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        import hashlib

        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        """Read from the wrapped stream, hashing what passes."""
        chunk = self._raw.read(size)
        self._hash.update(chunk)
        self.size += len(chunk)
        return chunk

    def readable(self) -> bool:
        """Always True: this is a reader."""
        return True

    def drain(self) -> None:
        """Read the rest of the stream so the digest covers all of it (tar padding included)."""
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        """The `sha256:` digest of everything read so far."""
        return "sha256:" + self._hash.hexdigest()


class HashingWriter:
    """A write-only stream that hashes (sha256) and counts everything written through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        import hashlib

        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        """Write to the wrapped stream, hashing what passes."""
        self._hash.update(data)
        self.size += len(data)
        return self._raw.write(data)

    @property
    def digest(self) -> str:
        """The `sha256:` digest of everything written so far."""
        return "sha256:" + self._hash.hexdigest()
