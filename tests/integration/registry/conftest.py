"""Fixtures for the registry tests: a session registry, a test CA, and an isolated client config.

Every test gets its own Docker config directory and registries.toml path (set in the `dockyard`
fixture's environment), so no test reads or writes the real ~/.docker/config.json.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Dockyard
from tests.integration.registry.support import Registry, RegistryApi, TestCA, start_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP reference registry on 127.0.0.1 shared by the session (use unique repositories)."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """A CA for TLS registries, made once per session."""
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def busybox_image(registry: Registry, busybox_tar: Path) -> tuple[str, str]:
    """busybox as a one-layer image at `<registry>/seed/busybox:1`; returns (image id, manifest digest)."""
    image_id, digest, _ = RegistryApi(registry.host).push_image(
        "seed/busybox", "1", [busybox_tar.read_bytes()]
    )
    return image_id, digest


@pytest.fixture(autouse=True)
def isolated_client(dockyard: Dockyard, tmp_path: Path) -> None:
    """Point Docker's config and Dockyard's registries.toml at per-test paths."""
    dockyard.env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
    dockyard.env["DOCKYARD_REGISTRIES_CONFIG"] = str(tmp_path / "registries.toml")


@pytest.fixture
def registries_toml(tmp_path: Path) -> Callable[[str], Path]:
    """Write the test's registries.toml."""

    def write(text: str) -> Path:
        path = tmp_path / "registries.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[list[str]]:
    """podman's command prefix with a private store (vfs) and a short runroot (podman caps its length)."""
    runroot = Path(tempfile.mkdtemp(prefix="dy-podman-"))
    yield ["podman", "--root", str(tmp_path / "podman"), "--runroot", str(runroot), "--storage-driver", "vfs"]
    shutil.rmtree(runroot, ignore_errors=True)
