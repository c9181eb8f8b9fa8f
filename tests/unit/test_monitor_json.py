"""The monitor's JSON comes from the json package's C half, without the package's Python half
(re and enum cost every monitor about 1 MB): it must read and write exactly what json does."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dockyard.core import monitor
from dockyard.core.monitor_launch import MONITOR_BOOT

VALUES: list[object] = [
    {"Status": "exited", "ExitCode": 137, "Pid": 0, "Error": "", "StopRequested": True, "X": None},
    {"log": 'tab\there "quoted" back\\slash\n', "stream": "stderr", "time": "2026-11-22T15:00:00.1Z"},
    {"log": "caf\u00e9 \u2028 \x00 \U0001f600\n", "nested": {"list": [1, -2.5, 1e-07, 10**30, []]}},
    "plain",
    [],
    {},
]
MALFORMED = ["", "   ", "{", '{"a" 1}', '"unterminated', "[1,]", "{} extra", '{"a": tru}']


@pytest.mark.parametrize("value", VALUES)
def test_dumps_writes_what_json_writes(value: object) -> None:
    assert monitor.json_dumps(value) == json.dumps(value).encode()
    assert monitor.json_dumps(value, compact=True) == json.dumps(value, separators=(",", ":")).encode()


@pytest.mark.parametrize("value", VALUES)
def test_loads_reads_what_json_reads(value: object) -> None:
    for text in (json.dumps(value), f" \n{json.dumps(value, indent=1)}\r\n"):
        assert monitor.json_loads(text) == json.loads(text)
        assert monitor.json_loads(text.encode()) == json.loads(text)


def test_unserialisable_values_fail_as_in_json() -> None:
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        monitor.json_dumps({"value": object()})


def _in_a_monitor_process(code: str, *args: str) -> list[str]:
    """The output lines of `code` run in a process that loaded the monitor the way
    core/monitor_launch.py has it loaded (`sys` and `monitor` defined, `args` in sys.argv[1:])."""
    boot = MONITOR_BOOT.replace("monitor.main()", "exec(sys.argv.pop(1))")
    assert boot != MONITOR_BOOT
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", boot, monitor.__file__, code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.splitlines()


def test_the_monitor_imports_nothing_heavy() -> None:
    (line,) = _in_a_monitor_process("print(*sys.modules)")
    loaded = set(line.split())
    assert "monitor" in loaded
    heavy = {"json", "socket", "signal", "enum", "re", "contextlib", "typing", "selectors", "ctypes"}
    assert not loaded & heavy


def test_malformed_input_is_json_s_value_error_in_a_lean_monitor() -> None:
    code = (
        "for text in sys.argv[1:]:\n"
        "    try:\n"
        "        monitor.json_loads(text)\n"
        "    except ValueError as exc:\n"
        "        print(type(exc).__name__, exc, sep=': ')\n"
    )
    expected = []
    for text in MALFORMED:
        with pytest.raises(json.JSONDecodeError) as caught:
            json.loads(text)
        expected.append(f"JSONDecodeError: {caught.value}")
    assert _in_a_monitor_process(code, *MALFORMED) == expected
