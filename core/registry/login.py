"""`login` and `logout`: which registry a server argument means, and proving credentials work.

Docker's rules: no server means Docker Hub, a server may be given as a URL (`https://host:5000/`),
and the credentials are proven by authenticating against the registry's `/v2/` endpoint (through
its token server when it has one) before anything is saved.
"""

from __future__ import annotations

from dockyard.core.reference import DEFAULT_DOMAIN
from dockyard.core.registry.client import RegistryClient
from dockyard.core.registry.credentials import Credentials
from dockyard.core.registry.hosts import RegistryConfig

__all__ = ["registry_domain", "verify_credentials"]

_DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")


def registry_domain(server: str | None) -> str:
    """The registry a `login`/`logout` argument names: `docker.io` for none or a Hub alias."""
    if not server:
        return DEFAULT_DOMAIN
    host = server.removeprefix("https://").removeprefix("http://").partition("/")[0]
    return DEFAULT_DOMAIN if host in _DOCKER_HUB_ALIASES else host


def verify_credentials(config: RegistryConfig, domain: str, credentials: Credentials) -> None:
    """Authenticate against the registry with `credentials`; RegistryError if it refuses them."""
    with RegistryClient(config.endpoint(domain), credentials=credentials) as client:
        client.check_login()
