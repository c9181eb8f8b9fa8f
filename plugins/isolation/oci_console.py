"""Terminals for the `oci` driver: receive the pty master an OCI runtime creates, and relay it.

With `process.terminal` an OCI runtime makes the container's pty itself and sends the master over
a unix socket (`--console-socket`, SCM_RIGHTS). Dockyard's lifecycle instead hands the driver the
slave of a pty it owns, so a small relay process joins the two: it copies bytes both ways, keeps
the caller's pty raw (the container's pty does the line discipline), and forwards window-size
changes (the caller's pty is its controlling terminal, so a resize reaches it as SIGWINCH). It
ends when the container's side hangs up.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager

from dockyard.core.errors import DriverFailed
from dockyard.core.linux.process import set_controlling_terminal

__all__ = ["console_socket", "receive_master", "start_relay"]


@contextmanager
def console_socket() -> Iterator[tuple[str, socket.socket]]:
    """A listening unix socket in a fresh, short-named directory (socket paths are limited to
    108 bytes, so it cannot live in a deep state directory)."""
    directory = tempfile.mkdtemp(prefix="dockyard-console-")
    path = os.path.join(directory, "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        server.bind(path)
        server.listen(1)
        yield path, server
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


def receive_master(
    server: socket.socket, runtime: subprocess.Popen[bytes], *, timeout: float = 30
) -> int | None:
    """The pty master the runtime sends, or None if the runtime exits without sending one."""
    deadline = time.monotonic() + timeout
    server.settimeout(0.05)
    while time.monotonic() < deadline:
        try:
            connection, _ = server.accept()
        except TimeoutError:
            if runtime.poll() is not None:
                return None
            continue
        with connection:
            _, fds, _, _ = socket.recv_fds(connection, 4096, 1)
        if not fds:
            raise DriverFailed("the OCI runtime sent no terminal over the console socket")
        os.set_inheritable(fds[0], False)
        return fds[0]
    raise DriverFailed("timed out waiting for the OCI runtime's terminal")


def start_relay(master: int, peer: int) -> int:
    """Fork the relay between the runtime's pty `master` and the caller's pty slave `peer`."""
    pid = os.fork()
    if pid == 0:
        try:
            _relay(master, peer)
        finally:
            os._exit(0)
    return pid


def _relay(master: int, peer: int) -> None:
    # Keep only the two terminals (as 0 and 1): the caller's other descriptors are not ours.
    master, peer = os.dup(master), os.dup(peer)
    os.dup2(master, 0)
    os.dup2(peer, 1)
    os.closerange(2, 1 << 20)
    master, peer = 0, 1
    os.setsid()
    set_controlling_terminal(peer)
    tty.setraw(peer)
    _copy_size(peer, master)
    signal.signal(signal.SIGWINCH, lambda *_: _copy_size(peer, master))
    pairs = {master: peer, peer: master}
    while True:
        try:
            ready, _, _ = select.select(list(pairs), [], [])
            for source in ready:
                data = os.read(source, 65536)
                if not data:
                    return
                os.write(pairs[source], data)
        except InterruptedError:
            continue
        except OSError as exc:  # EIO: the other side of a pty is gone
            if exc.errno == errno.EIO:
                return
            raise


def _copy_size(source: int, target: int) -> None:
    size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
    fcntl.ioctl(target, termios.TIOCSWINSZ, size)
