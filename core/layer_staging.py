"""Applying an image's layers all at once, for storage drivers that can (drivers.DetachedDiffs).

Every missing layer is staged by the driver in a child process of its own (core/forked_stage.py),
fed by a thread here straight from its blob as it downloads: decompression, hashing and extraction
of all layers overlap each other and the network, on every core. The layers are then committed
bottom first, each only once its blob has been verified against its digest and its content against
its diff_id, so a parent always exists before its child. The new layers reach the disk after the
command, under a flush note written before the first of them is staged (core/deferred_flush.py).
Anything that fails discards every staged layer; a killed process leaves only the driver's scratch
space. The layer locks are taken bottom first before any work starts, in the order the
one-at-a-time path takes them, so two pulls never deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dockyard.core.download_feed import DownloadInterrupted
from dockyard.core.forked_stage import stage_in_child
from dockyard.core.layers import LayerRecord, chain_id
from dockyard.core.linux.malloc import keep_freed_buffers

if TYPE_CHECKING:
    from dockyard.core.drivers import DetachedDiffs, StagedDiff
    from dockyard.core.image_assembly import ImageAssembler, LayerSource
    from dockyard.core.layers import LayerStore

__all__ = ["PendingLayer", "apply_concurrently"]


@dataclass(frozen=True)
class PendingLayer:
    """One layer of an image: where it comes from, its blob's bytes as they arrive (reading may
    raise DownloadInterrupted), and the verified blob file once complete (waits for it; raises a
    failed download's error)."""

    source: LayerSource
    stream: Callable[[], BinaryIO]
    finished: Callable[[], Path]


def apply_concurrently(
    assembler: ImageAssembler,
    layers: LayerStore,
    driver: DetachedDiffs,
    pending: Sequence[PendingLayer],
    *,
    committed: Callable[[int], None],
    abort: Callable[[], None],
) -> None:
    """Add `pending` (bottom first) to the assembler, staging the missing ones concurrently;
    `committed(index)` is called as each layer, in order, is in place. On a failure `abort()` must
    end every download, so that stagers waiting for bytes give up, before they are waited for."""
    chains: list[str | None] = [None]
    records: list[LayerRecord | None] = []
    new_chains: list[str] = []
    for layer in pending:
        parent = chains[-1]
        diff_id = layer.source.blob.diff_id
        chain = chain_id(parent, diff_id)
        records.append(layers.claim(parent=parent, diff_id=diff_id, hold=assembler.hold))
        chains.append(chain)
        if records[-1] is None:
            new_chains.append(chain)
    missing = [index for index, record in enumerate(records) if record is None]
    assembler.owe_flush(new_chains)
    keep_freed_buffers()  # before the stagers fork: they inherit it
    stacks: list[ExitStack] = []
    with ExitStack() as cleanup, ThreadPoolExecutor(max(len(missing), 1), thread_name_prefix="stage") as pool:
        cleanup.callback(_close_all, stacks)
        cleanup.callback(pool.shutdown, wait=True, cancel_futures=True)
        staging: dict[int, Future[StagedDiff]] = {}
        for index in missing:
            stack = ExitStack()
            stacks.append(stack)
            staging[index] = pool.submit(_stage, driver, pending[index], stack, base=index == 0)
        try:
            for index, layer in enumerate(pending):
                layer.finished()
                record = records[index]
                if record is None:
                    staged = staging[index].result()
                    record = layers.add_staged(driver, staged, parent=chains[index])
                assembler.add_record(record, layer.source)
                committed(index)
        except BaseException:
            abort()
            raise


def _stage(driver: DetachedDiffs, layer: PendingLayer, stack: ExitStack, *, base: bool) -> StagedDiff:
    """Stage one layer from its arriving bytes, or from the finished blob if its download started
    over; the staged diff stays open on `stack` until the caller closes it."""
    blob = layer.source.blob
    try:
        with layer.stream() as raw:
            return stage_in_child(driver, raw, blob, stack, base=base)
    except DownloadInterrupted:
        stack.close()
        with layer.finished().open("rb") as raw:
            return stage_in_child(driver, raw, blob, stack, base=base)


def _close_all(stacks: list[ExitStack]) -> None:
    """Discard what was staged and not committed (a committed layer left nothing to discard)."""
    for stack in stacks:
        stack.close()
