"""Pulls that go wrong: corrupt blobs, broken connections, killed pulls, bombs, dead mirrors.

The promise under test is "nothing half-written": a failed pull leaves no image, no layer and no
scratch space, a killed one leaves a store the next pull completes, and a broken download resumes.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.core.digests import digest_hex
from tests.conftest import Dockyard, processes_naming, wait_until
from tests.integration.registry.support import (
    Proxy,
    Registry,
    RegistryApi,
    digest_of,
    free_port,
    image_config,
    layer_tar,
)


def _assert_nothing_left(dockyard: Dockyard) -> None:
    """No image, no layer (record or driver layer), no kept or downloaded blob, no scratch space,
    and no process left of the pull (layers stage in child processes of their own)."""
    wait_until(lambda: processes_naming(str(dockyard.root)) == [])
    assert dockyard("images", "-qa").stdout == ""
    status = dict(json.loads(dockyard("info", "--format", "{{json .DriverStatus}}").stdout))
    assert status["Layers"] == "0", status
    assert list(dockyard.root.glob("image-store/*/layers/*.json")) == []
    assert list(dockyard.root.glob("image-store/*/layer-blobs/sha256/*")) == []
    assert _downloads(dockyard) == {}
    assert list(dockyard.root.glob("image-store/*/layer-blobs/downloads/*.lock")) == []
    assert list(dockyard.root.glob("image-store/*/layer-locks/*")) == []
    scratch = dockyard.root / "tmp"
    assert not scratch.exists() or [p for p in scratch.iterdir() if p.is_dir()] == []


def _downloads(dockyard: Dockyard) -> dict[str, int]:
    """The pull download area: digest hex -> bytes downloaded (claim locks left out)."""
    return {
        path.name: path.stat().st_size
        for path in dockyard.root.glob("image-store/*/layer-blobs/downloads/*")
        if not path.name.endswith(".lock")
    }


@pytest.fixture
def proxy_factory(registry: Registry) -> Iterator[Callable[..., Proxy]]:
    proxies: list[Proxy] = []

    def make(**options: bool) -> Proxy:
        proxies.append(Proxy(registry.host, **options))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def test_a_corrupt_blob_fails_the_pull_and_leaves_nothing(dockyard: Dockyard, registry: Registry) -> None:
    api = RegistryApi(registry.host)
    good = layer_tar({"good": b"fine" * 1000})
    bad = layer_tar({"bad": os.urandom(100_000)})
    _, _, manifest = api.push_image("broken/blob", "1", [good, bad])
    bad_digest = json.loads(manifest)["layers"][1]["digest"]
    blob = registry.blob_file(bad_digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    result = dockyard("pull", f"{registry.host}/broken/blob:1", check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: blob digest mismatch: expected {bad_digest}, got sha256:")
    assert result.stderr.count("\n") == 1
    _assert_nothing_left(dockyard)


def test_a_connection_cut_mid_layer_resumes_with_a_range(
    dockyard: Dockyard, registry: Registry, proxy_factory: Callable[..., Proxy]
) -> None:
    layer = layer_tar({"random": os.urandom(3 << 20)})
    image_id, _, _ = RegistryApi(registry.host).push_image("resume/app", "1", [layer])
    proxy = proxy_factory(cut_first_blob=True)
    name = f"{proxy.host}/resume/app:1"
    dockyard("pull", name)
    assert proxy.cuts == 1
    assert proxy.ranges and all(r.startswith("bytes=") and not r.startswith("bytes=0-") for r in proxy.ranges)
    assert dockyard("inspect", "--format", "{{.Id}}", name).stdout.strip() == image_id


@pytest.mark.slow
def test_a_killed_pull_leaves_a_store_the_next_pull_completes_without_downloading_again(
    dockyard: Dockyard, registry: Registry, proxy_factory: Callable[..., Proxy]
) -> None:
    first = layer_tar({"first": os.urandom(200_000)})
    second = layer_tar({"second": os.urandom(4 << 20)})
    image_id, _, _ = RegistryApi(registry.host).push_image("killed/app", "1", [first, second])
    first_blob, second_blob = (digest_of(gzip.compress(layer, mtime=0)) for layer in (first, second))
    proxy = proxy_factory(slow_blob=True)
    name = f"{proxy.host}/killed/app:1"
    process = subprocess.Popen(
        dockyard.command("pull", name),
        env=dockyard.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # wait until the first layer is in and the second still coming
        seen.append(line)
        if line.endswith(": Pull complete\n"):
            break
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert any("Pull complete" in line for line in seen), seen
    assert dockyard("images", "-q").stdout == ""
    left = _downloads(dockyard)
    assert left[digest_hex(first_blob)] == len(gzip.compress(first, mtime=0))
    partial = left[digest_hex(second_blob)]
    assert 0 < partial < len(gzip.compress(second, mtime=0))

    proxy.slow_blob = False
    proxy.blob_gets.clear()
    dockyard("pull", name)
    assert dockyard("inspect", "--format", "{{.Id}}", name).stdout.strip() == image_id
    gets = [(digest, ranges) for digest, ranges in proxy.blob_gets if digest != image_id]
    assert gets == [(second_blob, f"bytes={partial}-")], "only the rest of the partial blob is fetched"
    assert _downloads(dockyard) == {}
    dockyard("rmi", name)
    _assert_nothing_left(dockyard)


def test_a_decompression_bomb_is_stopped_and_cleaned_up(dockyard: Dockyard, registry: Registry) -> None:
    header = tarfile.TarInfo("bomb")
    header.size = 8 << 30  # an 8 GiB file of zeros, in a little over a megabyte of gzip
    zeros = gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0)
    blob = gzip.compress(header.tobuf(), mtime=0) + zeros * 20
    config = image_config([digest_of(b"whatever the publisher claims")])
    api = RegistryApi(registry.host)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": api.put_blob("bomb/app", config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(blob),
                "digest": api.put_blob("bomb/app", blob),
            }
        ],
    }
    api.put_manifest("bomb/app", "1", manifest, "application/vnd.docker.distribution.manifest.v2+json")
    started = time.monotonic()
    result = dockyard("pull", f"{registry.host}/bomb/app:1", check=False)
    assert result.returncode == 1
    assert "decompression bomb" in result.stderr and result.stderr.count("\n") == 1
    assert time.monotonic() - started < 60
    _assert_nothing_left(dockyard)


def test_docker_hub_mirror_serves_docker_io_names(
    dockyard: Dockyard, registry: Registry, registries_toml: Callable[[str], Path]
) -> None:
    image_id, _, _ = RegistryApi(registry.host).push_image(
        "library/mirrored-busybox", "1", [layer_tar({"m": b"irror"})]
    )
    registries_toml(f'registry-mirrors = ["http://{registry.host}"]\n')
    result = dockyard("pull", "mirrored-busybox:1")
    assert result.stdout.splitlines()[0] == "1: Pulling from library/mirrored-busybox"
    assert result.stdout.splitlines()[-1] == "docker.io/library/mirrored-busybox:1"
    assert dockyard("images", "--format", "{{.Repository}}:{{.Tag}}").stdout == "mirrored-busybox:1\n"
    assert json.loads(dockyard("inspect", "mirrored-busybox:1").stdout)[0]["Id"] == image_id


def test_mirrors_fall_back_in_order_and_keep_their_prefix(
    dockyard: Dockyard, registry: Registry, registries_toml: Callable[[str], Path]
) -> None:
    api = RegistryApi(registry.host)
    image_id, _, _ = api.push_image("fallback/app", "1", [layer_tar({"up": b"stream"})])
    dead = f"127.0.0.1:{free_port()}"
    registries_toml(f'[[registry]]\nlocation = "{registry.host}"\n[[registry.mirror]]\nlocation = "{dead}"\n')
    dockyard("pull", f"{registry.host}/fallback/app:1")  # the mirror is down: the registry serves
    assert (
        dockyard("inspect", "--format", "{{.Id}}", f"{registry.host}/fallback/app:1").stdout.strip()
        == image_id
    )

    mirrored_id, _, _ = api.push_image("cache/upstream/app", "1", [layer_tar({"from": b"mirror"})])
    registries_toml(
        f'[[registry]]\nlocation = "{dead}"\n'
        f'[[registry.mirror]]\nlocation = "{registry.host}/cache"\ninsecure = true\n'
    )
    dockyard("pull", f"{dead}/upstream/app:1")  # the registry is down: the mirror serves
    assert dockyard("inspect", "--format", "{{.Id}}", f"{dead}/upstream/app:1").stdout.strip() == mirrored_id
    push = dockyard("push", f"{dead}/upstream/app:1", check=False)  # pushes never go to mirrors
    assert push.returncode == 1 and push.stderr.startswith(f'Error: Get "http://{dead}/v2/"')


def _archive(path: Path, files: dict[str, bytes], links: dict[str, str]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ({}, "Error: image archive has no 'c.json' (or it links to nothing)\n"),
        (
            {"c.json": "../../../etc/passwd"},
            "Error: image archive has no 'c.json' (or it links to nothing)\n",
        ),
        (
            {"c.json": "d.json", "d.json": "c.json"},
            "Error: image archive entry 'c.json' is not a regular file\n",
        ),
    ],
)
def test_hostile_or_broken_archives_are_refused(
    dockyard: Dockyard, tmp_path: Path, links: dict[str, str], message: str
) -> None:
    manifest = b'[{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]'
    archive = _archive(tmp_path / "bad.tar", {"manifest.json": manifest}, links)
    result = dockyard("load", "-i", str(archive), check=False)
    assert (result.returncode, result.stderr) == (1, message)
    assert dockyard("images", "-qa").stdout == ""
