"""Driving a command through a real pseudo-terminal, as a person at a shell would."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time

import pytest


class Terminal:
    """A command on the slave side of a real pseudo-terminal, driven from the master side."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.output = b""

    def expect(self, text: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            readable, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.monotonic()))
            if not readable:
                pytest.fail(f"{text!r} did not appear; the terminal shows {self.output!r}")
            try:
                self.output += os.read(self.master, 4096)
            except OSError:  # EIO: the command closed the terminal
                pytest.fail(f"{text!r} did not appear before the end; the terminal showed {self.output!r}")

    def send(self, text: bytes) -> None:
        os.write(self.master, text)

    def resize(self, rows: int, cols: int) -> None:
        """Change the terminal's size and signal the command as a terminal window would (the
        command's session has no controlling terminal, so the kernel sends no SIGWINCH itself)."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.process.send_signal(signal.SIGWINCH)

    def close(self, timeout: float = 20) -> int:
        code = self.process.wait(timeout=timeout)
        os.close(self.master)
        return code
