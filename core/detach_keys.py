"""Docker's detach keys: the `--detach-keys` syntax, and spotting the sequence in typed input.

The syntax is a comma-separated list of keys, each one character or `ctrl-X` with X a letter or
one of `@[\\]^_` ("ctrl-a,x"); Docker's default is "ctrl-p,ctrl-q". While the user types a
prefix of the sequence it is held back; a key that breaks the sequence releases the held keys
to the container, so a lone ctrl-p still reaches it.
"""

from __future__ import annotations

from dockyard.core.errors import UsageError

__all__ = ["DEFAULT_DETACH_BYTES", "DEFAULT_DETACH_KEYS", "DetachSequence", "parse_detach_keys"]

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
DEFAULT_DETACH_BYTES = b"\x10\x11"  # what DEFAULT_DETACH_KEYS stands for
_CONTROL_NAMES = "@abcdefghijklmnopqrstuvwxyz[\\]^_"  # ctrl-@ is 0, ctrl-a is 1, ... ctrl-_ is 31


def parse_detach_keys(text: str) -> bytes:
    """The bytes a `--detach-keys` value stands for; UsageError (Docker's message) if invalid."""
    codes = bytearray()
    for key in text.split(","):
        if len(key) == 1 and key.isascii():
            codes.append(ord(key))
            continue
        lowered = key.lower()
        name = lowered.removeprefix("ctrl-")
        if lowered == name or len(name) != 1 or name not in _CONTROL_NAMES:
            raise UsageError(f"Invalid detach keys ({text}) provided")
        codes.append(_CONTROL_NAMES.index(name))
    return bytes(codes)


class DetachSequence:
    """Watches typed input for the detach keys (module docstring)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.matched = 0  # how many keys of the sequence were typed last, held back

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """What of `data` to pass on to the container, and whether the sequence is complete (what
        follows it in `data` is dropped, as Docker drops it)."""
        passed = bytearray()
        for byte in data:
            if byte != self.keys[self.matched]:
                passed += self.keys[: self.matched]
                self.matched = 0
            if byte == self.keys[self.matched]:
                self.matched += 1
                if self.matched == len(self.keys):
                    self.matched = 0
                    return bytes(passed), True
            else:
                passed.append(byte)
        return bytes(passed), False
