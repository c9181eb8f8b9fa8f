"""registries.toml, credentials in config.json, and WWW-Authenticate parsing."""

from __future__ import annotations

import base64
import json
import ssl
import stat
from pathlib import Path

import pytest

from dockyard.core.errors import StoreError, UsageError
from dockyard.core.registry.auth import Challenge, parse_challenges
from dockyard.core.registry.credentials import Credentials, CredentialStore, credential_store
from dockyard.core.registry.hosts import DOCKER_HUB_HOST, RegistryConfig, load_registry_config


def _config(tmp_path: Path, text: str) -> RegistryConfig:
    path = tmp_path / "registries.toml"
    path.write_text(text)
    return load_registry_config({"DOCKYARD_REGISTRIES_CONFIG": str(path)}, rootless=False)


def test_defaults_docker_hub_and_loopback(tmp_path: Path) -> None:
    config = load_registry_config({"DOCKYARD_REGISTRIES_CONFIG": str(tmp_path / "none.toml")}, rootless=False)
    (hub,) = config.targets("docker.io/library/busybox", pull=True)
    assert (hub.endpoint.host, hub.repository, hub.endpoint.schemes) == (
        DOCKER_HUB_HOST,
        "library/busybox",
        ("https",),
    )
    (local,) = config.targets("127.0.0.1:5000/app", pull=True)
    assert local.endpoint.schemes == ("https", "http") and not local.endpoint.verify_tls
    (ipv6,) = config.targets("[::1]:5000/app", pull=True)
    assert ipv6.endpoint.schemes == ("https",) and ipv6.endpoint.verify_tls  # only 127.0.0.0/8, as Docker


def test_insecure_endpoints_load_no_certificates(tmp_path: Path) -> None:
    """An insecure registry's certificate is not checked, so its TLS context skips reading the
    system's CAs (tens of milliseconds on every pull from a local registry)."""
    config = load_registry_config({"DOCKYARD_REGISTRIES_CONFIG": str(tmp_path / "none.toml")}, rootless=False)
    (local,) = config.targets("127.0.0.1:5000/app", pull=True)
    insecure = local.endpoint.ssl_context()
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname
    assert insecure.cert_store_stats()["x509_ca"] == 0
    (hub,) = config.targets("docker.io/library/busybox", pull=True)
    secure = hub.endpoint.ssl_context()
    assert secure.verify_mode == ssl.CERT_REQUIRED and secure.check_hostname


def test_mirrors_insecure_entries_and_certs(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    (certs / "secure.example:443").mkdir(parents=True)
    (certs / "secure.example:443" / "ca.crt").write_text("x")
    (certs / "secure.example:443" / "client.cert").write_text("x")
    (certs / "secure.example:443" / "client.key").write_text("x")
    config = _config(
        tmp_path,
        f"""
registry-mirrors = ["https://mirror.example", "http://10.1.1.1:5000"]
insecure-registries = ["lan.example:5000", "10.9.0.0/16"]
certs-dirs = ["{certs}"]

[[registry]]
location = "quay.example/team"
[[registry.mirror]]
location = "cache.example/quay"
""",
    )
    hub = config.targets("docker.io/library/busybox", pull=True)
    assert [(t.endpoint.host, t.endpoint.schemes, t.repository) for t in hub] == [
        ("mirror.example", ("https",), "library/busybox"),
        ("10.1.1.1:5000", ("http",), "library/busybox"),
        (DOCKER_HUB_HOST, ("https",), "library/busybox"),
    ]
    assert [t.endpoint.mirror for t in hub] == [True, True, False]
    assert len(config.targets("docker.io/library/busybox", pull=False)) == 1
    quay = config.targets("quay.example/team/app", pull=True)
    assert [(t.endpoint.host, t.repository) for t in quay] == [
        ("cache.example", "quay/app"),
        ("quay.example", "team/app"),
    ]
    assert config.targets("quay.example/other/app", pull=True)[0].endpoint.host == "quay.example"
    assert config.endpoint("lan.example:5000").schemes == ("https", "http")
    assert config.endpoint("10.9.3.4:5000").verify_tls is False
    secure = config.endpoint("secure.example:443")
    assert secure.ca_files == (certs / "secure.example:443" / "ca.crt",)
    assert secure.client_cert == (
        certs / "secure.example:443" / "client.cert",
        certs / "secure.example:443" / "client.key",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mirrors = []", "unknown setting"),
        ("insecure-registries = 5", "must be a list of strings"),
        ("insecure-registries = ['10.0.0.0/99']", "invalid insecure registry"),
        ("[[registry]]\ninsecure = true", "needs a location"),
        ("[[registry]]\nlocation = 'x'\nblocked = true", "registry.blocked"),
        ("registry-mirrors = [", "cannot read registry config"),
    ],
)
def test_bad_registry_config_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _config(tmp_path, text)


def test_credentials_round_trip_with_mode_0600_and_docker_hub_key(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "docker" / "config.json")
    assert store.get("docker.io") is None
    assert store.store("docker.io", Credentials("me", "pw:with:colons")) == str(store.config_file)
    saved = json.loads(store.config_file.read_text())
    assert (
        saved["auths"]["https://index.docker.io/v1/"]["auth"]
        == base64.b64encode(b"me:pw:with:colons").decode()
    )
    assert stat.S_IMODE(store.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.config_file.parent.stat().st_mode) == 0o700
    assert store.get("docker.io") == Credentials("me", "pw:with:colons")
    assert store.erase("docker.io") and not store.erase("docker.io")


def test_keys_are_matched_as_docker_normalises_them(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://registry.example:5000/v2/": {"auth": base64.b64encode(b"a:b").decode()},
                    "token.example": {"auth": base64.b64encode(b"x:y").decode(), "identitytoken": "refresh"},
                }
            }
        )
    )
    store = CredentialStore(path)
    assert store.get("registry.example:5000") == Credentials("a", "b")
    token = store.get("token.example")
    assert token is not None and token.identity_token == "refresh"


def test_rootless_reads_containers_auth_json_most_specific_first(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text(
        json.dumps(
            {
                "auths": {
                    "quay.example": {"auth": base64.b64encode(b"all:1").decode()},
                    "quay.example/team": {"auth": base64.b64encode(b"team:2").decode()},
                }
            }
        )
    )
    environ = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime)}
    rootless = credential_store(environ, rootless=True)
    assert rootless.config_file == tmp_path / ".docker" / "config.json"
    assert rootless.get("quay.example", "team/app") == Credentials("team", "2")
    assert rootless.get("quay.example", "other/app") == Credentials("all", "1")
    assert credential_store(environ, rootless=False).get("quay.example", "team/app") is None
    assert credential_store({**environ, "DOCKER_CONFIG": "/x"}, rootless=False).config_file == Path(
        "/x/config.json"
    )


def test_a_missing_credential_helper_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credsStore": "does-not-exist-anywhere"}))
    with pytest.raises(StoreError, match="docker-credential-does-not-exist-anywhere is not installed"):
        CredentialStore(path).get("registry.example")


def test_www_authenticate_parsing() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:library/busybox:pull,push", Basic realm="Registry \\"Realm\\""'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example/token",
                "service": "registry.example",
                "scope": "repository:library/busybox:pull,push",
            },
        ),
        Challenge("basic", {"realm": 'Registry "Realm"'}),
    ]
    assert parse_challenges("") == []
