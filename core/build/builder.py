"""`build`: a Dockerfile's stages executed step by step, each step an image, with a cache.

Docker's classic builder is the model: every step commits an (untagged) image whose parent is
the previous step's, so `history` shows the steps and a rebuild can reuse them; the output is
its "Step N/M : ..." lines with ` ---> Using cache` and the step's image id. Stages are built in
file order up to the target, each stage's last image is what `FROM stage` and `COPY --from`
use, and only the target's image is tagged. A failed step leaves the images of the steps before
it (the cache of the next attempt) and nothing tagged.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from dockyard.core.build import instructions as ins
from dockyard.core.build.cache import BuildCache
from dockyard.core.build.context import BuildContext
from dockyard.core.build.dockerfile import Dockerfile, Stage
from dockyard.core.build.expand import BuildArgs, GlobalScope, StageScope
from dockyard.core.build.steps import StagePlan, StageState, plan_step
from dockyard.core.engine import Engine
from dockyard.core.errors import UsageError
from dockyard.core.image_draft import ImageDraft
from dockyard.core.images import Image

__all__ = ["BuildOptions", "build_image", "open_context"]

SCRATCH = "scratch"


@dataclass
class BuildOptions:
    """The flags of `docker build` that shape the result."""

    context: str
    dockerfile: str | None = None
    tags: Sequence[str] = ()
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str | None = None
    quiet: bool = False


@contextmanager
def open_context(options: BuildOptions, stdin: BinaryIO) -> Iterator[BuildContext]:
    """The build context the options name: a directory, or `-` (a tar or a Dockerfile on stdin);
    `-f -` reads the Dockerfile from stdin with a directory context."""
    from dockyard.core.build.context import open_directory_context, open_stream_context

    if options.context == "-":
        if options.dockerfile == "-":
            raise UsageError("invalid argument: can't use stdin for both build context and dockerfile")
        context = open_stream_context(stdin, dockerfile=options.dockerfile)
    elif options.dockerfile == "-":
        context = open_directory_context(options.context, dockerfile_text=stdin.read())
    else:
        context = open_directory_context(options.context, dockerfile=options.dockerfile)
    with context:
        yield context


class _Builder:
    """One build: the parsed Dockerfile, its scopes, the cache and the output."""

    def __init__(self, engine: Engine, options: BuildOptions, context: BuildContext, out: TextIO) -> None:
        from dockyard.core.build.dockerfile import parse_dockerfile

        self.engine = engine
        self.options = options
        self.out = out
        self.dockerfile: Dockerfile = parse_dockerfile(context.dockerfile)
        self.target = self.dockerfile.target(options.target)
        self.build_args = BuildArgs(options.build_args)
        self.global_scope = GlobalScope(
            self.dockerfile.global_args, self.build_args, escape=self.dockerfile.escape
        )
        self.cache = BuildCache(engine)
        self.stage_images: dict[str, str] = {}
        self.plan = StagePlan(
            engine=engine,
            context=context.tree,
            stages=self.stage_images,
            network=options.network,
            quiet=options.quiet,
            out=out,
            pull_image=self._image,
        )
        self.total = len(self.dockerfile.instructions)
        self.number = {
            id(instruction): index + 1 for index, instruction in enumerate(self.dockerfile.instructions)
        }

    def say(self, text: str) -> None:
        if not self.options.quiet:
            self.out.write(text + "\n")
            self.out.flush()

    def step_line(self, instruction: ins.Instruction) -> None:
        self.say(f"Step {self.number[id(instruction)]}/{self.total} : {instruction.original}")

    def run(self) -> str:
        """Build every stage up to the target; return the target's image id."""
        for instruction in self.dockerfile.global_args:
            self.step_line(instruction)
        image_id = ""
        for stage in self.dockerfile.stages:
            image_id = self.build_stage(stage)
            if stage is self.target:
                break
        if self.options.labels:
            image_id = self._label(image_id)
        unused = self.build_args.unconsumed()
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        return image_id

    def _image(self, name: str) -> Image:
        """A base image by name, pulled when missing (or always, with `--pull`)."""
        from dockyard.core.registry.pull import ensure_image, pull_image

        if self.options.pull:
            return pull_image(self.engine, name, out=self.out)
        return ensure_image(self.engine, name, out=self.out)

    def build_stage(self, stage: Stage) -> str:
        from dockyard.core.build.dockerfile import parse_instruction

        self.step_line(stage.from_)
        base = self.global_scope.expand_from(stage.from_)
        image: Image | None
        if base.image.lower() == SCRATCH:
            image = None
        elif base.image.lower() in self.stage_images:
            image = self.engine.images.get(self.stage_images[base.image.lower()])
        else:
            image = self._image(base.image)
        if image is not None:
            self.say(f" ---> {image.id[7:19]}")
        runtime = (image.config.get("config") or {}) if image is not None else {}
        state = StageState(
            image=image, scope=StageScope(self.global_scope, image_env=_with_default_path(runtime.get("Env")))
        )
        triggers = runtime.get("OnBuild") or []
        if triggers:
            self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
        for trigger in triggers:
            self.execute(parse_instruction(trigger, escape=self.dockerfile.escape), state)
        for instruction in stage.instructions:
            self.step_line(instruction)
            self.execute(instruction, state)
        if state.image is None:
            with ImageDraft.from_scratch(self.engine) as draft:
                state.image = self.engine.images.get(draft.commit())
        self.stage_images[str(stage.index)] = state.image.id
        if stage.name:
            self.stage_images[stage.name] = state.image.id
        return state.image.id

    def execute(self, instruction: ins.Instruction, state: StageState) -> None:
        """Run one instruction: from the cache when it has the step, else for real."""
        step = state.scope.apply(instruction)
        parent = state.image.id if state.image is not None else None
        with ExitStack() as resources:
            plan = plan_step(step, state, self.plan, resources)
            cached = None if self.options.no_cache else self.cache.lookup(parent, plan.cache_text)
            if cached is not None:
                self.say(" ---> Using cache")
                image_id = cached
            else:
                with self._draft(state) as draft:
                    plan.apply(draft)
                    image_id = draft.commit(author=state.author)
                self.cache.store(parent, plan.cache_text, image_id)
        state.image = self.engine.images.get(image_id)
        self.say(f" ---> {image_id[7:19]}")

    @contextmanager
    def _draft(self, state: StageState) -> Iterator[ImageDraft]:
        """A draft on the stage's current image; the base image's ONBUILD triggers are not
        inherited (they ran in this stage), only the stage's own."""
        draft = (
            ImageDraft.from_image(self.engine, state.image)
            if state.image is not None
            else ImageDraft.from_scratch(self.engine)
        )
        with draft:
            draft.set_config("OnBuild", list(state.onbuild) or None)
            draft.set_config("Env", state.scope.config_env())
            yield draft

    def _label(self, image_id: str) -> str:
        """The target image with `--label` values added to its labels (not a cached step)."""
        with ImageDraft.from_image(self.engine, self.engine.images.get(image_id)) as draft:
            draft.config["Labels"] = {**(draft.config.get("Labels") or {}), **self.options.labels}
            return draft.commit()


def _with_default_path(env: list[str] | None) -> list[str]:
    """A stage's starting environment: the base image's `Env`, plus the default PATH when it has
    none, as Docker's builder gives every stage (so `ENV PATH=$PATH:/x` extends a real PATH, and a
    `FROM scratch` image carries one)."""
    from dockyard.core.defaults import DEFAULT_PATH

    entries = list(env or [])
    if not any(entry.startswith("PATH=") for entry in entries):
        entries.append(f"PATH={DEFAULT_PATH}")
    return entries


def build_image(engine: Engine, options: BuildOptions, *, stdin: BinaryIO | None = None, out: TextIO) -> str:
    """Build the image `options` describe, tag it, and return its id."""
    from dockyard.core.image_ops import tag_image

    with open_context(options, stdin or sys.stdin.buffer) as context:
        builder = _Builder(engine, options, context, out)
        image_id = builder.run()
    builder.say(f"Successfully built {image_id[7:19]}")
    for tag in options.tags:
        reference = tag_image(engine, image_id, tag)
        builder.say(f"Successfully tagged {reference.familiar()}")
    return image_id
