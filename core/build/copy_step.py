"""COPY and ADD steps: where the files come from (the context, another stage, an image, a URL),
who owns them, and the layer they become.

The sources are resolved and checksummed at planning time, so the cache key covers the content;
the layer tar is written only on a cache miss. An ADD URL is downloaded each time (the content
is what the cache keys on, as in Docker's classic builder) and never unpacked.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, BinaryIO

from dockyard.core.build import instructions as ins
from dockyard.core.build.sources import SourceTree, destination, parse_chmod, plan_copy
from dockyard.core.errors import UsageError
from dockyard.core.image_draft import ImageDraft

if TYPE_CHECKING:
    from dockyard.core.build.steps import StagePlan, StageState

__all__ = ["directories_tar", "plan_copy_step"]

_URL_PREFIXES = ("http://", "https://")
_DOWNLOAD_LIMIT = 8 << 30


def plan_copy_step(
    instruction: ins.Copy, state: StageState, plan: StagePlan, resources: ExitStack
) -> tuple[str, Callable[[ImageDraft], None]]:
    """The history line (with the content checksum) and the layer-adding action of a COPY/ADD."""
    from dockyard.core.build.image_root import mounted_image

    is_add = isinstance(instruction, ins.Add)
    keyword = "ADD" if is_add else "COPY"
    tree, sources = _source_tree(instruction, plan, resources, is_add=is_add)
    chmod = parse_chmod(instruction.chmod) if instruction.chmod else None
    dest, spelled_dir = destination(instruction.dest, state.workdir)
    # The image is mounted only when the step needs to look into it: to resolve --chown names or
    # to tell whether an unspelled destination is an existing directory.
    image_root = (
        resources.enter_context(mounted_image(plan.engine, state.image))
        if instruction.chown or not spelled_dir
        else ""
    )
    owner = _owner(instruction.chown, image_root)
    is_dir = spelled_dir or _is_directory(image_root, dest)
    copy_plan = plan_copy(
        tree,
        sources,
        dest,
        dest_is_dir=is_dir,
        owner=owner,
        chmod=chmod,
        unpack_archives=is_add and tree is plan.context,
        keyword=keyword,
    )
    checksum = copy_plan.checksum().removeprefix("sha256:")
    created_by = f"/bin/sh -c #(nop) {keyword} {copy_plan.label}:{checksum} in {instruction.dest} "

    def apply(draft: ImageDraft) -> None:
        with tempfile.TemporaryFile(prefix="dockyard-copy-") as staged:
            copy_plan.write_tar(staged)
            staged.seek(0)
            draft.add_layer_from_tar(staged, created_by=created_by)

    return created_by, apply


def _source_tree(
    instruction: ins.Copy, plan: StagePlan, resources: ExitStack, *, is_add: bool
) -> tuple[SourceTree, list[str]]:
    """The tree a COPY/ADD reads and its sources in it."""
    sources = list(instruction.sources)
    urls = [source for source in sources if source.startswith(_URL_PREFIXES)]
    if urls and is_add:
        if len(urls) != len(sources):
            raise UsageError("ADD cannot mix URLs and local sources in one instruction")
        directory = resources.enter_context(tempfile.TemporaryDirectory(prefix="dockyard-add-"))
        return SourceTree(directory), [_download(url, directory) for url in urls]
    if urls:
        raise UsageError("source can't be a URL for COPY")
    if instruction.from_stage is None:
        return plan.context, sources
    from dockyard.core.build.image_root import mounted_image

    source = plan.stages.get(instruction.from_stage.lower())
    image = plan.engine.images.get(source) if source else plan.pull_image(instruction.from_stage)
    return SourceTree(resources.enter_context(mounted_image(plan.engine, image))), sources


def _download(url: str, directory: str) -> str:
    """Fetch `url` into `directory` (mode 0600, as Docker's ADD) and return the file's name."""
    import httpx

    name = posixpath.basename(url.split("?", 1)[0].split("#", 1)[0].rstrip("/")) or "download"
    path = os.path.join(directory, name)
    received = 0
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60.0) as response:
            if response.status_code != 200:
                raise UsageError(f"failed to GET {url} with status {response.status_code}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    if received > _DOWNLOAD_LIMIT:
                        raise UsageError(f"ADD {url}: larger than {_DOWNLOAD_LIMIT >> 30} GiB")
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise UsageError(f"failed to GET {url}: {exc}") from exc
    return name


def _owner(chown: str | None, image_root: str) -> tuple[int, int]:
    """`--chown=user[:group]` as numbers, names looked up in the image; a lone user is also the
    group's number, as Docker documents."""
    if not chown:
        return (0, 0)
    from dockyard.core.users import resolve_user

    resolved = resolve_user(image_root, chown)
    return resolved.uid, resolved.gid if ":" in chown else resolved.uid


def _is_directory(image_root: str, path: str) -> bool:
    """Whether the image path `path` is a directory in the image, without leaving its tree."""
    from dockyard.core.rootpath import split_inside

    current = image_root
    for part in split_inside(path):
        current = os.path.join(current, part)
        if os.path.islink(current) or not os.path.isdir(current):
            return False
    return True


@contextmanager
def directories_tar(paths: list[str]) -> Iterator[BinaryIO]:
    """A layer tar creating the image directories `paths` (absolute, parents first), 0755 root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    buffer.seek(0)
    yield buffer
