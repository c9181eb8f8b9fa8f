"""Staging one layer in a child process, so an image's layers extract on every core.

Extracting a layer is inflate, two hashes, a tar walk and file writes: the hashes and inflate let
go of the GIL, the tar walk and the per-file system calls do not, so layers staged by threads of one
process share one core most of the time. A forked child per layer has no GIL to share: on two cores
five layers stage in about 0.7 s where five threads took 0.9 s and one thread 1.2 s.

The parent feeds the child the layer's blob through a pipe as it reads it (from the download as it
arrives, or from the finished file), so the child needs nothing from the parent's threads. The child
enters the storage driver's `stage_diff`, checks the diff against its diff_id, reports the
StagedDiff and then keeps the context open until the parent has committed the diff or given
up: the parent writes a byte to the verdict pipe, the child leaves the context (discarding
whatever was not committed, as in one process) and exits. If the parent dies, the closed pipes
end the child the same way; if the child dies, the parent gets no report and fails the layer.

Only the forking thread exists in the child: it uses the storage driver, the layer streams and the
filesystem, and it closes every descriptor it did not get for its job, so that no other child holds
a pipe whose end-of-file its sibling waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import pickle
import shutil
import sys
import traceback
from contextlib import ExitStack
from typing import TYPE_CHECKING, BinaryIO, NoReturn, cast

from dockyard.core.errors import DockyardError, DriverFailed
from dockyard.core.layer_streams import open_layer
from dockyard.core.layers import check_diff
from dockyard.core.linux.process import close_fds_except

if TYPE_CHECKING:
    from dockyard.core.drivers import DetachedDiffs, StagedDiff
    from dockyard.core.layer_blobs import LayerBlob

__all__ = ["stage_in_child"]

_CHUNK = 1 << 20
_F_SETPIPE_SZ = 1031


def stage_in_child(
    driver: DetachedDiffs, raw: BinaryIO, blob: LayerBlob, stack: ExitStack, *, base: bool
) -> StagedDiff:
    """Stage the layer whose compressed blob `raw` yields in a child process; the child holds the
    staged diff until `stack` closes (after the caller committed it, or to discard it).

    Errors the child meets (a bad tar, a digest mismatch) are raised here; an error reading `raw`
    (DownloadInterrupted) is raised after the child was told to stop.
    """
    data_r, data_w = os.pipe2(os.O_CLOEXEC)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    verdict_r, verdict_w = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # a bigger pipe means fewer wake-ups; the default works too
        fcntl.fcntl(data_w, _F_SETPIPE_SZ, _CHUNK)
    pid = os.fork()
    if pid == 0:
        _child(driver, blob, base=base, data=data_r, report=report_w, verdict=verdict_r)
    for fd in (data_r, report_w, verdict_r):
        os.close(fd)
    stack.callback(_release, pid, verdict_w)
    with contextlib.suppress(BrokenPipeError), os.fdopen(data_w, "wb") as pipe:
        shutil.copyfileobj(raw, pipe, _CHUNK)  # a child that failed stops reading: the copy ends
    return _outcome(report_r)


def _outcome(fd: int) -> StagedDiff:
    """The child's report: its StagedDiff, or the exception it met, raised here."""
    with os.fdopen(fd, "rb") as report:
        data = report.read()
    if not data:
        raise DriverFailed("the process staging a layer died before it reported")
    kind, value = pickle.loads(data)
    if kind == "error":
        raise cast(BaseException, value)
    return cast("StagedDiff", value)


def _release(pid: int, verdict: int) -> None:
    """Let the child leave `stage_diff` (it keeps only what was committed) and wait for it."""
    with contextlib.suppress(BrokenPipeError):
        os.write(verdict, b"\0")
    os.close(verdict)
    os.waitpid(pid, 0)


def _child(
    driver: DetachedDiffs, blob: LayerBlob, *, base: bool, data: int, report: int, verdict: int
) -> NoReturn:
    """The child's whole life: stage, report, wait for the verdict, leave the context, exit.

    It never returns into the parent's code it was forked from. Cyclic garbage collection is off:
    a collected object of the parent's could close a descriptor number the child reuses.
    """
    gc.disable()
    try:
        close_fds_except({0, 1, 2, data, report, verdict})
        with os.fdopen(data, "rb") as archive:
            layer = open_layer(archive, blob.compression, compressed_size=blob.size)
            with driver.stage_diff(layer, base=base) as staged:
                while archive.read(_CHUNK):  # the rest of the pipe, so the parent's copy ends
                    pass
                check_diff(staged.diff, blob.diff_id)
                _report(report, ("staged", staged))
                os.read(verdict, 1)  # a byte or end-of-file: the parent committed the diff or gave up
    except (DockyardError, OSError) as exc:
        _report(report, ("error", _portable(exc)))
    finally:
        if sys.exc_info()[0] is not None:
            traceback.print_exc()  # a bug: the parent sees no report; say where before exiting
        os._exit(0)


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a DriverFailed with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except (pickle.PicklingError, TypeError, AttributeError):
        return DriverFailed(f"staging a layer failed: {exc}")
    return exc


def _report(fd: int, message: tuple[str, object]) -> None:
    """Send one message and close the report pipe; a parent that went away is no one to tell."""
    with contextlib.suppress(BrokenPipeError), os.fdopen(fd, "wb") as pipe:
        pipe.write(pickle.dumps(message))
