"""The C library, loaded once, and the errno check shared by every wrapper in this package."""

from __future__ import annotations

import ctypes
import functools
import os

__all__ = ["check", "libc"]


@functools.cache
def libc() -> ctypes.CDLL:
    """glibc with `use_errno`, so a failing call's errno can be read back reliably."""
    return ctypes.CDLL("libc.so.6", use_errno=True)


def check(result: int, what: str) -> int:
    """Return `result`, or raise the call's errno as OSError (with `what` as its filename, so
    `strerror` stays the plain message) when it is -1."""
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), what)
    return result
