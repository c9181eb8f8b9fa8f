"""A pull's new layers reach the disk after the command, under a note (core/deferred_flush.py).

The promises: a finished flush leaves nothing behind; a note whose flusher was killed is flushed
by the next command and costs no image; a note from an earlier boot (the machine went down before
the flush) removes every image using a layer it names, those layers and their blobs, and nothing
else; a note whose flusher is still at work is left to it.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from dockyard.core.layers import chain_id
from tests.conftest import Dockyard, processes_naming, wait_until
from tests.integration.registry.support import Registry, RegistryApi, digest_of, layer_tar

_EARLIER_BOOT = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(params=["overlay", "vfs"])
def driver(request: pytest.FixtureRequest, dockyard: Dockyard) -> str:
    """overlay stages an image's layers together under one note; vfs builds them one by one,
    a note each."""
    name: str = request.param
    dockyard.env["DOCKYARD_STORAGE_DRIVER"] = name
    return name


def _notes(dockyard: Dockyard) -> list[Path]:
    return list(dockyard.root.glob("image-store/*/unflushed/*.json"))


def _settled_pull(dockyard: Dockyard, name: str) -> None:
    """Pull `name` and wait for its flusher to finish."""
    dockyard("pull", "-q", name)
    wait_until(lambda: _notes(dockyard) == [])
    wait_until(lambda: processes_naming(str(dockyard.root)) == [])


def _plant_note(dockyard: Dockyard, boot_id: str, layers: list[str]) -> Path:
    """A note as a pull writes it, as if its flush had not happened."""
    (home,) = dockyard.root.glob("image-store/*")
    note = home / "unflushed" / "planted.json"
    note.parent.mkdir(exist_ok=True)
    note.write_text(json.dumps({"boot_id": boot_id, "layers": layers}))
    return note


def _repositories(dockyard: Dockyard) -> set[str]:
    return set(dockyard("images", "--format", "{{.Repository}}").stdout.split())


def test_a_pull_flushes_after_returning_and_leaves_no_note(
    dockyard: Dockyard, registry: Registry, driver: str
) -> None:
    RegistryApi(registry.host).push_image("flush/one", "1", [layer_tar({"a": os.urandom(100_000)})])
    _settled_pull(dockyard, f"{registry.host}/flush/one:1")
    assert list(dockyard.root.glob("image-store/*/unflushed/*")) == []
    assert _repositories(dockyard) == {f"{registry.host}/flush/one"}


def test_after_a_crash_images_on_unflushed_layers_are_removed(
    dockyard: Dockyard, registry: Registry, driver: str
) -> None:
    api = RegistryApi(registry.host)
    base, top, other_top, unrelated = (layer_tar({name: os.urandom(50_000)}) for name in "btou")
    api.push_image("flush/torn", "1", [base, top])
    api.push_image("flush/sibling", "1", [base, other_top])  # shares the torn base layer
    api.push_image("flush/kept", "1", [unrelated])
    for repository in ("torn", "sibling", "kept"):
        _settled_pull(dockyard, f"{registry.host}/flush/{repository}:1")
    torn_base = chain_id(None, digest_of(base))
    note = _plant_note(dockyard, _EARLIER_BOOT, [torn_base, chain_id(torn_base, digest_of(top))])

    assert _repositories(dockyard) == {f"{registry.host}/flush/kept"}
    assert not note.exists()
    status = dict(json.loads(dockyard("info", "--format", "{{json .DriverStatus}}").stdout))
    assert status["Layers"] == "1", status  # the kept image's; the sibling's top went with it
    assert len(list(dockyard.root.glob("image-store/*/layer-blobs/sha256/*"))) == 1
    _settled_pull(dockyard, f"{registry.host}/flush/torn:1")  # pulled again from scratch
    assert _repositories(dockyard) == {f"{registry.host}/flush/kept", f"{registry.host}/flush/torn"}


def test_a_note_whose_flusher_was_killed_is_flushed_and_costs_nothing(
    dockyard: Dockyard, registry: Registry
) -> None:
    layer = layer_tar({"a": os.urandom(50_000)})
    RegistryApi(registry.host).push_image("flush/killed", "1", [layer])
    _settled_pull(dockyard, f"{registry.host}/flush/killed:1")
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    note = _plant_note(dockyard, boot_id, [chain_id(None, digest_of(layer))])
    assert _repositories(dockyard) == {f"{registry.host}/flush/killed"}
    assert not note.exists()


def test_a_note_held_by_its_flusher_is_left_to_it(dockyard: Dockyard, registry: Registry) -> None:
    layer = layer_tar({"a": os.urandom(50_000)})
    RegistryApi(registry.host).push_image("flush/busy", "1", [layer])
    _settled_pull(dockyard, f"{registry.host}/flush/busy:1")
    note = _plant_note(dockyard, _EARLIER_BOOT, [chain_id(None, digest_of(layer))])
    with note.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert _repositories(dockyard) == {f"{registry.host}/flush/busy"}
        assert note.exists()
    assert _repositories(dockyard) == set()  # its "flusher" is gone: the crash is written off


def test_a_note_cut_short_by_a_crash_is_dropped(dockyard: Dockyard, registry: Registry) -> None:
    """A crash while the note itself was written (before any layer was staged) leaves zeros."""
    RegistryApi(registry.host).push_image("flush/cut", "1", [layer_tar({"a": os.urandom(50_000)})])
    _settled_pull(dockyard, f"{registry.host}/flush/cut:1")
    note = _plant_note(dockyard, _EARLIER_BOOT, [])
    note.write_bytes(bytes(64))
    assert _repositories(dockyard) == {f"{registry.host}/flush/cut"}
    assert not note.exists()
