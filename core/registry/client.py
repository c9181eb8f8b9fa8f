"""One registry endpoint over httpx: the distribution API calls pull and push are made of.

Everything received is checked before anyone uses it. A manifest is read with a size cap and its
digest computed over the bytes as received (and compared with the digest asked for, or with the
registry's Docker-Content-Digest header when asked by tag). A blob is streamed to a file with a
running hash and must end with exactly the digest and size of its descriptor; a download that breaks
off resumes where it stopped with an HTTP Range request (or starts again when the registry ignores
the range). Connection failures, 5xx and 429 answers are retried with exponential backoff.

httpx's exceptions stop here: a failed request becomes a RegistryError worded like Docker's,
`Get "https://registry/v2/": <reason>`, and content that does not match becomes a ContentError.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx

from dockyard.core import __version__
from dockyard.core.errors import ContentError, RegistryError
from dockyard.core.registry.auth import AuthState, RegistryAuth, error_text
from dockyard.core.registry.credentials import Credentials
from dockyard.core.registry.hosts import Endpoint
from dockyard.core.registry.media import MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, Descriptor

__all__ = ["FetchedManifest", "ProgressCallback", "RegistryClient"]

ProgressCallback = Callable[[int], None]

_ATTEMPTS = 5
_PING_ATTEMPTS = 2
_BACKOFF = 0.25
_MAX_BACKOFF = 4.0
_CHUNK = 1 << 20
_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_USER_AGENT = f"dockyard/{__version__}"


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest as received: its bytes, the Content-Type it came with, and its digest."""

    data: bytes
    content_type: str
    digest: str


def _describe(exc: httpx.TransportError) -> str:
    """A transport failure in a user's words, TLS verification failures named as such."""
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        reason = text.partition("certificate verify failed:")[2].partition("(_ssl")[0].strip()
        return f"tls: failed to verify certificate: {reason or 'unknown authority'}"
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout: {text}"
    return text


def _is_tls_failure(exc: httpx.TransportError) -> bool:
    text = str(exc)
    return "SSL" in text or "CERTIFICATE" in text or "TLS" in text


def _checked_digest(digest: str) -> hashlib._Hash:
    algorithm = digest.partition(":")[0]
    if algorithm not in ("sha256", "sha512"):
        raise ContentError(f"unsupported digest algorithm in {digest}")
    return hashlib.new(algorithm)


