"""save and load: archives Dockyard writes are read by podman, skopeo and docker, and theirs by Dockyard."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Dockyard
from tests.integration.registry.support import Registry, digest_of


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result


def _members(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def test_docker_archive_round_trips_through_podman(
    dockyard: Dockyard, busybox_tar: Path, podman: list[str], tmp_path: Path
) -> None:
    image_id = dockyard("import", "-c", 'CMD ["/bin/sh"]', str(busybox_tar), "saved/busybox:1").stdout.strip()
    archive = tmp_path / "busybox.tar"
    dockyard("save", "-o", str(archive), "saved/busybox:1")
    diff_id = digest_of(busybox_tar.read_bytes())
    assert sorted(_members(archive)) == sorted(
        ["manifest.json", f"{image_id[7:]}.json", f"{diff_id[7:]}.tar"]
    )
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        manifest = json.load(member)
    assert manifest == [
        {"Config": f"{image_id[7:]}.json", "RepoTags": ["saved/busybox:1"], "Layers": [f"{diff_id[7:]}.tar"]}
    ]
    # podman files a name without a registry under localhost/, and saves it so.
    assert "Loaded image: localhost/saved/busybox:1" in _run(*podman, "load", "-i", str(archive)).stdout
    assert _run(*podman, "inspect", "--format", "{{.Id}}", "saved/busybox:1").stdout.strip() == image_id[7:]

    podman_archive = tmp_path / "from-podman.tar"
    _run(*podman, "save", "-o", str(podman_archive), "saved/busybox:1")
    dockyard("rmi", "saved/busybox:1")
    assert dockyard("load", "-i", str(podman_archive)).stdout == "Loaded image: localhost/saved/busybox:1\n"
    assert dockyard("inspect", "--format", "{{.Id}}", "localhost/saved/busybox:1").stdout.strip() == image_id


def test_oci_archive_is_read_by_skopeo_and_podman(
    dockyard: Dockyard, registry: Registry, busybox_image: tuple[str, str], podman: list[str], tmp_path: Path
) -> None:
    image_id, _ = busybox_image
    name = f"{registry.host}/seed/busybox:1"
    dockyard("pull", name)
    archive = tmp_path / "oci.tar"
    with archive.open("wb") as out:
        subprocess.run(
            dockyard.command("save", "--format", "oci-archive", name),
            stdout=out,
            env=dockyard.env,
            check=True,
        )
    assert {"oci-layout", "index.json"} <= set(_members(archive))
    inspected = json.loads(_run("skopeo", "inspect", "--config", f"oci-archive:{archive}").stdout)
    assert digest_of(json.dumps(inspected).encode()) != image_id  # skopeo re-serialises: compare content
    assert (
        inspected["rootfs"]["diff_ids"] == json.loads(dockyard("inspect", name).stdout)[0]["RootFS"]["Layers"]
    )
    assert name in _run(*podman, "load", "-i", str(archive)).stdout
    assert _run(*podman, "inspect", "--format", "{{.Id}}", name).stdout.strip() == image_id[7:]

    dockyard("rmi", name)
    assert dockyard("load", "-i", str(archive)).stdout == f"Loaded image: {name}\n"
    assert dockyard("inspect", "--format", "{{.Id}}", name).stdout.strip() == image_id


@pytest.mark.slow
def test_archives_written_by_skopeo_and_podman_load(
    dockyard: Dockyard,
    registry: Registry,
    busybox_image: tuple[str, str],
    busybox_tar: Path,
    podman: list[str],
    tmp_path: Path,
) -> None:
    source = f"docker://{registry.host}/seed/busybox:1"
    skopeo_docker = tmp_path / "skopeo-docker.tar"
    skopeo_oci = tmp_path / "skopeo-oci.tar"
    _run(
        "skopeo", "copy", "--src-tls-verify=false", source, f"docker-archive:{skopeo_docker}:skopeo/busybox:d"
    )
    _run(
        "skopeo",
        "copy",
        "--src-tls-verify=false",
        "--dest-compress-format",
        "zstd",
        source,
        f"oci-archive:{skopeo_oci}:mytag",
    )
    assert dockyard("load", "-i", str(skopeo_docker)).stdout == "Loaded image: skopeo/busybox:d\n"
    assert dockyard("load", "-i", str(skopeo_oci)).stdout.startswith("Loaded image ID: sha256:")

    _run(*podman, "pull", "--tls-verify=false", f"{registry.host}/seed/busybox:1")
    podman_oci = tmp_path / "podman-oci.tar"
    _run(*podman, "save", "--format", "oci-archive", "-o", str(podman_oci), f"{registry.host}/seed/busybox:1")
    dockyard("rmi", "skopeo/busybox:d")
    out = dockyard("load", "-i", str(podman_oci)).stdout
    assert out == f"Loaded image: {registry.host}/seed/busybox:1\n"
    # podman writes an OCI config for an OCI archive (a new id); the layers are the same.
    layers = dockyard(
        "inspect", "--format", "{{json .RootFS.Layers}}", f"{registry.host}/seed/busybox:1"
    ).stdout
    assert json.loads(layers) == [digest_of(busybox_tar.read_bytes())]

    # Compressed as a whole and read from stdin, as `docker load < image.tar.gz`.
    packed = gzip.compress(skopeo_docker.read_bytes(), mtime=0)
    result = dockyard.run_bytes("load", input=packed)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"Loaded image: skopeo/busybox:d\n"


def test_save_never_leaves_a_partial_archive(dockyard: Dockyard, busybox_tar: Path, tmp_path: Path) -> None:
    dockyard("import", str(busybox_tar), "partial:1")
    target = tmp_path / "out.tar"
    target.write_bytes(b"previous")
    missing = dockyard("save", "-o", str(target), "partial:1", "no-such-image:1", check=False)
    assert missing.returncode == 1 and missing.stderr == "Error: No such image: no-such-image:1\n"
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


@contextlib.contextmanager
def _dockerd(base: Path) -> Iterator[dict[str, str]]:
    """A private dockerd: temporary data root and socket, no bridge, no iptables rules.

    The socket lives in a short /tmp directory (unix socket paths are limited to 108 bytes).
    """
    base.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        short = Path(tempfile.mkdtemp(prefix="dy-dockerd-"))
        cleanup.callback(shutil.rmtree, short, ignore_errors=True)
        cleanup.callback(shutil.rmtree, base / "data", ignore_errors=True)
        cleanup.callback(subprocess.run, ["umount", "-R", str(base / "data")], capture_output=True)
        log = cleanup.enter_context((base / "dockerd.log").open("wb"))
        argv = [
            "dockerd", "--data-root", str(base / "data"), "--exec-root", str(short / "exec"),
            "--pidfile", str(short / "pid"), "-H", f"unix://{short / 'docker.sock'}",
            "--bridge=none", "--iptables=false",
            "--default-ulimit", "nofile=4096:4096", "--default-ulimit", "nproc=4096:4096",
        ]  # fmt: skip
        process = subprocess.Popen(argv, stdout=log, stderr=log)
        cleanup.callback(process.wait, timeout=60)
        cleanup.callback(process.terminate)
        env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{short / 'docker.sock'}",
            "DOCKER_CONFIG": str(base / "client"),
        }
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "version"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"dockerd did not start: {(base / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield env


@pytest.mark.slow
def test_docker_loads_what_dockyard_saves_and_the_other_way(
    dockyard: Dockyard, busybox_tar: Path, tmp_path: Path
) -> None:
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed: run ./setup.sh")
    image_id = dockyard("import", str(busybox_tar), "for-docker:1").stdout.strip()
    archive = tmp_path / "for-docker.tar"
    dockyard("save", "-o", str(archive), "for-docker:1")
    with _dockerd(tmp_path / "dockerd") as env:
        assert "Loaded image: for-docker:1" in _run("docker", "load", "-i", str(archive), env=env).stdout
        assert (
            _run("docker", "inspect", "--format", "{{.Id}}", "for-docker:1", env=env).stdout.strip()
            == image_id
        )
        _run("docker", "tag", "for-docker:1", "from-docker:2", env=env)
        from_docker = tmp_path / "from-docker.tar"
        _run("docker", "save", "-o", str(from_docker), "from-docker:2", env=env)
    assert dockyard("load", "-i", str(from_docker)).stdout == "Loaded image: from-docker:2\n"
    assert dockyard("inspect", "--format", "{{.Id}}", "from-docker:2").stdout.strip() == image_id
