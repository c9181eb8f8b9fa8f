"""The CLI's side of an `exec`: the process's stdio, relayed to and from the CLI's own.

With `-t` the isolation driver makes the process's pty from the container's own devpts and sends
its master over a socket pair (core/monitor.py's `Console`); the CLI copies its standard input to
the master (when `-i`) and the master to its standard output, with the local terminal raw and its
size passed on (core/terminal.py). Without `-t` the process gets pipes: standard input (or
/dev/null without `-i`), standard output and standard error, each copied to the CLI's own.

The relay ends when the process has exited and its output has drained; output that background
children keep producing is cut DRAIN_SECONDS after the exit, as the monitor does for `run`. With
`-it` on a terminal it also ends when the user types the detach keys (core/detach_keys.py): the
master then goes to a holder (core/pty_holder.py) that keeps the process's terminal until it
exits, as Docker's daemon does; `exec -d -t` hands the master over at once.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dockyard.core.attach import DETACHED
from dockyard.core.detach_keys import DEFAULT_DETACH_BYTES, DetachSequence
from dockyard.core.errors import DockyardError
from dockyard.core.monitor import Console

__all__ = ["DETACHED", "ExecSession", "hand_to_holder", "null_stdio", "open_session", "relay"]

DRAIN_SECONDS = 2.0
_CHUNK = 65536
_EOT = b"\x04"  # what a terminal reads as end of input
# Run pty_holder.py from its directory by import, so its cached bytecode is used (as the monitor is).
HOLDER_BOOT = "import sys; sys.path[:0] = [sys.argv.pop(1)]; import pty_holder; pty_holder.main()"


@dataclass
class ExecSession:
    """The descriptors of one exec: what the process gets and the CLI's ends of them."""

    process_stdio: tuple[int, int, int]
    stdin_target: int | None  # where the CLI's stdin goes (pty master or pipe), None: not forwarded
    outputs: dict[int, int]  # CLI-side read end -> the CLI's descriptor it is copied to
    tty: bool
    _owned: set[int] = field(default_factory=set)
    # With `-t`: where the driver sends the terminal, and whether the CLI's stdin goes to it.
    console: Console | None = None
    terminal_input: bool = False
    master: int | None = None  # the terminal the driver sent, once taken

    @property
    def console_fd(self) -> int | None:
        """The descriptor to hand the driver as `console`, None without `-t`."""
        return self.console.driver_end.fileno() if self.console is not None else None

    def take_terminal(self) -> None:
        """With `-t`, once the driver has started the process: relay the terminal it sent."""
        if self.console is None:
            return
        master = self.console.receive()
        self.console.close()
        self.console = None
        if master is None:
            raise DockyardError("the isolation driver sent no terminal for the exec'd process")
        self._owned.add(master)
        os.set_blocking(master, True)
        if os.isatty(0):
            from dockyard.core.terminal import set_window_size, window_size

            set_window_size(master, *window_size(0))
        self.outputs = {master: 1}
        self.stdin_target = master if self.terminal_input else None
        self.master = master

    def close_process_side(self) -> None:
        """Drop the CLI's copies of the process's descriptors once the process has them."""
        for fd in set(self.process_stdio):
            self.close_fd(fd)

    def close_fd(self, fd: int) -> None:
        """Close one of the session's descriptors early (the end of the process's input)."""
        if fd in self._owned:
            os.close(fd)
            self._owned.discard(fd)

    def close(self) -> None:
        """Close every descriptor the session opened."""
        for fd in self._owned:
            os.close(fd)
        self._owned.clear()
        if self.console is not None:
            self.console.close()
            self.console = None


@contextmanager
def null_stdio() -> Iterator[tuple[int, int, int]]:
    """/dev/null as standard input, output and error (`exec -d`)."""
    read = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    write = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        yield read, write, write
    finally:
        os.close(read)
        os.close(write)


def open_session(*, tty: bool, stdin: bool) -> ExecSession:
    """A pty (`tty`) or pipes for the process, forwarding the CLI's stdin only with `stdin`."""
    if tty:
        null_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        null_w = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        return ExecSession(
            process_stdio=(null_r, null_w, null_w),  # unused: the terminal replaces them
            stdin_target=None,
            outputs={},
            tty=True,
            _owned={null_r, null_w},
            console=Console(),
            terminal_input=stdin,
        )
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    if stdin:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        owned = {in_r, in_w}
    else:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
        owned = {in_r}
    return ExecSession(
        process_stdio=(in_r, out_w, err_w),
        stdin_target=in_w,
        outputs={out_r: 1, err_r: 2},
        tty=False,
        _owned=owned | {out_r, out_w, err_r, err_w},
    )


