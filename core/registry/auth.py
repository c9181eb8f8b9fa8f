"""Registry authentication: WWW-Authenticate challenges, Bearer tokens and Basic auth.

The distribution spec's flow: a request without credentials gets `401` with a challenge,

    WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry.example",
                      scope="repository:library/busybox:pull"

and the client asks the realm for a token for that service and scope (with Basic credentials when
it has some, anonymously otherwise; with an identity token it posts an OAuth2 refresh-token grant),
then repeats the request with `Authorization: Bearer <token>`. A `Basic` challenge means the
registry wants the credentials on every request. The challenge learnt from the `/v2/` ping is used
up front, so a pull does not pay a 401 round trip per request; tokens are cached per set of scopes
until shortly before they expire. A registry that answers 401 with a wider scope (a cross-repository
mount needs `pull` on the source) gets a token for the union.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import httpx

from dockyard.core.errors import RegistryError
from dockyard.core.registry.credentials import Credentials

__all__ = ["AuthState", "Challenge", "RegistryAuth", "error_text", "parse_challenges"]

_SCHEME = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?:\s+|$)")
_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_MIN_TOKEN_LIFETIME = 60
_EXPIRY_MARGIN = 10
_CLIENT_ID = "dockyard"


@dataclass(frozen=True)
class Challenge:
    """One WWW-Authenticate challenge: its scheme (lower case) and parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate header into challenges (`Bearer realm="...",service="..."`)."""
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        match = _SCHEME.match(header, position)
        if match is None:
            break
        params: dict[str, str] = {}
        position = match.end()
        while position < len(header):
            param = _PARAM.match(header, position)
            if param is None or param.end() == position:
                break
            value = param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[param.group(1).lower()] = value
            position = param.end()
        challenges.append(Challenge(match.group(1).lower(), params))
    return challenges


def error_text(response: httpx.Response) -> str:
    """The registry's own words for a failed response, Docker style (`unauthorized: ...`)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = str(first.get("code", "")).lower().replace("_", " ")
            message = str(first.get("message", "")) or code
            return f"{code}: {message}" if code else message
        for key in ("details", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                prefix = "unauthorized: " if response.status_code == 401 else ""
                return prefix + value
    text = response.text.strip().splitlines()
    if response.status_code == 401:
        return "unauthorized: " + (text[0] if text else "authentication required")
    return text[0][:200] if text else f"{response.status_code} {response.reason_phrase}"


class AuthState:
    """One registry's authentication state, shared by every request and thread of a command."""

    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials
        self._challenge: Challenge | None = None
        self._tokens: dict[frozenset[str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def learn(self, response: httpx.Response) -> Challenge | None:
        """Remember the challenge a 401 response carries (Bearer preferred over Basic)."""
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        chosen = next((c for c in challenges if c.scheme == "bearer"), None)
        chosen = chosen or next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is not None:
            with self._lock:
                self._challenge = chosen
        return chosen

    @property
    def challenge(self) -> Challenge | None:
        """The challenge in force, if the registry asked for authentication."""
        with self._lock:
            return self._challenge

    def cached(self, scopes: frozenset[str]) -> str | None:
        """An Authorization header that needs no request: Basic, or a live cached token."""
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic()
        with self._lock:
            token, expiry = self._tokens.get(scopes, ("", 0.0))
        return f"Bearer {token}" if token and time.monotonic() < expiry else None

    def _basic(self) -> str | None:
        if self.credentials is None or self.credentials.identity_token is not None:
            return None
        pair = f"{self.credentials.username}:{self.credentials.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def token_request(self, scopes: frozenset[str]) -> httpx.Request | None:
        """The request that fetches a Bearer token for `scopes`, or None if Basic is in force."""
        challenge = self.challenge
        if challenge is None or challenge.scheme != "bearer":
            return None
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError("registry sent a Bearer challenge without a realm")
        service = challenge.params.get("service", "")
        credentials = self.credentials
        if credentials is not None and credentials.identity_token is not None:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": credentials.identity_token,
                "service": service,
                "client_id": _CLIENT_ID,
                "scope": " ".join(sorted(scopes)),
            }
            return httpx.Request("POST", realm, data=form)
        params: list[tuple[str, str | int | float | bool | None]] = []
        if service:
            params.append(("service", service))
        params.extend(("scope", scope) for scope in sorted(scopes))
        headers = {}
        if credentials is not None:
            params.append(("account", credentials.username))
            headers["Authorization"] = self._basic() or ""
        return httpx.Request("GET", realm, params=params, headers=headers)

    def accept_token(self, response: httpx.Response, scopes: frozenset[str], *, failed: httpx.Request) -> str:
        """Read a token response; cache and return the Authorization header it gives."""
        response.read()
        if response.status_code != 200:
            raise RegistryError(
                f'{failed.method.title()} "{failed.url}": {error_text(response)}', status=response.status_code
            )
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
            lifetime = max(int(body.get("expires_in") or 0), _MIN_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError) as exc:
            raise RegistryError(f"token server {response.url} sent an invalid response: {exc}") from exc
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server {response.url} sent no token")
        with self._lock:
            self._tokens[scopes] = (token, time.monotonic() + lifetime - _EXPIRY_MARGIN)
        return f"Bearer {token}"


class RegistryAuth(httpx.Auth):
    """Authenticates one request for `scopes` (`repository:NAME:pull,push`), retrying once on 401."""

    def __init__(self, state: AuthState, scopes: frozenset[str]) -> None:
        self._state = state
        self._scopes = scopes

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with the credentials in force; on 401 follow the new challenge once and resend."""
        header = self._state.cached(self._scopes)
        if header is None:
            header = yield from self._fetch_token(self._scopes, request)
        if header:
            request.headers["Authorization"] = header
        response = yield request
        if response.status_code != 401:
            return
        challenge = self._state.learn(response)
        if challenge is None:
            return
        if challenge.scheme == "basic":
            retry = self._state.cached(self._scopes)
        else:
            wanted = challenge.params.get("scope")
            scopes = self._scopes | frozenset(wanted.split(" ")) if wanted else self._scopes
            retry = yield from self._fetch_token(scopes, request)
        if not retry or retry == header:
            return  # nothing new to offer: the caller reports the 401
        request.headers["Authorization"] = retry
        yield request

    def _fetch_token(
        self, scopes: frozenset[str], request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, str | None]:
        token_request = self._state.token_request(scopes)
        if token_request is None:
            return None
        token_response = yield token_request
        return self._state.accept_token(token_response, scopes, failed=request)
