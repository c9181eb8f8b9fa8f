"""The image store: content-addressed blobs, image records, tags, and name resolution.

Layout under one storage driver's image home (images belong to the driver their layers live in, as in
Docker, so switching drivers never mixes layers):

    blobs/sha256/<hex>     configs and manifests, written only after their digest is checked
    images/<hex>.json      one record per image (its layers' chain ids, size, manifest digest)
    references.json        tag -> image id, and name@digest -> image id
    lock                   held around every read-modify-write

An image's id is its config's digest, shown as 12 hex. Every record is replaced atomically, so a
killed command leaves either the old state or the new one.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

from dockyard.core.digests import digest_hex, sha256_digest, validate_digest
from dockyard.core.errors import (
    AmbiguousIdError,
    ContentError,
    InvalidReference,
    NotFoundError,
    StoreError,
)
from dockyard.core.store import TEMP_PREFIX, atomic_write, file_lock, read_json, write_json

TYPE_CHECKING = False  # typing and dataclasses cost more start-up time than `images` itself
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any


__all__ = ["Image", "ImageStore", "short_id"]

MAX_CONFIG_SIZE = 8 << 20


def short_id(image_id: str) -> str:
    """The 12-hex form Docker shows for an id."""
    return image_id.partition(":")[2][:12]


class Image:
    """One stored image: its config, the chain ids of its layers (bottom first), its references."""

    __slots__ = (
        "config",
        "id",
        "layers",
        "manifest",
        "parent",
        "repo_digests",
        "repo_tags",
        "size",
        "tagged_at",
    )

    def __init__(
        self,
        *,
        id: str,
        config: dict[str, Any],
        layers: tuple[str, ...],
        size: int,
        manifest: str | None = None,
        parent: str | None = None,
        repo_tags: tuple[str, ...] = (),
        repo_digests: tuple[str, ...] = (),
        tagged_at: dict[str, str] | None = None,
    ) -> None:
        self.id = id
        self.config = config
        self.layers = layers
        self.size = size
        self.manifest = manifest
        self.parent = parent
        self.repo_tags = repo_tags
        self.repo_digests = repo_digests
        self.tagged_at = tagged_at or {}

    def __repr__(self) -> str:
        return f"Image({self.id}, tags={list(self.repo_tags)})"

    @property
    def created(self) -> str:
        """The config's creation time (RFC 3339), or an empty string."""
        return str(self.config.get("created") or "")

    @property
    def diff_ids(self) -> list[str]:
        """The uncompressed digests of the layers, bottom first."""
        return list(self.config.get("rootfs", {}).get("diff_ids", []))


