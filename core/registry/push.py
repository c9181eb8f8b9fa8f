"""`push`: upload a local image's exact blobs and manifest to a registry.

A pushed image must come back with the same id, so nothing is regenerated from the storage driver:
each layer goes up as a blob kept in the layer blob store (layer_blobs.py). A pulled image whose
stored manifest still matches its config and kept blobs is pushed with that very manifest, so its
digest is the one it was pulled by. Otherwise a manifest is written: Docker schema 2 when every layer
is gzip (what Docker writes), OCI when a layer is zstd. A layer kept only as a plain tar (from
`import` or `load`) is compressed with reproducible gzip first and the result kept, so pushing it
again yields the same digest.

Per blob, Docker's order: HEAD to skip what the registry has ("Layer already exists"), a
cross-repository mount from a repository of the same registry known to hold it ("Mounted from"),
else an upload (one PUT, or PATCH chunks then PUT for big blobs), five at a time. The config goes
last before the manifest, which is put under the tag; the digest the registry answers is recorded as
the image's repository digest.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dockyard.core.digests import HashingReader, digest_hex
from dockyard.core.engine import Engine
from dockyard.core.errors import ContentError, NotFoundError, UsageError
from dockyard.core.image_assembly import layer_blobs
from dockyard.core.images import Image
from dockyard.core.layer_blobs import LayerBlob
from dockyard.core.layer_streams import Compression, compress_gzip
from dockyard.core.reference import Reference, parse_reference
from dockyard.core.registry.client import RegistryClient
from dockyard.core.registry.credentials import CredentialStore
from dockyard.core.registry.hosts import RegistryConfig
from dockyard.core.registry.media import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    layer_media_type,
    parse_manifest,
)
from dockyard.core.registry.progress import Progress
from dockyard.core.store import scratch_dir

__all__ = ["DEFAULT_CHUNK_SIZE", "MAX_CONCURRENT_UPLOADS", "PushResult", "Pusher"]

MAX_CONCURRENT_UPLOADS = 5
DEFAULT_CHUNK_SIZE = 64 << 20


class _Cancelled(Exception):
    """Raised inside an upload thread when another part of the push has already failed."""


@dataclass(frozen=True)
class PushResult:
    """A pushed tag: the manifest digest the registry stored and the manifest's size."""

    reference: Reference
    digest: str
    size: int


