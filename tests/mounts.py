"""Test helper: detach whatever a failed test left mounted, before its directories are removed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from dockyard.core.mountinfo import mounts


def detach_mounts_under(directory: Path) -> list[str]:
    """Lazily unmount every mount below `directory`, deepest first; returns what was mounted."""
    prefix = os.path.realpath(directory) + "/"
    found = [mount.mount_point for mount in mounts() if mount.mount_point.startswith(prefix)]
    for point in reversed(found):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    return found
