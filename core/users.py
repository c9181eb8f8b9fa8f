"""`--user` resolved the way Docker resolves it: through the image's own /etc/passwd and /etc/group.

Both files are read inside the container's root (a symlink in the image cannot point the lookup
at the host's files).
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core.errors import UsageError
from dockyard.core.rootpath import read_file_in_root

__all__ = ["ResolvedUser", "resolve_user"]


@dataclass(frozen=True)
class ResolvedUser:
    """Numeric ids, supplementary groups and home directory of the process's user."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


def _entries(rootfs: str, path: str) -> list[list[str]]:
    data = read_file_in_root(rootfs, path)
    if data is None:
        return []
    lines = data.decode(errors="replace").splitlines()
    return [line.split(":") for line in lines if line and not line.startswith("#")]


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve_user(rootfs: str, spec: str) -> ResolvedUser:
    """Resolve `user[:group]` (names or numbers) against the image's passwd and group files."""
    user_part, _, group_part = (spec or "0").partition(":")
    passwd = [entry for entry in _entries(rootfs, "etc/passwd") if len(entry) >= 7]
    groups = [entry for entry in _entries(rootfs, "etc/group") if len(entry) >= 4]
    uid_number = _number(user_part)
    match = next(
        (
            entry
            for entry in passwd
            if (entry[2] == user_part if uid_number is not None else entry[0] == user_part)
        ),
        None,
    )
    if match is None and uid_number is None:
        raise UsageError(f"unable to find user {user_part}: no matching entries in passwd file")
    uid = uid_number if uid_number is not None else int(match[2])  # type: ignore[index]
    gid = int(match[3]) if match is not None and match[3].isdigit() else 0
    home = match[5] if match is not None else "/"
    username = match[0] if match is not None else ""
    if group_part:
        gid_number = _number(group_part)
        if gid_number is not None:
            gid = gid_number
        else:
            group = next((entry for entry in groups if entry[0] == group_part), None)
            if group is None:
                raise UsageError(f"unable to find group {group_part}: no matching entries in group file")
            gid = int(group[2])
    additional = tuple(
        sorted(
            {
                int(entry[2])
                for entry in groups
                if username
                and username in entry[3].split(",")
                and entry[2].isdigit()
                and int(entry[2]) != gid
            }
        )
    )
    return ResolvedUser(uid, gid, additional, home)
