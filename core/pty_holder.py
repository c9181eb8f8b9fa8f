"""Keeps a detached exec's terminal: holds the pty master and discards what the process writes.

Docker's daemon holds the master of an `exec -d -t` (or of an `exec -it` the user detached from)
until the process exits. Dockyard has no daemon, so the CLI hands the master to this small
process (core/exec_relay.py `hand_to_holder`) and exits: without a holder, closing the master
would hang the process up, and without a reader its writes would block once the pty's buffer is
full.

It runs as `python -S -I -c HOLDER_BOOT .../pty_holder.py` in its own session, with the master
as descriptor 0 and a pidfd of the process as descriptor 3, and imports only C modules. It ends
when the process has exited (the pidfd turns readable) or when every holder of the slave has
closed it (EIO on the master).
"""

import os
import select

MASTER = 0
PROCESS = 3
_CHUNK = 65536


def main() -> None:
    """Drain the master until the process exits or the slave is gone."""
    while True:
        readable, _, _ = select.select([MASTER, PROCESS], [], [])
        if MASTER in readable:
            try:
                if not os.read(MASTER, _CHUNK):
                    return
            except OSError:  # EIO: every holder of the slave closed it
                return
        if PROCESS in readable:
            return