class Pusher:
    """Pushes local tags to their registries with the given settings and credentials."""

    def __init__(
        self,
        engine: Engine,
        *,
        config: RegistryConfig,
        credentials: CredentialStore,
        progress: Progress,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        self._engine = engine
        self._config = config
        self._credentials = credentials
        self._progress = progress
        self._chunk_size = chunk_size
        self._blobs = layer_blobs(engine)

    def push(self, reference: Reference) -> PushResult:
        """Push one local tag."""
        if reference.digest is not None:
            raise UsageError("cannot push a digest reference: push a tag")
        image = self._local(reference)
        target = self._config.targets(reference.name, pull=False)[-1]
        self._progress.message(f"The push refers to repository [{reference.name}]")
        credentials = self._credentials.get(reference.domain, reference.path)
        with RegistryClient(target.endpoint, credentials=credentials) as client:
            return self._push(client, target.repository, reference, image)

    def push_all_tags(self, repository: Reference) -> list[PushResult]:
        """Push every local tag of a repository (`push --all-tags`)."""
        local = [parse_reference(ref) for image in self._engine.images.list() for ref in image.repo_tags]
        tags = sorted((ref for ref in local if ref.name == repository.name), key=str)
        if not tags:
            raise NotFoundError(f"An image does not exist locally with the tag: {repository.familiar_name()}")
        return [self.push(tag) for tag in tags]

    def _local(self, reference: Reference) -> Image:
        try:
            image = self._engine.images.resolve(str(reference))
        except NotFoundError:
            image = None
        if image is None or str(reference) not in image.repo_tags:
            raise NotFoundError(f"An image does not exist locally with the tag: {reference.familiar_name()}")
        return image

    def _push(
        self, client: RegistryClient, repository: str, reference: Reference, image: Image
    ) -> PushResult:
        config = self._engine.images.get_blob(image.id)
        with scratch_dir(self._engine.scratch_parent) as scratch:
            manifest, media_type, layers = self._manifest(image, config, scratch)
            stop = threading.Event()
            with ThreadPoolExecutor(MAX_CONCURRENT_UPLOADS, thread_name_prefix="push") as pool:
                futures = []
                for index, (diff_id, blob) in enumerate(zip(image.diff_ids, layers, strict=True)):
                    ident = digest_hex(diff_id)[:12]
                    self._progress.status(ident, "Preparing")
                    if index >= MAX_CONCURRENT_UPLOADS:
                        self._progress.status(ident, "Waiting")
                    futures.append(
                        pool.submit(self._push_layer, client, repository, reference, ident, blob, stop)
                    )
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    stop.set()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        config_descriptor = Descriptor(DOCKER_CONFIG, image.id, len(config))
        if not client.blob_exists(repository, image.id):
            client.upload_bytes(repository, config_descriptor, config)
        digest = client.put_manifest(repository, reference.tag or "latest", manifest, media_type)
        with self._engine.images.locked():
            self._engine.images.add_digest(image.id, f"{reference.name}@{digest}")
        self._progress.message(f"{reference.tag}: digest: {digest} size: {len(manifest)}")
        return PushResult(reference, digest, len(manifest))

    # --- what to push ---------------------------------------------------------------------------

    def _manifest(self, image: Image, config: bytes, scratch: Path) -> tuple[bytes, str, list[LayerBlob]]:
        """The manifest to put and the blob of each layer: the stored manifest when it still fits."""
        if image.manifest is not None:
            try:
                stored = self._engine.images.get_blob(image.manifest)
            except NotFoundError:
                stored = b""
            reused = self._reusable(stored, image) if stored else None
            if reused is not None:
                return stored, reused[0], reused[1]
        blobs = [self._layer_blob(diff_id, scratch) for diff_id in image.diff_ids]
        oci = any(blob.compression is not Compression.GZIP for blob in blobs)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                "size": len(config),
                "digest": image.id,
            },
            "layers": [
                {
                    "mediaType": layer_media_type(blob.compression, oci=oci),
                    "size": blob.size,
                    "digest": blob.digest,
                }
                for blob in blobs
            ],
        }
        return json.dumps(document, indent=3).encode(), str(document["mediaType"]), blobs

    def _reusable(self, data: bytes, image: Image) -> tuple[str, list[LayerBlob]] | None:
        parsed = parse_manifest(data, content_type=None)
        if not isinstance(parsed, Manifest) or parsed.config.digest != image.id:
            return None
        blobs = [self._blobs.get(layer.digest) for layer in parsed.layers]
        if any(blob is None for blob in blobs):
            return None
        found = [blob for blob in blobs if blob is not None]
        if [blob.diff_id for blob in found] != image.diff_ids:
            return None
        return parsed.media_type, found

    def _layer_blob(self, diff_id: str, scratch: Path) -> LayerBlob:
        """A compressed blob for the layer: a kept one, or a reproducible gzip of the kept tar."""
        kept = self._blobs.for_diff_id(diff_id)
        if not kept:
            raise ContentError(
                f"layer {diff_id} has no kept blob to push (it was made before Dockyard kept them)"
            )
        if kept[0].compression is not Compression.NONE:
            return kept[0]
        staged = scratch / f"{digest_hex(diff_id)}.gz"
        compress_gzip(self._blobs.path(kept[0]), staged)
        with staged.open("rb") as handle:
            reader = HashingReader(handle)
            reader.drain()
        blob = LayerBlob(reader.digest, reader.size, Compression.GZIP, diff_id)
        self._blobs.adopt(staged, blob)
        return blob

    # --- one layer ------------------------------------------------------------------------------

    def _push_layer(
        self,
        client: RegistryClient,
        repository: str,
        reference: Reference,
        ident: str,
        blob: LayerBlob,
        stop: threading.Event,
    ) -> None:
        progress = self._progress
        descriptor = Descriptor("application/octet-stream", blob.digest, blob.size)
        if client.blob_exists(repository, blob.digest):
            progress.status(ident, "Layer already exists")
            self._blobs.add_source(blob.digest, reference.name)
            return
        session = None
        for source in self._blobs.sources(blob.digest):
            domain, _, path = source.partition("/")
            if domain != reference.domain or source == reference.name:
                continue
            session = client.mount_blob(repository, blob.digest, path)
            if session is None:
                progress.status(ident, f"Mounted from {path}")
                self._blobs.add_source(blob.digest, reference.name)
                return
            break

        def pushing(done: int) -> None:
            if stop.is_set():
                raise _Cancelled()
            progress.bar(ident, "Pushing", done, blob.size)

        client.upload_blob(
            repository,
            descriptor,
            self._blobs.path(blob),
            progress=pushing,
            chunk_size=self._chunk_size,
            session=session,
        )
        progress.status(ident, "Pushed")
        self._blobs.add_source(blob.digest, reference.name)
