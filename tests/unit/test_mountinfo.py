"""What is mounted where, read from the kernel's own table."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dockyard.core.mountinfo import backing_filesystem, find_mount, is_mount_point, mounts


def test_the_root_is_a_mount_point_and_holds_everything_unmounted(tmp_path: Path) -> None:
    assert is_mount_point(Path("/"))
    assert any(mount.mount_point == "/" for mount in mounts())
    found = find_mount(tmp_path / "not" / "yet" / "made")
    assert found is not None and found == find_mount(tmp_path)
    assert backing_filesystem(tmp_path / "missing") == found.fstype != "unknown"
    assert not is_mount_point(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_escaped_mount_points_and_options(tmp_path: Path) -> None:
    """A space in a mount point (`\\040` in mountinfo) and the filesystem's own options."""
    target = tmp_path / "with space"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", target], check=True)
    try:
        assert is_mount_point(target)
        found = find_mount(target / "inside")
        assert found is not None and found.mount_point == str(target)
        assert found.fstype == "tmpfs" and "mode=700" in found.super_options
        assert backing_filesystem(target) == "tmpfs"
    finally:
        subprocess.run(["umount", target], check=True)
