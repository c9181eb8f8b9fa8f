"""Layer records over a storage driver: chain ids, diff ids, sizes, and crash-safe creation.

A layer is named by its chain id (OCI image spec), which the driver uses, as 64 hex, for its own
layer id. Its record is written only after the driver has applied the diff and the diff's digest
matched, so a record always means a complete layer; a driver layer without a record is a leftover of
a killed command and is rebuilt. Creating a layer holds that layer's lock until the caller has
recorded the image that uses it, so a concurrent `rmi` cannot collect it in between.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.core.digests import digest_hex, validate_digest
from dockyard.core.drivers import DetachedDiffs, LayerDiff, StagedDiff, StorageDriver
from dockyard.core.errors import ContentError
from dockyard.core.log import get_logger
from dockyard.core.store import TEMP_PREFIX, file_lock, read_json, write_json

__all__ = ["LayerRecord", "LayerStore", "chain_id", "check_diff"]

log = get_logger(__name__)


def check_diff(result: LayerDiff, diff_id: str) -> None:
    """Refuse a layer whose content is not the diff_id the image config names."""
    if result.digest != diff_id:
        raise ContentError(f"layer content digest mismatch: expected {diff_id}, got {result.digest}")


def chain_id(parent: str | None, diff_id: str) -> str:
    """The OCI chain id of a layer with this diff id on top of the layer `parent` (a chain id)."""
    validate_digest(diff_id)
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


@dataclass(frozen=True)
class LayerRecord:
    """A complete layer: its chain id, diff id, parent chain id and the bytes it adds on disk."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int

    @property
    def driver_id(self) -> str:
        """The name the storage driver knows this layer by."""
        return digest_hex(self.chain_id)


class LayerStore:
    """The layers of one storage driver, with their records."""

    def __init__(self, home: Path, driver: StorageDriver) -> None:
        self.driver = driver
        self._records = home / "layers"
        self._locks = home / "layer-locks"

    def get(self, chain: str) -> LayerRecord | None:
        """The record of a complete layer, or None."""
        record = read_json(self._records / f"{digest_hex(chain)}.json", default={})
        if not record:
            return None
        return LayerRecord(record["chain_id"], record["diff_id"], record["parent"], record["size"])

    def ensure(
        self,
        *,
        parent: str | None,
        diff_id: str,
        archive: Callable[[], AbstractContextManager[BinaryIO]],
        hold: ExitStack,
        before_build: Callable[[str], None] | None = None,
    ) -> LayerRecord:
        """Return the layer `diff_id` on `parent`, creating it from `archive()` if it is missing.

        The layer's lock stays held until `hold` closes; `before_build(chain_id)` is called under
        it when this call is the one that builds the layer. A diff whose digest is not `diff_id`
        is removed and raises ContentError.
        """
        existing = self.claim(parent=parent, diff_id=diff_id, hold=hold)
        if existing is not None:
            return existing
        chain = chain_id(parent, diff_id)
        if before_build is not None:
            before_build(chain)
        layer_id = digest_hex(chain)
        self.driver.create_layer(layer_id, digest_hex(parent) if parent else None)
        try:
            with archive() as stream:
                result = self.driver.apply_diff(layer_id, stream)
            check_diff(result, diff_id)
            size = self.driver.diff_size(layer_id)
        except BaseException:
            self.driver.remove(layer_id)
            raise
        return self._record(chain, diff_id, parent, size, durable=True)

    def claim(self, *, parent: str | None, diff_id: str, hold: ExitStack) -> LayerRecord | None:
        """Lock the layer `diff_id` on `parent` until `hold` closes; its record if it is complete,
        else None, with whatever a killed command left of it removed."""
        chain = chain_id(parent, diff_id)
        hold.enter_context(file_lock(self._locks / f"{digest_hex(chain)}.lock", removable=True))
        existing = self.get(chain)
        layer_id = digest_hex(chain)
        if existing is not None and self.driver.exists(layer_id):
            log.debug("layer exists", chain_id=chain, driver=self.driver.name)
            return existing
        if self.driver.exists(layer_id):
            log.info("removing incomplete layer", chain_id=chain, driver=self.driver.name)
            self.driver.remove(layer_id)
        return None

    def add_staged(self, driver: DetachedDiffs, staged: StagedDiff, *, parent: str | None) -> LayerRecord:
        """Commit a diff staged (and checked) by a DetachedDiffs driver as the layer on `parent`,
        claimed beforehand. Nothing is flushed: the layer is under the caller's flush note
        (core/deferred_flush.py)."""
        chain = chain_id(parent, staged.diff.digest)
        layer_id = digest_hex(chain)
        driver.commit_diff(staged, layer_id, digest_hex(parent) if parent else None)
        try:
            size = self.driver.diff_size(layer_id)
        except BaseException:
            self.driver.remove(layer_id)
            raise
        return self._record(chain, staged.diff.digest, parent, size, durable=False)

    def _record(
        self, chain: str, diff_id: str, parent: str | None, size: int, *, durable: bool
    ) -> LayerRecord:
        log.info("layer applied", chain_id=chain, diff_id=diff_id, size=size, driver=self.driver.name)
        write_json(
            self._records / f"{digest_hex(chain)}.json",
            {"chain_id": chain, "diff_id": diff_id, "parent": parent, "size": size},
            durable=durable,
        )
        return LayerRecord(chain, diff_id, parent, size)

    def chain_ids(self) -> list[str]:
        """Chain ids of every recorded layer."""
        if not self._records.is_dir():
            return []
        return [
            "sha256:" + entry.name.removesuffix(".json")
            for entry in self._records.iterdir()
            if entry.name.endswith(".json") and not entry.name.startswith(TEMP_PREFIX)
        ]

    def remove_unused(self, used: set[str], *, also: Iterable[str] = ()) -> list[str]:
        """Remove every layer no image uses and no command is creating; returns their chain ids.
        `also` names layers to remove even if their record is gone (torn by a crash).

        Children go before parents so a driver never sees a parent removed under a child.
        """
        unused = [chain for chain in {*self.chain_ids(), *also} if chain not in used]
        depth = {chain: self._depth(chain) for chain in unused}
        removed = []
        for chain in sorted(unused, key=lambda c: depth[c], reverse=True):
            layer_id = digest_hex(chain)
            with file_lock(self._locks / f"{layer_id}.lock", blocking=False, removable=True) as acquired:
                if not acquired:
                    continue
                if self.driver.exists(layer_id):
                    self.driver.remove(layer_id)
                log.info("layer removed", chain_id=chain, driver=self.driver.name)
                (self._records / f"{layer_id}.json").unlink(missing_ok=True)
            removed.append(chain)
        return removed

    def _depth(self, chain: str) -> int:
        depth = 0
        record = self.get(chain)
        while record is not None and record.parent is not None:
            depth += 1
            record = self.get(record.parent)
        return depth
