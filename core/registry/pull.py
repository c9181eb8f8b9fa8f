"""`pull`: fetch an image from a registry (or its mirrors) and store it, verified, all or nothing.

The order of a pull, and what each step checks:

1. The manifest, by tag or digest: its digest over the bytes as received, its Content-Type against
   its mediaType. A manifest list or OCI index is resolved to the entry for the wanted platform
   (`--platform`, else this host's), and that child must match its descriptor's digest, size and
   media type.
2. The config: digest and size against the manifest, capped in size; it must list as many diff_ids
   as the manifest has layers, and match `--platform` when one was asked for.
3. The layers: downloaded in parallel (three at a time, as Docker) into the layer blob store's
   download area (blob_downloads.py), each checked against its digest and size, resumed with HTTP
   ranges when a connection breaks. A pull killed on the way leaves its downloads there: the next
   pull reuses the complete ones and continues the partial one. A storage driver that can stage
   layers apart (DetachedDiffs, layer_staging.py) extracts every layer while it downloads, from the
   file as it grows (download_feed.py), and commits them bottom first once each blob and diff_id
   is verified; any other driver applies each layer, in order, once its download is complete.
   Either way a layer must expand to its diff_id.
4. The commit, under the image store's lock (image_assembly.py): blobs kept for push and save, the
   manifest stored, the image recorded, tagged and given its repository digest.

Mirrors are tried first and any failure there falls back to the next mirror and then the registry.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO, TypeVar, cast

from dockyard.core import log
from dockyard.core.digests import digest_hex, sha256_digest
from dockyard.core.download_feed import DownloadFeed
from dockyard.core.engine import Engine
from dockyard.core.errors import ContentError, NotFoundError, RegistryError
from dockyard.core.image_assembly import (
    ImageAssembler,
    LayerSource,
    blob_downloads,
    config_diff_ids,
    discard_unused_layers,
)
from dockyard.core.images import Image
from dockyard.core.layer_blobs import LayerBlob
from dockyard.core.layer_staging import PendingLayer, apply_concurrently
from dockyard.core.platforms import host_architecture, host_os
from dockyard.core.reference import Reference
from dockyard.core.registry.client import FetchedManifest, RegistryClient
from dockyard.core.registry.credentials import CredentialStore
from dockyard.core.registry.hosts import RegistryConfig, Target
from dockyard.core.registry.media import (
    DOCKER_CONFIG,
    MAX_CONFIG_SIZE,
    OCI_CONFIG,
    Descriptor,
    Index,
    Manifest,
    Platform,
    layer_compression,
    parse_manifest,
    select_platform,
)
from dockyard.core.registry.progress import Progress

__all__ = ["MAX_CONCURRENT_DOWNLOADS", "PullResult", "Puller", "ensure_image", "pull_image"]

MAX_CONCURRENT_DOWNLOADS = 3
_T = TypeVar("_T")
_logger = log.get_logger("dockyard.pull")


@dataclass(frozen=True)
class PullResult:
    """What one pulled reference became: the image, the digest it was pulled by, and whether it changed."""

    image_id: str
    reference: Reference
    digest: str
    updated: bool


class _Cancelled(Exception):
    """Raised inside a download thread when another part of the pull has already failed."""


@dataclass(frozen=True)
class _Resolved:
    """A manifest resolved down to one image: the top digest, the image manifest and its config."""

    top_digest: str
    manifest: FetchedManifest
    parsed: Manifest
    config: bytes


class Puller:
    """Pulls references into the engine's store with the given registry settings and credentials."""

    def __init__(
        self,
        engine: Engine,
        *,
        config: RegistryConfig,
        credentials: CredentialStore,
        progress: Progress,
        platform: Platform | None = None,
    ) -> None:
        self._engine = engine
        self._config = config
        self._credentials = credentials
        self._progress = progress
        self._platform = platform

    def pull(self, reference: Reference) -> PullResult:
        """Pull one reference (by tag or digest), trying mirrors first."""
        self._engine.recover()
        return self._each_target(reference, functools.partial(self._pull, reference=reference))

    def pull_all_tags(self, repository: Reference) -> list[PullResult]:
        """Pull every tag of a repository (`pull --all-tags`)."""
        self._engine.recover()

        def tags(client: RegistryClient, target: Target) -> list[str]:
            return client.list_tags(target.repository)

        return [self.pull(repository.with_tag(tag)) for tag in sorted(self._each_target(repository, tags))]

    def _each_target(self, reference: Reference, action: Callable[[RegistryClient, Target], _T]) -> _T:
        targets = self._config.targets(reference.name, pull=True)
        for index, target in enumerate(targets):
            if target.endpoint.mirror:
                credentials = self._credentials.get(target.endpoint.host, target.repository)
            else:
                credentials = self._credentials.get(reference.domain, reference.path)
            try:
                with RegistryClient(target.endpoint, credentials=credentials) as client:
                    return action(client, target)
            except (RegistryError, ContentError) as exc:
                if index == len(targets) - 1 or not target.endpoint.mirror:
                    raise
                _logger.warning(
                    "mirror failed, trying the next source", mirror=target.endpoint.host, error=str(exc)
                )
        raise AssertionError("unreachable: the registry itself is always the last target")

    # --- one image ------------------------------------------------------------------------------

    def _pull(self, client: RegistryClient, target: Target, *, reference: Reference) -> PullResult:
        resolved = self._resolve(client, target, reference)
        engine = self._engine
        image_id = sha256_digest(resolved.config)
        shown = reference.digest or reference.tag or "latest"
        self._progress.message(f"{shown}: Pulling from {reference.path}")
        top = f"{reference.name}@{resolved.top_digest}"
        tags = [str(reference)] if reference.digest is None else []
        try:
            existed = engine.images.get(image_id) is not None
        except NotFoundError:
            existed = False
        try:
            with ExitStack() as hold:
                assembler = ImageAssembler(engine, hold=hold)
                self._layers(client, target, resolved, assembler, hold)
                result = assembler.commit(
                    config=resolved.config,
                    manifest=resolved.manifest.data,
                    manifest_digest=resolved.manifest.digest,
                    tags=tags,
                    digests=[top],
                    source=reference.name,
                )
        except Exception:
            discard_unused_layers(engine)
            raise
        updated = not existed or any(before != result.image_id for before in result.previous.values())
        self._progress.message(f"Digest: {resolved.top_digest}")
        verb = "Downloaded newer image" if updated else "Image is up to date"
        self._progress.message(f"Status: {verb} for {reference.familiar()}")
        engine.hooks.image_pulled(image_id=result.image_id, reference=str(reference))
        for tag in tags:
            if result.previous.get(tag) != result.image_id:
                engine.hooks.image_tagged(image_id=result.image_id, reference=tag)
        return PullResult(result.image_id, reference, resolved.top_digest, updated)

    def _resolve(self, client: RegistryClient, target: Target, reference: Reference) -> _Resolved:
        repository = target.repository
        try:
            top = client.get_manifest(repository, reference.digest or reference.tag or "latest")
        except RegistryError as exc:
            if exc.status == 404:
                raise RegistryError(
                    f"manifest for {reference.familiar()} not found: manifest unknown: manifest unknown",
                    status=404,
                ) from exc
            raise
        parsed = parse_manifest(top.data, content_type=top.content_type)
        manifest = top
        if isinstance(parsed, Index):
            wanted = self._platform or Platform(host_os(), host_architecture())
            entry = select_platform(parsed, wanted)
            manifest = client.get_manifest(repository, entry.digest)
            if len(manifest.data) != entry.size:
                raise ContentError(
                    f"manifest {entry.digest} has {len(manifest.data)} bytes, the index says {entry.size}"
                )
            parsed = parse_manifest(
                manifest.data, content_type=manifest.content_type, expected=entry.media_type
            )
            if isinstance(parsed, Index):
                raise ContentError("nested manifest lists are not supported")
        if parsed.config.media_type not in (DOCKER_CONFIG, OCI_CONFIG):
            raise ContentError(
                f"{reference.familiar()} is not a container image (config {parsed.config.media_type})"
            )
        config = client.get_blob(repository, parsed.config, limit=MAX_CONFIG_SIZE)
        diff_ids = config_diff_ids(config)
        if len(diff_ids) != len(parsed.layers):
            raise ContentError(
                f"image config lists {len(diff_ids)} layers but the manifest has {len(parsed.layers)}"
            )
        if self._platform is not None and manifest is top:
            self._check_platform(config, reference)
        return _Resolved(top.digest, manifest, parsed, config)

    def _check_platform(self, config: bytes, reference: Reference) -> None:
        """A single-platform image must be the platform `--platform` asked for, as Docker checks."""
        parsed = json.loads(config)
        actual = Platform(
            str(parsed.get("os", "")), str(parsed.get("architecture", "")), str(parsed.get("variant", ""))
        )
        wanted = self._platform
        if wanted is None:
            return
        if (actual.os, actual.architecture) != (wanted.os, wanted.architecture) or (
            wanted.variant and actual.variant and wanted.variant != actual.variant
        ):
            raise NotFoundError(
                f"image with reference {reference.familiar()} was found but does not match the specified "
                f"platform: wanted {wanted}, actual: {actual}"
            )

    # --- layers ---------------------------------------------------------------------------------

    def _layers(
        self,
        client: RegistryClient,
        target: Target,
        resolved: _Resolved,
        assembler: ImageAssembler,
        hold: ExitStack,
    ) -> None:
        diff_ids = config_diff_ids(resolved.config)
        progress = self._progress
        layers: list[tuple[Descriptor, LayerBlob, LayerSource | None]] = []
        for index, descriptor in enumerate(resolved.parsed.layers):
            compression = layer_compression(descriptor.media_type)
            blob = LayerBlob(descriptor.digest, descriptor.size, compression, diff_ids[index])
            stored = assembler.stored_blob(diff_ids, index)
            layers.append((descriptor, blob, LayerSource(stored) if stored else None))
            progress.status(_short(blob.digest), "Already exists" if stored else "Pulling fs layer")
        downloads = blob_downloads(self._engine)
        # Claimed in sorted order, so two pulls waiting for each other's blobs cannot deadlock.
        wanted = sorted({blob.digest for _, blob, source in layers if source is None})
        feeds = {digest: DownloadFeed(downloads.claim(digest, hold=hold)) for digest in wanted}
        stop = threading.Event()
        fetched: dict[str, Future[Path]] = {}
        with ThreadPoolExecutor(MAX_CONCURRENT_DOWNLOADS, thread_name_prefix="pull") as pool:

            def abort() -> None:
                stop.set()
                for future in fetched.values():
                    future.cancel()
                for feed in feeds.values():
                    feed.finish(verified=False)  # a stager waiting for a cancelled download gives up

            try:
                for descriptor, blob, source in layers:
                    if source is None and blob.digest not in fetched:
                        if len(fetched) >= MAX_CONCURRENT_DOWNLOADS:
                            progress.status(_short(blob.digest), "Waiting")
                        fetched[blob.digest] = pool.submit(
                            self._download, client, target.repository, descriptor, feeds[blob.digest], stop
                        )
                driver = assembler.detached_driver()
                if driver is not None:
                    pending = [_pending(assembler, blob, known, feeds, fetched) for _, blob, known in layers]

                    def committed(index: int) -> None:
                        if layers[index][2] is None:
                            progress.status(_short(layers[index][1].digest), "Pull complete")

                    apply_concurrently(
                        assembler, self._engine.layers, driver, pending, committed=committed, abort=abort
                    )
                    return
                for _, blob, source in layers:
                    if source is not None:
                        assembler.add_layer(source)
                        continue
                    staged = fetched[blob.digest].result()
                    ident = _short(blob.digest)

                    def extracting(done: int, ident: str = ident, total: int = blob.size) -> None:
                        progress.bar(ident, "Extracting", done, total)

                    assembler.add_layer(LayerSource(blob, staged), progress=extracting)
                    progress.status(ident, "Pull complete")
            except BaseException:
                abort()
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def _download(
        self,
        client: RegistryClient,
        repository: str,
        descriptor: Descriptor,
        feed: DownloadFeed,
        stop: threading.Event,
    ) -> Path:
        """Download (or finish downloading, after a killed pull) one claimed blob into its file,
        telling `feed` how far it got for whoever extracts the layer meanwhile."""
        ident = _short(descriptor.digest)
        progress = self._progress

        def downloading(done: int) -> None:
            if stop.is_set():
                raise _Cancelled()
            feed.advance(done)
            progress.bar(ident, "Downloading", done, descriptor.size)

        try:
            client.download_blob(
                repository, descriptor, feed.path, progress=downloading, resume=True, restarted=feed.restart
            )
        except BaseException:
            feed.finish(verified=False)
            raise
        feed.finish(verified=True)
        progress.status(ident, "Verifying Checksum")
        progress.status(ident, "Download complete")
        return feed.path


