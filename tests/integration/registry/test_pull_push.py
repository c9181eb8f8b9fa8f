"""Pull and push against the real reference registry, and with the peers that share it.

Images come from everywhere a user's would: pushed by Dockyard, uploaded by hand through the API,
copied by skopeo (Docker and OCI media types, gzip, zstd and uncompressed), pushed by podman.
Images Dockyard pushes are read back by skopeo and unpacked by umoci.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Dockyard
from tests.integration.registry.support import (
    OCI_INDEX,
    OCI_MANIFEST,
    Registry,
    RegistryApi,
    digest_of,
    image_config,
    layer_tar,
)


def _image_id(dockyard: Dockyard, name: str) -> str:
    return dockyard("inspect", "--format", "{{.Id}}", name).stdout.strip()


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result


@pytest.mark.parametrize("driver", ["default", "vfs"])
def test_push_and_pull_back_give_the_same_image(
    dockyard: Dockyard, registry: Registry, busybox_tar: Path, driver: str
) -> None:
    if driver != "default":
        dockyard.env["DOCKYARD_STORAGE_DRIVER"] = driver
    imported = dockyard("import", str(busybox_tar), "roundtrip:src").stdout.strip()
    target = f"{registry.host}/dockyard/{driver}/roundtrip:v1"
    dockyard("tag", "roundtrip:src", target)
    lines = dockyard("push", target).stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/dockyard/{driver}/roundtrip]"
    assert lines[1].endswith(": Preparing") and lines[2].endswith(": Pushed"), lines
    assert re.fullmatch(r"v1: digest: sha256:[0-9a-f]{64} size: \d+", lines[-1]), lines
    digest = lines[-1].split()[2]
    again = dockyard("push", target).stdout
    assert "Layer already exists" in again and digest in again

    dockyard("rmi", "roundtrip:src", target)
    assert dockyard("images", "-q").stdout == ""
    assert list(dockyard.root.glob("image-store/*/layer-blobs/sha256/*")) == []
    pulled = dockyard("pull", target).stdout
    assert pulled.splitlines()[0] == f"v1: Pulling from dockyard/{driver}/roundtrip"
    assert f"Digest: {digest}\nStatus: Downloaded newer image for {target}\n{target}\n" in pulled
    assert _image_id(dockyard, target) == imported
    inspected = json.loads(dockyard("inspect", target).stdout)[0]
    assert inspected["RepoDigests"] == [f"{registry.host}/dockyard/{driver}/roundtrip@{digest}"]
    assert f"Status: Image is up to date for {target}" in dockyard("pull", target).stdout

    # A pulled image pushes with its own manifest (same digest), its layer mounted across repositories.
    copy = f"{registry.host}/dockyard/{driver}/copy:v1"
    dockyard("tag", target, copy)
    pushed = dockyard("push", copy).stdout
    assert f"Mounted from dockyard/{driver}/roundtrip" in pushed and f"v1: digest: {digest}" in pushed


def test_plain_progress_quiet_digest_and_all_tags(
    dockyard: Dockyard, registry: Registry, busybox_image: tuple[str, str]
) -> None:
    image_id, digest = busybox_image
    name = f"{registry.host}/seed/busybox:1"
    assert dockyard("pull", "-q", name).stdout == f"{name}\n"
    dockyard("rmi", name)
    lines = dockyard("pull", name).stdout.splitlines()
    layer = lines[1].split(": ")[0]
    assert lines == [
        "1: Pulling from seed/busybox",
        f"{layer}: Pulling fs layer",
        f"{layer}: Verifying Checksum",
        f"{layer}: Download complete",
        f"{layer}: Pull complete",
        f"Digest: {digest}",
        f"Status: Downloaded newer image for {name}",
        name,
    ]
    assert _image_id(dockyard, name) == image_id

    by_digest = f"{registry.host}/seed/busybox@{digest}"
    out = dockyard("pull", by_digest).stdout.splitlines()
    assert out[0] == f"{digest}: Pulling from seed/busybox" and out[-1] == by_digest
    assert f"{layer}: Already exists" in out
    assert dockyard("inspect", "--format", "{{.Id}}", by_digest).stdout.strip() == image_id

    api = RegistryApi(registry.host)
    api.push_image("alltags/repo", "a", [layer_tar({"a": b"1"})])
    api.push_image("alltags/repo", "b", [layer_tar({"b": b"2"})])
    result = dockyard("pull", "-a", f"{registry.host}/alltags/repo")
    assert result.stdout.splitlines()[-1] == f"{registry.host}/alltags/repo"
    tags = dockyard("images", "--format", "{{.Tag}}", f"{registry.host}/alltags/repo").stdout.split()
    assert sorted(tags) == ["a", "b"]
    refused = dockyard("pull", "-a", f"{registry.host}/alltags/repo:a", check=False)
    assert refused.returncode == 1 and refused.stderr == "Error: tag can't be used with --all-tags/-a\n"


def test_terminal_progress_redraws_lines_in_place(
    dockyard: Dockyard, registry: Registry, busybox_image: tuple[str, str]
) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        dockyard.command("pull", f"{registry.host}/seed/busybox:1"),
        stdout=follower,
        stderr=subprocess.PIPE,
        env=dockyard.env,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = output.decode()
    assert "\x1b[1A\x1b[2K\r" in text  # cursor up, clear line: a redraw
    assert re.search(r": Downloading \[=+>\s*\] +[0-9.]+[kM]?B/[0-9.]+[kM]?B", text), text
    assert ": Pull complete" in text and "Status: Downloaded newer image" in text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("label", "skopeo_args"),
    [
        ("docker-gzip", ["--format", "v2s2"]),
        ("oci-gzip", ["--format", "oci"]),
        ("oci-zstd", ["--format", "oci", "--dest-compress-format", "zstd"]),
        ("oci-plain", ["--format", "oci", "--dest-decompress"]),
    ],
)
def test_images_copied_by_skopeo_pull_and_inspect(
    dockyard: Dockyard,
    registry: Registry,
    busybox_image: tuple[str, str],
    busybox_tar: Path,
    label: str,
    skopeo_args: list[str],
) -> None:
    image_id, _ = busybox_image
    target = f"{registry.host}/skopeo/{label}:1"
    _run(
        "skopeo",
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        *skopeo_args,
        f"docker://{registry.host}/seed/busybox:1",
        f"docker://{target}",
    )
    dockyard("pull", target)
    inspected = json.loads(dockyard("inspect", target).stdout)[0]
    if label == "docker-gzip":
        assert inspected["Id"] == image_id
    else:  # converting to OCI rewrites the config (new id), never the layers' content
        assert inspected["Id"] == digest_of(
            _run(
                "skopeo", "inspect", "--tls-verify=false", "--config", "--raw", f"docker://{target}"
            ).stdout.encode()
        )
    assert inspected["RootFS"]["Layers"] == [digest_of(busybox_tar.read_bytes())]
    assert inspected["Config"]["Cmd"] == ["/bin/sh"]
    assert inspected["Architecture"] == "amd64" and inspected["Os"] == "linux"
    # What was pulled pushes again, blob for blob: the registry already has every byte.
    again = f"{registry.host}/skopeo/{label}-again:1"
    dockyard("tag", target, again)
    pushed = dockyard("push", again).stdout
    assert "Pushed" not in pushed


@pytest.mark.slow
def test_podman_pushed_images_pull(
    dockyard: Dockyard, registry: Registry, busybox_tar: Path, podman: list[str]
) -> None:
    podman_id = _run(*podman, "import", str(busybox_tar), "localhost/pbox:1").stdout.strip().splitlines()[-1]
    for fmt in ("oci", "v2s2"):
        target = f"{registry.host}/podman/pbox:{fmt}"
        _run(*podman, "push", "--tls-verify=false", "--format", fmt, "localhost/pbox:1", target)
        dockyard("pull", target)
        assert _image_id(dockyard, target) == podman_id


@pytest.mark.slow
def test_dockyard_pushes_are_read_by_skopeo_and_unpacked_by_umoci(
    dockyard: Dockyard, registry: Registry, busybox_tar: Path, make_tar: object, tmp_path: Path
) -> None:
    dockyard("import", str(busybox_tar), "-c", 'CMD ["/bin/sh"]', f"{registry.host}/dockyard/umoci:1")
    digest = dockyard("push", f"{registry.host}/dockyard/umoci:1").stdout.split()[-3]
    inspected = json.loads(
        _run("skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/dockyard/umoci:1").stdout
    )
    assert inspected["Digest"] == digest and inspected["Os"] == "linux"
    layout = tmp_path / "layout"
    _run(
        "skopeo",
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.host}/dockyard/umoci:1",
        f"oci:{layout}:v1",
    )
    bundle = tmp_path / "bundle"
    _run("umoci", "unpack", "--image", f"{layout}:v1", str(bundle))
    assert (bundle / "rootfs" / "bin" / "busybox").is_file()
    assert json.loads((bundle / "config.json").read_text())["process"]["args"] == ["/bin/sh"]


def test_platform_is_chosen_from_an_index(dockyard: Dockyard, registry: Registry) -> None:
    api = RegistryApi(registry.host)
    layer = layer_tar({"hello": b"multi-arch"})
    amd64, amd64_digest, amd64_manifest = api.push_image("multi/app", "amd64", [layer])
    arm64, arm64_digest, arm64_manifest = api.push_image("multi/app", "arm64", [layer], architecture="arm64")
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": digest,
                "size": len(data),
                "platform": {"os": "linux", "architecture": arch, **extra},
            }
            for digest, data, arch, extra in (
                (arm64_digest, arm64_manifest, "arm64", {"variant": "v8"}),
                (amd64_digest, amd64_manifest, "amd64", {}),
            )
        ],
    }
    index_digest = api.put_manifest("multi/app", "latest", index, OCI_INDEX)
    name = f"{registry.host}/multi/app"
    assert f"Digest: {index_digest}" in dockyard("pull", name).stdout
    assert _image_id(dockyard, name) == amd64
    dockyard("pull", "--platform", "linux/arm64", name)
    assert _image_id(dockyard, name) == arm64
    missing = dockyard("pull", "--platform", "linux/s390x", name, check=False)
    assert missing.returncode == 1
    assert missing.stderr == "Error: no matching manifest for linux/s390x in the manifest list entries\n"
    wrong = dockyard("pull", "--platform", "linux/arm64", f"{name}:amd64", check=False)
    assert "does not match the specified platform: wanted linux/arm64, actual: linux/amd64" in wrong.stderr


def test_an_index_entry_that_lies_about_its_child_is_refused(dockyard: Dockyard, registry: Registry) -> None:
    api = RegistryApi(registry.host)
    _, digest, data = api.push_image("lying/index", "child", [layer_tar({"x": b"y"})])
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(data),
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }
    api.put_manifest("lying/index", "type", index, OCI_INDEX)
    result = dockyard("pull", f"{registry.host}/lying/index:type", check=False)
    assert result.returncode == 1
    assert "manifest media type mismatch" in result.stderr and "Traceback" not in result.stderr
    index["manifests"][0]["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
    index["manifests"][0]["size"] = len(data) + 1
    api.put_manifest("lying/index", "size", index, OCI_INDEX)
    result = dockyard("pull", f"{registry.host}/lying/index:size", check=False)
    assert result.returncode == 1 and "the index says" in result.stderr


def test_layer_count_must_match_the_configs_diff_ids(dockyard: Dockyard, registry: Registry) -> None:
    api = RegistryApi(registry.host)
    layer = layer_tar({"only": b"one"})
    config = image_config([digest_of(layer), digest_of(layer)])
    blob = __import__("gzip").compress(layer, mtime=0)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": api.put_blob("counts/bad", config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(blob),
                "digest": api.put_blob("counts/bad", blob),
            }
        ],
    }
    api.put_manifest("counts/bad", "1", manifest, "application/vnd.docker.distribution.manifest.v2+json")
    result = dockyard("pull", f"{registry.host}/counts/bad:1", check=False)
    assert result.returncode == 1
    assert result.stderr == "Error: image config lists 2 layers but the manifest has 1\n"


def test_missing_image_and_bad_push_are_one_line_errors(dockyard: Dockyard, registry: Registry) -> None:
    name = f"{registry.host}/nothing/here:1"
    result = dockyard("pull", name, check=False)
    assert result.returncode == 1
    assert result.stderr == f"Error: manifest for {name} not found: manifest unknown: manifest unknown\n"
    result = dockyard("push", name, check=False)
    assert (
        result.stderr
        == f"Error: An image does not exist locally with the tag: {registry.host}/nothing/here\n"
    )
    down = dockyard("pull", "127.0.0.1:1/nothing:1", check=False)
    assert down.returncode == 1 and down.stderr.startswith('Error: Get "http://127.0.0.1:1/v2/": ')
    assert down.stderr.count("\n") == 1


def test_image_pull_exits_1_like_docker(dockyard: Dockyard, registry: Registry) -> None:
    result = dockyard("image", "pull", f"{registry.host}/nothing/here:2", check=False)
    assert (result.returncode, result.stderr.count("\n")) == (1, 1)


def test_rmi_leaves_no_manifest_or_config_blob_behind(dockyard: Dockyard, registry: Registry) -> None:
    api = RegistryApi(registry.host)
    kept_id, kept_manifest, _ = api.push_image("blobs/kept", "1", [layer_tar({"kept": b"k"})])
    gone_id, gone_manifest, _ = api.push_image("blobs/gone", "1", [layer_tar({"gone": b"g"})])
    dockyard("pull", f"{registry.host}/blobs/kept:1")
    dockyard("pull", f"{registry.host}/blobs/gone:1")
    stored = {path.name for path in dockyard.root.glob("image-store/*/blobs/sha256/*")}
    expected = {digest[7:] for digest in (kept_id, kept_manifest, gone_id, gone_manifest)}
    assert stored == expected
    dockyard("rmi", f"{registry.host}/blobs/gone:1")
    stored = {path.name for path in dockyard.root.glob("image-store/*/blobs/sha256/*")}
    assert stored == {kept_id[7:], kept_manifest[7:]}
    dockyard("rmi", f"{registry.host}/blobs/kept:1")
    assert list(dockyard.root.glob("image-store/*/blobs/sha256/*")) == []


def test_chunked_uploads_are_accepted(
    dockyard: Dockyard, registry: Registry, busybox_tar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big blobs go up as PATCH chunks then PUT: force it with a small chunk size, in-process."""
    from dockyard.core.config import load_settings
    from dockyard.core.engine import Engine
    from dockyard.core.reference import parse_reference
    from dockyard.core.registry.credentials import CredentialStore
    from dockyard.core.registry.hosts import RegistryConfig
    from dockyard.core.registry.progress import Progress
    from dockyard.core.registry.push import Pusher

    target = f"{registry.host}/chunked/busybox:1"
    dockyard("import", str(busybox_tar), target)
    monkeypatch.setenv("DOCKYARD_DISABLE_PLUGIN_AUTOLOAD", "1")
    settings = load_settings(
        {"root": str(dockyard.root), "runroot": str(dockyard.runroot)}, environ=dockyard.env
    )
    pusher = Pusher(
        Engine(settings),
        config=RegistryConfig(),
        credentials=CredentialStore(tmp_path / "config.json"),
        progress=Progress(),
        chunk_size=100 << 10,
    )
    result = pusher.push(parse_reference(target))
    copied = tmp_path / "copied"
    _run("skopeo", "copy", "--src-tls-verify=false", f"docker://{target}", f"dir:{copied}")
    manifest = (copied / "manifest.json").read_bytes()
    assert digest_of(manifest) == result.digest
    layer = json.loads(manifest)["layers"][0]
    assert layer["size"] > 3 * (100 << 10)  # really several chunks
    assert digest_of((copied / layer["digest"][7:]).read_bytes()) == layer["digest"]


def test_a_missing_image_is_pulled_for_run(
    dockyard: Dockyard, registry: Registry, busybox_image: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `run`/`create` will call: Docker's "Unable to find image" and a pull, once."""
    import io

    from dockyard.core.config import load_settings
    from dockyard.core.engine import Engine
    from dockyard.core.registry.pull import ensure_image

    for key in ("DOCKYARD_DISABLE_PLUGIN_AUTOLOAD", "DOCKER_CONFIG", "DOCKYARD_REGISTRIES_CONFIG"):
        monkeypatch.setenv(key, dockyard.env[key])
    engine = Engine(
        load_settings({"root": str(dockyard.root), "runroot": str(dockyard.runroot)}, environ=dockyard.env)
    )
    out = io.StringIO()
    name = f"{registry.host}/seed/busybox:1"
    image = ensure_image(engine, name, out=out)
    assert image.id == busybox_image[0]
    assert out.getvalue().startswith(f"Unable to find image '{name}' locally\n1: Pulling from seed/busybox\n")
    again = io.StringIO()
    assert ensure_image(engine, name, out=again).id == image.id and again.getvalue() == ""
