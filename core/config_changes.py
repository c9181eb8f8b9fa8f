"""Dockerfile-style changes applied to an image config: `import -c` and `commit -c`.

Docker accepts CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME and WORKDIR
here; each line is one instruction in its Dockerfile syntax (JSON or shell form where both exist).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from dockyard.core.errors import UsageError

__all__ = ["ALLOWED_INSTRUCTIONS", "apply_changes"]

ALLOWED_INSTRUCTIONS = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return a copy of the runtime `config` (the image config's "config") with `changes` applied."""
    result: dict[str, Any] = json.loads(json.dumps(config))
    for change in changes:
        instruction, _, argument = change.strip().partition(" ")
        instruction = instruction.upper()
        argument = argument.strip()
        if instruction not in ALLOWED_INSTRUCTIONS:
            raise UsageError(
                f"{instruction or change!r} is not a valid change command "
                f"(allowed: {', '.join(ALLOWED_INSTRUCTIONS)})"
            )
        if not argument:
            raise UsageError(f"{instruction} requires an argument")
        _APPLY[instruction](result, argument)
    return result


def _json_or_shell(argument: str) -> list[str]:
    if argument.startswith("["):
        try:
            parsed = json.loads(argument)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
            return parsed
    return ["/bin/sh", "-c", argument]


def _json_or_words(argument: str) -> list[str]:
    if argument.startswith("["):
        try:
            parsed = json.loads(argument)
        except ValueError as exc:
            raise UsageError(f"invalid JSON array {argument!r}: {exc}") from exc
        return [str(item) for item in parsed]
    return argument.split()


def _pairs(argument: str, instruction: str) -> list[tuple[str, str]]:
    words = shlex.split(argument)
    if "=" not in words[0]:
        key, _, value = argument.partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise UsageError(f"{instruction} expects KEY=VALUE pairs, got {word!r}")
        pairs.append((key, value))
    return pairs


def _cmd(config: dict[str, Any], argument: str) -> None:
    config["Cmd"] = _json_or_shell(argument)


def _entrypoint(config: dict[str, Any], argument: str) -> None:
    config["Entrypoint"] = _json_or_shell(argument)


def _env(config: dict[str, Any], argument: str) -> None:
    env = list(config.get("Env") or [])
    for key, value in _pairs(argument, "ENV"):
        env = [item for item in env if item.partition("=")[0] != key]
        env.append(f"{key}={value}")
    config["Env"] = env


def _expose(config: dict[str, Any], argument: str) -> None:
    ports = dict(config.get("ExposedPorts") or {})
    for port in argument.split():
        number, _, protocol = port.partition("/")
        if not number.isdigit() or not 0 < int(number) < 65536:
            raise UsageError(f"invalid port {port!r} in EXPOSE")
        protocol = protocol or "tcp"
        if protocol not in ("tcp", "udp", "sctp"):
            raise UsageError(f"invalid protocol {protocol!r} in EXPOSE")
        ports[f"{int(number)}/{protocol}"] = {}
    config["ExposedPorts"] = ports


def _label(config: dict[str, Any], argument: str) -> None:
    labels = dict(config.get("Labels") or {})
    labels.update(_pairs(argument, "LABEL"))
    config["Labels"] = labels


def _onbuild(config: dict[str, Any], argument: str) -> None:
    config["OnBuild"] = [*(config.get("OnBuild") or []), argument]


def _stopsignal(config: dict[str, Any], argument: str) -> None:
    config["StopSignal"] = argument


def _user(config: dict[str, Any], argument: str) -> None:
    config["User"] = argument


def _volume(config: dict[str, Any], argument: str) -> None:
    volumes = dict(config.get("Volumes") or {})
    for path in _json_or_words(argument):
        volumes[path] = {}
    config["Volumes"] = volumes


def _workdir(config: dict[str, Any], argument: str) -> None:
    config["WorkingDir"] = argument


_APPLY = {
    "CMD": _cmd,
    "ENTRYPOINT": _entrypoint,
    "ENV": _env,
    "EXPOSE": _expose,
    "LABEL": _label,
    "ONBUILD": _onbuild,
    "STOPSIGNAL": _stopsignal,
    "USER": _user,
    "VOLUME": _volume,
    "WORKDIR": _workdir,
}
