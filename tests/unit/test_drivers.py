"""Driver registry and selection: flag, else state on disk, else priority; clear refusals."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dockyard.core.drivers import Availability, DriverContext, DriverKind, DriverRegistry, select_driver
from dockyard.core.errors import DriverNotSupported, DriverPrerequisites, NotFoundError


@dataclass
class FakeDriver:
    """A parsing-level stand-in: selection only asks a driver whether it is available."""

    name: str
    verdict: Availability

    def available(self) -> Availability:
        return self.verdict


def _registry(**verdicts: tuple[int, Availability]) -> DriverRegistry:
    registry = DriverRegistry()
    for name, (priority, verdict) in verdicts.items():
        registry.storage(
            name, lambda context, n=name, v=verdict: FakeDriver(n, v), plugin="test", priority=priority
        )
    return registry


def _select(registry: DriverRegistry, explicit: str | None = None, on_disk: tuple[str, ...] = ()) -> str:
    context = DriverContext(home=None, run_dir=None, rootless=False)  # type: ignore[arg-type]
    return select_driver(
        registry, DriverKind.STORAGE, explicit=explicit, in_use=on_disk.__contains__,
        build=lambda entry: entry.factory(context),
    ).name


def test_selection_order() -> None:
    registry = _registry(
        overlay=(30, Availability(False, "kernel refuses")),
        btrfs=(20, Availability(True)),
        vfs=(1, Availability(True)),
        named_only=(0, Availability(True)),
    )
    assert _select(registry) == "btrfs", "highest usable priority"
    assert _select(registry, on_disk=("vfs",)) == "vfs", "state on disk wins over priority"
    assert _select(registry, explicit="named_only", on_disk=("vfs",)) == "named_only"


def test_unknown_name_lists_available() -> None:
    registry = _registry(vfs=(1, Availability(True)), btrfs=(2, Availability(True)))
    with pytest.raises(NotFoundError, match=r"unknown storage driver 'zfs' \(available: btrfs, vfs\)"):
        _select(registry, explicit="zfs")


def test_nothing_usable_lists_every_refusal() -> None:
    registry = _registry(a=(2, Availability(False, "no kernel module")), b=(1, Availability(False, "no fs")))
    with pytest.raises(DriverNotSupported, match="a: no kernel module; b: no fs"):
        _select(registry)


def test_named_only_verdicts_are_passed_over_and_shared_refusals_grouped() -> None:
    registry = _registry(
        isolated=(10, Availability(True, "only when named here", automatic=False)),
        tap_a=(8, Availability(False, "no tun device")),
        tap_b=(6, Availability(False, "no tun device")),
        bridge=(20, Availability(False, "needs root")),
    )
    assert _select(registry, explicit="isolated") == "isolated"
    with pytest.raises(DriverNotSupported) as refused:
        _select(registry)
    assert str(refused.value) == "no usable storage driver (bridge: needs root; tap_a, tap_b: no tun device)"


def test_refusals_are_distinct_errors() -> None:
    with pytest.raises(DriverPrerequisites):
        Availability(False, "install fuse-overlayfs", missing=True).raise_if_unusable("overlay")
    with pytest.raises(DriverNotSupported):
        Availability(False, "not on btrfs").raise_if_unusable("btrfs")
    Availability(True).raise_if_unusable("vfs")


def test_duplicate_registration_is_refused() -> None:
    registry = _registry(vfs=(1, Availability(True)))
    with pytest.raises(ValueError, match="registered twice"):
        registry.storage("vfs", lambda context: None, plugin="other")


_LAZY_PROBE = """
import sys
from dockyard.core.drivers import DriverKind
from dockyard.core.plugins import load_plugins

def drivers_loaded():
    return sorted(m for m in sys.modules if m.startswith("dockyard.plugins.") and m.count(".") == 3)

hooks = load_plugins(autoload=False)
print(drivers_loaded())
entry = hooks.drivers.get(DriverKind.NETWORK, "none")
print(entry.plugin, entry.factory.__module__, entry.factory.__name__)
print(drivers_loaded())
"""


def test_loading_plugins_imports_no_driver_until_one_is_built() -> None:
    """Registering the built-in drivers costs no driver import; asking for one imports only it."""
    import subprocess
    import sys

    lines = subprocess.run(
        [sys.executable, "-c", _LAZY_PROBE], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert lines == [
        "[]",
        "dockyard.plugins.network.none dockyard.plugins.network.none NoneNetworkDriver",
        "['dockyard.plugins.network.none']",
    ]


def test_a_factory_may_be_an_import_string() -> None:
    registry = DriverRegistry()
    registry.network("stub", "tests.unit.test_drivers:FakeDriver", plugin="test")
    entry = registry.get(DriverKind.NETWORK, "stub")
    assert entry.target == "tests.unit.test_drivers:FakeDriver"
    assert entry.factory is FakeDriver
