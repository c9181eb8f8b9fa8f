"""Image references parse and normalize like Docker's (distribution/reference ParseNormalizedNamed)."""

from __future__ import annotations

import pytest

from dockyard.core.errors import InvalidReference, UsageError
from dockyard.core.reference import DEFAULT_DOMAIN, Reference, looks_like_id, parse_reference

DIGEST = "sha256:" + "86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("hello-world", "docker.io/library/hello-world:latest", "hello-world:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/user/repo", "docker.io/user/repo:latest", "user/repo:latest"),
        ("user/repo", "docker.io/user/repo:latest", "user/repo:latest"),
        ("library/foo/bar", "docker.io/library/foo/bar:latest", "library/foo/bar:latest"),
        ("other/library", "docker.io/other/library:latest", "other/library:latest"),
        ("localhost/foo", "localhost/foo:latest", "localhost/foo:latest"),
        ("localhost:5000/foo:v1", "localhost:5000/foo:v1", "localhost:5000/foo:v1"),
        ("quay.io/x/y", "quay.io/x/y:latest", "quay.io/x/y:latest"),
        ("example.com:8000/private/moonbase", "example.com:8000/private/moonbase:latest",
         "example.com:8000/private/moonbase:latest"),
        ("127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest", "127.0.0.1:5000/debian:latest"),
        ("[fc00::1]:5000/docker", "[fc00::1]:5000/docker:latest", "[fc00::1]:5000/docker:latest"),
        ("LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo:latest", "LOCALDOMAIN/fooo:latest"),
        ("192.168.0.1:80", "docker.io/library/192.168.0.1:80", "192.168.0.1:80"),
        ("ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base:latest",
         "ubuntu-12.04-base:latest"),
        ("busybox:Latest_1.0-rc.1", "docker.io/library/busybox:Latest_1.0-rc.1",
         "busybox:Latest_1.0-rc.1"),
        (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
        (f"busybox:latest@{DIGEST}", f"docker.io/library/busybox:latest@{DIGEST}",
         f"busybox:latest@{DIGEST}"),
        (f"quay.io/x/y@{DIGEST}", f"quay.io/x/y@{DIGEST}", f"quay.io/x/y@{DIGEST}"),
    ],
)  # fmt: skip
def test_references_normalize_like_docker(text: str, full: str, familiar: str) -> None:
    reference = parse_reference(text)
    assert str(reference) == full
    assert reference.familiar() == familiar
    assert parse_reference(full) == reference
    assert parse_reference(familiar) == reference


@pytest.mark.parametrize(
    ("text", "domain", "path"),
    [
        ("test.com/foo", "test.com", "foo"),
        ("test_com/foo", "docker.io", "test_com/foo"),
        ("docker/migrator", "docker.io", "docker/migrator"),
        ("test.com:8080/foo", "test.com:8080", "foo"),
        ("test-com:8080/foo", "test-com:8080", "foo"),
        ("foo", "docker.io", "library/foo"),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
        ("localhost/library/debian", "localhost", "library/debian"),
        ("Docker/docker", "Docker", "docker"),
        ("docker.io/" + "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
         "docker.io", "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"),
    ],
)  # fmt: skip
def test_domain_and_path_are_split_as_docker_does(text: str, domain: str, path: str) -> None:
    reference = parse_reference(text)
    assert (reference.domain, reference.path) == (domain, path)
    assert reference.name == f"{domain}/{path}"


@pytest.mark.parametrize(
    ("name", "familiar_name"),
    [
        ("docker.io/library/busybox", "busybox"),
        ("docker.io/library/foo/bar", "library/foo/bar"),
        ("docker.io/user/repo", "user/repo"),
        ("localhost:5000/foo", "localhost:5000/foo"),
        ("quay.io/x/y", "quay.io/x/y"),
        ("quay.io/library/y", "quay.io/library/y"),
    ],
)
def test_familiar_names(name: str, familiar_name: str) -> None:
    assert parse_reference(name).familiar_name() == familiar_name


