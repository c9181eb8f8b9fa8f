"""The names plugin authors import are pinned: changing them is a deliberate, visible act."""

from __future__ import annotations

from dockyard.core import drivers, entrypoints, errors, hookspecs


def test_driver_contract_names() -> None:
    assert sorted(drivers.__all__) == [
        "Availability",
        "Change",
        "ChangeKind",
        "DetachedDiffs",
        "DriverContext",
        "DriverEntry",
        "DriverKind",
        "DriverRegistry",
        "IsolationDriver",
        "LayerDiff",
        "NamedNetworkDriver",
        "NetworkAttachment",
        "NetworkConfig",
        "NetworkDriver",
        "PortMapping",
        "ResourceUsage",
        "StagedDiff",
        "StorageDriver",
        "select_driver",
    ]
    for name in drivers.__all__:
        assert getattr(drivers, name).__doc__, f"{name} is undocumented"


def test_error_names_form_one_hierarchy() -> None:
    for name in errors.__all__:
        error = getattr(errors, name)
        assert issubclass(error, errors.DockyardError), name
        assert error.__doc__, name
    assert {"DriverNotSupported", "DriverPrerequisites", "DriverFailed"} <= set(errors.__all__)
    assert errors.DockyardError.exit_code == 125


def test_plugin_entry_points() -> None:
    assert (entrypoints.PLUGIN_GROUP, entrypoints.COMMAND_GROUP) == ("dockyard", "dockyard.commands")
    assert entrypoints.AUTOLOAD_SWITCH == "DOCKYARD_DISABLE_PLUGIN_AUTOLOAD"
    assert hookspecs.PROJECT == "dockyard"
    assert callable(hookspecs.hookimpl)
