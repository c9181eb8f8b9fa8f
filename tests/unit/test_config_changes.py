"""`--change` instructions applied to an image config, as `docker import -c` accepts them."""

from __future__ import annotations

import pytest

from dockyard.core.config_changes import apply_changes
from dockyard.core.errors import UsageError


def test_each_instruction() -> None:
    config = apply_changes(
        {"Env": ["PATH=/bin", "KEEP=1"]},
        [
            'CMD ["/bin/sh"]',
            "ENTRYPOINT echo hi",
            "ENV PATH=/usr/bin:/bin LANG=C",
            "ENV SPACED value with spaces",
            "EXPOSE 80 53/udp",
            'LABEL a=1 "b=two words"',
            "ONBUILD RUN true",
            "STOPSIGNAL SIGINT",
            "USER nobody",
            'VOLUME ["/data", "/logs"]',
            "WORKDIR /srv",
        ],
    )
    assert config["Cmd"] == ["/bin/sh"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "echo hi"]
    assert config["Env"] == ["KEEP=1", "PATH=/usr/bin:/bin", "LANG=C", "SPACED=value with spaces"]
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Labels"] == {"a": "1", "b": "two words"}
    assert config["OnBuild"] == ["RUN true"]
    assert config["StopSignal"] == "SIGINT"
    assert config["User"] == "nobody"
    assert config["Volumes"] == {"/data": {}, "/logs": {}}
    assert config["WorkingDir"] == "/srv"


@pytest.mark.parametrize(
    "change", ["RUN rm -rf /", "FROM scratch", "CMD", "EXPOSE 99999", "EXPOSE 80/icmp", "LABEL =x"]
)
def test_invalid_changes(change: str) -> None:
    with pytest.raises(UsageError):
        apply_changes({}, [change])


def test_input_is_not_modified() -> None:
    original = {"Env": ["A=1"]}
    apply_changes(original, ["ENV B=2"])
    assert original == {"Env": ["A=1"]}
