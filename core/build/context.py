"""The build context: a directory, a tar stream, or nothing but a Dockerfile read from stdin.

    open_directory_context(directory, dockerfile=None, dockerfile_text=None) -> BuildContext
    open_stream_context(stream, dockerfile=None) -> BuildContext

Docker's CLI rules:
- `docker build DIR`: the Dockerfile is `DIR/Dockerfile` (or `DIR/dockerfile`) unless `-f` names
  another file, a host path the caller resolves against its working directory; `-f -` gives the
  Dockerfile's text instead (`dockerfile_text`).
- `docker build - < file`: stdin is either a tar archive (gzip, bzip2, xz, zstd or plain), which is
  the context and holds the Dockerfile (`-f` is then a path inside it), or a Dockerfile alone with
  an empty context.
- The ignore file is `<Dockerfile>.dockerignore` next to the Dockerfile when it exists, else
  `.dockerignore` at the context root. The Dockerfile and the ignore file are read even when the
  ignore file excludes them; excluded, a COPY cannot pick them up.

A context from a stream is unpacked into a private temporary directory that `close()` (or leaving
the `with` block) removes.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from dockyard.core.build.dockerignore import IgnoreMatcher
from dockyard.core.build.sources import SourceTree
from dockyard.core.compression import open_decompressed
from dockyard.core.errors import UsageError
from dockyard.core.rootpath import read_file_in_root
from dockyard.core.tree_archive import Ownership, extract_tree

__all__ = ["DEFAULT_DOCKERFILE", "BuildContext", "open_directory_context", "open_stream_context"]

DEFAULT_DOCKERFILE = "Dockerfile"
_IGNORE_FILE = ".dockerignore"
_DOCKERFILE_LIMIT = 16 << 20
_TAR_BLOCK = 512


@dataclass
class BuildContext:
    """A build context on disk, its Dockerfile's bytes and its ignore rules.

    `temporary` says whether `root` is a private copy `close()` removes.
    """

    root: str
    dockerfile: bytes
    dockerfile_name: str
    ignore: IgnoreMatcher
    temporary: bool = False

    @property
    def tree(self) -> SourceTree:
        """The context as a COPY source: its root with its ignore rules."""
        return SourceTree(self.root, self.ignore)

    def close(self) -> None:
        """Remove the private copy of a streamed context (nothing for a directory)."""
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)
            self.temporary = False

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _ignore_for(root: str, dockerfile_path: str | None) -> IgnoreMatcher:
    """The rules of `<Dockerfile>.dockerignore` if it exists, else of the context's .dockerignore."""
    if dockerfile_path is not None:
        try:
            return IgnoreMatcher.from_text(Path(dockerfile_path + _IGNORE_FILE).read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            pass
    text = read_file_in_root(root, _IGNORE_FILE)
    return IgnoreMatcher.from_text(text) if text is not None else IgnoreMatcher()


def _read_dockerfile(path: str) -> bytes:
    try:
        with open(path, "rb") as source:
            data = source.read(_DOCKERFILE_LIMIT + 1)
    except (FileNotFoundError, NotADirectoryError):
        raise UsageError(f"unable to prepare context: Cannot locate specified Dockerfile: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"unable to prepare context: the Dockerfile {path} is a directory") from None
    if len(data) > _DOCKERFILE_LIMIT:
        raise UsageError(f"the Dockerfile {path} is larger than {_DOCKERFILE_LIMIT >> 20} MiB")
    return data


def open_directory_context(
    directory: str | Path, *, dockerfile: str | Path | None = None, dockerfile_text: bytes | None = None
) -> BuildContext:
    """The context `directory` with its Dockerfile: `dockerfile_text` when given (`-f -`), else the
    file `dockerfile` (a host path), else `Dockerfile` or `dockerfile` at the context root."""
    root = os.path.abspath(directory)
    if not os.path.isdir(root):
        raise UsageError(f'unable to prepare context: path "{directory}" not found')
    if dockerfile_text is not None:
        return BuildContext(root, dockerfile_text, DEFAULT_DOCKERFILE, _ignore_for(root, None))
    if dockerfile is None:
        path = os.path.join(root, DEFAULT_DOCKERFILE)
        if not os.path.exists(path) and os.path.exists(os.path.join(root, "dockerfile")):
            path = os.path.join(root, "dockerfile")
    else:
        path = os.path.abspath(dockerfile)
    data = _read_dockerfile(path)
    return BuildContext(root, data, os.path.basename(path), _ignore_for(root, path))


def _is_tar(head: bytes) -> bool:
    if len(head) < _TAR_BLOCK:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:_TAR_BLOCK], tarfile.ENCODING, "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def open_stream_context(stream: BinaryIO, *, dockerfile: str | None = None) -> BuildContext:
    """The context read from `stream` (`docker build -`): a tar archive holding the context, where
    `dockerfile` is a path inside it, or else the Dockerfile itself with an empty context."""
    reader = open_decompressed(stream)
    head = reader.read(_TAR_BLOCK)
    root = tempfile.mkdtemp(prefix="dockyard-context-")
    done = False
    try:
        context = _unpack(root, head, reader, dockerfile)
        done = True
        return context
    finally:
        if not done:
            shutil.rmtree(root, ignore_errors=True)


def _unpack(root: str, head: bytes, reader: BinaryIO, dockerfile: str | None) -> BuildContext:
    """Fill the private directory `root` from the stream whose first bytes are `head`."""
    if not _is_tar(head):
        text = head + reader.read(_DOCKERFILE_LIMIT + 1 - len(head))
        if len(text) > _DOCKERFILE_LIMIT:
            raise UsageError(f"the Dockerfile on stdin is larger than {_DOCKERFILE_LIMIT >> 20} MiB")
        return BuildContext(root, text, DEFAULT_DOCKERFILE, IgnoreMatcher(), temporary=True)
    into = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        extract_tree(cast(BinaryIO, _Prepended(head, reader)), into_fd=into, ownership=Ownership.CALLER)
    finally:
        os.close(into)
    name = dockerfile or DEFAULT_DOCKERFILE
    data = read_file_in_root(root, name, limit=_DOCKERFILE_LIMIT)
    if data is None:
        raise UsageError(f"unable to prepare context: Cannot locate specified Dockerfile: {name}")
    return BuildContext(root, data, os.path.basename(name), _ignore_for(root, None), temporary=True)


class _Prepended(io.RawIOBase):
    """`head` followed by the rest of `stream`: the bytes read to tell a tar from a Dockerfile."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
