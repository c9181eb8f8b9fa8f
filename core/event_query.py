"""`events`: Docker's filters over logged events and its one-line rendering of them.

Filters are `key=value`; values of one key are alternatives, different keys must all match:
`type` (container, image), `event` (the action: create, start, die, ...), `container` (a name,
or an id or id prefix), `image` (the image a container event names, or an image event's
reference or id), `label` (`key` or `key=value` among the attributes).

The default line is Docker's: local time to the nanosecond, type, action, actor id, then the
attributes sorted by key:

    2024-05-01T10:00:00.123456789Z container start 3f4e... (image=busybox, name=web)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["FILTER_KEYS", "event_line", "matches", "parse_filters"]

FILTER_KEYS = ("container", "event", "image", "label", "type")


def parse_filters(values: tuple[str, ...]) -> dict[str, list[str]]:
    """`--filter key=value` flags grouped by key; unknown keys are a usage error."""
    from dockyard.core.filters import parse_filters as pairs

    grouped: dict[str, list[str]] = {}
    for key, argument in pairs(values, FILTER_KEYS):
        grouped.setdefault(key, []).append(argument)
    return grouped


def _image_names(value: str) -> set[str]:
    """A name as given and without a `:latest` tag, so `busybox` matches `busybox:latest`."""
    return {value, value.removesuffix(":latest")}


def _matches_key(event: dict[str, Any], key: str, values: list[str]) -> bool:
    actor = event.get("Actor") or {}
    attributes: dict[str, str] = actor.get("Attributes") or {}
    actor_id = str(actor.get("ID", ""))
    kind = event.get("Type")
    if key == "type":
        return kind in values
    if key == "event":
        return event.get("Action") in values
    if key == "container":
        return kind == "container" and any(
            value == attributes.get("name") or (value and actor_id.startswith(value)) for value in values
        )
    if key == "image":
        names = {attributes.get("image", ""), actor_id} if kind == "container" else {actor_id}
        if kind == "image":
            names.add(attributes.get("name", ""))
        found = set().union(*(_image_names(name) for name in names if name))
        return any(_image_names(value) & found for value in values)
    return any(_has_label(attributes, value) for value in values)


def _has_label(attributes: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in attributes and (not sep or attributes[key] == value)


def matches(event: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """Whether `event` passes every filter key."""
    return all(_matches_key(event, key, values) for key, values in filters.items())


def event_line(event: dict[str, Any]) -> str:
    """Docker's default rendering of one event (module docstring)."""
    stamp = int(event.get("timeNano") or 0)
    seconds, nanoseconds = divmod(stamp, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds).astimezone()
    offset = moment.strftime("%z")
    zone = "Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}"
    when = f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}.{nanoseconds:09d}{zone}"
    actor = event.get("Actor") or {}
    line = f"{when} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{key}={attributes[key]}" for key in sorted(attributes)) + ")"
    return line
