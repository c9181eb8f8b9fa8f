"""The client side of a monitor's attach socket: relay a terminal or pipes to a container.

Used by `run` (without -d), `start -a` and `attach`. With a terminal the local tty goes raw, its
size follows SIGWINCH, and the detach keys (ctrl-p ctrl-q unless `--detach-keys` says otherwise,
see core/detach_keys.py) detach, leaving the container running.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dockyard.core.detach_keys import DEFAULT_DETACH_BYTES, DetachSequence
from dockyard.core.errors import DockyardError
from dockyard.core.terminal import raw_terminal

__all__ = ["DETACHED", "attach", "say_hello"]

HEADER = struct.Struct(">BI")
STDOUT, STDERR, EXIT = 1, 2, 3
STDIN, STDIN_CLOSED, RESIZE, CLEANED = 0, 5, 6, 7
DETACHED = -1
CONNECT_TIMEOUT = 30.0


def _connect(path: Path) -> socket.socket:
    """Connect to the monitor's socket, waiting for it to appear; see Monitor._listen for the
    directory-descriptor detour around the 108-byte socket path limit."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{dirfd}/{path.name}")
            finally:
                os.close(dirfd)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise DockyardError(
                    f"cannot attach: the container's monitor did not answer at {path}"
                ) from None
            time.sleep(0.005)


def say_hello(socket_path: Path) -> None:
    """Tell a monitor waiting for its first client to start the container, attaching nothing."""
    sock = _connect(socket_path)
    try:
        sock.sendall(json.dumps({"stdin": False, "stdout": False, "stderr": False}).encode() + b"\n")
    finally:
        sock.close()


def _frame(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def attach(
    socket_path: Path,
    *,
    stdin: bool,
    tty: bool,
    stdout: bool = True,
    stderr: bool = True,
    cleanup: Callable[[int], None] | None = None,
    detach_keys: bytes = DEFAULT_DETACH_BYTES,
) -> int:
    """Relay until the container exits (its exit code) or the user types `detach_keys` (DETACHED).

    With `cleanup`, this client takes over the monitor's cleaning after the exit: it runs
    `cleanup(code)` and tells the monitor it is done (see core/monitor.py).
    """
    sock = _connect(socket_path)
    hello = {"stdin": stdin, "stdout": stdout, "stderr": stderr, "cleanup": cleanup is not None}
    sock.sendall(json.dumps(hello).encode() + b"\n")
    interactive_tty = tty and stdin and os.isatty(0)
    try:
        if interactive_tty:

            def resize(rows: int, cols: int) -> None:
                sock.sendall(_frame(RESIZE, f"{rows} {cols}".encode()))

            with raw_terminal(0, on_resize=resize):
                code = _relay(sock, stdin=stdin, detach=DetachSequence(detach_keys))
        else:
            code = _relay(sock, stdin=stdin, detach=None)
        if cleanup is not None and code != DETACHED:
            cleanup(code)
            # A monitor that cleaned up itself (a failed start) has already hung up.
            with contextlib.suppress(OSError):
                sock.sendall(_frame(CLEANED))
        return code
    finally:
        sock.close()


def _relay(sock: socket.socket, *, stdin: bool, detach: DetachSequence | None) -> int:
    buffer = b""
    watch_stdin = stdin
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    while True:
        watched: list[socket.socket | int] = [sock, 0] if watch_stdin else [sock]
        try:
            readable, _, _ = select.select(watched, [], [])
        except InterruptedError:
            continue
        if 0 in readable:
            data = os.read(0, 65536)
            if not data:
                sock.sendall(_frame(STDIN_CLOSED))
                watch_stdin = False
            else:
                if detach is not None:
                    data, detached = detach.feed(data)
                    if detached:
                        return DETACHED
                if data:
                    sock.sendall(_frame(STDIN, data))
        if sock in readable:
            chunk = sock.recv(65536)
            if not chunk:
                raise DockyardError("the container's monitor went away")
            buffer += chunk
            while len(buffer) >= HEADER.size:
                kind, length = HEADER.unpack_from(buffer)
                if len(buffer) < HEADER.size + length:
                    break
                payload = buffer[HEADER.size : HEADER.size + length]
                buffer = buffer[HEADER.size + length :]
                if kind == EXIT:
                    return int(payload)
                target = out if kind == STDOUT else err
                target.write(payload)
                target.flush()
