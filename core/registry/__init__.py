"""The distribution client: pull, push and log in to registries (Docker Hub, GHCR, Quay, `distribution`).

Modules, each with one job (import the one you need; none is imported by `dockyard --help`):

    media.py         media types, manifest and index parsing, platform selection
    hosts.py         registries.toml: mirrors, insecure registries, CA directories -> endpoints
    credentials.py   Docker's config.json (and containers' auth.json), credential helpers
    auth.py          WWW-Authenticate challenges, Bearer tokens and Basic auth as an httpx.Auth
    client.py        one endpoint over httpx: ping, manifests, blobs (resumable), uploads
    progress.py      Docker's per-layer progress, live on a terminal and plain lines otherwise
    pull.py, push.py, login.py   the operations behind `pull`, `push`, `login` and `logout`

Every failure a user can cause or meet reaches the CLI as a `DockyardError`: `RegistryError` for
what a registry said or a connection that failed, `ContentError` for content that does not match
its digest, size or media type. httpx's exceptions never leave `client.py` and `auth.py`.
"""