class ImageStore:
    """Image records and references for one storage driver's layers."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._blobs = home / "blobs" / "sha256"
        self._records = home / "images"
        self._references = home / "references.json"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock for a read-modify-write sequence."""
        with file_lock(self.home / "lock"):
            yield

    # blobs

    def put_blob(self, data: bytes, *, expected: str | None = None) -> str:
        """Store `data` under its sha256 digest, checking it against `expected` when given."""
        digest = sha256_digest(data)
        if expected is not None and validate_digest(expected) != digest:
            raise ContentError(f"content digest mismatch: expected {expected}, got {digest}")
        path = self._blobs / digest_hex(digest)
        if not path.exists():
            atomic_write(path, data)
        return digest

    def get_blob(self, digest: str, *, verify: bool = True) -> bytes:
        """The blob with this digest, re-checked against it unless `verify` is False.

        Blobs are checked when written and replaced atomically, so reading image configs for a
        listing skips the re-check (and the cost of loading OpenSSL); content leaving the store
        is always re-checked.
        """
        path = self._blobs / digest_hex(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found") from None
        if verify and sha256_digest(data) != digest:
            raise StoreError(f"blob {digest} is corrupt on disk")
        return data

    def _collect_blobs(self) -> None:
        """Remove every blob no image record names as its config or manifest (lock held).

        Blobs are written under the lock right before the record that names them, so what this
        finds is what removed images and killed commands left behind.
        """
        keep: set[str] = set()
        for image_id in self.ids():
            keep.add(digest_hex(image_id))
            manifest = read_json(self._records / f"{digest_hex(image_id)}.json", default={}).get("manifest")
            if manifest:
                keep.add(digest_hex(manifest))
        if self._blobs.is_dir():
            for entry in self._blobs.iterdir():
                if entry.name not in keep:
                    entry.unlink(missing_ok=True)

    # references

    def _read_references(self) -> dict[str, dict[str, str]]:
        data: dict[str, dict[str, str]] = read_json(self._references, default={})
        data.setdefault("tags", {})
        data.setdefault("digests", {})
        data.setdefault("tagged_at", {})
        return data

    def _write_references(self, data: dict[str, dict[str, str]]) -> None:
        write_json(self._references, data)

    # images

    def add(
        self,
        *,
        config: bytes,
        layers: list[str],
        size: int,
        manifest: str | None = None,
        parent: str | None = None,
    ) -> str:
        """Record an image whose layers already exist; returns its id (the config digest).

        Call with the lock held, so a concurrent removal cannot collect the layers in between.
        """
        if len(config) > MAX_CONFIG_SIZE:
            raise ContentError("image config is larger than 8 MiB")
        try:
            parsed = json.loads(config)
        except ValueError as exc:
            raise ContentError(f"image config is not JSON: {exc}") from exc
        diff_ids = parsed.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(layers):
            raise ContentError(f"image config lists {len(diff_ids)} layers but {len(layers)} were given")
        image_id = self.put_blob(config)
        record = {"layers": layers, "size": size, "manifest": manifest, "parent": parent}
        write_json(self._records / f"{digest_hex(image_id)}.json", record)
        return image_id

    def ids(self) -> list[str]:
        """Every image id in the store."""
        if not self._records.is_dir():
            return []
        return [
            f"sha256:{entry.name.removesuffix('.json')}"
            for entry in self._records.iterdir()
            if entry.name.endswith(".json") and not entry.name.startswith(TEMP_PREFIX)
        ]

    def get(self, image_id: str) -> Image:
        """The image with this exact id."""
        return self._load(image_id, self._read_references())

    def _load(self, image_id: str, references: dict[str, dict[str, str]]) -> Image:
        path = self._records / f"{digest_hex(image_id)}.json"
        try:
            record = read_json(path)
        except FileNotFoundError:
            raise NotFoundError(f"No such image: {short_id(image_id)}") from None
        config = json.loads(self.get_blob(image_id, verify=False))
        tags = tuple(sorted(ref for ref, target in references["tags"].items() if target == image_id))
        digests = tuple(sorted(ref for ref, target in references["digests"].items() if target == image_id))
        return Image(
            id=image_id,
            config=config,
            layers=tuple(record["layers"]),
            size=int(record["size"]),
            manifest=record.get("manifest"),
            parent=record.get("parent"),
            repo_tags=tags,
            repo_digests=digests,
            tagged_at={ref: references["tagged_at"].get(ref, "") for ref in tags},
        )

    def list(self) -> list[Image]:
        """Every image, newest first."""
        references = self._read_references()
        images = []
        for image_id in self.ids():
            try:
                images.append(self._load(image_id, references))
            except NotFoundError:
                continue  # removed by a concurrent command while we listed
        return sorted(images, key=lambda image: image.created, reverse=True)

    def resolve(self, text: str) -> Image:
        """Find an image by reference, full id or unique id prefix, in Docker's order."""
        from dockyard.core.reference import looks_like_id, parse_reference

        references = self._read_references()
        if text.startswith("sha256:") and len(text) == 71:
            return self._load(validate_digest(text), references)
        try:
            reference = parse_reference(text)
        except InvalidReference:
            reference = None
        if reference is not None:
            table = references["digests"] if reference.digest else references["tags"]
            key = f"{reference.name}@{reference.digest}" if reference.digest else str(reference)
            if key in table:
                return self._load(table[key], references)
        if looks_like_id(text):
            prefix = text.removeprefix("sha256:")
            matches = [image_id for image_id in self.ids() if image_id[7:].startswith(prefix)]
            if len(matches) > 1:
                raise AmbiguousIdError(f"image id prefix {text!r} is ambiguous")
            if matches:
                return self._load(matches[0], references)
        shown = reference.familiar() if reference is not None else text
        raise NotFoundError(f"No such image: {shown}")

    def tag(self, image_id: str, reference: str, *, when: str) -> str | None:
        """Point `reference` (normalised) at an image; returns the image it pointed at before."""
        references = self._read_references()
        previous = references["tags"].get(reference)
        references["tags"][reference] = image_id
        references["tagged_at"][reference] = when
        self._write_references(references)
        return previous

    def add_digest(self, image_id: str, name_at_digest: str) -> None:
        """Record that `name@digest` (a manifest digest) names an image."""
        references = self._read_references()
        references["digests"][name_at_digest] = image_id
        self._write_references(references)

    def untag(self, reference: str) -> str:
        """Remove a tag or digest reference; returns the image id it pointed at."""
        references = self._read_references()
        table = references["digests"] if "@" in reference else references["tags"]
        try:
            image_id = table.pop(reference)
        except KeyError:
            raise NotFoundError(f"No such image: {reference}") from None
        references["tagged_at"].pop(reference, None)
        self._write_references(references)
        return image_id

    def delete(self, image_id: str) -> None:
        """Delete an image's record, its config and manifest, and every reference to it (lock held)."""
        references = self._read_references()
        for table in (references["tags"], references["digests"]):
            for ref in [ref for ref, target in table.items() if target == image_id]:
                del table[ref]
                references["tagged_at"].pop(ref, None)
        self._write_references(references)
        (self._records / f"{digest_hex(image_id)}.json").unlink(missing_ok=True)
        self._collect_blobs()

    def layers_of(self, image_id: str) -> set[str]:
        """The chain ids of an image's layers, from its record alone (no config is read)."""
        record = read_json(self._records / f"{digest_hex(image_id)}.json", default={})
        return set(record.get("layers", []))

    def used_layers(self) -> set[str]:
        """Chain ids of every layer some image still uses."""
        used: set[str] = set()
        for image_id in self.ids():
            try:
                used.update(read_json(self._records / f"{digest_hex(image_id)}.json")["layers"])
            except FileNotFoundError:
                continue
        return used
