"""glibc set for streaming (core/linux/malloc.py): freed 1 MiB buffers are reused, not refaulted."""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = """
import os, resource, sys
from dockyard.core.linux.malloc import keep_freed_buffers
if sys.argv[1] == "keep":
    keep_freed_buffers()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):  # a few buffers alive at once, then all freed: glibc trims its heap
    buffers = [os.urandom(1 << 20) for _ in range(4)]  # written through: fresh pages fault
    del buffers
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    command = [sys.executable, "-c", _PROGRAM, mode]
    return int(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def test_freed_buffers_stay_in_the_heap() -> None:
    """400 buffers of 1 MiB, four at a time: by default glibc gives the memory back each round
    and faults it in again (256 faults a buffer); kept, the same heap memory serves them all."""
    default, kept = _faults("default"), _faults("keep")
    assert default > 100 * 256, default
    assert kept < 5000, kept
