"""Digests are validated before any use in a path; chain ids follow the OCI image spec."""

from __future__ import annotations

import hashlib
import io

import pytest

from dockyard.core.digests import HashingReader, digest_hex, validate_digest
from dockyard.core.errors import InvalidDigest
from dockyard.core.layers import chain_id

GOOD = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../x",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "md5:" + "a" * 32,
        "a" * 64,
        "sha256:" + "a" * 62 + "/.",
        "sha512:" + "a" * 64,
        "",
    ],
)
def test_malformed_digests_are_rejected(digest: str) -> None:
    with pytest.raises(InvalidDigest):
        digest_hex(digest)


def test_valid_digests_pass() -> None:
    assert validate_digest(GOOD) == GOOD
    assert digest_hex("sha512:" + "0" * 128) == "0" * 128


def test_hashing_reader_covers_the_whole_stream() -> None:
    reader = HashingReader(io.BytesIO(b"hello world"))
    assert reader.read(5) == b"hello"
    reader.drain()
    assert reader.size == 11
    assert reader.digest == "sha256:" + hashlib.sha256(b"hello world").hexdigest()


def test_chain_ids_follow_the_image_spec() -> None:
    first = "sha256:" + "1" * 64
    second = "sha256:" + "2" * 64
    assert chain_id(None, first) == first
    expected = "sha256:" + hashlib.sha256(f"{first} {second}".encode()).hexdigest()
    assert chain_id(first, second) == expected
    with pytest.raises(InvalidDigest):
        chain_id(None, "sha256:../../etc")
