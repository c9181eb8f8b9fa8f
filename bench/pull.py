"""Pull throughput side by side: a ~250 MB five-layer image from a local registry.

Run as root from the repository:  sudo .venv/bin/python bench/pull.py [--runs N]

A reference registry (Debian's `docker-registry`) is started on a free 127.0.0.1 port with a
temporary storage dir, and one image is uploaded to it: five layers of about 50 MB each (200 files
per layer, half random bytes, half text, so gzip has something to do but not everything),
compressed with gzip at level 6 as Docker would. Then each engine pulls it, from an empty store:

    dockyard   `dockyard pull` (download, verify, decompress, apply with its default storage driver)
    podman     `podman pull --tls-verify=false` (its default storage driver)
    docker     `docker pull` against a private dockerd (temporary data root, `--insecure-registry`)
    skopeo     `skopeo copy ... dir:` - download and verify only, no extraction: the floor

Between runs each engine removes the image (untimed) so every pull starts cold. One untimed
warm-up pull per engine fills the page cache with the registry's blobs; then the engines run
round-robin, N rounds, each round starting one engine further on. The table shows medians in
seconds and dockyard's ratio to each peer: ratios compare engines on one machine, absolute times do
not travel. Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from startup import BenchError, run  # shared with the other benches

ENGINES = ("dockyard", "podman", "docker", "skopeo")
REPOSITORY = "bench/five-layers"
TAG = "1"
LAYERS = 5
FILES_PER_LAYER = 200
FILE_SIZE = 250_000
DOCKERD_START_TIMEOUT = 60.0
DOCKERD_STOP_TIMEOUT = 30.0


@dataclass
class Case:
    """One engine's pull command, what undoes it, and its samples in seconds."""

    engine: str
    pull: list[str]
    cleanup: list[list[str]]
    samples: list[float] = field(default_factory=list)
    error: str = ""


