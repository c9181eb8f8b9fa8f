"""The seeds' `run -it ubuntu bash` flow on a real distribution image, made with debootstrap."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Dockyard
from tests.terminal import Terminal

pytestmark = pytest.mark.slow


@pytest.fixture
def debian(dockyard: Dockyard, debian_tar: Path) -> str:
    """Debian 12 (minbase) imported as `debian`, with Docker's usual CMD."""
    dockyard("import", "-c", 'CMD ["bash"]', str(debian_tar), "debian")
    return "debian"


def test_bash_runs_with_the_images_own_users(dockyard: Dockyard, debian: str) -> None:
    result = dockyard("run", "--rm", debian, "bash", "-c", 'echo "$BASH_VERSION"; cat /etc/debian_version')
    major, release = result.stdout.split()
    assert major.startswith("5.") and release.startswith("12")
    assert dockyard("run", "--rm", "-u", "nobody", debian, "id", "-un").stdout == "nobody\n"
    assert dockyard("run", "--rm", "-u", "www-data:www-data", debian, "id", "-g").stdout == "33\n"
    assert dockyard("run", "--rm", "-w", "/usr/share", debian, "pwd").stdout == "/usr/share\n"
    listing = dockyard("run", "--rm", debian, "ls", "-l", "/").stdout
    assert "etc" in listing and "usr" in listing


def test_run_it_bash_shows_a_prompt_and_exit_stops_it(dockyard: Dockyard, debian: str) -> None:
    terminal = Terminal(dockyard.command("run", "-it", "--name", "shell", debian, "bash"), dockyard.env)
    terminal.expect(b"root@")
    terminal.send(b"echo from-$((6*7))\n")
    terminal.expect(b"from-42")
    terminal.send(b"exit 3\n")
    assert terminal.close() == 3
    assert dockyard("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout.startswith("shell Exited (3)")
