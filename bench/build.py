"""`build` of one ten-step Dockerfile side by side: dockyard and podman (docker when it answers).

Run as root from the repository:  sudo .venv/bin/python bench/build.py [--runs N]

Every engine builds the same context (a few MB: a few hundred small files and two larger ones) on
the same busybox base image, imported into each store. Two cases per engine: uncached
(`--no-cache`) and fully cached (the same build again, nothing changed). Cases run round-robin after
one warm-up each; the table gives medians and dockyard's ratio to each peer. The issue's target:
not slower than podman uncached, at least 2x faster cached.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

from run import IMAGE, busybox_engines, busybox_rootfs
from startup import Case, Engine, measure

TAG = "dockyard-bench/built:latest"

DOCKERFILE = f"""\
FROM {IMAGE}
ARG GREETING=hello
ENV APP_HOME=/app PATH=/app/bin:$PATH
LABEL org.example.bench=build
WORKDIR $APP_HOME
COPY data/ ./data/
RUN mkdir -p bin && echo "$GREETING" > greeting && find data -type f | wc -l > count
COPY blobs/one.bin blobs/two.bin ./blobs/
RUN cat greeting count && du -s . > size
EXPOSE 8080
CMD ["sh", "-c", "cat /app/greeting"]
"""


def write_context(directory: Path) -> Path:
    """The build context: the Dockerfile, 300 small files and two 2 MB blobs."""
    (directory / "Dockerfile").write_text(DOCKERFILE)
    data = directory / "data"
    for index in range(300):
        sub = data / f"group{index % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"file{index}.txt").write_text(f"line {index}\n" * 20)
    blobs = directory / "blobs"
    blobs.mkdir()
    for name in ("one.bin", "two.bin"):
        (blobs / name).write_bytes(os.urandom(2 << 20))
    return directory


def cases_for(engine: Engine, context: Path) -> list[Case]:
    """The engine's uncached and cached builds of the context."""
    base = [engine.binary, *engine.store_args, "build", "-q", "--network", "none", "-t", TAG]
    return [
        Case(engine.name, "uncached", [*base, "--no-cache", str(context)]),
        Case(engine.name, "cached", [*base, str(context)]),
    ]


def report(cases: list[Case], *, runs: int) -> str:
    """Medians in milliseconds and dockyard's ratio to every peer for the same case."""
    lines = [f"build of a ten-step Dockerfile: median of {runs} runs, milliseconds (lower is better)"]
    medians = {(c.engine, c.action): statistics.median(c.samples) for c in cases if c.samples}
    for (engine, action), median in sorted(medians.items()):
        mine = medians.get(("dockyard", action))
        ratio = f"dockyard/{engine} = {mine / median:.2f}x" if mine and engine != "dockyard" else ""
        lines.append(f"{engine:<10} {action:<10} {median * 1000:9.1f}   {ratio}")
    lines += [f"failed: {case.engine} {case.action}: {case.error}" for case in cases if case.error]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Prepare every engine with the same base image, build side by side, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (default 5)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before a build counts as failed"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("build.py: run as root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as temp, contextlib.ExitStack() as stack:
        work = Path(temp)
        engines = busybox_engines(work, busybox_rootfs(work / "rootfs"), stack, timeout=args.timeout)
        context = work / "context"
        context.mkdir()
        write_context(context)
        cases = [case for engine in engines for case in cases_for(engine, context)]
        measure(cases, runs=args.runs, timeout=args.timeout)
        print(report(cases, runs=args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
