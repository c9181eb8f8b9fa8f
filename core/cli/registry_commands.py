"""Registry and archive commands: pull, push, login, logout, save, load.

Each command imports httpx and the registry modules inside its body, so `dockyard --help` and
`dockyard images` never load them. Their failures exit 1 like every command but `run` and
`create` (see `exit_status`): `docker pull nosuch` exits 1.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from dockyard.core.engine import Engine
from dockyard.core.errors import UsageError

if TYPE_CHECKING:
    from dockyard.core.reference import Reference
    from dockyard.core.registry.credentials import CredentialStore
    from dockyard.core.registry.hosts import RegistryConfig

pass_engine = click.make_pass_decorator(Engine)


def _registry_setup(engine: Engine) -> tuple[RegistryConfig, CredentialStore]:
    from dockyard.core.registry.credentials import credential_store
    from dockyard.core.registry.hosts import load_registry_config

    rootless = engine.settings.rootless
    return load_registry_config(rootless=rootless), credential_store(rootless=rootless)


@click.command("pull")
@click.argument("name")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--platform", help="Set platform if server is multi-platform capable (os/arch[/variant]).")
@click.option("--disable-content-trust", is_flag=True, hidden=True, help="Accepted for compatibility.")
@pass_engine
def pull(
    engine: Engine, name: str, all_tags: bool, quiet: bool, platform: str | None, disable_content_trust: bool
) -> None:
    """Download an image from a registry."""
    from dockyard.core.registry.media import parse_platform
    from dockyard.core.registry.progress import make_progress
    from dockyard.core.registry.pull import Puller

    reference = _target(name, all_tags=all_tags, quiet=quiet)
    config, credentials = _registry_setup(engine)
    puller = Puller(
        engine,
        config=config,
        credentials=credentials,
        progress=make_progress(sys.stdout, quiet=quiet),
        platform=parse_platform(platform) if platform else None,
    )
    if all_tags:
        puller.pull_all_tags(reference)
        click.echo(reference.name)
    else:
        puller.pull(reference)
        click.echo(str(reference))


@click.command("push")
@click.argument("name")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of an image to the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.option("--disable-content-trust", is_flag=True, hidden=True, help="Accepted for compatibility.")
@pass_engine
def push(engine: Engine, name: str, all_tags: bool, quiet: bool, disable_content_trust: bool) -> None:
    """Upload an image to a registry."""
    from dockyard.core.registry.progress import make_progress
    from dockyard.core.registry.push import Pusher

    reference = _target(name, all_tags=all_tags, quiet=quiet)
    config, credentials = _registry_setup(engine)
    pusher = Pusher(
        engine, config=config, credentials=credentials, progress=make_progress(sys.stdout, quiet=quiet)
    )
    results = pusher.push_all_tags(reference) if all_tags else [pusher.push(reference)]
    if quiet:
        for result in results:
            click.echo(str(result.reference))


def _target(name: str, *, all_tags: bool, quiet: bool) -> Reference:
    """The reference `pull` or `push` works on: `latest` when no tag is named (said unless
    quiet), none at all with --all-tags."""
    from dockyard.core.reference import parse_reference

    reference = parse_reference(name, default_tag=None)
    if all_tags and (reference.tag or reference.digest):
        raise UsageError("tag can't be used with --all-tags/-a")
    if not all_tags and reference.tag is None and reference.digest is None:
        if not quiet:
            click.echo("Using default tag: latest")
        reference = reference.with_tag("latest")
    return reference


def _read_password_stdin() -> str:
    password = sys.stdin.read()
    return password.rstrip("\r\n")


@click.command("login")
@click.argument("server", required=False)
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@pass_engine
def login(
    engine: Engine, server: str | None, username: str | None, password: str | None, password_stdin: bool
) -> None:
    """Log in to a registry (Docker Hub when no server is given)."""
    from dockyard.core.registry.credentials import Credentials
    from dockyard.core.registry.login import registry_domain, verify_credentials

    if password is not None and password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise UsageError("Must provide --username with --password-stdin")
        password = _read_password_stdin()
    elif password is not None:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    if not username or not password:
        if not sys.stdin.isatty():
            raise UsageError("Cannot perform an interactive login from a non TTY device")
        username = username or click.prompt("Username")
        password = password or click.prompt("Password", hide_input=True)
    if not username or not password:
        raise UsageError("Username and password are required")
    config, store = _registry_setup(engine)
    domain = registry_domain(server)
    credentials = Credentials(username, password)
    verify_credentials(config, domain, credentials)
    where = store.store(domain, credentials)
    if not where.startswith("docker-credential-"):
        click.echo(
            f"WARNING! Your password will be stored unencrypted in {where}.\n"
            "Configure a credential helper (credsStore) to remove this warning.",
            err=True,
        )
    click.echo("Login Succeeded")


@click.command("logout")
@click.argument("server", required=False)
@pass_engine
def logout(engine: Engine, server: str | None) -> None:
    """Log out from a registry (Docker Hub when no server is given)."""
    from dockyard.core.registry.credentials import server_key
    from dockyard.core.registry.login import registry_domain

    _, store = _registry_setup(engine)
    domain = registry_domain(server)
    key = server_key(domain)
    if store.erase(domain):
        click.echo(f"Removing login credentials for {key}")
    else:
        click.echo(f"Not logged in to {key}")


@click.command("save")
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file, instead of STDOUT.")
@click.option(
    "--format",
    "archive_format",
    type=click.Choice(["docker-archive", "oci-archive"]),
    default="docker-archive",
    show_default=True,
    help="Archive format.",
)
@pass_engine
def save(engine: Engine, names: tuple[str, ...], output: str | None, archive_format: str) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    from pathlib import Path

    from dockyard.core.image_save import save_images

    if output is None and sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    save_images(
        engine,
        list(names),
        output=Path(output) if output else None,
        out=sys.stdout.buffer,
        format=archive_format,
    )


@click.command("load")
@click.option(
    "-i",
    "--input",
    "source",
    type=click.Path(dir_okay=False),
    help="Read from tar archive file, instead of STDIN.",
)
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@pass_engine
def load(engine: Engine, source: str | None, quiet: bool) -> None:
    """Load images from a tar archive (docker-archive or OCI) on STDIN or a file."""
    from pathlib import Path

    from dockyard.core.image_load import load_images

    if source is None and sys.stdin.isatty():
        raise UsageError("requested load from stdin, but stdin is empty")
    path = Path(source) if source else None
    if path is not None and not path.is_file():
        raise UsageError(f"open {source}: no such file")
    loaded = load_images(engine, sys.stdin.buffer, seekable_path=path)
    if quiet:
        return
    for image in loaded:
        if image.tags:
            for tag in image.tags:
                click.echo(f"Loaded image: {tag.familiar()}")
        else:
            click.echo(f"Loaded image ID: {image.image_id}")
