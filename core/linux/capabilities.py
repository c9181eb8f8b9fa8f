"""Capabilities: names and numbers, the bounding set, and capset(2).

A container's process keeps a bounding set (the most it or its children can ever gain, even from
setuid or file-capability binaries), and permitted / effective / inheritable sets (what it holds
now). The ambient set is always cleared.
"""

from __future__ import annotations

import ctypes
import functools

from dockyard.core.linux.capability_names import CAPABILITY_NAMES
from dockyard.core.linux.libc import check, libc

__all__ = [
    "CAPABILITIES",
    "capability_mask",
    "capability_numbers",
    "clear_ambient",
    "drop_bounding",
    "last_capability",
    "set_capabilities",
]

CAPABILITIES: dict[str, int] = {name: number for number, name in enumerate(CAPABILITY_NAMES)}

_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capability_numbers(names: tuple[str, ...] | list[str]) -> frozenset[int]:
    """The numbers of capabilities named `CAP_X` (or `X`); ValueError names an unknown one."""
    numbers = set()
    for name in names:
        key = name.upper() if name.upper().startswith("CAP_") else f"CAP_{name.upper()}"
        if key not in CAPABILITIES:
            raise ValueError(f"unknown capability {name!r}")
        numbers.add(CAPABILITIES[key])
    return frozenset(numbers)


def capability_mask(numbers: frozenset[int]) -> int:
    """The bit mask of a set of capability numbers, as /proc/PID/status prints it."""
    return sum(1 << number for number in numbers)


@functools.cache
def last_capability() -> int:
    """The highest capability number this kernel knows."""
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as file:
        return int(file.read())


def drop_bounding(keep: frozenset[int]) -> None:
    """Remove every capability not in `keep` from the bounding set (needs CAP_SETPCAP)."""
    prctl = libc().prctl
    for number in range(last_capability() + 1):
        if number not in keep:
            check(prctl(_PR_CAPBSET_DROP, number, 0, 0, 0), f"dropping capability {number}")


def clear_ambient() -> None:
    """Empty the ambient set, so nothing is granted across execve by it."""
    check(libc().prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient caps")


def set_capabilities(
    *, permitted: frozenset[int], effective: frozenset[int], inheritable: frozenset[int]
) -> None:
    """capset(2) on the calling thread; a set can only shrink, unless the process holds CAP_SETPCAP
    and the capability is in its bounding set (inheritable) or permitted set (effective)."""
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    for index in range(2):
        data[index].effective = _word(effective, index)
        data[index].permitted = _word(permitted, index)
        data[index].inheritable = _word(inheritable, index)
    check(libc().capset(ctypes.byref(header), data), "capset")


def _word(numbers: frozenset[int], index: int) -> int:
    return (capability_mask(numbers) >> (32 * index)) & 0xFFFFFFFF
