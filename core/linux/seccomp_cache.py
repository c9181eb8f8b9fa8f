"""Seccomp programs compiled once per profile and kept as BPF bytes under the runroot.

Turning a profile into BPF costs about 20 ms on every container start: reading and reducing the
JSON, hundreds of libseccomp rule calls, and libseccomp generating the program when it loads.
The program libseccomp generated is kept instead (`seccomp_export_bpf`), in a file named by what
it depends on: the profile file (path, device, inode, size, modification time), the bounding set
the rules were reduced for, this machine's kernel release and architecture, and what compiled it
(Dockyard's version and its profile reader, libseccomp's version), so an upgrade of either never
reuses a program the old one generated. Later starts load
those bytes with PR_SET_SECCOMP, as libseccomp itself does without extra filter flags, so the
container gets the same program either way.

The cache lives in the isolation driver's run directory (root's, mode 0700, cleared at boot on a
tmpfs runroot): whoever can write there can already change every container's state.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dockyard.core.linux.libc import check, libc

__all__ = ["CompiledFilter", "cached_filter", "compiler_identity", "export_program"]

_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_INSTRUCTION_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
_DIGEST_SIZE = 32  # a kept file is the program's SHA-256, then the program


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class CompiledFilter:
    """A seccomp BPF program as libseccomp generated it, ready to `load()` into this thread."""

    __slots__ = ("program",)

    def __init__(self, program: bytes) -> None:
        if not program or len(program) % _INSTRUCTION_SIZE or len(program) // _INSTRUCTION_SIZE > 0xFFFF:
            raise ValueError(f"not a seccomp BPF program ({len(program)} bytes)")
        self.program = program

    def load(self) -> None:
        """Install the program (PR_SET_SECCOMP, SECCOMP_MODE_FILTER); OSError if the kernel refuses."""
        code = ctypes.create_string_buffer(self.program, len(self.program))
        fprog = _SockFprog(len(self.program) // _INSTRUCTION_SIZE, ctypes.addressof(code))
        prctl = libc().prctl
        check(
            prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
            "prctl(PR_SET_SECCOMP)",
        )


def export_program(libseccomp_filter: Any) -> CompiledFilter:
    """The BPF program libseccomp generates for a pyseccomp filter (it writes it to a descriptor)."""
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    with os.fdopen(fd, "w+b") as file:
        libseccomp_filter.export_bpf(file)
        file.seek(0)
        return CompiledFilter(file.read())


def cached_filter(
    profile_path: str,
    capabilities: Iterable[str],
    *,
    cache_dir: Path,
    build: Callable[[], CompiledFilter],
) -> CompiledFilter:
    """The program for `profile_path` reduced to `capabilities`: from the cache, else `build()`
    and kept for next time. Raises what `build` raises, and OSError when the profile is missing;
    a cache that cannot be read or written is only slower."""
    info = os.stat(profile_path)
    machine = os.uname()
    key = json.dumps(
        [
            os.path.abspath(profile_path),
            info.st_dev,
            info.st_ino,
            info.st_size,
            info.st_mtime_ns,
            sorted(capabilities),
            machine.release,
            machine.machine,
            compiler_identity(),
        ]
    )
    path = cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()}.bpf"
    cached = _read(path)
    if cached is not None:
        return cached
    compiled = build()
    _keep(path, compiled.program)
    return compiled


class _ScmpVersion(ctypes.Structure):
    _fields_ = (("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint))


def compiler_identity() -> list[object]:
    """What turns a profile into a program: Dockyard's version, its profile reader's source file
    (a development tree changes without a new version) and libseccomp's version ("" when the
    library is missing: `build` then reports that)."""
    from dockyard.core import __version__

    reader = os.stat(os.path.join(os.path.dirname(__file__), "seccomp.py"))
    identity: list[object] = [__version__, reader.st_size, reader.st_mtime_ns]
    try:
        library = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return [*identity, ""]
    library.seccomp_version.restype = ctypes.POINTER(_ScmpVersion)
    version = library.seccomp_version().contents
    return [*identity, f"{version.major}.{version.minor}.{version.micro}"]


def _read(path: Path) -> CompiledFilter | None:
    """The kept program, or None when there is none or it does not match its checksum."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        data = file.read()
    digest, program = data[:_DIGEST_SIZE], data[_DIGEST_SIZE:]
    if hashlib.sha256(program).digest() != digest:  # e.g. cut short by a crash: compile again
        return None
    try:
        return CompiledFilter(program)
    except ValueError:
        return None


def _keep(path: Path, program: bytes) -> None:
    """Write the program after its checksum, atomically; a cache that cannot be written is ignored."""
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(hashlib.sha256(program).digest() + program)
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)