def _pending(
    assembler: ImageAssembler,
    blob: LayerBlob,
    stored: LayerSource | None,
    feeds: dict[str, DownloadFeed],
    fetched: dict[str, Future[Path]],
) -> PendingLayer:
    """A layer for layer_staging: read from its download as it arrives, or from its stored blob."""
    if stored is not None:
        path = assembler.blob_path(stored)
        return PendingLayer(stored, lambda: path.open("rb"), lambda: path)
    feed = feeds[blob.digest]
    return PendingLayer(
        LayerSource(blob, feed.path), lambda: cast(BinaryIO, feed.reader()), fetched[blob.digest].result
    )


def _short(digest: str) -> str:
    """The 12-hex id Docker shows for a layer."""
    return digest_hex(digest)[:12]


def pull_image(engine: Engine, name: str, *, out: TextIO) -> Image:
    """Pull `name` with the user's registry settings and credentials, progress on `out`."""
    from dockyard.core.reference import parse_reference
    from dockyard.core.registry.credentials import credential_store
    from dockyard.core.registry.hosts import load_registry_config
    from dockyard.core.registry.progress import make_progress

    rootless = engine.settings.rootless
    puller = Puller(
        engine,
        config=load_registry_config(rootless=rootless),
        credentials=credential_store(rootless=rootless),
        progress=make_progress(out),
    )
    return engine.images.get(puller.pull(parse_reference(name)).image_id)


def ensure_image(engine: Engine, name: str, *, out: TextIO) -> Image:
    """The image `name` refers to, pulled first when it is missing, as `docker run` does.

    Prints Docker's `Unable to find image 'hello-world:latest' locally` and the pull's progress to
    `out` (standard error, for `run`).
    """
    from dockyard.core.reference import looks_like_id, parse_reference

    try:
        return engine.images.resolve(name)
    except NotFoundError:
        if looks_like_id(name) and len(name.removeprefix("sha256:")) == 64:
            raise
    out.write(f"Unable to find image '{parse_reference(name).familiar()}' locally\n")
    return pull_image(engine, name, out=out)
