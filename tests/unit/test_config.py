"""Settings precedence: defaults < system file < user file < environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.core.config import config_files, load_settings
from dockyard.core.errors import UsageError


def test_root_defaults_and_rootless_defaults(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "DOCKYARD_CONFIG": str(tmp_path / "none.toml")}
    as_root = load_settings(environ=env, euid=0)
    assert (as_root.root, as_root.runroot) == (Path("/var/lib/dockyard"), Path("/run/dockyard"))
    assert not as_root.rootless

    user_env = {**env, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    as_user = load_settings(environ=user_env, euid=1000)
    assert as_user.rootless
    assert as_user.root == tmp_path / "data" / "dockyard"
    assert as_user.runroot == tmp_path / "run" / "dockyard"
    fallback = load_settings(environ=env, euid=1000)
    assert fallback.root == tmp_path / ".local" / "share" / "dockyard"


def test_layers_override_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "system.toml"
    user_home = tmp_path / "xdg"
    (user_home / "dockyard").mkdir(parents=True)
    system.write_text('storage_driver = "from-system"\nlog_level = "info"\nroot = "/srv/system"\n')
    (user_home / "dockyard" / "dockyard.toml").write_text('storage_driver = "from-user"\n')
    monkeypatch.setattr("dockyard.core.config.SYSTEM_CONFIG", system)
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(user_home)}
    assert config_files(False, env) == [system, user_home / "dockyard" / "dockyard.toml"]

    settings = load_settings(environ=env, euid=0)
    assert settings.storage_driver == "from-user"
    assert settings.log_level == "info"
    assert settings.root == Path("/srv/system")

    env["DOCKYARD_STORAGE_DRIVER"] = "from-env"
    assert load_settings(environ=env, euid=0).storage_driver == "from-env"
    flagged = load_settings({"storage_driver": "from-flag", "root": None}, environ=env, euid=0)
    assert flagged.storage_driver == "from-flag"
    assert flagged.root == Path("/srv/system"), "an unset flag must not override"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("storage_driver = 3\n", "must be a string"),
        ("bogus_key = 1\n", "unknown setting"),
        ("not toml at all [\n", "cannot read config file"),
        ('log_level = "loud"\n', "invalid log level"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_settings(environ={"DOCKYARD_CONFIG": str(path), "HOME": str(tmp_path)}, euid=0)
