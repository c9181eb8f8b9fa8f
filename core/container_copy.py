"""`cp` between a container and the host, with Docker's rules for what lands where.

Which files of the container: a running container's own view, `/proc/PID/root` (its volumes,
binds and tmpfs mounts included); a stopped one's root filesystem, mounted through the storage
driver for the copy (its volumes are not part of it).

Safety: every path inside the container is resolved with the container's root as `/`
(`dockyard.core.rootpath.open_in_root`: openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, or an
O_NOFOLLOW walk where openat2 is refused). A symlink in the container, absolute or full of `..`,
therefore leads somewhere in the container or nowhere, never to the host's files; the entry itself
is then handled through its parent directory's descriptor (core/tree_archive.py), so a container
that swaps paths while the copy runs cannot redirect it either. The data travels as a tar stream
from a writer thread to the extracting side, as it does between Docker's client and daemon.

Docker's rules: a source ending in `/.` copies a directory's contents rather than the directory;
an existing destination directory receives the source under its own name; a missing destination
is created with the source's content (its parent must exist, and a trailing `/` demands a
directory); `-` is a tar stream on standard output or input. `-L` follows a symlink named as the
source (inside the container); a destination symlink is always followed, as Docker does.
Copies into the container belong to root unless `-a` keeps the archive's owners; copies out
belong to the user running `cp`.
"""

from __future__ import annotations

import os
import posixpath
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.core.containers import Container
from dockyard.core.engine import Engine
from dockyard.core.errors import DockyardError, NotFoundError, UsageError
from dockyard.core.rootpath import open_in_root, split_inside
from dockyard.core.tree_archive import Ownership, extract_tree, write_tree

