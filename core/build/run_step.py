"""A RUN step: a container on the step's parent image, run to completion, its changes kept.

The container is an ordinary one (the selected storage, isolation and network drivers assemble
it, lifecycle hooks hear about it), created with the image's user, working directory and the
step's environment, and with no entry point: RUN never goes through ENTRYPOINT. Its output, standard
error included, goes to the build's output as it happens, as the classic builder streams both.
Whatever becomes of the step, the container is removed with its anonymous volumes, as the classic
builder's `--rm` does.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TextIO

from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError
from dockyard.core.image_draft import ImageDraft

__all__ = ["RunFailed", "RunStep", "run_step"]


class RunFailed(DockyardError):
    """A RUN command exited non-zero; the build stops with Docker's message."""

    def __init__(self, command: str, code: int) -> None:
        super().__init__(f"The command '{command}' returned a non-zero code: {code}")
        self.code = code


@dataclass(frozen=True)
class RunStep:
    """What one RUN executes and where."""

    image_id: str
    argv: tuple[str, ...]
    environment: tuple[str, ...]
    workdir: str
    user: str
    network: str | None
    created_by: str


def run_step(engine: Engine, step: RunStep, draft: ImageDraft, *, out: TextIO, quiet: bool) -> None:
    """Run the step's container, add its changes to `draft`; RunFailed on a non-zero exit."""
    from dockyard.core.attach import attach
    from dockyard.core.lifecycle import create_container, finish_attached, remove_container, start_container
    from dockyard.core.run_config import CreateOptions

    options = CreateOptions(
        image=step.image_id,
        command=list(step.argv),
        entrypoint="",
        env=list(step.environment),
        workdir=step.workdir or None,
        user=step.user or None,
        network=step.network,
        pull="never",
        attach_stdout=not quiet,
        attach_stderr=not quiet,
    )
    container = create_container(engine, options)
    try:
        if not quiet:
            out.write(f" ---> Running in {container.id[:12]}\n")
            out.flush()
        start_container(engine, container, attach=True)
        socket_path = engine.attach_socket(container.id)

        def cleanup(code: int) -> None:
            finish_attached(engine, container.id, code)

        out.flush()
        # attach writes to sys.stdout and sys.stderr (binary, through `.buffer`): both go to `out`
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = attach(
                socket_path, stdin=False, tty=False, stdout=not quiet, stderr=not quiet, cleanup=cleanup
            )
        if code != 0:
            raise RunFailed(" ".join(step.argv), code)
        draft.add_layer_from_container(container.id, created_by=step.created_by)
    finally:
        fresh = engine.containers.load(container.id)
        remove_container(engine, fresh, force=True, volumes=True)
        if not quiet:
            out.write(f"Removing intermediate container {container.id[:12]}\n")