@pytest.mark.parametrize(
    "text",
    [
        "docker/docker",
        "d/docker",
        "jess/t",
        "docker-rules/docker",
        "docker---rules/docker",
        "dock__er/docker",
        "dock_er-x/a.b_c",
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "192.168.0.1",
        "192.168.0.1:8/debian",
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "DOCKER/docker",
        "busybox:" + "t" * 128,
        "a/" + "b" * 253,
    ],
)
def test_valid_references(text: str) -> None:
    parse_reference(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid reference format"),
        ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
        ("docker/Docker", "invalid reference format: repository name (docker/Docker) must be lowercase"),
        ("docker.io/docker/Docker:Tag",
         "invalid reference format: repository name (docker/Docker) must be lowercase"),
        ("localhost:5000/Foo", "invalid reference format: repository name (Foo) must be lowercase"),
        ("https://github.com/docker/docker", "invalid reference format"),
        ("-docker", "invalid reference format"),
        ("-docker/docker", "invalid reference format"),
        ("docker-/docker", "invalid reference format"),
        ("-docker.io/docker/docker", "invalid reference format"),
        ("docker///docker", "invalid reference format"),
        ("docker.io/docker///docker", "invalid reference format"),
        ("____/____", "invalid reference format"),
        ("_docker/_docker", "invalid reference format"),
        ("dock..er/docker", "invalid reference format"),
        ("dock_.er/docker", "invalid reference format"),
        ("dock-.er/docker", "invalid reference format"),
        ("docker/", "invalid reference format"),
        ("busybox:", "invalid reference format"),
        ("busybox:.tag", "invalid reference format"),
        ("busybox:" + "t" * 129, "invalid reference format"),
        ("busybox@", "invalid reference format"),
        ("busybox@sha256:../x", "invalid reference format"),
        ("[fc00::1]", "invalid reference format"),
        ("[fc00::1]:5000", "invalid reference format"),
        ("fc00::1:5000/debian", "invalid reference format"),
        ("[fe80::1%eth0]:5000/debian", "invalid reference format"),
        ("foo_bar.com/x", "invalid reference format"),
        ("busybox latest", "invalid reference format"),
        ("a/" + "b" * 254, "invalid reference format: repository name must not be more than 255 characters"),
        ("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
         "invalid repository name (1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a), "
         "cannot specify 64-byte hexadecimal strings"),
    ],
)  # fmt: skip
def test_invalid_references_say_why(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "a" * 32,  # grammar allows 32+ hex; only the exact length is storable
        "sha256:" + "A" * 64,
        "md5:" + "a" * 32,
        "sha512:" + "a" * 64,
    ],
)
def test_digests_must_be_storable(digest: str) -> None:
    with pytest.raises(InvalidReference, match="invalid reference format: invalid digest"):
        parse_reference(f"busybox@{digest}")


def test_reference_errors_are_usage_errors() -> None:
    assert issubclass(InvalidReference, UsageError)


def test_default_tag() -> None:
    assert parse_reference("busybox", default_tag=None).tag is None
    assert str(parse_reference("busybox", default_tag=None)) == "docker.io/library/busybox"
    assert parse_reference("busybox", default_tag="edge").tag == "edge"
    assert parse_reference("busybox:1", default_tag="edge").tag == "1"
    assert parse_reference(f"busybox@{DIGEST}").tag is None


def test_fields_and_with_tag() -> None:
    reference = parse_reference("busybox:1.36")
    assert reference == Reference(DEFAULT_DOMAIN, "library/busybox", "1.36", None)
    retagged = reference.with_tag("musl")
    assert str(retagged) == "docker.io/library/busybox:musl"
    assert reference.tag == "1.36"  # frozen: with_tag returns a new reference
    pinned = parse_reference(f"busybox@{DIGEST}").with_tag("v1")
    assert pinned.familiar() == f"busybox:v1@{DIGEST}"
    for bad in ("", ".x", "a:b", "t" * 129, "ünïcode"):
        with pytest.raises(InvalidReference, match="invalid tag format"):
            reference.with_tag(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc", True),
        ("a416a98b71e2", True),
        ("a" * 64, True),
        ("sha256:a416a9", True),
        ("sha256:" + "a" * 64, True),
        ("a" * 65, False),
        ("ABC", False),
        ("xyz", False),
        ("", False),
        ("sha256:", False),
        ("sha512:abc", False),
        ("busybox", False),
    ],
)
def test_looks_like_id(text: str, expected: bool) -> None:
    assert looks_like_id(text) is expected
