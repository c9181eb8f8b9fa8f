"""The built-in event recorder: every lifecycle hook becomes a line in the root's event log.

`dockyard events` reads what this writes (`dockyard.core.events`). The recorder is bound to one
storage root, so `dockyard_configure` returns a fresh one per engine rather than keeping the root
in module state.

Container events carry Docker's attributes: the container's name, the image as the user named it,
its labels, and `exitCode` for `die`. They come from the container's record; since `destroy` fires
after the record is gone, the recorder keeps each container's attributes in a small side file
(`events/containers/<id>.json`) from its creation to its removal.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.core.errors import DockyardError
from dockyard.core.hookspecs import hookimpl
from dockyard.core.log import get_logger

if TYPE_CHECKING:
    from dockyard.core.config import Settings

__all__ = ["EventRecorder", "dockyard_configure"]

log = get_logger(__name__)


class EventRecorder:
    """Hook implementations that append Docker-shaped events to one root's event log."""

    def __init__(self, root: Path) -> None:
        from dockyard.core.events import event_log

        self._log = event_log(root)
        self._containers = root / "containers"
        self._actors = self._log.directory / "containers"

    def _record(self, kind: str, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        """Append one event; a failure is logged, never raised (hooks must not fail a command)."""
        from dockyard.core.events import new_event

        try:
            self._log.append(new_event(kind, action, actor_id, attributes))
        except OSError as exc:
            log.warning("cannot record event", action=action, actor=actor_id, error=str(exc))

    def _container_attributes(self, container_id: str, *, remember: bool) -> dict[str, str]:
        """Name, image and labels from the container's record, else from the side file."""
        from dockyard.core.store import read_json, write_json

        side = self._actors / f"{container_id}.json"
        try:
            config = read_json(self._containers / container_id / "config.json", default={})
            if not config:
                return dict(read_json(side, default={}))
            labels = config.get("Config", {}).get("Labels") or {}
            attributes = {
                **{str(key): str(value) for key, value in labels.items()},
                "image": str(config.get("Config", {}).get("Image") or config.get("Image", "")),
                "name": str(config.get("Name", "")),
            }
            if remember:  # as durable as the event log it annotates, which is appended unsynced
                write_json(side, attributes, durable=False)
        except (OSError, DockyardError) as exc:
            log.warning("cannot read container attributes", container_id=container_id, error=str(exc))
            return {}
        return attributes

    def _container_event(self, action: str, container_id: str, **extra: str) -> None:
        attributes = self._container_attributes(container_id, remember=action in ("create", "rename"))
        self._record("container", action, container_id, {**attributes, **extra})
        if action == "destroy":
            try:
                (self._actors / f"{container_id}.json").unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot forget container attributes", container_id=container_id, error=str(exc))

    @hookimpl
    def dockyard_container_created(self, container_id: str, name: str, image: str) -> None:
        """`create`."""
        self._container_event("create", container_id)

    @hookimpl
    def dockyard_container_started(self, container_id: str, pid: int) -> None:
        """`start`."""
        self._container_event("start", container_id)

    @hookimpl
    def dockyard_container_stopped(self, container_id: str, exit_code: int) -> None:
        """`die`, with the exit code."""
        self._container_event("die", container_id, exitCode=str(exit_code))

    @hookimpl
    def dockyard_container_removed(self, container_id: str) -> None:
        """`destroy`."""
        self._container_event("destroy", container_id)

    @hookimpl
    def dockyard_container_renamed(self, container_id: str, old_name: str, new_name: str) -> None:
        """`rename`, with Docker's `oldName` attribute."""
        self._container_event("rename", container_id, oldName="/" + old_name)

    @hookimpl
    def dockyard_container_paused(self, container_id: str) -> None:
        """`pause`."""
        self._container_event("pause", container_id)

    @hookimpl
    def dockyard_container_unpaused(self, container_id: str) -> None:
        """`unpause`."""
        self._container_event("unpause", container_id)

    @hookimpl
    def dockyard_container_committed(
        self, container_id: str, image_id: str, reference: str | None, comment: str
    ) -> None:
        """`commit`, with Docker's `comment`, `imageID` and `imageRef` attributes."""
        self._container_event(
            "commit", container_id, comment=comment, imageID=image_id, imageRef=reference or ""
        )

    @hookimpl
    def dockyard_image_pulled(self, image_id: str, reference: str) -> None:
        """`pull`: Docker names the reference as the actor."""
        self._record("image", "pull", reference, {"name": reference})

    @hookimpl
    def dockyard_image_imported(self, image_id: str, reference: str | None) -> None:
        """`import`."""
        self._record("image", "import", image_id, {"name": reference or image_id})

    @hookimpl
    def dockyard_image_tagged(self, image_id: str, reference: str) -> None:
        """`tag`."""
        self._record("image", "tag", image_id, {"name": reference})

    @hookimpl
    def dockyard_image_untagged(self, image_id: str, reference: str) -> None:
        """`untag`."""
        self._record("image", "untag", image_id, {"name": reference})

    @hookimpl
    def dockyard_image_removed(self, image_id: str) -> None:
        """`delete`."""
        self._record("image", "delete", image_id, {"name": image_id})


@hookimpl
def dockyard_configure(settings: Settings) -> EventRecorder:
    """Record the events of this engine's storage root."""
    return EventRecorder(settings.root)