# --- the registry and the image -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def registry(work: Path) -> Iterator[str]:
    """The reference registry on a free loopback port; yields `127.0.0.1:PORT`."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise BenchError("docker-registry not found: run ./setup.sh")
    host = f"127.0.0.1:{_free_port()}"
    config = work / "registry.yml"
    config.write_text(
        json.dumps(
            {  # YAML is a superset of JSON
                "version": 0.1,
                "log": {"level": "error", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(work / "registry")}},
                "http": {"addr": host},
            }
        )
    )
    with (work / "registry.log").open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"http://{host}/v2/", timeout=1)
                break
            except httpx.TransportError as exc:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise BenchError("docker-registry did not start") from exc
                time.sleep(0.05)
        yield host
    finally:
        process.terminate()
        process.wait(timeout=30)


def _layer(index: int) -> bytes:
    """One uncompressed layer: FILES_PER_LAYER files, half random, half repetitive text."""
    rng = random.Random(index)
    text = b"".join(f"line {n} of a configuration file in layer {index}\n".encode() for n in range(5000))
    text = (text * (FILE_SIZE // len(text) + 1))[:FILE_SIZE]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for number in range(FILES_PER_LAYER):
            data = rng.randbytes(FILE_SIZE) if number % 2 else text
            info = tarfile.TarInfo(f"layer{index}/dir{number % 10}/file{number}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload_image(host: str) -> tuple[str, int, int]:
    """Build and upload the image; returns (image id, compressed bytes, uncompressed bytes)."""
    client = httpx.Client(base_url=f"http://{host}/v2/", timeout=300)

    def put_blob(data: bytes) -> str:
        digest = _digest(data)
        start = client.post(f"{REPOSITORY}/blobs/uploads/")
        location = httpx.URL(f"http://{host}/v2/").join(start.headers["Location"])
        done = client.put(location.copy_merge_params({"digest": digest}), content=data)
        if done.status_code != 201:
            raise BenchError(f"uploading a blob failed: {done.status_code} {done.text[:200]}")
        return digest

    layers = [_layer(index) for index in range(LAYERS)]
    blobs = [gzip.compress(layer, compresslevel=6, mtime=0) for layer in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer) for layer in layers]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": put_blob(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(blob),
                    "digest": put_blob(blob),
                }
                for blob in blobs
            ],
        }
    ).encode()
    response = client.put(
        f"{REPOSITORY}/manifests/{TAG}",
        content=manifest,
        headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    if response.status_code != 201:
        raise BenchError(f"uploading the manifest failed: {response.status_code}")
    return _digest(config), sum(map(len, blobs)), sum(map(len, layers))


# --- the engines --------------------------------------------------------------------------------


def dockyard_case(work: Path, image: str) -> Case:
    """Dockyard from this venv, with a store of its own and its default storage driver."""
    binary = Path(sys.executable).with_name("dockyard")
    if not binary.exists():
        raise BenchError(f"{binary} not found: run ./setup.sh first")
    store = [str(binary), "--root", str(work / "dockyard-root"), "--runroot", str(work / "dockyard-run")]
    return Case("dockyard", [*store, "pull", "-q", image], [[*store, "rmi", image]])


def podman_case(work: Path, image: str, stack: contextlib.ExitStack) -> Case:
    """podman with a private store (its runroot must stay under 50 characters)."""
    binary = shutil.which("podman")
    if binary is None:
        raise BenchError("podman not found")
    runroot = Path(tempfile.mkdtemp(prefix="dy-bench-podman-"))
    store = [binary, "--root", str(work / "podman-root"), "--runroot", str(runroot)]
    stack.callback(shutil.rmtree, runroot, ignore_errors=True)
    stack.callback(_quietly, [*store, "system", "reset", "-f"])
    return Case("podman", [*store, "pull", "-q", "--tls-verify=false", image], [[*store, "rmi", "-f", image]])


def skopeo_case(work: Path, image: str) -> Case:
    """skopeo copying to a directory: download and verification, no extraction."""
    binary = shutil.which("skopeo")
    if binary is None:
        raise BenchError("skopeo not found")
    target = work / "skopeo-dir"
    pull = [binary, "copy", "-q", "--src-tls-verify=false", f"docker://{image}", f"dir:{target}"]
    return Case("skopeo", pull, [["rm", "-rf", str(target)]])


@contextlib.contextmanager
def docker_case(work: Path, image: str, host: str) -> Iterator[Case]:
    """docker against a private dockerd: its own data root and socket, no bridge, no iptables."""
    binary, dockerd = shutil.which("docker"), shutil.which("dockerd")
    if binary is None or dockerd is None:
        raise BenchError("docker or dockerd not found")
    home = Path(tempfile.mkdtemp(prefix="dy-bench-dockerd-"))
    host_args = ["--host", f"unix://{home / 'docker.sock'}"]
    argv = [
        dockerd,
        *host_args,
        "--data-root",
        str(work / "dockerd-data"),
        "--exec-root",
        str(home / "exec"),
        "--pidfile",
        str(home / "docker.pid"),
        "--bridge",
        "none",
        "--iptables=false",
        "--ip6tables=false",
        "--insecure-registry",
        host,
        "--default-ulimit",
        "nofile=4096:4096",
        "--default-ulimit",
        "nproc=4096:4096",
    ]
    log_path = work / "dockerd.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + DOCKERD_START_TIMEOUT
        while subprocess.run([binary, *host_args, "version"], capture_output=True, check=False).returncode:
            if daemon.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise BenchError("dockerd did not come up:\n  " + "\n  ".join(tail))
            time.sleep(0.2)
        client = [binary, *host_args]
        yield Case("docker", [*client, "pull", "-q", image], [[*client, "rmi", image]])
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=DOCKERD_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        _quietly(["umount", "-R", str(work / "dockerd-data")])
        shutil.rmtree(home, ignore_errors=True)


def _quietly(argv: list[str]) -> None:
    subprocess.run(argv, capture_output=True, check=False, timeout=120)


# --- measuring ----------------------------------------------------------------------------------


def measure(cases: list[Case], *, runs: int, timeout: float) -> None:
    """One warm-up pull each, then `runs` timed pulls round-robin, each from an empty store."""
    for round_number in range(runs + 1):
        shift = round_number % len(cases)
        for case in cases[shift:] + cases[:shift]:
            if case.error:
                continue
            try:
                started = time.perf_counter()
                run(case.pull, timeout=timeout)
                elapsed = time.perf_counter() - started
                for command in case.cleanup:
                    run(command, timeout=timeout)
            except BenchError as exc:
                case.error = str(exc)
                continue
            if round_number:  # round 0 is the warm-up
                case.samples.append(elapsed)


def report(cases: list[Case], *, runs: int, compressed: int, uncompressed: int) -> str:
    """Medians in seconds, MB/s of compressed data, and dockyard's ratio to each peer."""
    medians = {case.engine: statistics.median(case.samples) for case in cases if case.samples}
    lines = [
        f"pull of a {LAYERS}-layer image ({uncompressed / 1e6:.0f} MB, {compressed / 1e6:.0f} MB gzip) "
        f"from a local registry: median of {runs} runs (lower is better)",
        f"{'engine':10} {'seconds':>8} {'MB/s':>7} {'dockyard/engine':>16}",
    ]
    mine = medians.get("dockyard")
    for engine in ENGINES:
        if engine not in medians:
            continue
        seconds = medians[engine]
        ratio = f"{mine / seconds:.2f}x" if mine else "-"
        note = "  (download only)" if engine == "skopeo" else ""
        lines.append(f"{engine:10} {seconds:8.2f} {compressed / 1e6 / seconds:7.1f} {ratio:>16}{note}")
    lines += [f"failed: {case.engine}: {case.error}" for case in cases if case.error]
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Pull throughput of dockyard, podman, docker and skopeo.")
    parser.add_argument("--runs", type=int, default=5, help="timed pulls per engine (default 5)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a pull counts as failed")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset to run")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Start the registry, upload the image, measure the engines, print the table."""
    args = _parse_args(argv)
    if os.geteuid() != 0:
        print("pull.py: run as root (sudo .venv/bin/python bench/pull.py)", file=sys.stderr)
        return 2
    wanted = [name for name in args.engines.split(",") if name in ENGINES]
    with (
        tempfile.TemporaryDirectory(prefix="dockyard-bench-pull-", dir="/var/tmp") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        host = stack.enter_context(registry(work))
        print("building and uploading the image ...", flush=True)
        image_id, compressed, uncompressed = upload_image(host)
        image = f"{host}/{REPOSITORY}:{TAG}"
        cases = []
        for name in wanted:
            try:
                if name == "dockyard":
                    cases.append(dockyard_case(work, image))
                elif name == "podman":
                    cases.append(podman_case(work, image, stack))
                elif name == "skopeo":
                    cases.append(skopeo_case(work, image))
                else:
                    cases.append(stack.enter_context(docker_case(work, image, host)))
            except BenchError as exc:
                print(f"note: skipping {name}: {exc}")
        measure(cases, runs=args.runs, timeout=args.timeout)
        print(report(cases, runs=args.runs, compressed=compressed, uncompressed=uncompressed))
        print(f"image id {image_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
