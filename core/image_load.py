"""`load`: store the images of a docker-archive or OCI archive, verified, all or nothing per image.

Accepted, possibly gzip/xz/bzip2-compressed as a whole:

- docker-archive, as `docker save` (any version), `podman save` and skopeo write it: `manifest.json`
  lists each image's config, `RepoTags` and layer files (plain or compressed tars, found by path,
  symlinks inside the archive followed).
- OCI archive (`podman save --format oci-archive`, `skopeo copy ... oci-archive:`, Docker 25+): the
  layout's `index.json`; an entry that is an index resolves to this host's platform. An entry's name
  is `io.containerd.image.name`, else `org.opencontainers.image.ref.name` when that is a full
  reference (`localhost/app:1`); a bare tag such as skopeo's `mytag` names nothing and the image is
  loaded untagged, as Docker does.

Every blob is checked against its descriptor's digest and size (OCI) and every layer against the
config's diff_id, and configs and manifests are size-capped, exactly as a pull checks them. The layer
files become the layers' kept blobs, so a loaded image can be pushed and saved again unchanged.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import tarfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from dockyard.core.digests import validate_digest
from dockyard.core.engine import Engine
from dockyard.core.errors import ContentError, InvalidDigest, InvalidReference
from dockyard.core.image_assembly import ImageAssembler, LayerSource, config_diff_ids, discard_unused_layers
from dockyard.core.layer_blobs import LayerBlob
from dockyard.core.layer_streams import sniff
from dockyard.core.platforms import host_architecture, host_os
from dockyard.core.reference import Reference, parse_reference
from dockyard.core.registry.media import (
    MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
    Descriptor,
    Index,
    Manifest,
    Platform,
    layer_compression,
    parse_manifest,
    select_platform,
)
from dockyard.core.store import scratch_dir

__all__ = ["LoadedImage", "load_images"]

_MAX_LINK_HOPS = 8


@dataclass(frozen=True)
class LoadedImage:
    """A loaded image and the tags it was given."""

    image_id: str
    tags: tuple[Reference, ...]


@dataclass(frozen=True)
class _Plan:
    """One image found in the archive: its config, its layers (member, descriptor) and names."""

    config: bytes
    layers: list[tuple[str, Descriptor | None]]
    tags: tuple[Reference, ...]
    manifest: bytes | None = None
    manifest_digest: str | None = None


class _Archive:
    """Random access to the members of a (possibly compressed) tar archive."""

    def __init__(self, path: Path) -> None:
        try:
            self._tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 - closed by close()
            self._members = {_clean(member.name): member for member in self._tar.getmembers()}
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ContentError(f"not a valid image archive: {exc}") from exc

    def close(self) -> None:
        """Close the archive file."""
        self._tar.close()

    def has(self, name: str) -> bool:
        """Whether the archive holds an entry of this name."""
        return _clean(name) in self._members

    def open(self, name: str) -> IO[bytes]:
        """A reader of a regular entry; links inside the archive are followed (a few hops at most)."""
        member = self._members.get(_clean(name))
        for _ in range(_MAX_LINK_HOPS):
            if member is None or not (member.issym() or member.islnk()):
                break
            base = posixpath.dirname(member.name) if member.issym() else ""
            member = self._members.get(_clean(posixpath.normpath(posixpath.join(base, member.linkname))))
        if member is None:
            raise ContentError(f"image archive has no {name!r} (or it links to nothing)")
        if not member.isreg():
            raise ContentError(f"image archive entry {name!r} is not a regular file")
        handle = self._tar.extractfile(member)
        if handle is None:
            raise ContentError(f"image archive entry {name!r} is not a regular file")
        return handle

    def read(self, name: str, *, limit: int) -> bytes:
        """The whole entry, refused when larger than `limit`."""
        with self.open(name) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise ContentError(f"image archive entry {name!r} is larger than {limit >> 20} MiB")
        return data

    def json(self, name: str) -> Any:
        """The entry parsed as JSON."""
        try:
            return json.loads(self.read(name, limit=MAX_MANIFEST_SIZE))
        except ValueError as exc:
            raise ContentError(f"image archive entry {name!r} is not valid JSON: {exc}") from exc


def _clean(name: str) -> str:
    return name.removeprefix("./").lstrip("/")


def load_images(engine: Engine, source: BinaryIO, *, seekable_path: Path | None) -> list[LoadedImage]:
    """Load every image of an archive read from `seekable_path`, or spooled from `source`."""
    engine.recover()
    loaded: list[LoadedImage] = []
    with scratch_dir(engine.scratch_parent) as scratch:
        path = seekable_path
        if path is None:
            path = scratch / "archive"
            with path.open("wb") as spool:
                shutil.copyfileobj(source, spool, 1 << 20)
        archive = _Archive(path)
        try:
            plans = _docker_plans(archive) if archive.has("manifest.json") else _oci_plans(archive)
            if not plans:
                raise ContentError("image archive holds no image")
            for plan in plans:
                try:
                    loaded.append(_load(engine, archive, plan, scratch))
                except Exception:
                    discard_unused_layers(engine)
                    raise
        finally:
            archive.close()
    return loaded


def _load(engine: Engine, archive: _Archive, plan: _Plan, scratch: Path) -> LoadedImage:
    diff_ids = config_diff_ids(plan.config)
    if len(diff_ids) != len(plan.layers):
        raise ContentError(
            f"image config lists {len(diff_ids)} layers but the archive has {len(plan.layers)}"
        )
    with ExitStack() as hold:
        assembler = ImageAssembler(engine, hold=hold)
        for index, (member, descriptor) in enumerate(plan.layers):
            stored = assembler.stored_blob(diff_ids, index)
            if stored is not None:
                assembler.add_layer(LayerSource(stored))
                continue
            assembler.add_layer(
                _stage(archive, member, descriptor, diff_ids[index], scratch / f"layer-{index}")
            )
        result = assembler.commit(
            config=plan.config,
            manifest=plan.manifest,
            manifest_digest=plan.manifest_digest,
            tags=[str(tag) for tag in plan.tags],
        )
    for tag in plan.tags:
        if result.previous.get(str(tag)) != result.image_id:
            engine.hooks.image_tagged(image_id=result.image_id, reference=str(tag))
    return LoadedImage(result.image_id, plan.tags)


def _stage(
    archive: _Archive, member: str, descriptor: Descriptor | None, diff_id: str, path: Path
) -> LayerSource:
    """Copy a layer file out of the archive, hashing it; check it against its descriptor if any."""
    hasher = hashlib.new(descriptor.digest.partition(":")[0] if descriptor else "sha256")
    size = 0
    with archive.open(member) as handle, path.open("wb") as out:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
            out.write(chunk)
            size += len(chunk)
    digest = f"{hasher.name}:{hasher.hexdigest()}"
    if descriptor is not None:
        if (digest, size) != (descriptor.digest, descriptor.size):
            raise ContentError(f"blob {member} does not match its descriptor {descriptor.digest}")
        compression = layer_compression(descriptor.media_type)
    else:
        compression = sniff(path)
    return LayerSource(LayerBlob(digest, size, compression, diff_id), path)


# --- docker-archive -----------------------------------------------------------------------------


def _docker_plans(archive: _Archive) -> list[_Plan]:
    entries = archive.json("manifest.json")
    if not isinstance(entries, list):
        raise ContentError("manifest.json is not a list")
    plans = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise ContentError("manifest.json entry has no Config")
        layers = entry.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(layer, str) for layer in layers):
            raise ContentError("manifest.json entry has an invalid Layers list")
        tags = tuple(_tag(name) for name in entry.get("RepoTags") or [] if isinstance(name, str))
        config = archive.read(entry["Config"], limit=MAX_CONFIG_SIZE)
        plans.append(_Plan(config, [(layer, None) for layer in layers], tags))
    return plans


def _tag(name: str) -> Reference:
    try:
        return parse_reference(name)
    except InvalidReference as exc:
        raise ContentError(f"image archive names an invalid tag {name!r}: {exc}") from exc


# --- OCI archive --------------------------------------------------------------------------------


def _oci_plans(archive: _Archive) -> list[_Plan]:
    if not archive.has("index.json"):
        raise ContentError("not an image archive: neither manifest.json nor index.json found")
    index = parse_manifest(archive.read("index.json", limit=MAX_MANIFEST_SIZE), content_type=None)
    if not isinstance(index, Index):
        raise ContentError("index.json is not an image index")
    plans = []
    for entry in index.manifests:
        tags = _oci_names(entry.annotations)
        manifest_bytes = _oci_blob(archive, entry.digest, entry.size, limit=MAX_MANIFEST_SIZE)
        parsed = parse_manifest(manifest_bytes, content_type=None, expected=entry.media_type)
        digest = entry.digest
        if isinstance(parsed, Index):
            child = select_platform(parsed, Platform(host_os(), host_architecture()))
            manifest_bytes = _oci_blob(archive, child.digest, child.size, limit=MAX_MANIFEST_SIZE)
            parsed = parse_manifest(manifest_bytes, content_type=None, expected=child.media_type)
            digest = child.digest
        if not isinstance(parsed, Manifest):
            raise ContentError("nested image indexes are not supported")
        config = _oci_blob(archive, parsed.config.digest, parsed.config.size, limit=MAX_CONFIG_SIZE)
        layers: list[tuple[str, Descriptor | None]] = [
            (_blob_path(layer.digest), layer) for layer in parsed.layers
        ]
        plans.append(_Plan(config, layers, tags, manifest_bytes, digest))
    return plans


def _oci_names(annotations: dict[str, str]) -> tuple[Reference, ...]:
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        name = annotations.get(key, "")
        if "/" in name or ":" in name:
            try:
                return (parse_reference(name),)
            except InvalidReference:
                continue
    return ()


def _blob_path(digest: str) -> str:
    try:
        validate_digest(digest)
    except InvalidDigest as exc:
        raise ContentError(str(exc)) from exc
    return "blobs/" + digest.replace(":", "/")


def _oci_blob(archive: _Archive, digest: str, size: int, *, limit: int) -> bytes:
    if size > limit:
        raise ContentError(f"blob {digest} is larger than {limit >> 20} MiB")
    data = archive.read(_blob_path(digest), limit=limit)
    algorithm = digest.partition(":")[0]
    actual = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    if (actual, len(data)) != (digest, size):
        raise ContentError(f"blob {digest} in the archive does not match its digest or size")
    return data


def _blob_or_file(archive: _Archive, name: str) -> bytes:
    return archive.read(name, limit=MAX_MANIFEST_SIZE)
