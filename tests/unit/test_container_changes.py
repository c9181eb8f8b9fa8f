"""The runtime's mount points stay out of `diff` and `commit` (Docker keeps them in its init layer)."""

from __future__ import annotations

import io
import tarfile

from dockyard.core.container_changes import visible_changes, write_visible_diff
from dockyard.core.drivers import Change, ChangeKind

A, C, D = ChangeKind.ADDED, ChangeKind.CHANGED, ChangeKind.DELETED


def _changes(*pairs: tuple[ChangeKind, str]) -> list[Change]:
    return [Change(path, kind) for kind, path in pairs]


def test_mount_points_and_their_parents_are_hidden() -> None:
    found = _changes(
        (A, "/dev"), (A, "/etc"), (A, "/etc/hostname"), (A, "/etc/hosts"), (A, "/proc"), (A, "/sys")
    )
    assert visible_changes(found) == []


def test_a_parent_with_other_changes_stays_and_reads_as_changed() -> None:
    found = _changes((A, "/etc"), (A, "/etc/hosts"), (A, "/etc/new"), (C, "/usr"), (D, "/usr/gone"))
    assert visible_changes(found) == _changes((C, "/etc"), (A, "/etc/new"), (C, "/usr"), (D, "/usr/gone"))


def test_a_mount_point_the_image_had_is_not_hidden_when_changed() -> None:
    found = _changes((C, "/etc"), (C, "/etc/hosts"))
    assert visible_changes(found) == found


def _tar(*entries: tuple[str, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.pax_headers = {"mtime": "1.000000001", "SCHILY.xattr.user.k": "v"}
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _entries(data: bytes) -> list[tuple[str, bytes | None, dict[str, str]]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        found = []
        for member in archive:
            handle = archive.extractfile(member) if member.isreg() else None
            found.append((member.name, handle.read() if handle else None, member.pax_headers))
        return found


def test_the_diff_tar_loses_only_the_mount_points() -> None:
    source = _tar(("dev", None), ("etc", None), ("etc/hosts", b""), ("etc/new", b"content"), ("opt", None))
    out = io.BytesIO()
    chunks = [source[index : index + 700] for index in range(0, len(source), 700)]
    assert write_visible_diff(chunks, out) == 3
    names = [(name, data) for name, data, _ in _entries(out.getvalue())]
    assert names == [("etc", None), ("etc/new", b"content"), ("opt", None)]
    kept = _entries(out.getvalue())[0][2]
    assert kept["mtime"] == "1.000000001" and kept["SCHILY.xattr.user.k"] == "v", "PAX records survive"


def test_a_diff_of_only_mount_points_is_empty() -> None:
    out = io.BytesIO()
    assert write_visible_diff([_tar(("proc", None), ("etc", None), ("etc/resolv.conf", b""))], out) == 0
    assert _entries(out.getvalue()) == []
