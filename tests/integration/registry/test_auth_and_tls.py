"""login/logout, Basic and token authentication, and TLS, against the real reference registry."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Dockyard
from tests.integration.registry.support import (
    Registry,
    RegistryApi,
    TestCA,
    TokenIssuer,
    layer_tar,
    start_registry,
    write_htpasswd,
)

# A docker-credential-* helper speaking Docker's protocol, keeping its secrets in a JSON file.
HELPER = """#!/usr/bin/env python3
import json, sys
path = STORE
try:
    data = json.load(open(path))
except FileNotFoundError:
    data = {}
action = sys.argv[1]
if action == "store":
    item = json.load(sys.stdin)
    data[item["ServerURL"]] = item
    json.dump(data, open(path, "w"))
elif action == "get":
    key = sys.stdin.read().strip()
    if key not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    json.dump(data[key], sys.stdout)
elif action == "erase":
    data.pop(sys.stdin.read().strip(), None)
    json.dump(data, open(path, "w"))
"""


@pytest.fixture
def basic_registry(tmp_path: Path) -> Iterator[Registry]:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    server = start_registry(tmp_path / "basic", htpasswd=htpasswd)
    yield server
    server.stop()


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenIssuer]]:
    issuer = TokenIssuer(tmp_path / "issuer", {"bob": "builder"})
    server = start_registry(tmp_path / "token", token=issuer.registry_config())
    yield server, issuer
    server.stop()
    issuer.close()


def _config_json(dockyard: Dockyard) -> Path:
    return Path(dockyard.env["DOCKER_CONFIG"]) / "config.json"


def test_basic_auth_login_push_pull_logout(
    dockyard: Dockyard, basic_registry: Registry, busybox_tar: Path
) -> None:
    host = basic_registry.host
    name = f"{host}/private/busybox:1"
    dockyard("import", str(busybox_tar), name)

    denied = dockyard("push", name, check=False)
    assert denied.returncode == 1
    assert denied.stderr.startswith(f'Error: Head "http://{host}/v2/private/busybox/blobs/sha256:')
    assert denied.stderr.endswith(": unauthorized: authentication required\n")

    wrong = dockyard("login", "-u", "alice", "--password-stdin", host, input=b"queen\n", check=False)
    assert (wrong.returncode, wrong.stderr) == (
        1,
        f'Error: Get "http://{host}/v2/": unauthorized: authentication required\n',
    )
    assert not _config_json(dockyard).exists()

    ok = dockyard("login", "-u", "alice", "--password-stdin", host, input=b"wonderland\n")
    assert ok.stdout == "Login Succeeded\n"
    config = _config_json(dockyard)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["auths"][host] == {
        "auth": base64.b64encode(b"alice:wonderland").decode()
    }

    dockyard("push", name)
    dockyard("rmi", name)
    dockyard("pull", name)

    assert dockyard("logout", host).stdout == f"Removing login credentials for {host}\n"
    assert json.loads(config.read_text())["auths"] == {}
    assert dockyard("logout", host).stdout == f"Not logged in to {host}\n"
    dockyard("rmi", name)
    pull = dockyard("pull", name, check=False)
    assert pull.returncode == 1 and pull.stderr.count("\n") == 1
    assert pull.stderr == (
        f'Error: Get "http://{host}/v2/private/busybox/manifests/1": unauthorized: authentication required\n'
    )


def test_login_keeps_the_other_settings_of_config_json(
    dockyard: Dockyard, basic_registry: Registry, tmp_path: Path
) -> None:
    config = _config_json(dockyard)
    config.parent.mkdir()
    config.write_text(json.dumps({"psFormat": "table {{.ID}}", "auths": {"other.example": {"auth": "eDp5"}}}))
    dockyard("login", "-u", "alice", "-p", "wonderland", basic_registry.host)
    saved = json.loads(config.read_text())
    assert saved["psFormat"] == "table {{.ID}}" and set(saved["auths"]) == {
        "other.example",
        basic_registry.host,
    }


def test_credential_helper_is_used_for_login_and_pull(
    dockyard: Dockyard, basic_registry: Registry, tmp_path: Path, busybox_tar: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = bin_dir / "docker-credential-testhelper"
    helper.write_text(HELPER.replace("STORE", repr(str(store))))
    helper.chmod(0o755)
    dockyard.env["PATH"] = f"{bin_dir}:{dockyard.env['PATH']}"
    config = _config_json(dockyard)
    config.parent.mkdir()
    config.write_text(json.dumps({"credHelpers": {basic_registry.host: "testhelper"}}))

    login = dockyard("login", "-u", "alice", "--password-stdin", basic_registry.host, input=b"wonderland")
    assert login.stdout == "Login Succeeded\n" and "unencrypted" not in login.stderr
    assert json.loads(store.read_text())[basic_registry.host]["Secret"] == "wonderland"
    assert json.loads(config.read_text())["auths"][basic_registry.host] == {}
    name = f"{basic_registry.host}/helped/busybox:1"
    dockyard("import", str(busybox_tar), name)
    dockyard("push", name)
    dockyard("logout", basic_registry.host)
    assert json.loads(store.read_text()) == {}


def test_token_auth_anonymous_pull_and_authenticated_push(
    dockyard: Dockyard, token_registry: tuple[Registry, TokenIssuer], busybox_tar: Path
) -> None:
    server, issuer = token_registry
    name = f"{server.host}/team/busybox:1"
    dockyard("import", str(busybox_tar), name)
    denied = dockyard("push", name, check=False)
    assert denied.returncode == 1 and "unauthorized" in denied.stderr and denied.stderr.count("\n") == 1

    wrong = dockyard("login", "-u", "bob", "--password-stdin", server.host, input=b"nope", check=False)
    assert wrong.returncode == 1
    assert (
        wrong.stderr
        == f'Error: Get "http://{server.host}/v2/": unauthorized: incorrect username or password\n'
    )

    dockyard("login", "-u", "bob", "--password-stdin", server.host, input=b"builder")
    dockyard("push", name)
    scopes = [scope for request in issuer.requests for scope in request["scope"]]
    assert "repository:team/busybox:pull,push" in scopes
    dockyard("logout", server.host)
    dockyard("rmi", name)
    issuer.requests.clear()
    dockyard("pull", name)  # anonymous: the issuer grants pull to everyone
    assert {request["user"] for request in issuer.requests} == {None}
    assert dockyard("images", "-q").stdout.strip()


@pytest.fixture
def tls_registry(tmp_path: Path, test_ca: TestCA) -> Iterator[Registry]:
    """A registry on [::1] (not 127.0.0.0/8, so not insecure by default) with a test-CA certificate."""
    server = start_registry(tmp_path / "tls", bind="::1", tls=test_ca.server_cert("registry"))
    yield server
    server.stop()


def test_tls_needs_the_ca_or_an_insecure_entry(
    dockyard: Dockyard,
    tls_registry: Registry,
    test_ca: TestCA,
    tmp_path: Path,
    registries_toml: Callable[[str], Path],
) -> None:
    host = tls_registry.host
    RegistryApi(host, scheme="https", verify=str(test_ca.ca_file)).push_image(
        "tls/app", "1", [layer_tar({"f": b"x"})]
    )
    name = f"{host}/tls/app:1"
    untrusted = dockyard("pull", name, check=False)
    assert untrusted.returncode == 1
    assert untrusted.stderr.startswith(f'Error: Get "https://{host}/v2/": tls: failed to verify certificate')
    assert untrusted.stderr.count("\n") == 1

    certs = tmp_path / "certs.d"
    (certs / host).mkdir(parents=True)
    (certs / host / "ca.crt").write_bytes(test_ca.ca_file.read_bytes())
    registries_toml(f'certs-dirs = ["{certs}"]\n')
    dockyard("pull", name)
    dockyard("tag", name, f"{host}/tls/pushed:1")
    dockyard("push", f"{host}/tls/pushed:1")

    registries_toml(f'certs-dirs = []\ninsecure-registries = ["{host}"]\n')
    dockyard("rmi", name, f"{host}/tls/pushed:1")
    dockyard("pull", name)


def test_loopback_registries_are_insecure_like_dockers(
    dockyard: Dockyard, tmp_path: Path, test_ca: TestCA
) -> None:
    server = start_registry(tmp_path / "tls4", tls=test_ca.server_cert("loopback"))
    try:
        RegistryApi(server.host, scheme="https", verify=False).push_image(
            "loop/app", "1", [layer_tar({"a": b"b"})]
        )
        dockyard("pull", f"{server.host}/loop/app:1")
    finally:
        server.stop()
