"""A container's terminal, made from the container's own devpts and handed to whoever relays it.

A pty allocated on the host's devpts shows up nowhere in a container that mounts a devpts instance
of its own at /dev/pts: `tty` says "not a tty", and `ssh` or `sudo` cannot reopen it. So, as runc
does, the process entering the container opens the container's /dev/ptmx once its mounts are in
place, makes the slave its standard streams and sends the master over a unix socket
(SCM_RIGHTS) to the monitor or the CLI, which relays it. The receiving half is in
core/monitor.py, which imports nothing but C modules.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

__all__ = ["open_container_terminal", "send_terminal"]

_TIOCSPTLCK = 0x40045431  # lock or unlock the slave (termios has it, its type stub does not)
_TIOCGPTPEER = 0x5441  # Linux 4.13: open the slave of a master without a path lookup


def open_container_terminal(*, owner: int) -> tuple[int, int]:
    """A new pty from this mount namespace's /dev/ptmx: (master, slave), both close-on-exec;
    the slave belongs to user `owner`, as the standard streams of the container's user do."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        os.close(master)
        raise
    if owner != 0:
        os.fchown(slave, owner, -1)
    return master, slave


def send_terminal(console: int, master: int) -> None:
    """Send the pty `master` over the connected unix socket `console` (one byte, one descriptor)."""
    sender = socket.socket(fileno=console)
    try:
        sender.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", master))])
    finally:
        sender.detach()