class RegistryClient:
    """The distribution API of one endpoint; safe to share between threads."""

    def __init__(self, endpoint: Endpoint, *, credentials: Credentials | None) -> None:
        self.endpoint = endpoint
        self._auth = AuthState(credentials)
        self._http = httpx.Client(
            verify=endpoint.ssl_context(),
            timeout=httpx.Timeout(60.0, connect=15.0),
            follow_redirects=True,
            headers={"User-Agent": _USER_AGENT},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
        )
        self._base = ""

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    @property
    def base(self) -> str:
        """`scheme://host/v2/` of the scheme that answered the ping."""
        if not self._base:
            self.ping()
        return self._base

    # --- requests -----------------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/ to pick a scheme (HTTPS, then HTTP if insecure) and learn the auth challenge."""
        failure: RegistryError | None = None
        for scheme in self.endpoint.schemes:
            url = f"{scheme}://{self.endpoint.host}/v2/"
            try:
                response = self._with_retries(
                    functools.partial(self._http.get, url), "GET", url, attempts=_PING_ATTEMPTS
                )
            except RegistryError as exc:
                failure = exc
                continue
            if response.status_code == 401:
                self._auth.learn(response)
            elif response.status_code >= 400:
                raise RegistryError(f'Get "{url}": {error_text(response)}', status=response.status_code)
            self._base = url
            return
        assert failure is not None  # schemes is never empty
        raise failure

    def check_login(self) -> None:
        """Prove the credentials: ping, then authenticate against /v2/ with them."""
        self.ping()
        url = self.base
        if self._auth.challenge is None:
            return
        response = self._request("GET", url, scopes=frozenset())
        response.close()

    def _with_retries(
        self, send: Callable[[], httpx.Response], method: str, url: str, *, attempts: int = _ATTEMPTS
    ) -> httpx.Response:
        """Send, retrying transport failures and retryable statuses with exponential backoff.

        TLS failures are not retried: a wrong certificate or a plain-HTTP server stays so.
        """
        for attempt in range(1, attempts + 1):
            try:
                response = send()
            except httpx.TransportError as exc:
                if attempt == attempts or _is_tls_failure(exc) or isinstance(exc, httpx.UnsupportedProtocol):
                    raise RegistryError(f'{method.title()} "{url}": {_describe(exc)}') from exc
            else:
                if response.status_code not in _RETRYABLE_STATUS or attempt == attempts:
                    return response
                response.close()
            time.sleep(min(_BACKOFF * 2 ** (attempt - 1), _MAX_BACKOFF))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _request(
        self,
        method: str,
        url: str,
        *,
        scopes: frozenset[str],
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """A whole (small) request with auth and retries; a status not in `ok` raises."""
        send = functools.partial(
            self._http.request,
            method,
            url,
            headers=headers,
            content=content,
            auth=RegistryAuth(self._auth, scopes),
        )
        response = self._with_retries(send, method, url)
        if response.status_code not in ok:
            raise _status_error(method, url, response)
        return response

    @contextmanager
    def _stream(
        self, url: str, *, scopes: frozenset[str], headers: dict[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """A streamed GET with auth (no retries: callers resume). 2xx only, else RegistryError."""
        request = self._http.build_request("GET", url, headers=headers)
        try:
            response = self._http.send(request, auth=RegistryAuth(self._auth, scopes), stream=True)
        except httpx.TransportError as exc:
            raise _Interrupted(exc) from exc
        try:
            if response.status_code >= 300:
                response.read()
                error = _status_error("GET", url, response)
                if response.status_code in _RETRYABLE_STATUS:
                    raise _Interrupted(error)
                raise error
            yield response
        finally:
            response.close()

    # --- manifests ------------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> FetchedManifest:
        """Fetch a manifest by tag or digest; its digest is checked against what was asked for."""
        url = f"{self.base}{repository}/manifests/{reference}"
        pull = frozenset({f"repository:{repository}:pull"})
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with self._stream(url, scopes=pull, headers={"Accept": MANIFEST_ACCEPT}) as response:
                    data = _read_capped(response, MAX_MANIFEST_SIZE, "manifest")
                    content_type = response.headers.get("Content-Type", "")
                    header_digest = response.headers.get("Docker-Content-Digest", "")
                break
            except _Interrupted as exc:
                if attempt == _ATTEMPTS:
                    raise exc.as_registry_error("Get", url) from exc
                time.sleep(min(_BACKOFF * 2 ** (attempt - 1), _MAX_BACKOFF))
        if ":" in reference:
            hasher = _checked_digest(reference)
            hasher.update(data)
            digest = f"{hasher.name}:{hasher.hexdigest()}"
            if digest != reference:
                raise ContentError(f"manifest digest mismatch: asked for {reference}, got {digest}")
        else:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            if header_digest.startswith("sha256:") and header_digest != digest:
                raise ContentError(
                    f"manifest digest mismatch: registry says {header_digest}, content is {digest}"
                )
        return FetchedManifest(data, content_type, digest)

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """Upload a manifest under a tag (or its digest); returns the digest the registry reports."""
        url = f"{self.base}{repository}/manifests/{reference}"
        response = self._request(
            "PUT",
            url,
            scopes=_push_scope(repository),
            headers={"Content-Type": media_type},
            content=data,
            ok=(200, 201, 202),
        )
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != digest:
            raise ContentError(f"registry stored the manifest as {reported}, expected {digest}")
        return digest

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of a repository, following the registry's pagination."""
        url: str | None = f"{self.base}{repository}/tags/list"
        pull = frozenset({f"repository:{repository}:pull"})
        tags: list[str] = []
        while url:
            response = self._request("GET", url, scopes=pull)
            try:
                page = response.json().get("tags") or []
            except (ValueError, AttributeError) as exc:
                raise RegistryError(f'Get "{url}": invalid tag list: {exc}') from exc
            tags.extend(str(tag) for tag in page)
            next_link = response.links.get("next", {}).get("url")
            url = str(httpx.URL(self.base).join(next_link)) if next_link else None
        return tags

    # --- blobs ----------------------------------------------------------------------------------

    def get_blob(self, repository: str, descriptor: Descriptor, *, limit: int) -> bytes:
        """A small blob (a config), read into memory and checked against its descriptor."""
        if descriptor.size > limit:
            raise ContentError(f"blob {descriptor.digest} is larger than {limit >> 20} MiB")
        chunks: list[bytes] = []

        def collect(chunk: bytes) -> None:
            chunks.append(chunk)

        self._fetch(repository, descriptor, collect, restart=chunks.clear)
        return b"".join(chunks)

    def download_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        destination: Path,
        *,
        progress: ProgressCallback,
        resume: bool = False,
        restarted: Callable[[], None] | None = None,
    ) -> None:
        """Stream a blob into `destination`, resuming after interruptions, checked against its descriptor.

        With `resume`, the bytes already in `destination` (left by a killed pull) are hashed and
        kept: a complete blob is only verified, a partial one continues with an HTTP range, and if
        what was there turns out wrong the blob is downloaded again from the start (`restarted` is
        told). Each chunk is in the file (not flushed to disk) before `progress` hears of it, so
        another reader can follow the download; the image store makes it durable (image_assembly).
        """
        with destination.open("r+b" if resume and destination.exists() else "w+b") as out:
            hasher, written = _hash_existing(out, descriptor)
            kept = written

            def write(chunk: bytes) -> None:
                nonlocal written
                out.write(chunk)
                out.flush()
                written += len(chunk)
                progress(written)

            def restart() -> None:
                nonlocal written
                out.seek(0)
                out.truncate()
                written = 0
                if restarted is not None:
                    restarted()

            try:
                self._fetch(repository, descriptor, write, restart=restart, hasher=hasher, received=written)
            except ContentError:
                if not kept:
                    raise
                restart()
                self._fetch(repository, descriptor, write, restart=restart)

    def _fetch(
        self,
        repository: str,
        descriptor: Descriptor,
        sink: Callable[[bytes], None],
        *,
        restart: Callable[[], None],
        hasher: hashlib._Hash | None = None,
        received: int = 0,
    ) -> None:
        """Fetch a blob into `sink`, continuing after `received` bytes already fed to `hasher`."""
        url = f"{self.base}{repository}/blobs/{descriptor.digest}"
        pull = frozenset({f"repository:{repository}:pull"})
        hasher = hasher or _checked_digest(descriptor.digest)
        failures = 0
        while received < descriptor.size or not received:
            headers = {"Range": f"bytes={received}-"} if received else None
            before = received
            try:
                with self._stream(url, scopes=pull, headers=headers) as response:
                    if received and not _resumes_at(response, received):
                        restart()
                        hasher, received = _checked_digest(descriptor.digest), 0
                    for chunk in response.iter_raw():
                        if received + len(chunk) > descriptor.size:
                            raise ContentError(
                                f"blob {descriptor.digest} is larger than its descriptor says "
                                f"({descriptor.size} bytes)"
                            )
                        hasher.update(chunk)
                        sink(chunk)
                        received += len(chunk)
                if received == descriptor.size:
                    break
                raise _Interrupted(httpx.ReadError("response ended before the whole blob arrived"))
            except (_Interrupted, httpx.TransportError) as exc:
                interrupted = exc if isinstance(exc, _Interrupted) else _Interrupted(exc)
                failures = 1 if received > before else failures + 1  # progress earns a fresh start
                if failures >= _ATTEMPTS:
                    raise interrupted.as_registry_error("Get", url) from exc
                time.sleep(min(_BACKOFF * 2 ** (failures - 1), _MAX_BACKOFF))
        digest = f"{hasher.name}:{hasher.hexdigest()}"
        if digest != descriptor.digest:
            raise ContentError(f"blob digest mismatch: expected {descriptor.digest}, got {digest}")

    def blob_exists(self, repository: str, digest: str) -> bool:
        """HEAD a blob: whether the repository already has it (asked with push rights, as push does)."""
        url = f"{self.base}{repository}/blobs/{digest}"
        response = self._request("HEAD", url, scopes=_push_scope(repository), ok=(200, 404))
        return response.status_code == 200

    def mount_blob(self, repository: str, digest: str, source: str) -> str | None:
        """Ask for a cross-repository mount; None if mounted, else the upload session it opened."""
        url = f"{self.base}{repository}/blobs/uploads/?mount={digest}&from={source}"
        scopes = _push_scope(repository) | {f"repository:{source}:pull"}
        response = self._request("POST", url, scopes=scopes, ok=(201, 202))
        if response.status_code == 201:
            return None
        return self._location(response)

    def upload_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        path: Path,
        *,
        progress: ProgressCallback,
        chunk_size: int,
        session: str | None = None,
    ) -> None:
        """Upload a blob from a file: one PUT when it fits in `chunk_size`, else PATCH chunks and PUT.

        A failed attempt starts over in a new upload session.
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                location = session or self._start_upload(repository)
                session = None
                if descriptor.size <= chunk_size:
                    location = self._put_whole(location, repository, descriptor, path, progress)
                else:
                    location = self._patch_chunks(
                        location, repository, descriptor, path, progress, chunk_size
                    )
                    self._finish(location, repository, descriptor)
                return
            except RegistryError as exc:
                if attempt == _ATTEMPTS or (exc.status is not None and exc.status not in _RETRYABLE_STATUS):
                    raise
                time.sleep(min(_BACKOFF * 2 ** (attempt - 1), _MAX_BACKOFF))

    def upload_bytes(self, repository: str, descriptor: Descriptor, data: bytes) -> None:
        """Upload a small blob (a config) in one PUT."""
        location = self._start_upload(repository)
        self._finish(location, repository, descriptor, content=data)

    def _start_upload(self, repository: str) -> str:
        url = f"{self.base}{repository}/blobs/uploads/"
        response = self._request("POST", url, scopes=_push_scope(repository), ok=(202,))
        return self._location(response)

    def _location(self, response: httpx.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f'Post "{response.url}": registry sent no upload location')
        return str(httpx.URL(self.base).join(location))

    def _put_whole(
        self, location: str, repository: str, descriptor: Descriptor, path: Path, progress: ProgressCallback
    ) -> str:
        body = _FileBody(path, 0, descriptor.size, progress)
        return self._finish(location, repository, descriptor, body=body)

    def _patch_chunks(
        self,
        location: str,
        repository: str,
        descriptor: Descriptor,
        path: Path,
        progress: ProgressCallback,
        chunk_size: int,
    ) -> str:
        scopes = _push_scope(repository)
        for start in range(0, descriptor.size, chunk_size):
            length = min(chunk_size, descriptor.size - start)
            body = _FileBody(path, start, length, progress)
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{start}-{start + length - 1}",
                "Content-Length": str(length),
            }
            response = self._send_body("PATCH", location, scopes, headers, body, ok=(202,))
            location = self._location(response)
        return location

    def _finish(
        self,
        location: str,
        repository: str,
        descriptor: Descriptor,
        *,
        body: _FileBody | None = None,
        content: bytes | None = None,
    ) -> str:
        url = str(httpx.URL(location).copy_merge_params({"digest": descriptor.digest}))
        size = body.length if body is not None else len(content or b"")
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        payload = body if body is not None else content or b""
        response = self._send_body("PUT", url, _push_scope(repository), headers, payload, ok=(201,))
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != descriptor.digest:
            raise ContentError(f"registry stored blob {descriptor.digest} as {reported}")
        return location

    def _send_body(
        self,
        method: str,
        url: str,
        scopes: frozenset[str],
        headers: dict[str, str],
        body: _FileBody | bytes,
        *,
        ok: tuple[int, ...],
    ) -> httpx.Response:
        """One upload request; transport failures become retryable RegistryErrors (no status)."""
        try:
            response = self._http.request(
                method, url, headers=headers, content=body, auth=RegistryAuth(self._auth, scopes)
            )
        except httpx.TransportError as exc:
            raise RegistryError(f'{method.title()} "{url}": {_describe(exc)}') from exc
        if response.status_code not in ok:
            raise _status_error(method, url, response)
        return response


class _Interrupted(Exception):
    """A download attempt that may be resumed: a transport failure or a retryable status."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause

    def as_registry_error(self, method: str, url: str) -> RegistryError:
        """The user-facing error once retrying has given up."""
        if isinstance(self.cause, RegistryError):
            return self.cause
        if isinstance(self.cause, httpx.TransportError):
            return RegistryError(f'{method} "{url}": {_describe(self.cause)}')
        return RegistryError(f'{method} "{url}": {self.cause}')


class _FileBody:
    """A replayable upload body: a byte range of a file, read in chunks, reporting progress."""

    def __init__(self, path: Path, start: int, length: int, progress: ProgressCallback) -> None:
        self.path = path
        self.start = start
        self.length = length
        self._progress = progress

    def __iter__(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            handle.seek(self.start)
            left = self.length
            while left:
                chunk = handle.read(min(_CHUNK, left))
                if not chunk:
                    raise ContentError(f"{self.path} is shorter than expected")
                left -= len(chunk)
                yield chunk
                self._progress(self.start + self.length - left)


def _status_error(method: str, url: str, response: httpx.Response) -> RegistryError:
    return RegistryError(f'{method.title()} "{url}": {error_text(response)}', status=response.status_code)


def _push_scope(repository: str) -> frozenset[str]:
    return frozenset({f"repository:{repository}:pull,push"})


def _hash_existing(out: BinaryIO, descriptor: Descriptor) -> tuple[hashlib._Hash, int]:
    """Hash what an open download file already holds; one longer than the blob is emptied."""
    hasher = _checked_digest(descriptor.digest)
    out.seek(0)
    received = 0
    while chunk := out.read(_CHUNK):
        hasher.update(chunk)
        received += len(chunk)
    if received > descriptor.size:
        out.seek(0)
        out.truncate()
        return _checked_digest(descriptor.digest), 0
    return hasher, received


def _resumes_at(response: httpx.Response, offset: int) -> bool:
    """Whether a response to `Range: bytes=offset-` really continues at `offset`."""
    if response.status_code != 206:
        return False
    content_range = response.headers.get("Content-Range", "")
    unit, _, span = content_range.partition(" ")
    start = span.partition("-")[0]
    return unit == "bytes" and start.isdigit() and int(start) == offset


def _read_capped(response: httpx.Response, limit: int, what: str) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ContentError(f"{what} is larger than {limit >> 20} MiB")
    data = bytearray()
    for chunk in response.iter_raw():
        data += chunk
        if len(data) > limit:
            raise ContentError(f"{what} is larger than {limit >> 20} MiB")
    return bytes(data)
