"""Where and how to reach a registry: mirrors, insecure registries and CA certificates.

One TOML file configures it, in the shape of containers' registries.conf plus the two keys of
Docker's daemon.json that concern registries:

    registry-mirrors = ["https://mirror.example.com"]    # Docker's: mirrors of docker.io
    insecure-registries = ["registry.lan:5000", "10.0.0.0/8"]
    certs-dirs = ["/etc/dockyard/certs.d"]                # replaces the default list

    [[registry]]                                          # containers' per-registry table
    location = "quay.io"                                  # a host, or host/namespace prefix
    insecure = false
    [[registry.mirror]]
    location = "mirror.lan:5000/quay"                     # repositories keep their path below it
    insecure = true

The file is $DOCKYARD_REGISTRIES_CONFIG, else (rootless) $XDG_CONFIG_HOME/dockyard/registries.toml,
else /etc/dockyard/registries.toml; a missing file means no mirrors and the defaults below.

The rules are Docker's. A registry is secure (HTTPS with a verified certificate) unless it is
listed as insecure, by `host:port`, host or CIDR, or resolves into 127.0.0.0/8, which is always
insecure. An insecure registry is tried over HTTPS without verifying the certificate, then over
plain HTTP. A mirror given as `http://...` is plain HTTP. Pulls try mirrors in order and fall back to
the registry itself; pushes never use mirrors. CA certificates come from a certs directory per
registry, Docker's layout: `<certs-dir>/<host:port>/*.crt` are CAs added to the system's, and a
`client.cert` / `client.key` pair (any `*.cert` with its `*.key`) is a client certificate.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.core.errors import UsageError
from dockyard.core.reference import DEFAULT_DOMAIN

__all__ = ["DOCKER_HUB_HOST", "Endpoint", "RegistryConfig", "Target", "load_registry_config"]

DOCKER_HUB_HOST = "registry-1.docker.io"
SYSTEM_CONFIG = Path("/etc/dockyard/registries.toml")
DEFAULT_CERTS_DIRS = (
    Path("/etc/dockyard/certs.d"),
    Path("/etc/docker/certs.d"),
    Path("/etc/containers/certs.d"),
)
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_TOP_KEYS = {"registry-mirrors", "insecure-registries", "certs-dirs", "registry"}
_REGISTRY_KEYS = {"location", "insecure", "mirror"}
_MIRROR_KEYS = {"location", "insecure"}


@dataclass(frozen=True)
class Endpoint:
    """One server to talk to: its host, the schemes to try in order, and its TLS material."""

    host: str
    schemes: tuple[str, ...] = ("https",)
    verify_tls: bool = True
    mirror: bool = False
    ca_files: tuple[Path, ...] = ()
    client_cert: tuple[Path, Path] | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS settings: the system's CAs plus this registry's, or no verification if insecure
        (then no CA is loaded at all: reading the system's takes tens of milliseconds)."""
        try:
            if self.verify_tls:
                context = ssl.create_default_context()
                for ca_file in self.ca_files:
                    context.load_verify_locations(cafile=str(ca_file))
            else:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.client_cert is not None:
                context.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load TLS certificates for {self.host}: {exc}") from exc
        return context


@dataclass(frozen=True)
class Target:
    """A repository on an endpoint: where to pull from or push to."""

    endpoint: Endpoint
    repository: str


@dataclass(frozen=True)
class _Mirror:
    location: str
    insecure: bool


@dataclass(frozen=True)
class _RegistryEntry:
    location: str
    insecure: bool
    mirrors: tuple[_Mirror, ...]


@dataclass(frozen=True)
class RegistryConfig:
    """Registry settings read once per command (see the module docstring)."""

    insecure: tuple[str, ...] = ()
    certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS
    registries: tuple[_RegistryEntry, ...] = ()
    _networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(default=(), repr=False)

    def targets(self, name: str, *, pull: bool) -> list[Target]:
        """Where to find the repository `name` (`domain/path`): mirrors first when pulling."""
        domain, _, path = name.partition("/")
        entry = self._entry_for(name)
        found: list[Target] = []
        if pull and entry is not None:
            suffix = name[len(entry.location) :].lstrip("/")
            for mirror in entry.mirrors:
                endpoint, prefix = self._mirror_endpoint(mirror)
                found.append(Target(endpoint, "/".join(part for part in (prefix, suffix) if part)))
        found.append(Target(self.endpoint(domain, insecure=entry.insecure if entry else False), path))
        return found

    def endpoint(self, domain: str, *, insecure: bool = False) -> Endpoint:
        """The registry itself: Docker Hub's API host for docker.io, the domain otherwise."""
        host = DOCKER_HUB_HOST if domain == DEFAULT_DOMAIN else domain
        if insecure or self._is_insecure(host):
            return Endpoint(host, ("https", "http"), False, False, *self._certs(host))
        return Endpoint(host, ("https",), True, False, *self._certs(host))

    def _mirror_endpoint(self, mirror: _Mirror) -> tuple[Endpoint, str]:
        location = mirror.location
        scheme, sep, rest = location.partition("://")
        if sep:
            if scheme not in ("http", "https"):
                raise UsageError(f"invalid mirror {location!r}: only http and https are supported")
            location = rest
        host, _, prefix = location.rstrip("/").partition("/")
        if scheme == "http" and sep:
            return Endpoint(host, ("http",), False, True), prefix
        insecure = mirror.insecure or self._is_insecure(host)
        schemes = ("https", "http") if insecure else ("https",)
        return Endpoint(host, schemes, not insecure, True, *self._certs(host)), prefix

    def _entry_for(self, name: str) -> _RegistryEntry | None:
        best: _RegistryEntry | None = None
        for entry in self.registries:
            location = entry.location
            matches = name == location or name.startswith(location + "/")
            if matches and (best is None or len(location) > len(best.location)):
                best = entry
        return best

    def _is_insecure(self, host: str) -> bool:
        hostname = _hostname(host)
        if host in self.insecure or hostname in self.insecure:
            return True
        networks = (_LOOPBACK, *self._networks)
        return any(address in network for address in _addresses(hostname) for network in networks)

    def _certs(self, host: str) -> tuple[tuple[Path, ...], tuple[Path, Path] | None]:
        cas: list[Path] = []
        client: tuple[Path, Path] | None = None
        for base in self.certs_dirs:
            directory = base / host
            if not directory.is_dir():
                continue
            cas.extend(sorted(directory.glob("*.crt")))
            for cert in sorted(directory.glob("*.cert")):
                key = cert.with_suffix(".key")
                if not key.exists():
                    raise UsageError(f"client certificate {cert} has no matching key {key.name}")
                client = client or (cert, key)
        return tuple(cas), client


