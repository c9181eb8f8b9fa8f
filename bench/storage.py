"""Storage drivers side by side: container creation as the image grows, the disk twenty
containers of one image take, and the time to diff a container holding 100 MB of changes.

Run as root from the repository:  sudo .venv/bin/python bench/storage.py [--runs N]

`run` does not exist yet, so a container is made at the driver level, the storage part of a run:
create_rw + mount + unmount (removal is not timed). Images are generated: a base layer of
128 KiB files totalling about 50 MB or 500 MB (incompressible data) and a small layer on top.
Each driver gets a fresh temporary root, built through the driver registry as the engine builds
it: btrfs on a loop-mounted btrfs image made here, overlay and vfs in the normal temporary
directory. Creation times are medians of N rounds, the drivers taking turns within a round. Disk
use is what the twenty containers add to the image: `du` of the driver home for overlay and vfs,
btrfs's own accounting (`btrfs filesystem du`: exclusive plus shared-once) for btrfs, where du
would count every shared extent once per snapshot. The diff is what a commit does: the
container's changes as a layer tar, read to the end and hashed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.core.drivers import DriverContext, DriverKind, StorageDriver
from dockyard.core.plugins import load_plugins
from dockyard.core.testing import layer_id

DRIVERS = ("overlay", "btrfs", "vfs")
SIZES_MB = (50, 500)
FILE_SIZE = 128 << 10
CONTAINERS = 20
CHANGES_MB = 100
BTRFS_IMAGE_SIZE = 4 << 30
MiB = 1 << 20


class BenchError(Exception):
    """A driver could not be prepared or a step failed; the message says which and why."""


@dataclass
class Subject:
    """One driver under test: the driver, its home, and its images by size (their top layers)."""

    name: str
    driver: StorageDriver
    home: Path
    images: dict[int, str] = field(default_factory=dict)
    create: dict[int, list[float]] = field(default_factory=dict)
    disk: int = 0
    diff: list[float] = field(default_factory=list)


def image_tar(path: Path, size_mb: int) -> None:
    """A layer tar of 128 KiB files of random data, `size_mb` MB in all, in directories of 100."""
    block = os.urandom(FILE_SIZE)
    count = size_mb * MiB // FILE_SIZE
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for index in range(count):
            info = tarfile.TarInfo(f"data/{index // 100:03d}/file{index:05d}")
            info.size, info.mtime = FILE_SIZE, 1_600_000_000
            data = index.to_bytes(8, "big") + block[8:]  # no two files alike
            tar.addfile(info, io.BytesIO(data))


def top_tar() -> bytes:
    """A small layer on top: what a Dockerfile's last steps add."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in (("etc/app.conf", b"setting = 1\n"), ("bin/app", b"#!/bin/sh\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@contextlib.contextmanager
def btrfs_filesystem(base: Path) -> Iterator[Path]:
    """A loop-mounted btrfs, always unmounted and detached at the end."""
    image, mount_point = base / "btrfs.img", base / "btrfs"
    mount_point.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(BTRFS_IMAGE_SIZE)
    try:
        run(["mkfs.btrfs", "-q", str(image)])
        run(["mount", "-o", "loop", str(image), str(mount_point)])
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False, capture_output=True)
        listed = subprocess.run(
            ["losetup", "--list", "--noheadings", "--output", "NAME", "--associated", str(image)],
            capture_output=True, text=True, check=False,
        )
        for device in listed.stdout.split():
            subprocess.run(["losetup", "--detach", device], check=False)
        image.unlink(missing_ok=True)


