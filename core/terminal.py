"""The user's terminal while a container's terminal is relayed to it: raw mode and window size.

Shared by `attach` (relaying through the monitor's socket) and `exec -t` (relaying a pty the
CLI owns): the local terminal goes raw, so every key reaches the container's pty, which does the
line discipline; its size is passed on now and after every SIGWINCH; both are restored on exit.
"""

from __future__ import annotations

import fcntl
import signal
import struct
import termios
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["raw_terminal", "set_window_size", "window_size"]

_WINSIZE = struct.Struct("HHHH")


def window_size(fd: int) -> tuple[int, int]:
    """The (rows, columns) of the terminal `fd`."""
    rows, cols, _, _ = _WINSIZE.unpack(fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * _WINSIZE.size))
    return rows, cols


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """Resize the terminal `fd` (a pty master or slave); its foreground process gets SIGWINCH."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, _WINSIZE.pack(rows, cols, 0, 0))


@contextmanager
def raw_terminal(fd: int, *, on_resize: Callable[[int, int], None]) -> Iterator[None]:
    """Put the terminal `fd` in raw mode and report its size to `on_resize(rows, cols)` now and
    on every SIGWINCH; restore the mode and the previous SIGWINCH handler afterwards."""
    import tty

    saved = termios.tcgetattr(fd)
    previous = signal.getsignal(signal.SIGWINCH)
    try:
        tty.setraw(fd)
        on_resize(*window_size(fd))
        signal.signal(signal.SIGWINCH, lambda *_: on_resize(*window_size(fd)))
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
