"""`save`: write images to a tar archive that `docker load`, `podman load` and skopeo read.

Two formats:

- docker-archive (the default, what `docker save` wrote before Docker 25 and podman still writes):
  `manifest.json` listing each image's config, tags and layers, `<config hex>.json`, and one
  uncompressed `<diff_id hex>.tar` per layer. The kept layer blobs are decompressed for it, so each
  tar is byte-for-byte the one the diff_id names.
- oci-archive: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) holding the kept
  blobs as they are (compressed or not) and an OCI manifest per image; each index entry names its
  image in `org.opencontainers.image.ref.name` (the full reference, as podman writes it) and
  `io.containerd.image.name`.

The archive is assembled in a temporary file next to the destination and renamed over it at the
end, so a failed or killed save never leaves a half-written archive under the requested name.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.core.digests import HashingReader, digest_hex, sha256_digest
from dockyard.core.engine import Engine
from dockyard.core.errors import ContentError, NotFoundError, UsageError
from dockyard.core.image_assembly import layer_blobs
from dockyard.core.images import Image
from dockyard.core.layer_blobs import LayerBlob
from dockyard.core.layer_streams import Compression, open_layer
from dockyard.core.reference import Reference, looks_like_id, parse_reference
from dockyard.core.store import atomic_output, scratch_dir

__all__ = ["FORMATS", "save_images"]

FORMATS = ("docker-archive", "oci-archive")
_OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class _Selected:
    """One image to save and the tags it is saved under."""

    image: Image
    tags: tuple[Reference, ...]


def _select(engine: Engine, names: list[str]) -> list[_Selected]:
    """Docker's choice: a tag saves that tag, a bare repository all its tags, an id no tag."""
    chosen: dict[str, list[Reference]] = {}
    images: dict[str, Image] = {}
    for name in names:
        image = engine.images.resolve(name)
        images[image.id] = image
        tags = chosen.setdefault(image.id, [])
        if looks_like_id(name) and image.id[7:].startswith(name.removeprefix("sha256:")):
            continue
        reference = parse_reference(name, default_tag=None)
        if reference.digest is not None:
            continue
        if reference.tag is not None:
            tags.append(reference)
            continue
        for image_id, candidate in _repository_tags(engine, reference):
            images.setdefault(image_id, engine.images.get(image_id))
            chosen.setdefault(image_id, []).append(candidate)
    return [_Selected(images[image_id], tuple(dict.fromkeys(tags))) for image_id, tags in chosen.items()]


def _repository_tags(engine: Engine, repository: Reference) -> Iterator[tuple[str, Reference]]:
    for image in engine.images.list():
        for ref in image.repo_tags:
            parsed = parse_reference(ref)
            if parsed.name == repository.name:
                yield image.id, parsed


class _ArchiveWriter:
    """Adds regular files to a streamed tar with fixed owner, mode and time (reproducible)."""

    def __init__(self, out: BinaryIO) -> None:
        self._tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - see close()
        self._written: set[str] = set()

    def add_bytes(self, name: str, data: bytes) -> None:
        """Add a file holding `data`."""
        self.add_stream(name, io.BytesIO(data), len(data))

    def add_file(self, name: str, path: Path) -> None:
        """Add a copy of the file at `path`."""
        with path.open("rb") as handle:
            self.add_stream(name, handle, path.stat().st_size)

    def add_stream(self, name: str, stream: BinaryIO, size: int) -> None:
        """Add `size` bytes read from `stream`; a name already written is skipped (shared layers)."""
        if name in self._written:
            return
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = 0
        self._tar.addfile(info, stream)
        self._written.add(name)

    def close(self) -> None:
        """Write the end-of-archive marker."""
        self._tar.close()


def save_images(engine: Engine, names: list[str], *, output: Path | None, out: BinaryIO, format: str) -> None:
    """Write the named images as one archive to `output` (atomically) or, without it, to `out`."""
    if format not in FORMATS:
        raise UsageError(f"unsupported format {format!r} (choose from {', '.join(FORMATS)})")
    selected = _select(engine, names)
    with scratch_dir(engine.scratch_parent) as scratch:
        if output is None:
            _write(engine, selected, out, scratch, format)
            return
        with atomic_output(output) as handle:
            _write(engine, selected, handle, scratch, format)


