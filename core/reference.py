"""Image references: `hello-world` -> `docker.io/library/hello-world:latest`.

The grammar is distribution/reference's (the library Docker itself uses):

    reference       := name [":" tag] ["@" digest]
    name            := [domain "/"] path
    domain          := host [":" port]          host: dot-separated DNS labels or "[" IPv6 "]"
    path            := path-component ["/" path-component]*
    path-component  := [a-z0-9]+ (separator [a-z0-9]+)*      separator: "." | "_" | "__" | "-"+
    tag             := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}

Normalization follows Docker's ParseNormalizedNamed: the first path component is a registry domain
only if it contains "." or ":", is "localhost", or has an uppercase letter (namespaces are always
lowercase); otherwise the domain is docker.io, whose one-component names live under "library/".
"index.docker.io" is the legacy spelling of docker.io. A bare 64-hex string is refused as a name so
that it can never be confused with an image id. Digests must also pass `validate_digest`, so only
digests Dockyard can store are accepted.
"""

from __future__ import annotations

import re

from dockyard.core.digests import validate_digest
from dockyard.core.errors import InvalidDigest, InvalidReference

__all__ = ["DEFAULT_DOMAIN", "Reference", "looks_like_id", "parse_reference"]

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_MAX_PATH_LENGTH = 255

_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST_PATTERN = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REMAINDER = re.compile(
    rf"(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG_PATTERN}))?(?:@(?P<digest>{_DIGEST_PATTERN}))?"
)
_TAG = re.compile(_TAG_PATTERN)
_FULL_ID = re.compile(r"[a-f0-9]{64}")
_ID_PREFIX = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")


class Reference:
    """A normalized image reference; build it with `parse_reference` so it is known to be valid.

    Immutable and hashable; a plain class because dataclasses would double `images`' start-up time.
    """

    __slots__ = ("digest", "domain", "path", "tag")
    domain: str
    path: str
    tag: str | None
    digest: str | None

    def __init__(self, domain: str, path: str, tag: str | None = None, digest: str | None = None) -> None:
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Reference is immutable: cannot set {name}")

    def _key(self) -> tuple[str, str, str | None, str | None]:
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Reference({self.domain!r}, {self.path!r}, tag={self.tag!r}, digest={self.digest!r})"

    @property
    def name(self) -> str:
        """The repository with its registry: `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        """The full normalized form: `docker.io/library/busybox:latest`, `name@sha256:...`."""
        return self.name + self._suffix()

    def familiar_name(self) -> str:
        """The repository as Docker displays it: `busybox`, `user/repo`, `localhost:5000/foo`."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        official = self.path.removeprefix(_OFFICIAL_PREFIX)
        return official if official != self.path and "/" not in official else self.path

    def familiar(self) -> str:
        """The familiar name with its tag and digest: `busybox:latest`, `user/repo@sha256:...`."""
        return self.familiar_name() + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """The same repository (and digest) with another tag, checked against the tag grammar."""
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid tag format: {tag!r}")
        return Reference(self.domain, self.path, tag, self.digest)

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest


def parse_reference(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse and normalize a reference the way `docker pull` does, or raise InvalidReference.

    `default_tag` is added when the reference names neither a tag nor a digest (pass None to keep
    a bare name, e.g. for `docker pull --all-tags` or a search filter).
    """
    if _FULL_ID.fullmatch(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_domain(text)
    repository = remainder.partition(":")[0]
    if repository.lower() != repository:
        raise InvalidReference(f"invalid reference format: repository name ({repository}) must be lowercase")
    match = _REMAINDER.fullmatch(remainder)
    if match is None or not _DOMAIN.fullmatch(domain):
        raise InvalidReference("invalid reference format")
    path, tag, digest = match.group("path", "tag", "digest")
    if len(path) > _MAX_PATH_LENGTH:
        raise InvalidReference(
            f"invalid reference format: repository name must not be more than {_MAX_PATH_LENGTH} characters"
        )
    if digest is not None:
        try:
            validate_digest(digest)
        except InvalidDigest as exc:
            raise InvalidReference(f"invalid reference format: {exc}") from exc
    if tag is None and digest is None:
        tag = default_tag
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def looks_like_id(text: str) -> bool:
    """Whether `text` could be an image id or id prefix: 1-64 lowercase hex, maybe `sha256:`.

    Short hex strings such as `abc` are valid repository names too: like Docker, look an argument
    up as an id first and fall back to parsing it as a reference.
    """
    return _ID_PREFIX.fullmatch(text) is not None


def _split_domain(text: str) -> tuple[str, str]:
    """Split `text` into a registry domain and the rest (path, tag, digest), as Docker does."""
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, _OFFICIAL_PREFIX + text
    if first == _LEGACY_DOMAIN:
        domain, remainder = DEFAULT_DOMAIN, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remainder = first, rest
    else:
        domain, remainder = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = _OFFICIAL_PREFIX + remainder
    return domain, remainder
