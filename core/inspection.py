"""The objects `inspect` prints, in Docker's JSON shape, for images and containers."""

from __future__ import annotations

from typing import Any

from dockyard.core.containers import Container
from dockyard.core.engine import Engine
from dockyard.core.images import Image

__all__ = ["inspect_container", "inspect_image"]


def inspect_image(engine: Engine, image: Image) -> dict[str, Any]:
    """`docker image inspect`'s object for an image."""
    from dockyard.core.reference import parse_reference

    runtime = {
        "Hostname": "",
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": None,
        "Cmd": None,
        "Image": "",
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": None,
    }
    runtime.update(image.config.get("config") or {})
    tag_times = [when for when in image.tagged_at.values() if when]
    return {
        "Id": image.id,
        "RepoTags": [parse_reference(ref).familiar() for ref in image.repo_tags],
        "RepoDigests": [parse_reference(ref, default_tag=None).familiar() for ref in image.repo_digests],
        "Parent": image.parent or "",
        "Comment": image.config.get("comment", ""),
        "Created": image.created,
        "DockerVersion": "",
        "Author": image.config.get("author", ""),
        "Config": runtime,
        "Architecture": image.config.get("architecture", ""),
        "Variant": image.config.get("variant"),
        "Os": image.config.get("os", ""),
        "Size": image.size,
        "GraphDriver": {"Name": engine.storage_name, "Data": None},
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "Metadata": {"LastTagTime": max(tag_times) if tag_times else "0001-01-01T00:00:00Z"},
    }


def inspect_container(engine: Engine, container: Container) -> dict[str, Any]:
    """`docker container inspect`'s object for a container."""
    state = container.state
    status = container.status
    config = container.config
    return {
        "Id": container.id,
        "Created": config["Created"],
        "Path": config.get("Path", ""),
        "Args": config.get("Args", []),
        "State": {
            "Status": status,
            "Running": status in ("running", "paused"),
            "Paused": status == "paused",
            "Restarting": status == "restarting",
            "OOMKilled": bool(state.get("OOMKilled")),
            "Dead": status == "dead",
            "Pid": container.pid,
            "ExitCode": int(state.get("ExitCode") or 0),
            "Error": state.get("Error", ""),
            "StartedAt": state.get("StartedAt", "0001-01-01T00:00:00Z"),
            "FinishedAt": state.get("FinishedAt", "0001-01-01T00:00:00Z"),
        },
        "Image": config["Image"],
        "ResolvConfPath": str(container.path("resolv.conf")),
        "HostnamePath": str(container.path("hostname")),
        "HostsPath": str(container.path("hosts")),
        "LogPath": str(container.path(f"{container.id}-json.log")),
        "Name": "/" + container.name,
        "RestartCount": int(state.get("RestartCount") or 0),
        "Driver": config.get("Driver", ""),
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": config["HostConfig"],
        "GraphDriver": {"Name": config.get("Driver", ""), "Data": None},
        "Mounts": [
            {
                "Type": mount["Type"],
                **({"Name": mount["Name"]} if mount["Type"] == "volume" else {}),
                "Source": mount["Source"],
                "Destination": mount["Destination"],
                "Driver": "local" if mount["Type"] == "volume" else "",
                "Mode": "" if mount["RW"] else "ro",
                "RW": mount["RW"],
                "Propagation": "rprivate" if mount["Type"] == "bind" else "",
            }
            for mount in config["HostConfig"].get("Mounts") or []
        ],
        "Config": config["Config"],
        "NetworkSettings": state.get("NetworkSettings") or _configured_networks(container),
        "Dockyard": config.get("Dockyard", {}),
    }


def _configured_networks(container: Container) -> dict[str, Any]:
    """A container without a live network shows the networks it is configured for, with empty
    addresses, as Docker's stopped containers do (none for `container:NAME`)."""
    from dockyard.core.drivers import NetworkAttachment
    from dockyard.core.network_endpoints import CONTAINER_MODE, endpoints_of
    from dockyard.core.network_settings import Endpoint, network_settings

    if str(container.config["HostConfig"].get("NetworkMode") or "").startswith(CONTAINER_MODE):
        return network_settings([])
    return network_settings(
        [
            Endpoint(
                network=name,
                attachment=NetworkAttachment(netns_path=None),
                network_id=str(endpoint.get("NetworkID") or ""),
                aliases=tuple(endpoint.get("Aliases") or ()),
                user_defined=bool(endpoint.get("UserDefined")),
            )
            for name, endpoint in endpoints_of(container).items()
        ]
    )
