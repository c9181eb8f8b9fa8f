"""One Dockerfile step, planned: the history line it records, the text the cache keys on, and what
it does to the image under construction.

Planning comes before the cache lookup and does the work the key needs (resolving COPY sources and
checksumming them, downloading ADD URLs); applying happens only on a miss. The history lines
follow Docker's classic builder (`/bin/sh -c #(nop)  CMD [...]`, `|1 A=b /bin/sh -c make`), so
`history` reads the same as it does for images Docker built.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TextIO

from dockyard.core.build import instructions as ins
from dockyard.core.build.expand import StageScope
from dockyard.core.build.sources import SourceTree
from dockyard.core.engine import Engine
from dockyard.core.errors import UsageError
from dockyard.core.image_draft import ImageDraft
from dockyard.core.images import Image

__all__ = ["StagePlan", "StageState", "StepPlan", "plan_step"]

DEFAULT_SHELL = ("/bin/sh", "-c")
_NOP = "/bin/sh -c #(nop) "


@dataclass
class StageState:
    """A stage being built: its current image (None: scratch, nothing committed yet) and what the
    instructions so far decided that the image config does not hold."""

    image: Image | None
    scope: StageScope
    onbuild: list[str] = field(default_factory=list)
    author: str = ""
    cmd_set: bool = False

    @property
    def config(self) -> dict[str, Any]:
        """The current image's runtime config (empty for scratch)."""
        if self.image is None:
            return {}
        runtime: dict[str, Any] = self.image.config.get("config") or {}
        return runtime

    @property
    def workdir(self) -> str:
        """The working directory instructions are relative to."""
        return str(self.config.get("WorkingDir") or "/")

    @property
    def shell(self) -> tuple[str, ...]:
        """The shell that runs shell-form commands."""
        return tuple(self.config.get("Shell") or DEFAULT_SHELL)


@dataclass(frozen=True)
class StagePlan:
    """What every step of a build shares: the engine, the build's context and options, and the
    images of the stages already built (by index and by name)."""

    engine: Engine
    context: SourceTree
    stages: dict[str, str]
    network: str | None
    quiet: bool
    out: TextIO
    pull_image: Callable[[str], Image]


@dataclass
class StepPlan:
    """A planned step: `created_by` for the history, `cache_text` for the cache key (the history
    line plus whatever content it copies), and `apply` to run on a cache miss."""

    created_by: str
    apply: Callable[[ImageDraft], None]
    cache_text: str = ""

    def __post_init__(self) -> None:
        if not self.cache_text:
            self.cache_text = self.created_by


def _json(values: object) -> str:
    return json.dumps(values)


def _command(command: ins.Command, shell: tuple[str, ...]) -> list[str]:
    """A RUN/CMD/ENTRYPOINT command as argv: exec form as written, shell form through the SHELL."""
    return [*shell, command.args[0]] if command.shell_form else list(command.args)


def _config_step(created_by: str, edit: Callable[[dict[str, Any]], None]) -> StepPlan:
    """A step that only changes the config: edit it and record an empty-layer history entry."""

    def apply(draft: ImageDraft) -> None:
        edit(draft.config)
        draft.add_history(created_by=created_by)

    return StepPlan(created_by, apply)


def plan_step(
    instruction: ins.Instruction, state: StageState, plan: StagePlan, resources: ExitStack
) -> StepPlan:
    """Plan one substituted instruction of the stage `state`; mounts or downloads the plan needs
    stay open in `resources` until the step is done."""
    if isinstance(instruction, ins.Run):
        return _plan_run(instruction, state, plan)
    if isinstance(instruction, ins.Copy):  # ADD too
        from dockyard.core.build.copy_step import plan_copy_step

        created_by, apply = plan_copy_step(instruction, state, plan, resources)
        return StepPlan(created_by, apply)
    if isinstance(instruction, ins.Workdir):
        return _plan_workdir(instruction, state, plan, resources)
    return _plan_config(instruction, state)


def _plan_run(instruction: ins.Run, state: StageState, plan: StagePlan) -> StepPlan:
    from dockyard.core.build.run_step import RunStep, run_step

    argv = _command(instruction.command, state.shell)
    args = state.scope.arg_environment()
    prefix = f"|{len(args)} " + " ".join(f"{name}={value}" for name, value in sorted(args.items())) + " "
    created_by = (prefix if args else "") + " ".join(argv)
    network = instruction.network or plan.network

    def apply(draft: ImageDraft) -> None:
        image_id = state.image.id if state.image is not None else draft.commit()
        step = RunStep(
            image_id=image_id,
            argv=tuple(argv),
            environment=tuple(state.scope.run_environment()),
            workdir=state.workdir,
            user=str(state.config.get("User") or ""),
            network=network,
            created_by=created_by,
        )
        run_step(plan.engine, step, draft, out=plan.out, quiet=plan.quiet)

    return StepPlan(created_by, apply)


def _plan_workdir(
    instruction: ins.Workdir, state: StageState, plan: StagePlan, resources: ExitStack
) -> StepPlan:
    """WORKDIR sets the working directory and, like Docker, creates it when the image lacks it."""
    from dockyard.core.build.image_root import mounted_image

    path = posixpath.normpath(posixpath.join(state.workdir, instruction.path))
    root = resources.enter_context(mounted_image(plan.engine, state.image))
    missing = _missing_directories(root, path)
    created_by = f"{_NOP} WORKDIR {path}"

    def apply(draft: ImageDraft) -> None:
        draft.config["WorkingDir"] = path
        if missing:
            from dockyard.core.build.copy_step import directories_tar

            with directories_tar(missing) as stream:
                draft.add_layer_from_tar(stream, created_by=created_by)
        else:
            draft.add_history(created_by=created_by)

    return StepPlan(created_by, apply)


