"""Docker's `--detach-keys` syntax and the held-back matching of the sequence in typed input."""

from __future__ import annotations

import pytest

from dockyard.core.detach_keys import (
    DEFAULT_DETACH_BYTES,
    DEFAULT_DETACH_KEYS,
    DetachSequence,
    parse_detach_keys,
)
from dockyard.core.errors import UsageError


def test_docker_syntax() -> None:
    assert parse_detach_keys(DEFAULT_DETACH_KEYS) == DEFAULT_DETACH_BYTES == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    assert parse_detach_keys("CTRL-@,ctrl-_,ctrl-[") == b"\x00\x1f\x1b"


@pytest.mark.parametrize("bad", ["ctrl-", "ctrl-1", "alt-x", "xy", "ctrl-a,", ""])
def test_invalid_keys_are_refused_with_dockers_message(bad: str) -> None:
    with pytest.raises(UsageError, match=r"Invalid detach keys \(.*\) provided"):
        parse_detach_keys(bad)


def test_the_sequence_is_held_back_and_detaches() -> None:
    sequence = DetachSequence(b"\x01x")
    assert sequence.feed(b"ls\x01") == (b"ls", False)  # ctrl-a waits for what follows
    assert sequence.feed(b"x ignored") == (b"", True)


def test_a_broken_sequence_reaches_the_container() -> None:
    sequence = DetachSequence(b"\x10\x11")
    assert sequence.feed(b"\x10") == (b"", False)
    assert sequence.feed(b"a") == (b"\x10a", False)
    assert sequence.feed(b"\x10\x10\x11") == (b"\x10", True)  # a second ctrl-p starts it anew