def _write(engine: Engine, selected: list[_Selected], out: BinaryIO, scratch: Path, format: str) -> None:
    writer = _ArchiveWriter(out)
    if format == "docker-archive":
        _docker_archive(engine, selected, writer, scratch)
    else:
        _oci_archive(engine, selected, writer)
    writer.close()


def _kept_blob(engine: Engine, diff_id: str) -> LayerBlob:
    blobs = layer_blobs(engine).for_diff_id(diff_id)
    if not blobs:
        raise NotFoundError(
            f"layer {diff_id} has no kept blob to save (it was made before Dockyard kept them)"
        )
    return blobs[0]


def _docker_archive(engine: Engine, selected: list[_Selected], writer: _ArchiveWriter, scratch: Path) -> None:
    store = layer_blobs(engine)
    entries = []
    for item in selected:
        image = item.image
        config_name = f"{digest_hex(image.id)}.json"
        writer.add_bytes(config_name, engine.images.get_blob(image.id))
        layer_names = []
        for diff_id in image.diff_ids:
            name = f"{digest_hex(diff_id)}.tar"
            layer_names.append(name)
            blob = _kept_blob(engine, diff_id)
            if blob.compression is Compression.NONE:
                writer.add_file(name, store.path(blob))
                continue
            plain = scratch / name
            with store.path(blob).open("rb") as raw, plain.open("wb") as target:
                reader = HashingReader(open_layer(raw, blob.compression, compressed_size=blob.size))
                shutil.copyfileobj(reader, target, 1 << 20)
            if reader.digest != diff_id:
                raise ContentError(f"kept blob {blob.digest} does not expand to {diff_id}")
            writer.add_file(name, plain)
            plain.unlink()
        entries.append(
            {
                "Config": config_name,
                "RepoTags": [tag.familiar() for tag in item.tags] or None,
                "Layers": layer_names,
            }
        )
    writer.add_bytes("manifest.json", json.dumps(entries, separators=(",", ":")).encode())


def _oci_archive(engine: Engine, selected: list[_Selected], writer: _ArchiveWriter) -> None:
    store = layer_blobs(engine)
    writer.add_bytes("oci-layout", _OCI_LAYOUT)
    index = []
    for item in selected:
        image = item.image
        config = engine.images.get_blob(image.id)
        writer.add_bytes(f"blobs/sha256/{digest_hex(image.id)}", config)
        layers = []
        for diff_id in image.diff_ids:
            blob = _kept_blob(engine, diff_id)
            writer.add_file(f"blobs/{blob.digest.replace(':', '/')}", store.path(blob))
            media_type = (
                _OCI_LAYER if blob.compression is Compression.NONE else f"{_OCI_LAYER}+{blob.compression}"
            )
            layers.append({"mediaType": media_type, "digest": blob.digest, "size": blob.size})
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": _OCI_MANIFEST,
                "config": {"mediaType": _OCI_CONFIG, "digest": image.id, "size": len(config)},
                "layers": layers,
            },
            separators=(",", ":"),
        ).encode()
        digest = sha256_digest(manifest)
        writer.add_bytes(f"blobs/sha256/{digest_hex(digest)}", manifest)
        descriptor = {"mediaType": _OCI_MANIFEST, "digest": digest, "size": len(manifest)}
        for tag in item.tags or (None,):
            entry = dict(descriptor)
            if tag is not None:
                entry["annotations"] = {
                    "org.opencontainers.image.ref.name": str(tag),
                    "io.containerd.image.name": str(tag),
                }
            index.append(entry)
    document = {"schemaVersion": 2, "mediaType": _OCI_INDEX, "manifests": index}
    writer.add_bytes("index.json", json.dumps(document, separators=(",", ":")).encode())