def relay(pid: int, session: ExecSession, *, detach_keys: bytes = DEFAULT_DETACH_BYTES) -> int:
    """Relay until the process `pid` (a child of the caller) exits and its output drains; return
    its exit status (128+N for signal N), or DETACHED once the user typed `detach_keys` at an
    interactive terminal (the process keeps running, its terminal held by a holder)."""
    session.close_process_side()
    try:
        if session.tty and session.stdin_target is not None and os.isatty(0):
            from dockyard.core.terminal import raw_terminal, set_window_size

            master = session.stdin_target
            with raw_terminal(0, on_resize=lambda rows, cols: set_window_size(master, rows, cols)):
                code = _Relay(pid, session, DetachSequence(detach_keys)).run()
            if code == DETACHED:
                hand_to_holder(master, pid)
            return code
        return _Relay(pid, session).run()
    finally:
        session.close()


def hand_to_holder(master: int, pid: int) -> None:
    """Give the pty `master` of the running process `pid` to a new holder (core/pty_holder.py) in
    its own session, which keeps it until the process exits; the caller may then close its copy."""
    import sys

    from dockyard.core import pty_holder

    process = os.pidfd_open(pid)
    try:
        # Above the descriptors the holder gets, so no dup2 below is a no-op keeping CLOEXEC.
        held = fcntl.fcntl(master, fcntl.F_DUPFD_CLOEXEC, 10)
        watched = fcntl.fcntl(process, fcntl.F_DUPFD_CLOEXEC, 10)
    finally:
        os.close(process)
    try:
        os.posix_spawn(
            sys.executable,
            [sys.executable, "-S", "-I", "-c", HOLDER_BOOT, os.path.dirname(pty_holder.__file__)],
            {},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, held, pty_holder.MASTER),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, watched, pty_holder.PROCESS),
            ],
            setsid=True,
        )
    finally:
        os.close(held)
        os.close(watched)


class _Relay:
    """One relay loop: the process's exit, its output, the user's input."""

    def __init__(self, pid: int, session: ExecSession, detach: DetachSequence | None = None) -> None:
        self.pid = pid
        self.session = session
        self.detach = detach
        self.detached = False
        self.outputs = dict(session.outputs)
        self.stdin_target = session.stdin_target
        self.pending = b""  # input read but not yet taken by the process
        self.reading_stdin = session.stdin_target is not None
        self.code: int | None = None
        if self.stdin_target is not None:
            os.set_blocking(self.stdin_target, False)

    def run(self) -> int:
        """Relay until the process is reaped and its output drained (or cut); its exit status."""
        pidfd = os.pidfd_open(self.pid)
        try:
            deadline: float | None = None
            while (self.code is None or self.outputs) and not self.detached:
                if self.code is not None:
                    deadline = deadline or time.monotonic() + DRAIN_SECONDS
                    if time.monotonic() > deadline:
                        break
                readers = [*self.outputs]
                if self.code is None:
                    readers.append(pidfd)
                    if self.reading_stdin and not self.pending:
                        readers.append(0)
                writers = [self.stdin_target] if self.pending and self.stdin_target is not None else []
                readable, writable, _ = select.select(readers, writers, [], 0.5)
                self._reap()
                for fd in readable:
                    if fd in self.outputs:
                        self._copy_output(fd)
                if 0 in readable:
                    self._read_input()
                if writable:
                    self._write_input()
        finally:
            os.close(pidfd)
        if self.detached and self.code is None:
            return DETACHED
        return self.code if self.code is not None else 255

    def _reap(self) -> None:
        """Collect the process's status and any other child the driver left to the caller."""
        while True:
            try:
                child, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if child == 0:
                return
            if child == self.pid:
                code = os.waitstatus_to_exitcode(status)
                self.code = 128 - code if code < 0 else code

    def _copy_output(self, fd: int) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except OSError as exc:  # EIO: every holder of the pty's slave closed it
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            del self.outputs[fd]
            return
        view = memoryview(data)
        while view:
            view = view[os.write(self.session.outputs[fd], view) :]

    def _read_input(self) -> None:
        data = os.read(0, _CHUNK)
        if data and self.detach is not None:
            passed, self.detached = self.detach.feed(data)
            if self.detached or not passed:
                return
            data = passed
        if data:
            self.pending = data
            self._write_input()
            return
        self.reading_stdin = False
        if self.session.tty:
            self.pending = _EOT
            self._write_input()
        elif self.stdin_target is not None:
            self.session.close_fd(self.stdin_target)
            self.stdin_target = None

    def _write_input(self) -> None:
        if self.stdin_target is None:
            self.pending = b""
            return
        try:
            written = os.write(self.stdin_target, self.pending)
        except BlockingIOError:
            return
        except BrokenPipeError:  # the process closed its input: drop what it will never read
            written = len(self.pending)
        self.pending = self.pending[written:]
