"""Real parts for the registry tests: Debian's `docker-registry`, a test CA, a token issuer, proxies.

Nothing here imitates a registry: the reference `distribution` server runs on loopback with a temp
storage dir, optionally with TLS from a CA made here, htpasswd Basic auth, or token auth against
the small issuer below, which signs RS256 JWTs with a key the registry is told to trust. Images are
uploaded with plain HTTP calls (the distribution API) when a test needs exact control over their
bytes, e.g. a hostile layer or an index whose descriptor lies.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import http.server
import io
import ipaddress
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 15) -> None:
    """Block until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# --- TLS ----------------------------------------------------------------------------------------


@dataclass
class TestCA:
    """A certificate authority made for one test session, and server certificates it signs."""

    directory: Path
    key: rsa.RSAPrivateKey = field(init=False)
    cert: x509.Certificate = field(init=False)

    __test__ = False  # not a test class, despite its name

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dockyard Test CA")])
        self.cert = (
            _builder(name, name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    def server_cert(self, name: str) -> tuple[Path, Path]:
        """A certificate for localhost, 127.0.0.1 and ::1; returns (cert file, key file)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        alt_names = x509.SubjectAlternativeName(
            [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]
        )
        cert = (
            _builder(subject, self.cert.subject, key.public_key())
            .add_extension(alt_names, critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(_key_pem(key))
        return cert_file, key_file


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


# --- the registry -------------------------------------------------------------------------------


@dataclass
class Registry:
    """A running `docker-registry serve`: its address, storage and process."""

    host: str
    storage: Path
    process: subprocess.Popen[bytes]
    scheme: str = "http"
    log: Path | None = None

    def blob_file(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes."""
        hexpart = digest.partition(":")[2]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_registry(
    base: Path,
    *,
    bind: str = "127.0.0.1",
    tls: tuple[Path, Path] | None = None,
    htpasswd: Path | None = None,
    token: dict[str, str] | None = None,
) -> Registry:
    """Start the reference registry on a free port of `bind` with a temp storage dir."""
    port = free_port() if bind == "127.0.0.1" else _free_port6()
    host = f"[{bind}]:{port}" if ":" in bind else f"{bind}:{port}"
    base.mkdir(parents=True, exist_ok=True)
    storage = base / "storage"
    http_config: dict[str, Any] = {"addr": host, "secret": secrets.token_hex(8)}
    if tls is not None:
        http_config["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": http_config,
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "dockyard-test", "path": str(htpasswd)}}
    if token is not None:
        config["auth"] = {"token": token}
    config_file = base / "config.yml"
    config_file.write_text(json.dumps(config))  # YAML is a superset of JSON
    log = base / "registry.log"
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            [REGISTRY, "serve", str(config_file)], stdout=log_handle, stderr=log_handle
        )
    try:
        wait_for_port(bind, port)
    except OSError:
        process.kill()
        pytest.fail(f"docker-registry did not start: {log.read_text()}")
    return Registry(host, storage, process, "https" if tls else "http", log)


def _free_port6() -> int:
    with socket.socket(socket.AF_INET6) as probe:
        probe.bind(("::1", 0))
        return int(probe.getsockname()[1])


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    """An htpasswd file with bcrypt hashes, the only kind distribution accepts."""
    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"
        for user, password in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- the token issuer ---------------------------------------------------------------------------


