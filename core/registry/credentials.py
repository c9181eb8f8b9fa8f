"""Registry credentials in Docker's config.json, through credential helpers when configured.

The file is Docker's, so `docker login` and `dockyard login` share it: $DOCKER_CONFIG/config.json,
else ~/.docker/config.json.

    {"auths": {"registry.lan:5000": {"auth": "<base64 of user:password>"},
               "https://index.docker.io/v1/": {...}},
     "credsStore": "pass",                     # helper for every registry: docker-credential-pass
     "credHelpers": {"ghcr.io": "gh"}}         # helper for one registry: docker-credential-gh

Docker Hub is filed under its legacy key `https://index.docker.io/v1/`. A helper speaks Docker's
protocol: `get` and `erase` read the server address on stdin, `store` reads
`{"ServerURL", "Username", "Secret"}`; a username of `<token>` marks an identity (refresh) token.
Rootless, containers' `$XDG_RUNTIME_DIR/containers/auth.json` (same `auths` shape, keys may name a
repository or namespace, the longest match wins) is read after config.json. Everything else in
config.json is kept as it is; the file is replaced atomically with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.core.errors import StoreError
from dockyard.core.reference import DEFAULT_DOMAIN
from dockyard.core.store import atomic_write

__all__ = ["DOCKER_HUB_KEY", "CredentialStore", "Credentials", "credential_store", "server_key"]

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
IDENTITY_TOKEN_USER = "<token>"
_HELPER_TIMEOUT = 60
_NOT_FOUND = "credentials not found in native keychain"


@dataclass(frozen=True)
class Credentials:
    """A username and password (or, with username `<token>`, an identity token)."""

    username: str
    password: str

    @property
    def identity_token(self) -> str | None:
        """The refresh token an OAuth2 token server accepts, if these credentials are one."""
        return self.password if self.username == IDENTITY_TOKEN_USER else None


def server_key(domain: str) -> str:
    """The config.json key of a registry domain: Docker Hub's legacy URL, else the domain."""
    return DOCKER_HUB_KEY if domain in (DEFAULT_DOMAIN, "index.docker.io", "registry-1.docker.io") else domain


def _normalise(key: str) -> str:
    """A config.json key as a bare host: `https://host:5000/v1/` -> `host:5000`."""
    return key.removeprefix("https://").removeprefix("http://").partition("/")[0]


class CredentialStore:
    """Credentials for registries: config.json and its helpers, plus read-only extra files."""

    def __init__(self, config_file: Path, *, read_only: tuple[Path, ...] = ()) -> None:
        self.config_file = config_file
        self._read_only = read_only

    def get(self, domain: str, repository: str = "") -> Credentials | None:
        """The credentials for a registry (and repository, for auth.json's per-repository keys)."""
        key = server_key(domain)
        config = self._read(self.config_file)
        helper = self._helper(config, key)
        if helper is not None:
            found = _helper_get(helper, key)
            if found is not None:
                return found
        entry = _lookup(config.get("auths"), key)
        if entry is not None:
            return entry
        for extra in self._read_only:
            auths = self._read(extra).get("auths")
            if isinstance(auths, dict):
                for candidate in _scoped_keys(domain, repository):
                    found = _decode(auths.get(candidate), extra)
                    if found is not None:
                        return found
        return None

    def store(self, domain: str, credentials: Credentials) -> str:
        """Save credentials; returns where they went (the file or the helper's name)."""
        key = server_key(domain)
        config = self._read(self.config_file)
        auths = config.setdefault("auths", {})
        helper = self._helper(config, key)
        if helper is not None:
            _helper_run(
                helper,
                "store",
                json.dumps(
                    {"ServerURL": key, "Username": credentials.username, "Secret": credentials.password}
                ),
            )
            auths[key] = {}
            where = f"docker-credential-{helper}"
        else:
            token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
            auths[key] = {"auth": token}
            where = str(self.config_file)
        self._write(config)
        return where

    def erase(self, domain: str) -> bool:
        """Forget a registry's credentials; returns whether there were any."""
        key = server_key(domain)
        config = self._read(self.config_file)
        helper = self._helper(config, key)
        found = False
        if helper is not None:
            found = _helper_get(helper, key) is not None
            if found:
                _helper_run(helper, "erase", key)
        auths = config.get("auths")
        if isinstance(auths, dict):
            for candidate in [name for name in auths if name == key or _normalise(name) == _normalise(key)]:
                found = True
                del auths[candidate]
            self._write(config)
        return found

    def _helper(self, config: dict[str, Any], key: str) -> str | None:
        helpers = config.get("credHelpers")
        if isinstance(helpers, dict):
            for name, helper in helpers.items():
                if _normalise(name) == _normalise(key) and isinstance(helper, str):
                    return helper
        store = config.get("credsStore")
        return store if isinstance(store, str) and store else None

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise StoreError(f"cannot read {path}: not a JSON object")
        return data

    def _write(self, config: dict[str, Any]) -> None:
        try:
            self.config_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(self.config_file, json.dumps(config, indent="\t").encode() + b"\n", mode=0o600)
        except OSError as exc:
            raise StoreError(f"cannot write {self.config_file}: {exc}") from exc


