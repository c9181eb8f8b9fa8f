"""The event log's storage (append, trim, windows) and `events`' filters and rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.core import events
from dockyard.core.errors import UsageError
from dockyard.core.event_query import event_line, matches, parse_filters
from dockyard.core.events import EventLog, new_event


def _container(action: str, stamp: int, name: str = "web") -> dict[str, object]:
    return new_event("container", action, "ab" * 32, {"image": "busybox", "name": name}, time_ns=stamp)


def test_events_are_read_back_within_their_window(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    for stamp, action in enumerate(("create", "start", "die", "destroy"), start=1):
        log.append(_container(action, stamp * 1_000_000_000))
    window = [event["Action"] for event in log.events(since_ns=2_000_000_000, until_ns=3_000_000_000)]
    assert window == ["start", "die"]
    assert [event["Action"] for event in log.events()] == ["create", "start", "die", "destroy"]


def test_a_trimmed_log_keeps_its_newest_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "MAX_BYTES", 2000)
    log = EventLog(tmp_path)
    for stamp in range(1, 61):
        log.append(_container("start", stamp))
    kept = [event["timeNano"] for event in log.events()]
    assert log.path.stat().st_size <= 2000 and kept == list(range(kept[0], 61))


def test_docker_shape_and_line(tmp_path: Path) -> None:
    event = _container("die", 1_700_000_000_123_456_789)
    assert event["status"] == "die" and event["from"] == "busybox" and event["time"] == 1_700_000_000
    line = event_line(event)
    assert line.endswith(f" container die {'ab' * 32} (image=busybox, name=web)")
    assert ".123456789" in line.split()[0]
    image = new_event("image", "tag", "sha256:" + "c" * 64, {"name": "busybox:latest"})
    assert "from" not in image and image["id"] == "sha256:" + "c" * 64


def test_filters() -> None:
    start = _container("start", 1)
    image = new_event("image", "tag", "sha256:" + "c" * 64, {"name": "busybox:latest"}, time_ns=2)
    assert matches(start, parse_filters(("type=container", "event=start", "event=die")))
    assert not matches(image, parse_filters(("type=container",)))
    assert matches(start, parse_filters(("container=web",))) and matches(
        start, parse_filters(("container=abab",))
    )
    assert not matches(image, parse_filters(("container=web",)))
    assert matches(start, parse_filters(("image=busybox:latest",))) and matches(
        image, parse_filters(("image=busybox",))
    )
    assert matches(start, parse_filters(("label=name=web",))) and not matches(
        start, parse_filters(("label=x",))
    )
    with pytest.raises(UsageError):
        parse_filters(("colour=red",))
