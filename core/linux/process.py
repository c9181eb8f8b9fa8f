"""Per-process switches a container's first process flips before it runs the user's program.

prctl(2) flags (dumpable, no_new_privs, child subreaper), close_range(2) to keep host descriptors
from leaking into the container, the controlling terminal, and signal dispositions. Forked helpers
of the engine's own (layer stagers, the flusher) close what they did not get for their job.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import termios

from dockyard.core.linux.libc import check, libc

__all__ = [
    "close_fds_except",
    "mark_fds_cloexec",
    "reset_signals",
    "set_child_subreaper",
    "set_controlling_terminal",
    "set_dumpable",
    "set_no_new_privileges",
]

_PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_CLOSE_RANGE_CLOEXEC = 1 << 2


def set_dumpable(dumpable: bool) -> None:
    """PR_SET_DUMPABLE. A non-dumpable process cannot be ptraced nor have its /proc/PID files
    (exe, fds, memory) opened by others: a process entering a container stays non-dumpable until
    execve, so the container cannot reach the host through it (the CVE-2019-5736 pattern)."""
    check(libc().prctl(_PR_SET_DUMPABLE, int(dumpable), 0, 0, 0), "prctl(PR_SET_DUMPABLE)")


def set_no_new_privileges() -> None:
    """PR_SET_NO_NEW_PRIVS: execve never grants privileges again (setuid bits, file caps)."""
    check(libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def set_child_subreaper(enabled: bool = True) -> None:
    """PR_SET_CHILD_SUBREAPER: orphaned descendants are reparented to this process, not init."""
    check(libc().prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


def mark_fds_cloexec(first: int = 3) -> None:
    """Set close-on-exec on every descriptor from `first` up, whatever opened it (the
    CVE-2024-21626 pattern: a leaked host directory descriptor is a way out of the container)."""
    close_range = libc().close_range
    close_range.argtypes = (ctypes.c_uint, ctypes.c_uint, ctypes.c_int)
    check(close_range(first, 0xFFFFFFFF, _CLOSE_RANGE_CLOEXEC), "close_range")


def close_fds_except(keep: set[int]) -> None:
    """Close every descriptor this process has except `keep` (a forked helper that must not
    hold its parent's locks and pipes open)."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def set_controlling_terminal(fd: int) -> None:
    """Make the terminal `fd` the controlling terminal of this session (call after setsid)."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def reset_signals() -> None:
    """Default disposition for every signal and an empty mask, as a fresh program expects.

    Python ignores SIGPIPE and SIGXFSZ and installs handlers of its own; ignored signals stay
    ignored across execve, so without this a container's `yes | head` would never end.
    """
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for number in signal.valid_signals():
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(number, signal.SIG_DFL)
