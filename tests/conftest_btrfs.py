"""A real btrfs filesystem for the tests: an image file, mkfs.btrfs and a loop mount.

`btrfs_mount` is made once per session, on first use, and always unmounted and its loop device
detached at the end, however the tests went. `btrfs_scratch` is a fresh directory on it for one
test; the subvolumes a test leaves there are deleted afterwards. Both skip, saying why, where a
loop-mounted btrfs cannot be made (not root, btrfs-progs missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

IMAGE_SIZE = 1 << 30


@pytest.fixture(scope="session")
def btrfs_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The mount point of a 1 GiB btrfs filesystem, loop-mounted for this session."""
    if os.geteuid() != 0:
        pytest.skip("a loop-mounted btrfs needs root")
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("btrfs-progs is not installed: run ./setup.sh")
    base = tmp_path_factory.mktemp("btrfs")
    image, mount_point = base / "fs.img", base / "mnt"
    mount_point.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(IMAGE_SIZE)
    try:
        _run("mkfs.btrfs", "-q", str(image))
        _run("mount", "-o", "loop", str(image), str(mount_point))
        yield mount_point
    finally:
        _tear_down(image, mount_point)


@pytest.fixture
def btrfs_scratch(btrfs_mount: Path) -> Iterator[Path]:
    """A fresh directory on the session's btrfs, emptied (subvolumes included) afterwards."""
    directory = btrfs_mount / f"test-{uuid.uuid4().hex[:12]}"
    directory.mkdir()
    try:
        yield directory
    finally:
        remove_btrfs_tree(directory)


def remove_btrfs_tree(directory: Path) -> None:
    """Delete a directory tree on btrfs, deleting each subvolume in it with btrfs's own call."""
    import btrfsutil

    for parent, dirnames, _ in os.walk(directory):
        for name in list(dirnames):
            path = os.path.join(parent, name)
            if not os.path.islink(path) and btrfsutil.is_subvolume(path):
                btrfsutil.delete_subvolume(path, recursive=True)
                dirnames.remove(name)
    shutil.rmtree(directory)


def _tear_down(image: Path, mount_point: Path) -> None:
    """Unmount (lazily if something still holds it), detach every loop device on the image,
    delete the image."""
    unmounted = subprocess.run(["umount", str(mount_point)], check=False, capture_output=True)
    if unmounted.returncode != 0 and os.path.ismount(mount_point):
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
    listed = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME", "--associated", str(image)],
        capture_output=True, text=True, check=False,
    )
    for device in listed.stdout.split():
        subprocess.run(["losetup", "--detach", device], check=False)
    image.unlink(missing_ok=True)


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed: {result.stderr.strip()}")