def _lookup(auths: Any, key: str) -> Credentials | None:
    if not isinstance(auths, dict):
        return None
    if key in auths:
        return _decode(auths[key], None)
    for name, entry in auths.items():
        if _normalise(name) == _normalise(key):
            return _decode(entry, None)
    return None


def _scoped_keys(domain: str, repository: str) -> list[str]:
    """auth.json keys from most to least specific: `host/ns/repo`, `host/ns`, `host`."""
    parts = repository.split("/") if repository else []
    keys = [f"{domain}/{'/'.join(parts[:count])}" for count in range(len(parts), 0, -1)]
    return [*keys, domain, server_key(domain)]


def _decode(entry: Any, source: Path | None) -> Credentials | None:
    """An `auths` entry: an identity token if it has one, else the user and password in `auth`."""
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(IDENTITY_TOKEN_USER, token)
    encoded = entry.get("auth")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        username, sep, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise StoreError(f"invalid auth entry in {source or 'config.json'}: {exc}") from exc
    return Credentials(username, password) if sep else None


def _helper_get(helper: str, key: str) -> Credentials | None:
    output = _helper_run(helper, "get", key, missing_ok=True)
    if output is None:
        return None
    try:
        data = json.loads(output)
        return Credentials(str(data["Username"]), str(data["Secret"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"docker-credential-{helper} get returned invalid JSON: {exc}") from exc


def _helper_run(helper: str, action: str, payload: str, *, missing_ok: bool = False) -> str | None:
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise StoreError(f"credential helper docker-credential-{helper} is not installed (not on PATH)")
    try:
        result = subprocess.run(
            [program, action], input=payload, capture_output=True, text=True, timeout=_HELPER_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StoreError(f"docker-credential-{helper} {action} failed: {exc}") from exc
    if result.returncode != 0:
        message = (result.stdout.strip() or result.stderr.strip()).splitlines()
        text = message[-1] if message else f"exit status {result.returncode}"
        if missing_ok and _NOT_FOUND in text:
            return None
        raise StoreError(f"docker-credential-{helper} {action}: {text}")
    return result.stdout


def credential_store(environ: Mapping[str, str] | None = None, *, rootless: bool) -> CredentialStore:
    """Docker's config.json for this user, plus containers' auth.json when rootless."""
    environ = os.environ if environ is None else environ
    directory = environ.get("DOCKER_CONFIG")
    if directory:
        config_file = Path(directory) / "config.json"
    else:
        config_file = Path(environ.get("HOME") or Path.home()) / ".docker" / "config.json"
    extra: tuple[Path, ...] = ()
    runtime = environ.get("XDG_RUNTIME_DIR")
    if rootless and runtime:
        extra = (Path(runtime) / "containers" / "auth.json",)
    return CredentialStore(config_file, read_only=extra)
