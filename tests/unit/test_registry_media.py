"""Manifest parsing and platform selection: what a registry could get wrong is refused."""

from __future__ import annotations

import json
import re

import pytest

from dockyard.core.errors import ContentError, NotFoundError, UsageError
from dockyard.core.layer_streams import Compression
from dockyard.core.registry.media import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Index,
    Manifest,
    Platform,
    layer_compression,
    layer_media_type,
    parse_manifest,
    parse_platform,
    select_platform,
)

DIGEST = "sha256:" + "a" * 64
CONFIG = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": DIGEST, "size": 10}
LAYER = {
    "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
    "digest": "sha256:" + "b" * 64,
    "size": 5,
}


def _manifest(**fields: object) -> bytes:
    return json.dumps({"schemaVersion": 2, "config": CONFIG, "layers": [LAYER], **fields}).encode()


def test_an_oci_manifest_without_media_type_is_inferred_and_parsed() -> None:
    parsed = parse_manifest(_manifest(), content_type=OCI_MANIFEST + "; charset=utf-8")
    assert isinstance(parsed, Manifest) and parsed.media_type == OCI_MANIFEST
    assert parsed.config.digest == DIGEST and parsed.layers[0].size == 5
    assert isinstance(parse_manifest(_manifest(), content_type=None), Manifest)


def test_content_type_must_match_the_declared_media_type() -> None:
    with pytest.raises(ContentError, match=r"Content-Type is .*manifest\.list.* but the manifest says"):
        parse_manifest(_manifest(mediaType=OCI_MANIFEST), content_type=DOCKER_MANIFEST_LIST)
    assert parse_manifest(_manifest(mediaType=OCI_MANIFEST), content_type="application/json")


def test_the_descriptor_that_pointed_here_must_agree() -> None:
    with pytest.raises(ContentError, match=re.escape(f"expected {DOCKER_MANIFEST}, got {OCI_MANIFEST}")):
        parse_manifest(_manifest(mediaType=OCI_MANIFEST), content_type=None, expected=DOCKER_MANIFEST)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"schemaVersion": 1, "name": "x"}, "schema 1"),
        ({"schemaVersion": 3, "config": CONFIG, "layers": []}, "schemaVersion 3"),
        (
            {"schemaVersion": 2, "config": {**CONFIG, "digest": "sha256:../../etc"}, "layers": []},
            "invalid digest",
        ),
        ({"schemaVersion": 2, "config": {**CONFIG, "size": -1}, "layers": []}, "invalid size"),
        ({"schemaVersion": 2, "config": CONFIG, "layers": {}}, "not a list"),
        (
            {"schemaVersion": 2, "mediaType": "text/html", "config": CONFIG, "layers": []},
            "unsupported manifest",
        ),
        ([], "not a JSON object"),
    ],
)
def test_malformed_manifests_are_refused(document: object, message: str) -> None:
    with pytest.raises(ContentError, match=message):
        parse_manifest(json.dumps(document).encode(), content_type=None)


def test_oversized_manifests_are_refused_before_parsing() -> None:
    with pytest.raises(ContentError, match="larger than 4 MiB"):
        parse_manifest(b" " * (4 << 20) + b"{}", content_type=None)


def _index(*platforms: dict[str, str]) -> Index:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": f"sha256:{index:064x}", "size": 1, "platform": platform}
            for index, platform in enumerate(platforms)
        ],
    }
    parsed = parse_manifest(json.dumps(document).encode(), content_type=OCI_INDEX)
    assert isinstance(parsed, Index)
    return parsed


def test_platform_selection_prefers_the_exact_variant() -> None:
    index = _index(
        {"os": "unknown", "architecture": "unknown"},
        {"os": "linux", "architecture": "arm", "variant": "v6"},
        {"os": "linux", "architecture": "arm", "variant": "v7"},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
        {"os": "linux", "architecture": "amd64"},
    )
    assert select_platform(index, Platform("linux", "amd64")).digest.endswith("4")
    assert select_platform(index, Platform("linux", "arm64")).digest.endswith("3")  # v8 is arm64's default
    assert select_platform(index, Platform("linux", "arm")).digest.endswith("2")  # v7 is arm's default
    assert select_platform(index, Platform("linux", "arm", "v6")).digest.endswith("1")
    with pytest.raises(
        NotFoundError, match="no matching manifest for linux/s390x in the manifest list entries"
    ):
        select_platform(index, Platform("linux", "s390x"))


def test_platform_flag_parsing() -> None:
    assert parse_platform("linux/x86_64") == Platform("linux", "amd64")
    assert str(parse_platform("Linux/arm64/v8")) == "linux/arm64/v8"
    with pytest.raises(UsageError):
        parse_platform("linux")


def test_layer_media_types() -> None:
    assert layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip") is Compression.GZIP
    assert layer_compression("application/vnd.oci.image.layer.v1.tar") is Compression.NONE
    assert layer_media_type(Compression.ZSTD, oci=True) == "application/vnd.oci.image.layer.v1.tar+zstd"
    with pytest.raises(ContentError, match="unsupported layer media type"):
        layer_compression("application/vnd.example.helm-chart")
