"""Image operations built on the stores: import, tag, remove and prune, with Docker's semantics."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from dockyard.core.config_changes import apply_changes
from dockyard.core.engine import Engine
from dockyard.core.errors import ConflictError
from dockyard.core.images import Image
from dockyard.core.platforms import host_architecture, host_os
from dockyard.core.reference import Reference, parse_reference
from dockyard.core.store import scratch_dir
from dockyard.core.timestamps import now_rfc3339

__all__ = ["RemovalReport", "import_image", "prune_images", "remove_image", "tag_image"]


def import_image(
    engine: Engine,
    source: BinaryIO,
    *,
    source_name: str,
    reference: str | None,
    changes: list[str],
    message: str,
) -> Image:
    """Create a one-layer image from a (possibly compressed) filesystem tarball, as `docker import`."""
    from dockyard.core.compression import open_decompressed
    from dockyard.core.digests import HashingReader
    from dockyard.core.image_assembly import keep_layer_tar

    target = parse_reference(reference) if reference else None
    runtime_config = apply_changes({}, changes)
    engine.recover()
    with scratch_dir(engine.scratch_parent) as scratch:
        staged = scratch / "layer.tar"
        reader = HashingReader(open_decompressed(source))
        with staged.open("wb") as out:
            shutil.copyfileobj(reader, out, 1 << 20)
        diff_id = reader.digest
        created = now_rfc3339()
        config = {
            "architecture": host_architecture(),
            "os": host_os(),
            "created": created,
            "config": runtime_config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created, "comment": message or f"Imported from {source_name}"}],
        }
        if message:
            config["comment"] = message

        @contextmanager
        def staged_archive() -> Iterator[BinaryIO]:
            with staged.open("rb") as stream:
                yield stream

        with ExitStack() as hold:
            layer = engine.layers.ensure(parent=None, diff_id=diff_id, archive=staged_archive, hold=hold)
            with engine.images.locked():
                keep_layer_tar(engine, staged, diff_id=diff_id, size=reader.size)
                image_id = engine.images.add(
                    config=json.dumps(config, separators=(",", ":")).encode(),
                    layers=[layer.chain_id],
                    size=layer.size,
                )
                if target is not None:
                    engine.images.tag(image_id, str(target), when=created)
    engine.hooks.image_imported(image_id=image_id, reference=str(target) if target else None)
    if target is not None:
        engine.hooks.image_tagged(image_id=image_id, reference=str(target))
    return engine.images.get(image_id)


def tag_image(engine: Engine, source: str, target: str) -> Reference:
    """Point `target` at the image `source` names, as `docker tag`."""
    reference = parse_reference(target)
    with engine.images.locked():
        image = engine.images.resolve(source)
        engine.images.tag(image.id, str(reference), when=now_rfc3339())
    engine.hooks.image_tagged(image_id=image.id, reference=str(reference))
    return reference


@dataclass
class RemovalReport:
    """What `rmi` or `image prune` did, in the order Docker prints it."""

    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    reclaimed: int = 0


def remove_image(engine: Engine, name: str, *, force: bool, prune: bool = True) -> RemovalReport:
    """Untag or delete one image with `docker rmi` semantics.

    A tag that is not the image's last one is only untagged; an id naming an image with several
    tags needs `force`. An image a container uses is not deleted: without `force` that is Docker's
    conflict, with it the image only loses its names (a running container's image cannot even be
    forced by id). Deleting an image removes every layer no other image uses and, with `prune`, its
    untagged parents that nothing else builds on (a build's step images), as Docker does.
    """
    from dockyard.core.reference import looks_like_id

    report = RemovalReport()
    with engine.images.locked():
        image = engine.images.resolve(name)
        by_reference = not (looks_like_id(name) and image.id[7:].startswith(name.removeprefix("sha256:")))
        users = _containers_using(engine)
        if by_reference and len(image.repo_tags) > 1:
            reference = parse_reference(name)
            key = f"{reference.name}@{reference.digest}" if reference.digest else str(reference)
            engine.images.untag(key)
            report.untagged.append(reference.familiar())
        else:
            if not by_reference and len(image.repo_tags) > 1 and not force:
                raise ConflictError(
                    f"conflict: unable to delete {image.id[7:19]} (must be forced) - image is "
                    "referenced in multiple repositories"
                )
            in_use = _refuse_in_use(
                image, users.get(image.id, []), name, by_reference=by_reference, force=force
            )
            references = (*image.repo_tags, *image.repo_digests)
            report.untagged.extend(parse_reference(ref, default_tag=None).familiar() for ref in references)
            if in_use:
                for ref in references:
                    engine.images.untag(ref)
            else:
                report.reclaimed += _delete(engine, image)
                report.deleted.append(image.id)
                if prune:
                    _prune_parents(engine, image, users, report)
    for ref in report.untagged:
        engine.hooks.image_untagged(image_id=image.id, reference=ref)
    for image_id in report.deleted:
        engine.hooks.image_removed(image_id=image_id)
    return report


def _containers_using(engine: Engine) -> dict[str, list[tuple[str, bool]]]:
    """Image id -> (container id, running) for every container."""
    users: dict[str, list[tuple[str, bool]]] = {}
    for container in engine.containers.list():
        users.setdefault(container.config["Image"], []).append((container.id, container.running))
    return users


def _refuse_in_use(
    image: Image, users: list[tuple[str, bool]], name: str, *, by_reference: bool, force: bool
) -> bool:
    """Raise Docker's conflict for an image containers use unless forced; True when it is in use."""
    if not users:
        return False
    container_id, running = next(((cid, run) for cid, run in users if run), users[0])
    short = image.id[7:19]
    if not force:
        if by_reference:
            raise ConflictError(
                f'conflict: unable to remove repository reference "{name}" (must force) - container '
                f"{container_id[:12]} is using its referenced image {short}"
            )
        state = "running" if running else "stopped"
        raise ConflictError(
            f"conflict: unable to delete {short} (must be forced) - image is being used by {state} "
            f"container {container_id[:12]}"
        )
    if running and not by_reference:
        raise ConflictError(
            f"conflict: unable to delete {short} (cannot be forced) - image is being used by running "
            f"container {container_id[:12]}"
        )
    return True


def _prune_parents(
    engine: Engine, image: Image, users: dict[str, list[tuple[str, bool]]], report: RemovalReport
) -> None:
    """Delete the untagged parents of a deleted image that no other image or container needs."""
    from dockyard.core.errors import NotFoundError

    parent_id = image.parent
    while parent_id:
        try:
            parent = engine.images.get(parent_id)
        except NotFoundError:
            return
        children = any(other.parent == parent_id for other in engine.images.list())
        if parent.repo_tags or parent.repo_digests or children or parent_id in users:
            return
        report.reclaimed += _delete(engine, parent)
        report.deleted.append(parent_id)
        parent_id = parent.parent


def _delete(engine: Engine, image: Image) -> int:
    """Delete an image, its unused layers and their kept blobs (lock held); returns the bytes freed."""
    from dockyard.core.image_assembly import collect_layer_blobs

    engine.images.delete(image.id)
    sizes = {chain: engine.layers.get(chain) for chain in image.layers}
    removed = engine.layers.remove_unused(engine.images.used_layers())
    collect_layer_blobs(engine)
    return sum(record.size for chain, record in sizes.items() if record and chain in removed)


def prune_images(engine: Engine, *, all_unused: bool) -> RemovalReport:
    """Remove dangling images (untagged, and no image builds on them), or with `all_unused` every
    image no container uses, as `image prune`; an image whose only child goes becomes dangling and
    goes too, as Docker prunes parents."""
    report = RemovalReport()
    in_use = {container.config["Image"] for container in engine.containers.list()}
    with engine.images.locked():
        while True:
            stored = engine.images.list()
            parents = {image.parent for image in stored if image.parent}
            doomed = [
                image
                for image in stored
                if image.id not in parents and image.id not in in_use and (all_unused or not image.repo_tags)
            ]
            if not doomed:
                break
            for image in doomed:
                report.untagged.extend(
                    parse_reference(ref, default_tag=None).familiar()
                    for ref in (*image.repo_tags, *image.repo_digests)
                )
                report.reclaimed += _delete(engine, image)
                report.deleted.append(image.id)
    for image_id in report.deleted:
        engine.hooks.image_removed(image_id=image_id)
    return report