def run(argv: list[str]) -> str:
    """Run a command, raising BenchError with its stderr when it fails."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def build(name: str, root: Path) -> Subject:
    """The named driver on a fresh root, built as the engine builds it; refuses if unusable."""
    entry = load_plugins(autoload=False).drivers.get(DriverKind.STORAGE, name)
    home = root / "storage" / name
    context = DriverContext(home=home, run_dir=root / "run" / name, rootless=False)
    driver = entry.factory(context)
    if not isinstance(driver, StorageDriver):
        raise BenchError(f"{name} does not build a storage driver")
    availability = driver.available()
    if not availability.usable:
        raise BenchError(f"{name} is not usable here: {availability.reason}")
    return Subject(name, driver, home)


def add_image(subject: Subject, size_mb: int, tarball: Path) -> None:
    """The image of `size_mb`: the generated base layer and the small top layer."""
    base, top = layer_id(f"base-{size_mb}"), layer_id(f"top-{size_mb}")
    subject.driver.create_layer(base, None)
    with tarball.open("rb") as stream:
        subject.driver.apply_diff(base, stream)
    subject.driver.create_layer(top, base)
    subject.driver.apply_diff(top, io.BytesIO(top_tar()))
    subject.images[size_mb] = top


def time_create(subject: Subject, size_mb: int, attempt: int) -> float:
    """create_rw + mount + unmount of one container (removed afterwards, untimed)."""
    container = layer_id(f"bench-{size_mb}-{attempt}")
    start = time.perf_counter()
    subject.driver.create_rw(container, subject.images[size_mb])
    subject.driver.mount(container)
    subject.driver.unmount(container)
    elapsed = time.perf_counter() - start
    subject.driver.remove(container)
    return elapsed


def disk_used(subject: Subject) -> int:
    """Bytes the driver home occupies on disk (shared extents once, for btrfs)."""
    os.sync()
    if subject.name == "btrfs":
        run(["btrfs", "filesystem", "sync", str(subject.home)])
        lines = run(["btrfs", "filesystem", "du", "-s", "--raw", str(subject.home)]).splitlines()
        # Total, Exclusive, Set shared: the total counts a shared extent once per file holding it
        _, exclusive, shared = (int(value) for value in lines[-1].split()[:3])
        return exclusive + shared
    return int(run(["du", "-s", "-B1", str(subject.home)]).split()[0])


def measure_disk(subject: Subject) -> None:
    """What twenty containers of the small image add to the disk."""
    before = disk_used(subject)
    containers = [layer_id(f"disk-{index}") for index in range(CONTAINERS)]
    for container in containers:
        subject.driver.create_rw(container, subject.images[SIZES_MB[0]])
    subject.disk = disk_used(subject) - before
    for container in containers:
        subject.driver.remove(container)


def measure_diff(subject: Subject, runs: int) -> None:
    """Time the diff of a container with 100 MB of changes: 80 MB of new files and 20 MB of the
    image's files rewritten (copied up, for overlay)."""
    container = layer_id("diff")
    subject.driver.create_rw(container, subject.images[SIZES_MB[0]])
    root = subject.driver.mount(container)
    try:
        block = os.urandom(MiB)
        (root / "new").mkdir()
        for index in range(CHANGES_MB * 8 // 10):
            (root / "new" / f"file{index:03d}").write_bytes(index.to_bytes(8, "big") + block[8:])
        rewritten = sorted((root / "data").rglob("file*"))[: CHANGES_MB * 2 // 10 * MiB // FILE_SIZE]
        for path in rewritten:
            path.write_bytes(os.urandom(FILE_SIZE))
    finally:
        subject.driver.unmount(container)
    consume(subject.driver.diff(container))  # warm-up: page cache
    for _ in range(runs):
        start = time.perf_counter()
        consume(subject.driver.diff(container))
        subject.diff.append(time.perf_counter() - start)
    subject.driver.remove(container)


def consume(chunks: Iterator[bytes]) -> int:
    """Read a layer tar to the end and hash it, as a commit does; returns its size."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size


def tear_down(subject: Subject) -> None:
    """Remove the images' layers and whatever the driver still holds."""
    for size_mb in sorted(subject.images, reverse=True):
        top = subject.images[size_mb]
        subject.driver.remove(top)
        subject.driver.remove(layer_id(f"base-{size_mb}"))
    subject.driver.cleanup()


def milliseconds(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms" if samples else "-"


def size(count: int) -> str:
    return f"{count / MiB:.1f} MB" if count >= MiB else f"{count // 1024} KB"


def table(subjects: list[Subject], runs: int) -> str:
    header = [
        "driver", f"create, {SIZES_MB[0]} MB image", f"create, {SIZES_MB[1]} MB image",
        f"disk, {CONTAINERS} containers", f"diff, {CHANGES_MB} MB changed",
    ]
    rows = [header] + [
        [
            subject.name, milliseconds(subject.create[SIZES_MB[0]]),
            milliseconds(subject.create[SIZES_MB[1]]), size(subject.disk),
            milliseconds(subject.diff),
        ]
        for subject in subjects
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    notes = [
        "",
        "create = create_rw + mount + unmount at the driver level (`run` does not exist yet);",
        f"medians of {runs} runs. disk = what {CONTAINERS} containers of the {SIZES_MB[0]} MB image "
        "add (btrfs: its own accounting).",
        "diff = the container's changes as a layer tar, read and hashed; btrfs on a loop-mounted "
        "btrfs, overlay and vfs on the normal disk.",
    ]
    return "\n".join(lines + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure (default 5)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("storage bench: run as root (overlay mounts, a loop-mounted btrfs)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as temp:
        base = Path(temp)
        try:
            return bench(base, args.runs)
        except BenchError as exc:
            print(f"storage bench: {exc}", file=sys.stderr)
            return 1


def bench(base: Path, runs: int) -> int:
    """Prepare the drivers and their images, measure, clean up, print the table."""
    tarballs = {size: base / f"image-{size}.tar" for size in SIZES_MB}
    for size, path in tarballs.items():
        image_tar(path, size)
    with btrfs_filesystem(base) as btrfs_root:
        roots = {"overlay": base / "overlay", "btrfs": btrfs_root / "root", "vfs": base / "vfs"}
        subjects = [build(name, roots[name]) for name in DRIVERS]
        try:
            for subject in subjects:
                for size, path in tarballs.items():
                    add_image(subject, size, path)
            for attempt in range(runs + 1):  # the first round warms up and is not kept
                for subject in subjects:
                    for size in SIZES_MB:
                        elapsed = time_create(subject, size, attempt)
                        if attempt:
                            subject.create.setdefault(size, []).append(elapsed)
            for subject in subjects:
                measure_disk(subject)
                measure_diff(subject, runs)
        finally:
            for subject in subjects:
                tear_down(subject)
    print(table(subjects, runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
