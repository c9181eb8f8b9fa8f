"""Seccomp profiles in the format of containers-common's seccomp.json (Docker's, OCI-compatible),
reduced to the rules that apply to one process, and turned into a libseccomp filter.

A profile has a default action (with `defaultErrnoRet`), the architectures to cover (`archMap`:
the native one and its sub-architectures, or an OCI `architectures` list), and syscall groups,
each with an action, optional argument conditions and `includes` / `excludes` by capability,
architecture and minimum kernel. `load_profile` keeps the groups that apply to a process with a
given bounding set on this machine (as containers-common and runc decide it); `build_filter`
hands them to libseccomp, which compiles the BPF program, through the `pyseccomp` binding.
"""

from __future__ import annotations

import errno
import json
import os
import platform
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "ArgCondition",
    "LoadableFilter",
    "Profile",
    "SyscallRule",
    "build_filter",
    "load_profile",
    "native_architecture",
]

# platform.machine() -> (the Go architecture name the profiles' `arches` use, the SCMP_ARCH name)
_MACHINES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "i686": ("386", "SCMP_ARCH_X86"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
}

_ACTIONS = {
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
}
_OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}


@dataclass(frozen=True)
class ArgCondition:
    """A comparison of syscall argument `index` (`value` is the mask for MASKED_EQ)."""

    index: int
    op: str
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class SyscallRule:
    """Syscalls that get `action` (and `errno_ret` for ERRNO and TRACE) when `args` hold."""

    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[ArgCondition, ...] = ()


@dataclass(frozen=True)
class Profile:
    """A profile reduced to one process on one machine."""

    default_action: str
    default_errno_ret: int | None
    architectures: tuple[str, ...]
    rules: tuple[SyscallRule, ...]


class LoadableFilter(Protocol):
    """A compiled filter, loaded into the calling thread by `load()`."""

    def load(self) -> None:
        """Install the filter; from then on it applies to this thread and its children."""


def native_architecture() -> tuple[str, str]:
    """This machine's (Go architecture name, SCMP_ARCH name); ValueError if unknown."""
    machine = platform.machine()
    if machine not in _MACHINES:
        raise ValueError(f"no seccomp architecture known for {machine}")
    return _MACHINES[machine]


def load_profile(path: str, *, capabilities: frozenset[str] | set[str]) -> Profile:
    """Read a profile and keep the rules for a process whose bounding set is `capabilities`.

    Raises OSError when the file cannot be read and ValueError when it is malformed.
    """
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a seccomp profile is a JSON object")
    arch, scmp_arch = native_architecture()
    try:
        default = _action(data.get("defaultAction", ""))
        rules = tuple(
            _rule(entry) for entry in data.get("syscalls") or () if _applies(entry, arch, capabilities)
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: malformed seccomp profile ({exc!r})") from exc
    return Profile(default, data.get("defaultErrnoRet"), _architectures(data, scmp_arch), rules)


def build_filter(profile: Profile) -> LoadableFilter:
    """A libseccomp filter for the profile, ready to `load()`; OSError if libseccomp refuses.

    Syscalls libseccomp does not know are skipped (a newer profile on an older library), and
    rules whose action is the default are left out (libseccomp refuses them). Conditions on the
    same argument are alternatives, each its own rule; conditions on different arguments must
    all hold. No-new-privileges is the caller's decision, not the filter's.
    """
    pyseccomp = _import_pyseccomp()
    default = _scmp_action(pyseccomp, profile.default_action, profile.default_errno_ret)
    compiled = pyseccomp.SyscallFilter(default)
    compiled.set_attr(pyseccomp.Attr.CTL_NNP, 0)
    native = pyseccomp.system_arch()
    for name in profile.architectures:
        code = getattr(pyseccomp.Arch, name.removeprefix("SCMP_ARCH_"), None)
        if code is not None and code != native:
            compiled.add_arch(code)
    for rule in profile.rules:
        action = _scmp_action(pyseccomp, rule.action, rule.errno_ret)
        if action == default:
            continue
        conditions = [
            pyseccomp.Arg(arg.index, _OPERATORS[arg.op], arg.value, arg.value_two) for arg in rule.args
        ]
        indexes = [arg.index for arg in rule.args]
        groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
        for syscall in rule.names:
            number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, syscall)
            if number == -1:
                continue
            for group in groups:
                compiled.add_rule(action, number, *group)
    loadable: LoadableFilter = compiled
    return loadable


