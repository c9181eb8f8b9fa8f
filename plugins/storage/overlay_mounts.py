"""Mounting and unmounting overlay stacks, with the kernel or with a FUSE program.

A stack names its directories relative to the overlay driver's home (`l/ABC...` short links for
the lower layers), so the option string stays short however deep the image is: the kernel reads
mount options from one page. The relative names are resolved against the current directory of
whoever mounts, so the kernel mount runs in a forked child that changes into the home first
(changing the directory of this process would race with its other threads), and a FUSE program
is started with the home as its working directory.

Kernel mounts disable the features that would put an upper directory's meaning outside it
(`redirect_dir=nofollow`, `metacopy=off`, `index=off`), which the driver's native diff relies
on; rootless mounts add `userxattr`, so overlayfs reads `user.overlay.*` attributes (kernel 5.11
and later, in a user namespace). Unmounting detaches lazily, as a container engine must: a
process still inside keeps its view, and the mount point is free at once.

Failures are OSErrors: the kernel's own errno, or ProgramFailed with the FUSE program's message.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KERNEL",
    "ProgramFailed",
    "Stack",
    "make_work_removable",
    "mount",
    "option_string",
    "unmount",
]

KERNEL = "kernel"
_MNT_DETACH = 2
_FAILED_BEFORE_MOUNT = 255


class ProgramFailed(OSError):
    """The FUSE mount program refused; the message is its own."""


@dataclass(frozen=True)
class Stack:
    """An overlay to mount: lower directories (nearest first) and, for a writable one, an upper
    and a work directory, all relative to the directory the mount is made from."""

    lowers: tuple[str, ...]
    upper: str | None = None
    work: str | None = None


def option_string(stack: Stack, *, program: str, rootless: bool) -> str:
    """The `-o` options of a stack for the kernel or a FUSE program."""
    options = ["lowerdir=" + ":".join(stack.lowers)]
    if stack.upper is not None and stack.work is not None:
        options += [f"upperdir={stack.upper}", f"workdir={stack.work}"]
    if program == KERNEL:
        options += ["index=off", "redirect_dir=nofollow", "metacopy=off"]
        if rootless:
            options.append("userxattr")
    elif os.geteuid() == 0:
        options.append("allow_other")  # container processes run as other users
    return ",".join(options)


def mount(stack: Stack, target: Path, *, cwd: Path, program: str, rootless: bool) -> None:
    """Mount the stack on `target`, its relative names resolved from `cwd`."""
    options = option_string(stack, program=program, rootless=rootless)
    if program == KERNEL:
        _kernel_mount(options, target, cwd)
    else:
        _program_mount(program, options, target, cwd)


def unmount(target: Path, *, fuse: bool) -> None:
    """Detach the mount on `target`; an unprivileged FUSE mount goes through fusermount3."""
    if fuse and os.geteuid() != 0:
        _run(["fusermount3", "-u", "-z", str(target)], cwd=None)
        return
    if _libc_call("umount2")(os.fsencode(target), _MNT_DETACH) != 0:
        import ctypes

        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(target))


def make_work_removable(work: Path) -> None:
    """Give back the permissions the kernel takes from `work/work`, so that an unprivileged
    owner can delete a work directory once it is unmounted."""
    inner = work / "work"
    if inner.is_dir():
        os.chmod(inner, 0o700)


def _kernel_mount(options: str, target: Path, cwd: Path) -> None:
    """mount(2) in a forked child that first changes into `cwd`; its exit status is the errno."""
    import ctypes

    call = _libc_call("mount")
    arguments = (b"overlay", os.fsencode(target), b"overlay", 0, options.encode())
    directory = os.fsencode(cwd)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: two system calls, then _exit
        code = _FAILED_BEFORE_MOUNT
        try:
            os.chdir(directory)
            code = 0 if call(*arguments) == 0 else ctypes.get_errno()
        finally:
            os._exit(code)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == _FAILED_BEFORE_MOUNT:
        raise OSError(f"cannot enter {cwd} to mount {target}")
    if code != 0:
        raise OSError(code, os.strerror(code), str(target))


@functools.cache
def _libc_call(name: str) -> Callable[..., int]:
    """A libc function bound through ctypes, with errno kept (bound once, before any fork)."""
    import ctypes

    function = getattr(ctypes.CDLL(None, use_errno=True), name)
    if name == "mount":
        function.argtypes = [
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_ulong,
            ctypes.c_char_p,
        ]
    else:
        function.argtypes = [ctypes.c_char_p, ctypes.c_int]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def _program_mount(program: str, options: str, target: Path, cwd: Path) -> None:
    """Start the FUSE program, which mounts and then serves the mount in the background."""
    _run([program, "-o", options, str(target)], cwd=cwd)


def _run(argv: list[str], *, cwd: Path | None) -> None:
    import subprocess

    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = result.stderr.strip() or f"exit status {result.returncode}"
        raise ProgramFailed(f"{os.path.basename(argv[0])}: {message}")