def _missing_directories(root: str, path: str) -> list[str]:
    """The components of the absolute image path `path` that do not exist below `root`, top first."""
    from dockyard.core.rootpath import split_inside

    missing: list[str] = []
    current = ""
    for part in split_inside(path):
        current = f"{current}/{part}"
        if missing or not os.path.lexists(root + current):
            missing.append(current)
    return missing


def _ports(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """EXPOSE's ports as the config's ExposedPorts: `80` is `80/tcp`, ranges are expanded."""
    ports: dict[str, dict[str, Any]] = {}
    for value in values:
        number, _, protocol = value.partition("/")
        protocol = (protocol or "tcp").lower()
        low, _, high = number.partition("-")
        if not low.isdigit() or (high and not high.isdigit()) or protocol not in ("tcp", "udp", "sctp"):
            raise UsageError(f"invalid containerPort: {value}")
        for port in range(int(low), int(high or low) + 1):
            ports[f"{port}/{protocol}"] = {}
    return ports


def _healthcheck(instruction: ins.Healthcheck) -> dict[str, Any]:
    check: dict[str, Any] = {"Test": list(instruction.test)}
    for key, value in (
        ("Interval", instruction.interval),
        ("Timeout", instruction.timeout),
        ("StartPeriod", instruction.start_period),
        ("StartInterval", instruction.start_interval),
        ("Retries", instruction.retries),
    ):
        if value:
            check[key] = value
    return check


def _plan_config(instruction: ins.Instruction, state: StageState) -> StepPlan:
    """Every instruction that changes only the image config (or nothing, for ARG)."""
    shell = state.shell
    if isinstance(instruction, ins.Cmd):
        cmd = _command(instruction.command, shell)
        state.cmd_set = True
        return _config_step(f"{_NOP} CMD {_json(cmd)}", lambda config: config.__setitem__("Cmd", cmd))
    if isinstance(instruction, ins.Entrypoint):
        entrypoint = _command(instruction.command, shell)
        reset_cmd = not state.cmd_set

        def set_entrypoint(config: dict[str, Any]) -> None:
            config["Entrypoint"] = entrypoint
            if reset_cmd:  # Docker: an ENTRYPOINT drops the CMD inherited from the base image
                config.pop("Cmd", None)

        return _config_step(f"{_NOP} ENTRYPOINT {_json(entrypoint)}", set_entrypoint)
    if isinstance(instruction, ins.Env):
        environment = state.scope.config_env()
        shown = " ".join(f"{name}={value}" for name, value in instruction.pairs)
        return _config_step(f"{_NOP} ENV {shown}", lambda config: config.__setitem__("Env", environment))
    if isinstance(instruction, ins.Label):
        pairs = dict(instruction.pairs)
        shown = " ".join(f"{name}={value}" for name, value in instruction.pairs)
        return _config_step(
            f"{_NOP} LABEL {shown}",
            lambda config: config.__setitem__("Labels", {**(config.get("Labels") or {}), **pairs}),
        )
    if isinstance(instruction, ins.Expose):
        ports = _ports(instruction.ports)
        return _config_step(
            f"{_NOP} EXPOSE {' '.join(ports)}",
            lambda config: config.__setitem__(
                "ExposedPorts", {**(config.get("ExposedPorts") or {}), **ports}
            ),
        )
    if isinstance(instruction, ins.Volume):
        paths: dict[str, dict[str, Any]] = {path: {} for path in instruction.paths if path}
        if not paths:
            raise UsageError("VOLUME specified can not be an empty string")
        return _config_step(
            f"{_NOP} VOLUME {_json(list(paths))}",
            lambda config: config.__setitem__("Volumes", {**(config.get("Volumes") or {}), **paths}),
        )
    if isinstance(instruction, ins.User):
        user = instruction.user
        return _config_step(f"{_NOP} USER {user}", lambda config: config.__setitem__("User", user))
    if isinstance(instruction, ins.Stopsignal):
        signal = instruction.signal
        return _config_step(
            f"{_NOP} STOPSIGNAL {signal}", lambda config: config.__setitem__("StopSignal", signal)
        )
    if isinstance(instruction, ins.Shell):
        new_shell = list(instruction.args)
        return _config_step(
            f"{_NOP} SHELL {_json(new_shell)}", lambda config: config.__setitem__("Shell", new_shell)
        )
    if isinstance(instruction, ins.Healthcheck):
        check = _healthcheck(instruction)
        shown = "NONE" if check["Test"] == ["NONE"] else _json(check["Test"])
        return _config_step(
            f"{_NOP} HEALTHCHECK {shown}", lambda config: config.__setitem__("Healthcheck", check)
        )
    if isinstance(instruction, ins.Onbuild):
        state.onbuild.append(instruction.expression)
        triggers = list(state.onbuild)
        return _config_step(
            f"{_NOP} ONBUILD {instruction.expression}", lambda config: config.__setitem__("OnBuild", triggers)
        )
    if isinstance(instruction, ins.Maintainer):
        state.author = instruction.name
        return _config_step(f"{_NOP} MAINTAINER {instruction.name}", lambda config: None)
    if isinstance(instruction, ins.Arg):
        shown = " ".join(name if value is None else f"{name}={value}" for name, value in instruction.args)
        return _config_step(f"{_NOP} ARG {shown}", lambda config: None)
    raise UsageError(f"{instruction.keyword} is not supported in a build stage (line {instruction.line})")