# What pyseccomp asks ctypes.util.find_library for, by the sonames the dynamic loader knows.
_SONAMES = {"c": "libc.so.6", "seccomp": "libseccomp.so.2"}


def _import_pyseccomp() -> Any:
    """pyseccomp, imported without the two `ldconfig -p` runs its find_library calls cost
    (about 10 ms on every container start): while it loads, a library the loader opens by its
    soname is named by that soname; anything else is still looked up the standard way."""
    import sys

    if "pyseccomp" in sys.modules:
        return sys.modules["pyseccomp"]
    import ctypes
    import ctypes.util

    standard = ctypes.util.find_library

    def find_library(name: str) -> str | None:
        soname = _SONAMES.get(name)
        if soname is not None:
            try:
                ctypes.CDLL(soname)
                return soname
            except OSError:
                pass
        return standard(name)

    ctypes.util.find_library = find_library
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = standard
    return pyseccomp


def _rule(entry: dict[str, Any]) -> SyscallRule:
    return SyscallRule(
        tuple(entry.get("names") or [entry["name"]]),
        _action(entry.get("action", "")),
        entry.get("errnoRet"),
        tuple(
            ArgCondition(arg["index"], _operator(arg["op"]), arg["value"], arg.get("valueTwo", 0))
            for arg in entry.get("args") or ()
        ),
    )


def _applies(entry: dict[str, Any], arch: str, capabilities: frozenset[str] | set[str]) -> bool:
    includes, excludes = entry.get("includes") or {}, entry.get("excludes") or {}
    if arch in (excludes.get("arches") or ()):
        return False
    if any(cap in capabilities for cap in excludes.get("caps") or ()):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if any(cap not in capabilities for cap in includes.get("caps") or ()):
        return False
    minimum = includes.get("minKernel")
    return not minimum or _kernel_at_least(minimum)


def _architectures(data: dict[str, Any], native: str) -> tuple[str, ...]:
    for entry in data.get("archMap") or ():
        if entry.get("architecture") == native:
            return (native, *entry.get("subArchitectures", ()))
    listed = data.get("architectures")
    return tuple(listed) if listed else (native,)


def _kernel_at_least(version: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        return tuple(int("".join(ch for ch in part if ch.isdigit()) or 0) for part in text.split(".")[:2])

    return numbers(os.uname().release) >= numbers(version)


def _action(name: str) -> str:
    if name not in _ACTIONS:
        raise ValueError(f"unsupported seccomp action {name!r}")
    return name


def _operator(name: str) -> str:
    if name not in _OPERATORS:
        raise ValueError(f"unknown seccomp operator {name!r}")
    return name


def _scmp_action(pyseccomp: Any, action: str, errno_ret: int | None) -> int:
    simple = {
        "SCMP_ACT_KILL": pyseccomp.KILL_THREAD,
        "SCMP_ACT_KILL_THREAD": pyseccomp.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS,
        "SCMP_ACT_TRAP": pyseccomp.TRAP,
        "SCMP_ACT_ALLOW": pyseccomp.ALLOW,
        "SCMP_ACT_LOG": pyseccomp.LOG,
    }
    if action in simple:
        return int(simple[action])
    if action == "SCMP_ACT_ERRNO":
        return int(pyseccomp.ERRNO(errno.EPERM if errno_ret is None else errno_ret))
    return int(pyseccomp.TRACE(errno_ret or 0))
