"""User-namespace id maps: subordinate ranges, the setuid helpers, and what this process is in.

A rootless engine maps its user to root inside a user namespace and, where the administrator
granted them in /etc/subuid and /etc/subgid, a range of subordinate ids to 1..N, so images whose
files belong to other users keep those owners. Only the setuid helpers `newuidmap` and
`newgidmap` (Debian: uidmap) may write such maps; without them, or without a range, a process
may map just its own ids (and must deny setgroups first).
"""

from __future__ import annotations

import os
import pwd

__all__ = [
    "IdMapPlan",
    "in_initial_user_namespace",
    "plan_id_maps",
    "subordinate_range",
    "write_id_maps",
]

_FULL_RANGE = 4294967295


class IdMapPlan:
    """How a new user namespace will be mapped: `uid_map`/`gid_map` lines as the kernel shows
    them (inside, outside, count), the helpers that write them, and why when there are none.

    A plain class, not a dataclass: `config` imports this module on every command as root, and
    dataclasses would double the start-up time of `dockyard images`.
    """

    __slots__ = ("gid_map", "helpers", "reason", "uid_map")

    def __init__(
        self,
        uid_map: tuple[tuple[int, int, int], ...],
        gid_map: tuple[tuple[int, int, int], ...],
        helpers: tuple[str, str] | None,
        reason: str = "",
    ) -> None:
        self.uid_map = uid_map
        self.gid_map = gid_map
        self.helpers = helpers
        self.reason = reason

    @property
    def single(self) -> bool:
        """Whether only the user's own ids are mapped."""
        return self.helpers is None


def in_initial_user_namespace() -> bool:
    """Whether this process is in the host's user namespace (its uid map is the identity)."""
    with open("/proc/self/uid_map", encoding="ascii") as file:
        return file.read().split() == ["0", "0", str(_FULL_RANGE)]


def subordinate_range(path: str, user: str, ident: int) -> tuple[int, int] | None:
    """The first `start:count` range `user` (or its numeric id) owns in /etc/subuid or /etc/subgid."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, str(ident)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if count > 0:
            return start, count
    return None


def plan_id_maps(*, uid: int, gid: int, path: str | None = None) -> IdMapPlan:
    """The richest mapping this user can get: subordinate ranges through the helpers, else single ids.

    `path` is the PATH the helpers are looked up in (the process's own by default).
    """
    import shutil

    single_uid, single_gid = ((0, uid, 1),), ((0, gid, 1),)
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    helpers = (shutil.which("newuidmap", path=path), shutil.which("newgidmap", path=path))
    if helpers[0] is None or helpers[1] is None:
        missing = " and ".join(
            name for name, found in zip(("newuidmap", "newgidmap"), helpers, strict=True) if not found
        )
        return IdMapPlan(single_uid, single_gid, None, f"{missing} not found (Debian package uidmap)")
    uids = subordinate_range("/etc/subuid", user, uid)
    gids = subordinate_range("/etc/subgid", user, gid)
    if uids is None or gids is None:
        where = " and ".join(f for f, r in (("/etc/subuid", uids), ("/etc/subgid", gids)) if r is None)
        return IdMapPlan(single_uid, single_gid, None, f"no subordinate ids for {user} in {where}")
    return IdMapPlan(
        ((0, uid, 1), (1, uids[0], uids[1])),
        ((0, gid, 1), (1, gids[0], gids[1])),
        (helpers[0], helpers[1]),
    )


def write_id_maps(pid: int, plan: IdMapPlan) -> None:
    """Map the user namespace of process `pid` as planned (OSError when the kernel or a helper refuses)."""
    if plan.helpers is not None:
        import subprocess

        for helper, lines in zip(plan.helpers, (plan.uid_map, plan.gid_map), strict=True):
            argv = [helper, str(pid), *(str(number) for line in lines for number in line)]
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                detail = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
                raise OSError(f"{os.path.basename(helper)} failed: {detail[0]}")
        return
    _write(f"/proc/{pid}/uid_map", plan.uid_map)
    _write(f"/proc/{pid}/setgroups", None)
    _write(f"/proc/{pid}/gid_map", plan.gid_map)


def _write(path: str, lines: tuple[tuple[int, int, int], ...] | None) -> None:
    text = "deny" if lines is None else "".join(f"{a} {b} {c}\n" for a, b, c in lines)
    with open(path, "w", encoding="ascii") as file:
        file.write(text)