def _hostname(host: str) -> str:
    """The host without its port: `[::1]:5000` -> `::1`, `registry:5000` -> `registry`."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _addresses(hostname: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The host's addresses: itself if it is one, else what it resolves to (none if it does not)."""
    try:
        return [ipaddress.ip_address(hostname)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]


def config_path(environ: Mapping[str, str], *, rootless: bool) -> Path:
    """The registries.toml in effect (see the module docstring)."""
    explicit = environ.get("DOCKYARD_REGISTRIES_CONFIG")
    if explicit:
        return Path(explicit)
    if rootless:
        home = Path(environ.get("HOME") or Path.home())
        return Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "dockyard" / "registries.toml"
    return SYSTEM_CONFIG


def load_registry_config(environ: Mapping[str, str] | None = None, *, rootless: bool) -> RegistryConfig:
    """Read registries.toml; a missing file gives the defaults."""
    environ = os.environ if environ is None else environ
    path = config_path(environ, rootless=rootless)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return RegistryConfig()
    except OSError as exc:
        raise UsageError(f"cannot read registry config {path}: {exc}") from exc
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"cannot read registry config {path}: {exc}") from exc
    return _parse(data, path)


def _parse(data: dict[str, Any], path: Path) -> RegistryConfig:
    _check_keys(data, _TOP_KEYS, path, "")
    insecure: list[str] = []
    networks = []
    for item in _strings(data, "insecure-registries", path):
        try:
            networks.append(ipaddress.ip_network(item, strict=False) if "/" in item else None)
        except ValueError as exc:
            raise UsageError(f"{path}: invalid insecure registry {item!r}: {exc}") from exc
        if "/" not in item:
            insecure.append(item.removeprefix("http://").removeprefix("https://"))
    entries = [_registry(item, path) for item in _tables(data, "registry", path)]
    mirrors = tuple(_Mirror(location, False) for location in _strings(data, "registry-mirrors", path))
    if mirrors:
        hub = next((entry for entry in entries if entry.location == DEFAULT_DOMAIN), None)
        if hub is not None:
            entries.remove(hub)
        own = hub.mirrors if hub else ()
        entries.append(_RegistryEntry(DEFAULT_DOMAIN, hub.insecure if hub else False, (*mirrors, *own)))
    certs = _strings(data, "certs-dirs", path)
    return RegistryConfig(
        insecure=tuple(insecure),
        certs_dirs=tuple(Path(item) for item in certs) if "certs-dirs" in data else DEFAULT_CERTS_DIRS,
        registries=tuple(entries),
        _networks=tuple(network for network in networks if network is not None),
    )


def _registry(item: dict[str, Any], path: Path) -> _RegistryEntry:
    _check_keys(item, _REGISTRY_KEYS, path, "registry.")
    location = item.get("location")
    if not isinstance(location, str) or not location:
        raise UsageError(f"{path}: every [[registry]] needs a location")
    mirrors = []
    for mirror in _tables(item, "mirror", path):
        _check_keys(mirror, _MIRROR_KEYS, path, "registry.mirror.")
        if not isinstance(mirror.get("location"), str):
            raise UsageError(f"{path}: every [[registry.mirror]] needs a location")
        mirrors.append(_Mirror(mirror["location"], bool(mirror.get("insecure", False))))
    return _RegistryEntry(location.rstrip("/"), bool(item.get("insecure", False)), tuple(mirrors))


def _check_keys(data: dict[str, Any], allowed: set[str], path: Path, prefix: str) -> None:
    unknown = set(data) - allowed
    if unknown:
        names = ", ".join(prefix + key for key in sorted(unknown))
        raise UsageError(f"unknown setting(s) in {path}: {names}")


def _strings(data: dict[str, Any], key: str, path: Path) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UsageError(f"{path}: {key} must be a list of strings")
    return value


def _tables(data: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise UsageError(f"{path}: {key} must be an array of tables ([[{key}]])")
    return value
