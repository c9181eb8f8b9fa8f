"""`commit`: a new image from a container's changes, with Docker's semantics.

The image is the container's image plus one layer holding the container's changes (none when it
changed nothing: Docker then records only an `empty_layer` history entry). Its runtime config is
the container's own (the image's settings merged with the run's flags: Cmd, Env, User, ...), the
image's Healthcheck, OnBuild and Shell kept, and then the `-c` changes applied. The history entry's
`created_by` is the container's command (moby joins the container's Cmd with spaces), its
`comment` the message and its `author` the author.

A running container is paused while its layer is read (Docker's `--pause`, on by default) and
unpaused afterwards, whatever happened; without pausing, files written meanwhile may be caught
half-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dockyard.core.containers import Container
from dockyard.core.engine import Engine
from dockyard.core.errors import ConflictError

__all__ = ["commit_container"]

# What a container's Config says about the image it would make (the rest, such as Tty or the
# attach flags, belongs to the run, not to an image).
_FROM_CONTAINER = (
    "User",
    "ExposedPorts",
    "Env",
    "Cmd",
    "Entrypoint",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
)


def commit_container(
    engine: Engine,
    container: Container,
    *,
    reference: str | None,
    author: str = "",
    message: str = "",
    changes: Sequence[str] = (),
    pause: bool = True,
) -> str:
    """Create an image from `container` (tagged `reference` when given); returns its id."""
    from dockyard.core.container_ops import pause_container, thaw_if_paused
    from dockyard.core.image_draft import ImageDraft
    from dockyard.core.reference import parse_reference

    target = str(parse_reference(reference)) if reference else None
    if container.status in ("removing", "dead"):
        raise ConflictError(f"You cannot commit container {container.id} which is {container.status}")
    image = engine.images.get(container.config["Image"])
    paused_here = pause and container.status == "running"
    if paused_here:
        pause_container(engine, container)
    try:
        with ImageDraft.from_image(engine, image) as draft:
            draft.config.clear()
            draft.config.update(_runtime_config(image.config.get("config") or {}, container.config["Config"]))
            draft.apply_changes(changes)
            draft.add_layer_from_container(
                container.id,
                created_by=" ".join(container.config["Config"].get("Cmd") or []),
                comment=message,
                author=author,
            )
            image_id = draft.commit(
                tags=[target] if target else [], author=author, comment=message, container_id=container.id
            )
    finally:
        if paused_here:
            thaw_if_paused(engine, engine.containers.load(container.id))
    engine.hooks.container_committed(
        container_id=container.id, image_id=image_id, reference=target, comment=message
    )
    return image_id


def _runtime_config(image: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """The image's runtime config with the container's settings in place of the image's."""
    merged = {key: value for key, value in image.items() if key not in _FROM_CONTAINER}
    for key in _FROM_CONTAINER:
        if container.get(key):
            merged[key] = container[key]
    return merged