class TokenIssuer:
    """A tiny token server: anonymous users may pull, known users may pull and push.

    Tokens are JWTs signed RS256 with a key whose self-signed certificate is the registry's
    `rootcertbundle`; the certificate travels in the `x5c` header, which distribution verifies.
    """

    def __init__(self, directory: Path, users: dict[str, str], *, service: str = "dockyard-test") -> None:
        self.users = users
        self.service = service
        self.issuer = "dockyard-test-issuer"
        self.requests: list[dict[str, Any]] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard token signer")])
        self._cert = _builder(name, name, self._key.public_key()).sign(self._key, hashes.SHA256())
        directory.mkdir(parents=True, exist_ok=True)
        self.bundle = directory / "token-signer.pem"
        self.bundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.realm = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def registry_config(self) -> dict[str, str]:
        """The `auth: token:` section of the registry's configuration."""
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(self.bundle),
        }

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                try:
                    user = issuer.authenticate(self.headers.get("Authorization", ""))
                except PermissionError:
                    self._reply(401, {"details": "incorrect username or password"})
                    return
                issuer.requests.append({"user": user, "scope": query.get("scope", [])})
                token = issuer.token(user or "", query.get("scope", []))
                self._reply(200, {"token": token, "access_token": token, "expires_in": 300})

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def authenticate(self, header: str) -> str | None:
        """The user a Basic header proves, None for anonymous; PermissionError for wrong credentials."""
        if not header:
            return None
        scheme, _, encoded = header.partition(" ")
        user, _, password = base64.b64decode(encoded).decode().partition(":")
        if scheme.lower() != "basic" or self.users.get(user) != password:
            raise PermissionError(user)
        return user

    def token(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = _split_scope(scope)
            allowed = [a for a in actions if a == "pull" or (user and a in ("push", "delete", "*"))]
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user,
            "aud": self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


def _split_scope(scope: str) -> tuple[str, str, list[str]]:
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind, name, actions.split(",")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- proxies ------------------------------------------------------------------------------------


class Proxy:
    """A loopback HTTP proxy in front of a registry that can misbehave on blob downloads.

    `cut_first_blob`: the first full GET of a layer (a blob over 64 KiB) sends all headers and half the body,
    then drops the connection; later requests (ranged or not) are passed through.
    `slow_blob`: blob bodies are sent in small chunks with a pause, so a test can kill a pull
    mid-download; `started` is set when the first blob body starts to flow.
    `blob_gets` records every blob GET as (digest, Range header or None).
    """

    def __init__(self, upstream: str, *, cut_first_blob: bool = False, slow_blob: bool = False) -> None:
        self.upstream = upstream
        self.cut_first_blob = cut_first_blob
        self.slow_blob = slow_blob
        self.ranges: list[str] = []
        self.blob_gets: list[tuple[str, str | None]] = []
        self.cuts = 0
        self.started = threading.Event()
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._forward("HEAD")

            def do_GET(self) -> None:
                self._forward("GET")

            def _forward(self, method: str) -> None:
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() in ("accept", "range", "authorization")
                }
                if "Range" in self.headers:
                    proxy.ranges.append(self.headers["Range"])
                if method == "GET" and "/blobs/sha" in self.path:
                    proxy.blob_gets.append((self.path.rpartition("/")[2], self.headers.get("Range")))
                url = f"http://{proxy.upstream}{self.path}"
                with httpx.Client() as client, client.stream(method, url, headers=headers) as response:
                    self.send_response(response.status_code)
                    for key, value in response.headers.items():
                        if key.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                            self.send_header(key, value)
                    self.end_headers()
                    if method == "HEAD":
                        return
                    body = response.iter_raw(64 * 1024)
                    is_blob = "/blobs/" in self.path and response.status_code == 200
                    is_layer = is_blob and int(response.headers.get("Content-Length", 0)) > 64 * 1024
                    with proxy._lock:
                        cut = (
                            is_layer
                            and proxy.cut_first_blob
                            and proxy.cuts == 0
                            and "Range" not in self.headers
                        )
                        if cut:
                            proxy.cuts += 1
                    if is_blob:
                        proxy.started.set()
                    if cut:
                        length = int(response.headers["Content-Length"])
                        sent = 0
                        for chunk in body:
                            piece = chunk[: max(0, length // 2 - sent)]
                            self.wfile.write(piece)
                            sent += len(piece)
                            if sent >= length // 2:
                                break
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    for chunk in body:
                        self.wfile.write(chunk)
                        if is_blob and proxy.slow_blob:
                            time.sleep(0.05)

        return Handler


# --- images by hand -----------------------------------------------------------------------------


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar holding `files` (name -> content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_config(diff_ids: list[str], *, architecture: str = "amd64", cmd: list[str] | None = None) -> bytes:
    """A minimal image config for these layers."""
    config = {
        "architecture": architecture,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": cmd or ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return json.dumps(config).encode()


class RegistryApi:
    """Raw distribution API calls against a test registry (plain HTTP, no auth)."""

    def __init__(self, host: str, *, scheme: str = "http", verify: bool | str = True) -> None:
        self.base = f"{scheme}://{host}/v2/"
        context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self.client = httpx.Client(verify=context, timeout=60)

    def put_blob(self, repository: str, data: bytes) -> str:
        digest = digest_of(data)
        if self.client.head(f"{self.base}{repository}/blobs/{digest}").status_code == 200:
            return digest
        start = self.client.post(f"{self.base}{repository}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = httpx.URL(self.base).join(start.headers["Location"])
        done = self.client.put(
            location.copy_merge_params({"digest": digest}),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, done.text
        return digest

    def put_manifest(
        self, repository: str, reference: str, document: dict[str, Any] | bytes, media_type: str
    ) -> str:
        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        response = self.client.put(
            f"{self.base}{repository}/manifests/{reference}",
            content=data,
            headers={"Content-Type": media_type},
        )
        assert response.status_code == 201, response.text
        return digest_of(data)

    def push_image(
        self,
        repository: str,
        tag: str,
        layers: list[bytes],
        *,
        architecture: str = "amd64",
        compress: Callable[[bytes], bytes] = lambda data: gzip.compress(data, mtime=0),
    ) -> tuple[str, str, bytes]:
        """Upload an image of uncompressed `layers`; returns (image id, manifest digest, manifest)."""
        config = image_config([digest_of(layer) for layer in layers], architecture=architecture)
        blobs = [compress(layer) for layer in layers]
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": DOCKER_CONFIG,
                "size": len(config),
                "digest": self.put_blob(repository, config),
            },
            "layers": [
                {"mediaType": DOCKER_LAYER, "size": len(blob), "digest": self.put_blob(repository, blob)}
                for blob in blobs
            ],
        }
        data = json.dumps(manifest).encode()
        digest = self.put_manifest(repository, tag, data, DOCKER_MANIFEST)
        return digest_of(config), digest, data


@contextmanager
def running(process_factory: Callable[[], Registry]) -> Iterator[Registry]:
    registry = process_factory()
    try:
        yield registry
    finally:
        registry.stop()


def env_with(base: dict[str, str], **extra: str) -> dict[str, str]:
    """A copy of an environment with extra variables."""
    env = dict(base)
    env.update(extra)
    return env


__all__ = [
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Proxy",
    "Registry",
    "RegistryApi",
    "TestCA",
    "TokenIssuer",
    "digest_of",
    "env_with",
    "free_port",
    "image_config",
    "layer_tar",
    "running",
    "start_registry",
    "write_htpasswd",
]
