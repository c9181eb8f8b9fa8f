"""Media types, manifests, indexes and platforms of the OCI image spec and Docker's schema 2.

A manifest is parsed from the exact bytes received, which are also what its digest covers: it is
never re-serialised. Parsing checks what a registry could get wrong or lie about: the declared media
type against the HTTP Content-Type and against the descriptor that pointed at it, the schema
version, and every descriptor's digest and size. Docker's schema 1 is refused (it is signed JSON
without content-addressed configs, deprecated since 2017).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.core.digests import validate_digest
from dockyard.core.errors import ContentError, InvalidDigest, NotFoundError, UsageError
from dockyard.core.layer_streams import Compression

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER_GZIP",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "MAX_CONFIG_SIZE",
    "MAX_MANIFEST_SIZE",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Descriptor",
    "Index",
    "Manifest",
    "Platform",
    "layer_compression",
    "layer_media_type",
    "parse_manifest",
    "parse_platform",
    "select_platform",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
_OCI_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
MANIFEST_ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))

# Manifests are small JSON documents (distribution refuses more than 4 MiB); configs get the image
# store's cap. Anything larger is refused before it is read into memory.
MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 8 << 20

_GENERIC_CONTENT_TYPES = ("", "application/json", "application/octet-stream", "text/plain")


_LAYER_COMPRESSION = {
    DOCKER_LAYER_GZIP: Compression.GZIP,
    DOCKER_FOREIGN_LAYER_GZIP: Compression.GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": Compression.NONE,
    _OCI_LAYER: Compression.NONE,
    f"{_OCI_LAYER}+gzip": Compression.GZIP,
    f"{_OCI_LAYER}+zstd": Compression.ZSTD,
    _OCI_NONDISTRIBUTABLE: Compression.NONE,
    f"{_OCI_NONDISTRIBUTABLE}+gzip": Compression.GZIP,
    f"{_OCI_NONDISTRIBUTABLE}+zstd": Compression.ZSTD,
}


def layer_compression(media_type: str) -> Compression:
    """The compression a layer media type declares; ContentError for a type that is no layer."""
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise ContentError(f"unsupported layer media type {media_type!r}") from None


def layer_media_type(compression: Compression, *, oci: bool) -> str:
    """The layer media type for a compression in an OCI or a Docker schema 2 manifest.

    Docker's schema 2 has no zstd or uncompressed layer type: callers use OCI for those.
    """
    if oci:
        return _OCI_LAYER if compression is Compression.NONE else f"{_OCI_LAYER}+{compression}"
    if compression is not Compression.GZIP:
        raise ValueError(f"Docker schema 2 has no {compression} layer media type")
    return DOCKER_LAYER_GZIP


@dataclass(frozen=True)
class Platform:
    """An OCI platform: `linux/amd64`, `linux/arm64/v8`."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        """The `os/arch[/variant]` spelling `--platform` takes."""
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "i386": "386"}
_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7"}


def parse_platform(text: str) -> Platform:
    """Parse `os/arch[/variant]` (`linux/amd64`, `linux/arm/v7`) as `--platform` takes it."""
    parts = text.strip().lower().split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise UsageError(f"invalid platform {text!r}: expected os/arch[/variant]")
    architecture = _ARCH_ALIASES.get(parts[1], parts[1])
    return Platform(parts[0], architecture, parts[2] if len(parts) == 3 else "")


def _variant(platform: Platform) -> str:
    return platform.variant or _DEFAULT_VARIANTS.get(platform.architecture, "")


@dataclass(frozen=True)
class Descriptor:
    """A reference to content: its media type, digest and size (and, in an index, its platform)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The descriptor as it appears in a manifest."""
        data: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


@dataclass(frozen=True)
class Manifest:
    """An image manifest (Docker schema 2 or OCI): one config and its layers, bottom first."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    """A manifest list or OCI index: one manifest per platform."""

    media_type: str
    manifests: tuple[Descriptor, ...]


def parse_manifest(data: bytes, *, content_type: str | None, expected: str | None = None) -> Manifest | Index:
    """Parse manifest bytes, checking the media type against `content_type` and `expected`.

    `content_type` is the HTTP Content-Type (None for content read from an archive); `expected` is
    the media type of the descriptor that pointed here, if any.
    """
    if len(data) > MAX_MANIFEST_SIZE:
        raise ContentError(f"manifest is larger than {MAX_MANIFEST_SIZE >> 20} MiB")
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ContentError(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ContentError("manifest is not a JSON object")
    declared = document.get("mediaType")
    header = (content_type or "").partition(";")[0].strip().lower()
    if header in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
        raise ContentError(
            "Docker schema 1 manifests are not supported: push the image again with a current client"
        )
    if document.get("schemaVersion") != 2:
        raise ContentError(f"unsupported manifest schemaVersion {document.get('schemaVersion')!r}")
    if declared is not None and not isinstance(declared, str):
        raise ContentError("manifest mediaType is not a string")
    if declared and header not in _GENERIC_CONTENT_TYPES and header != declared:
        raise ContentError(
            f"manifest media type mismatch: Content-Type is {header} but the manifest says {declared}"
        )
    media_type = declared or (header if header not in _GENERIC_CONTENT_TYPES else "") or _infer(document)
    if expected is not None and media_type != expected:
        raise ContentError(f"manifest media type mismatch: expected {expected}, got {media_type}")
    if media_type in INDEX_TYPES:
        return Index(media_type, tuple(_descriptor(item) for item in _list(document, "manifests")))
    if media_type in MANIFEST_TYPES:
        config = document.get("config")
        if not isinstance(config, dict):
            raise ContentError("manifest has no config descriptor")
        layers = tuple(_descriptor(item) for item in _list(document, "layers"))
        return Manifest(media_type, _descriptor(config), layers)
    raise ContentError(f"unsupported manifest media type {media_type!r}")


def _infer(document: dict[str, Any]) -> str:
    """OCI allows leaving mediaType out: an index lists manifests, a manifest has a config."""
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document:
        return OCI_MANIFEST
    raise ContentError("manifest has no mediaType and is neither a manifest nor an index")


def _list(document: dict[str, Any], key: str) -> list[Any]:
    items = document.get(key)
    if not isinstance(items, list):
        raise ContentError(f"manifest field {key!r} is not a list")
    return items


def _descriptor(item: Any) -> Descriptor:
    if not isinstance(item, dict):
        raise ContentError("manifest descriptor is not an object")
    media_type, digest, size = item.get("mediaType"), item.get("digest"), item.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise ContentError("manifest descriptor lacks a mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ContentError(f"manifest descriptor {digest} has an invalid size {size!r}")
    try:
        validate_digest(digest)
    except InvalidDigest as exc:
        raise ContentError(str(exc)) from exc
    platform = None
    raw_platform = item.get("platform")
    if isinstance(raw_platform, dict):
        platform = Platform(
            str(raw_platform.get("os", "")),
            str(raw_platform.get("architecture", "")),
            str(raw_platform.get("variant", "")),
        )
    annotations = item.get("annotations")
    clean = {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {}
    return Descriptor(media_type, digest, size, platform, clean)


def select_platform(index: Index, wanted: Platform) -> Descriptor:
    """The index entry for `wanted`, preferring an exact variant, as Docker chooses."""
    candidates = [
        entry
        for entry in index.manifests
        if entry.platform is not None
        and entry.media_type in (*MANIFEST_TYPES, *INDEX_TYPES)
        and entry.platform.os == wanted.os
        and _ARCH_ALIASES.get(entry.platform.architecture, entry.platform.architecture) == wanted.architecture
    ]
    exact = [entry for entry in candidates if entry.platform and _variant(entry.platform) == _variant(wanted)]
    if exact:
        return exact[0]
    if candidates and not wanted.variant:
        return candidates[0]
    raise NotFoundError(f"no matching manifest for {wanted} in the manifest list entries")