__all__ = ["container_root", "copy_from_container", "copy_to_container", "split_location"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_LINKS = 40


def split_location(text: str) -> tuple[str | None, str]:
    """`CONTAINER:PATH` -> (container, path); a local path -> (None, path). As Docker reads it, an
    absolute path or one starting with `.` is local even when it holds a colon."""
    if text.startswith(("/", ".")) or ":" not in text:
        return None, text
    container, _, path = text.partition(":")
    return container, path


def _process_root(container: Container) -> int | None:
    """A descriptor of a running container's own root, `/proc/PID/root`; None when not running."""
    from dockyard.core.procs import alive

    if not (container.running and container.pid):
        return None
    try:
        fd = os.open(f"/proc/{container.pid}/root", _DIR_FLAGS)
    except (FileNotFoundError, ProcessLookupError):
        return None
    if alive(container.pid, container.state.get("PidStart")):
        return fd
    os.close(fd)  # the pid now names another process
    return None


@contextmanager
def container_root(engine: Engine, container: Container) -> Iterator[int]:
    """A directory descriptor of the container's root (see the module docstring)."""
    fd = _process_root(container)
    if fd is not None:
        try:
            yield fd
        finally:
            os.close(fd)
        return
    rootfs = engine.storage.mount(container.id)
    try:
        fd = os.open(rootfs, _DIR_FLAGS)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        engine.storage.unmount(container.id)


@dataclass(frozen=True)
class _Entry:
    """A path found in a tree: its parent directory (an open descriptor, -1 when the parent does
    not exist), its name there and its status (None when it does not exist)."""

    parent_fd: int
    name: str
    info: os.stat_result | None

    @property
    def is_dir(self) -> bool:
        return self.info is not None and stat.S_ISDIR(self.info.st_mode)


@contextmanager
def _locate(root_fd: int, path: str, *, follow: bool) -> Iterator[_Entry]:
    """Find `path` inside the root, following a final symlink (inside the root) with `follow`."""
    parts = split_inside(path)
    for _ in range(_MAX_LINKS):
        name = parts[-1] if parts else "."
        try:
            parent = open_in_root(root_fd, "/".join(parts[:-1]))
        except (FileNotFoundError, NotADirectoryError):
            yield _Entry(-1, name, None)
            return
        try:
            info: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            info = None
        if follow and info is not None and stat.S_ISLNK(info.st_mode):
            target = os.readlink(name, dir_fd=parent)
            os.close(parent)
            base = "" if target.startswith("/") else "/".join(parts[:-1])
            parts = split_inside(f"{base}/{target}")
            continue
        try:
            yield _Entry(parent, name, info)
        finally:
            os.close(parent)
        return
    raise UsageError(f"{path}: too many levels of symbolic links")


@contextmanager
def _destination(
    dest_root: int, path: str, *, source: _Entry, source_name: str, contents: bool
) -> Iterator[tuple[int, str]]:
    """Where the copy goes, by Docker's rules: (directory descriptor to extract into, name of the
    copy's top entry there, "." to merge into that directory itself)."""
    with _locate(dest_root, path, follow=True) as target:
        if target.is_dir:
            into = os.open(target.name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=target.parent_fd)
            try:
                yield into, "." if contents and source.is_dir else source_name
            finally:
                os.close(into)
            return
        if target.info is not None and source.is_dir:
            raise UsageError("cannot copy a directory to a file")
        if target.parent_fd < 0:
            raise NotFoundError(f"destination directory {posixpath.dirname(path.rstrip('/'))} does not exist")
        if path.endswith("/") and not source.is_dir:
            raise NotFoundError(f"destination directory {path} does not exist")
        yield target.parent_fd, target.name


def _transfer(produce: Callable[[BinaryIO], None], consume: Callable[[BinaryIO], None]) -> None:
    """Run `produce` (writing a tar stream) in a thread and `consume` (reading it) here."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    failures: list[Exception] = []

    def writer() -> None:
        try:
            with open(write_fd, "wb") as out:
                produce(out)
        except (DockyardError, OSError) as exc:  # BrokenPipeError: the reader gave up first
            failures.append(exc)

    thread = threading.Thread(target=writer, name="cp-archive", daemon=True)
    thread.start()
    try:
        with open(read_fd, "rb") as stream:
            consume(stream)
    finally:
        thread.join()
    if failures:
        raise DockyardError(f"cannot read the source: {failures[0]}") from failures[0]


def _check_source(entry: _Entry, path: str, where: str) -> None:
    if entry.info is None:
        raise NotFoundError(f"Could not find the file {path}{where}")
    if path.endswith("/") and not entry.is_dir:
        raise UsageError(f"{path}: not a directory")


def _copy(source: _Entry, destination: tuple[int, str], *, ownership: Ownership) -> None:
    into, top = destination
    _transfer(
        lambda out: write_tree(out, parent_fd=source.parent_fd, name=source.name, arcname=top),
        lambda stream: extract_tree(stream, into_fd=into, ownership=ownership),
    )


def copy_from_container(
    engine: Engine, container: Container, source: str, destination: str, *, follow: bool, stdout: BinaryIO
) -> None:
    """`cp CONTAINER:SOURCE DESTINATION` (DESTINATION `-`: a tar stream on `stdout`)."""
    contents = source == "." or source.endswith("/.")
    source_name = posixpath.basename(posixpath.normpath("/" + source)) or "."
    with container_root(engine, container) as root, _locate(root, source, follow=follow) as entry:
        _check_source(entry, source, f" in container {container.name}")
        if destination == "-":
            arcname = "." if contents else source_name
            write_tree(stdout, parent_fd=entry.parent_fd, name=entry.name, arcname=arcname)
            return
        # The host's own paths are the user's: resolve them normally, then confine the copy there.
        local = os.path.realpath(destination)
        host = os.open(os.path.dirname(local), _DIR_FLAGS)
        try:
            target = os.path.basename(local) + ("/" if destination.endswith("/") else "")
            with _destination(
                host, target, source=entry, source_name=source_name, contents=contents
            ) as where:
                _copy(entry, where, ownership=Ownership.CALLER)
        finally:
            os.close(host)


def copy_to_container(
    engine: Engine,
    container: Container,
    source: str,
    destination: str,
    *,
    follow: bool,
    keep_owner: bool,
    stdin: BinaryIO,
) -> None:
    """`cp SOURCE CONTAINER:DESTINATION` (SOURCE `-`: a tar stream from `stdin`)."""
    ownership = Ownership.ARCHIVE if keep_owner else Ownership.ROOT
    with container_root(engine, container) as root:
        if source == "-":
            with _locate(root, destination, follow=True) as target:
                if not target.is_dir:
                    raise UsageError(f'destination "{container.name}:{destination}" must be a directory')
                into = os.open(target.name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=target.parent_fd)
                try:
                    extract_tree(stdin, into_fd=into, ownership=ownership)
                finally:
                    os.close(into)
            return
        contents = source == "." or source.endswith("/.")
        local = os.path.realpath(source) if follow else os.path.abspath(source)
        host = os.open(os.path.dirname(local), _DIR_FLAGS)
        try:
            with _locate(host, os.path.basename(local), follow=False) as entry:
                _check_source(entry, source, "")
                source_name = os.path.basename(local) or "."
                with _destination(
                    root, destination, source=entry, source_name=source_name, contents=contents
                ) as where:
                    _copy(entry, where, ownership=ownership)
        finally:
            os.close(host)
