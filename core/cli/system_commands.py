"""`info` and `version`: what this engine is, which drivers it has and which it would use."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import click

from dockyard.core import __version__
from dockyard.core.drivers import Availability, DriverKind
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError

pass_engine = click.make_pass_decorator(Engine)


def _driver_rows(engine: Engine, kind: DriverKind) -> list[dict[str, Any]]:
    rows = []
    for entry in engine.hooks.drivers.of_kind(kind):
        driver = engine.build_driver(entry)
        availability = driver.available()
        if not isinstance(availability, Availability):
            availability = Availability(False, "available() did not return an Availability")
        rows.append(
            {
                "Name": entry.name,
                "Plugin": entry.plugin,
                "Priority": entry.priority,
                "Description": entry.description,
                "Available": availability.usable,
                "Automatic": availability.automatic,
                "Reason": availability.reason,
            }
        )
    return rows


def _system_info(engine: Engine) -> dict[str, Any]:
    from dockyard.core.platforms import host_architecture

    settings = engine.settings
    try:
        selected: str | None = engine.storage_name
        status = engine.storage.status()
        selection_error = ""
    except DockyardError as exc:
        selected, status, selection_error = None, {}, str(exc)
    image_count = len(engine.images.ids()) if selected else 0
    return {
        "ServerVersion": __version__,
        "Driver": selected,
        "DriverStatus": [[key, str(value)] for key, value in status.items()],
        "DriverError": selection_error,
        "Images": image_count,
        "Rootless": settings.rootless,
        "UserNamespace": _user_namespace(settings.runroot) if settings.rootless else {},
        "StorageRoot": str(settings.root),
        "RunRoot": str(settings.runroot),
        "Drivers": {str(kind): _driver_rows(engine, kind) for kind in DriverKind},
        "Plugins": [
            {"Name": info.name, "Source": info.source, "Version": info.version}
            for info in engine.hooks.plugins
        ],
        "OperatingSystem": platform.platform(),
        "OSType": "linux",
        "Architecture": host_architecture(),
        "KernelVersion": platform.release(),
        "PythonVersion": platform.python_version(),
    }


def _user_namespace(runroot: Path) -> dict[str, str]:
    """The rootless id mapping in use and why it is the one (`info`'s User Namespace lines)."""
    from dockyard.core.user_namespace import describe

    found = describe(runroot)
    if not found:
        return {"Id Mapping": "none yet (the first command creates the user namespace)"}
    if found["mode"] == "single":
        mode = f"single id, uid {found['uid_map']}, gid {found['gid_map']} ({found['reason']})"
    else:
        mode = f"subordinate ids, uid {found['uid_map']}, gid {found['gid_map']} (via {found['helpers']})"
    return {"Id Mapping": mode}


@click.command("info")
@click.option("-f", "--format", "template", help="Format output using a Go template, or 'json'.")
@pass_engine
def info(engine: Engine, template: str | None) -> None:
    """Display system-wide information."""
    data = _system_info(engine)
    if template == "json":
        from dockyard.core.cli.output import echo_json

        echo_json(data)
        return
    if template:
        from dockyard.core.gotemplate import render

        click.echo(render(template, data))
        return
    lines = [
        f"Server Version: {data['ServerVersion']}",
        f"Storage Driver: {data['Driver'] or 'none usable'}",
        *(f" {key}: {value}" for key, value in data["DriverStatus"]),
        *([f" Error: {data['DriverError']}"] if data["DriverError"] else []),
        f"Images: {data['Images']}",
        f"Rootless: {str(data['Rootless']).lower()}",
        *(f" {key}: {value}" for key, value in data["UserNamespace"].items()),
        f"Storage Root: {data['StorageRoot']}",
        f"Run Root: {data['RunRoot']}",
        "Drivers:",
    ]
    for kind, rows in data["Drivers"].items():
        lines.append(f" {kind}:")
        if not rows:
            lines.append("  (none registered)")
        for row in rows:
            state = "available" if row["Available"] else f"unavailable: {row['Reason']}"
            if row["Available"] and not row["Automatic"]:
                state += f" ({row['Reason']})"
            lines.append(f"  {row['Name']} ({row['Plugin']}, priority {row['Priority']}): {state}")
    lines.append("Plugins:")
    for plugin in data["Plugins"]:
        version = f" {plugin['Version']}" if plugin["Version"] else ""
        lines.append(f" {plugin['Name']}{version} ({plugin['Source']})")
    lines += [
        f"Kernel Version: {data['KernelVersion']}",
        f"Operating System: {data['OperatingSystem']}",
        f"OSType: {data['OSType']}",
        f"Architecture: {data['Architecture']}",
    ]
    click.echo("\n".join(lines))


@click.command("version")
@click.option("-f", "--format", "template", help="Format output using a Go template, or 'json'.")
def version(template: str | None) -> None:
    """Show the Dockyard version information."""
    from dockyard.core.platforms import host_architecture, host_os

    data = {
        "Client": {
            "Version": __version__,
            "PythonVersion": platform.python_version(),
            "Os": host_os(),
            "Arch": host_architecture(),
        },
    }
    if template == "json":
        from dockyard.core.cli.output import echo_json

        echo_json(data)
    elif template:
        from dockyard.core.gotemplate import render

        click.echo(render(template, data))
    else:
        client = data["Client"]
        click.echo(
            f"Client:\n Version:        {client['Version']}\n"
            f" Python version: {client['PythonVersion']}\n"
            f" OS/Arch:        {client['Os']}/{client['Arch']}"
        )
