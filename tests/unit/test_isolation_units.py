"""The pure parts of the isolation drivers: sysctl policy, seccomp profile reduction, mount options,
cgroup limit files on v1 and v2 layouts, the OCI config, the exec report, and cheap plugin imports.

No root needed: the kernel-facing behaviour is in tests/integration/test_isolation_drivers.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from dockyard.core.defaults import DEFAULT_CAPABILITIES, DEFAULT_SECCOMP_PROFILE, default_spec
from dockyard.core.errors import CommandNotFound, DriverFailed, DriverPrerequisites, UsageError
from dockyard.core.linux.cgroup_limits import limit_writes
from dockyard.core.linux.cgroups import ContainerCgroups
from dockyard.core.linux.mounts import MS_BIND, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, parse_options
from dockyard.core.linux.paths import ensure_in_root
from dockyard.core.linux.seccomp import load_profile
from dockyard.core.spec import Resources, User
from dockyard.plugins.isolation.exec_report import await_exec
from dockyard.plugins.isolation.oci_config import config_for
from dockyard.plugins.isolation.sysctls import validate_sysctls


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("kernel.shm_rmid_forced", "1+kernel.core_pattern=|/x", "one plain value"),
        ("kernel.msgmax", "1\nkernel.core_pattern=x", "one plain value"),
        ("kernel.core_pattern", "x", "not allowed"),
        ("kernel.shm/../core_pattern", "x", "invalid sysctl name"),
        ("fs.file-max", "1", "not allowed"),
        ("vm.overcommit_memory", "1", "not allowed"),
    ],
)
def test_sysctl_policy_refuses(key: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate_sysctls(((key, value),), private_network=True, private_ipc=True)


def test_sysctl_policy_follows_the_namespaces() -> None:
    allowed = (("net.ipv4.ip_forward", "1"), ("kernel.sem", "250 32000 32 128"), ("fs.mqueue.msg_max", "20"))
    validate_sysctls(allowed, private_network=True, private_ipc=True)
    with pytest.raises(UsageError, match="network namespace"):
        validate_sysctls(allowed[:1], private_network=False, private_ipc=True)
    with pytest.raises(UsageError, match="IPC namespace"):
        validate_sysctls(allowed[1:], private_network=True, private_ipc=False)


def test_seccomp_profile_is_reduced_by_capabilities_and_architecture() -> None:
    if not os.path.exists(DEFAULT_SECCOMP_PROFILE):
        pytest.skip("golang-github-containers-common is not installed")
    default = load_profile(DEFAULT_SECCOMP_PROFILE, capabilities=set(DEFAULT_CAPABILITIES))
    admin = load_profile(DEFAULT_SECCOMP_PROFILE, capabilities={*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"})

    def action(profile: object, name: str) -> set[str]:
        return {rule.action for rule in profile.rules if name in rule.names}  # type: ignore[attr-defined]

    assert default.default_action == "SCMP_ACT_ERRNO" and default.default_errno_ret == 38
    assert action(default, "bpf") == {"SCMP_ACT_ERRNO"}
    assert action(admin, "bpf") == {"SCMP_ACT_ALLOW"}
    assert action(default, "chroot") == {"SCMP_ACT_ALLOW"}  # CAP_SYS_CHROOT is a default capability
    if os.uname().machine == "x86_64":
        assert default.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
        assert action(default, "arch_prctl") == {"SCMP_ACT_ALLOW"}
        assert action(default, "s390_runtime_instr") == set()


def test_kept_seccomp_program_is_not_reused_by_another_compiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept program belongs to the Dockyard and libseccomp that generated it: after an upgrade
    of either (a changed compiler identity) the profile is compiled again."""
    from dockyard.core.linux import seccomp_cache

    profile = tmp_path / "profile.json"
    profile.write_text("{}")
    builds: list[int] = []

    def build() -> seccomp_cache.CompiledFilter:
        builds.append(1)
        return seccomp_cache.CompiledFilter(bytes(8) * len(builds))

    def cached() -> bytes:
        kept = seccomp_cache.cached_filter(str(profile), ["CAP_CHOWN"], cache_dir=tmp_path, build=build)
        return kept.program

    assert cached() == bytes(8) and cached() == bytes(8)
    assert len(builds) == 1
    assert str(seccomp_cache.compiler_identity()[-1]).count(".") == 2  # libseccomp's version, as loaded
    upgraded = [*seccomp_cache.compiler_identity()[:-1], "99.0.0"]
    monkeypatch.setattr(seccomp_cache, "compiler_identity", lambda: upgraded)
    assert cached() == bytes(16)
    assert len(builds) == 2


def test_malformed_seccomp_profile_is_a_value_error(tmp_path: Path) -> None:
    profile = tmp_path / "bad.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}))
    with pytest.raises(ValueError, match="unsupported seccomp action"):
        load_profile(str(profile), capabilities=set())


def test_mount_options_split_into_flags_propagation_and_data() -> None:
    options = parse_options(("rbind", "ro", "nosuid", "rprivate", "mode=755", "size=1m"))
    assert options.flags == MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID
    assert options.propagation == (MS_PRIVATE | MS_REC,)
    assert options.data == "mode=755,size=1m"
    assert parse_options(("ro", "rw")).flags == 0


def _layout(tmp_path: Path, *, v2: set[str], v1: tuple[str, ...]) -> ContainerCgroups:
    """A container's cgroup directories on a fake layout: v2 controllers and v1 hierarchies."""
    unified = tmp_path / "unified" / "dockyard" / "c"
    unified.mkdir(parents=True)
    for name in ("memory.max", "memory.swap.max", "cpu.max", "pids.max"):
        (unified / name).touch()
    hierarchies = {}
    for controllers in v1:
        directory = tmp_path / controllers / "dockyard" / "c"
        directory.mkdir(parents=True)
        hierarchies[controllers] = str(directory)
    return ContainerCgroups(str(unified), hierarchies, str(tmp_path / "unified"), frozenset(v2))


def test_limits_go_to_cgroup_v2_when_it_carries_the_controller(tmp_path: Path) -> None:
    layout = _layout(tmp_path, v2={"memory", "cpu", "pids"}, v1=())
    writes = limit_writes(
        layout, Resources(memory=1 << 20, memory_swap=3 << 20, cpus=1.5, pids=10), device_rules=()
    )
    assert [(Path(path).name, value) for path, value in writes] == [
        ("memory.max", str(1 << 20)),
        ("memory.swap.max", str(2 << 20)),
        ("cpu.max", "150000 100000"),
        ("pids.max", "10"),
    ]


def test_limits_fall_back_to_v1_on_a_hybrid_host(tmp_path: Path) -> None:
    layout = _layout(tmp_path, v2=set(), v1=("memory", "cpu,cpuacct", "pids", "devices"))
    writes = limit_writes(layout, Resources(memory=1 << 20, cpus=0.5, pids=0), device_rules=("c 1:3 rwm",))
    assert [(str(Path(path).relative_to(tmp_path)), value) for path, value in writes] == [
        ("memory/dockyard/c/memory.limit_in_bytes", str(1 << 20)),
        ("cpu,cpuacct/dockyard/c/cpu.cfs_period_us", "100000"),
        ("cpu,cpuacct/dockyard/c/cpu.cfs_quota_us", "50000"),
        ("pids/dockyard/c/pids.max", "max"),
        ("devices/dockyard/c/devices.deny", "a"),
        ("devices/dockyard/c/devices.allow", "c 1:3 rwm"),
    ]


def test_a_limit_without_its_controller_is_refused(tmp_path: Path) -> None:
    layout = _layout(tmp_path, v2=set(), v1=("memory",))
    with pytest.raises(DriverPrerequisites, match="pids cgroup controller"):
        limit_writes(layout, Resources(pids=5), device_rules=None)
    with pytest.raises(DriverPrerequisites, match="swap"):
        limit_writes(layout, Resources(memory=1 << 20, memory_swap=2 << 20), device_rules=None)
    with pytest.raises(UsageError, match="needs a memory limit"):
        limit_writes(layout, Resources(memory_swap=2 << 20), device_rules=None)


def test_cgroup_record_round_trips(tmp_path: Path) -> None:
    layout = _layout(tmp_path, v2={"memory"}, v1=("pids",))
    assert ContainerCgroups.from_dict(json.loads(json.dumps(layout.to_dict()))) == layout


def test_oci_config_carries_the_whole_spec() -> None:
    spec = default_spec("a" * 64, "/rootfs", ("sh",), resources=Resources(memory=1 << 20, pids=5))
    spec = replace(spec, init="/usr/bin/tini", sysctls=(("kernel.shmmax", "1"),))
    config = config_for(spec)
    assert config["root"] == {"path": "/rootfs", "readonly": False}
    assert config["process"]["args"] == ["/dev/init", "--", "sh"]
    assert config["process"]["capabilities"]["effective"] == list(DEFAULT_CAPABILITIES)
    assert config["process"]["capabilities"]["ambient"] == []
    assert config["linux"]["resources"]["memory"] == {"limit": 1 << 20}
    assert config["linux"]["resources"]["pids"] == {"limit": 5}
    assert config["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert config["linux"]["sysctl"] == {"kernel.shmmax": "1"}
    assert {ns["type"] for ns in config["linux"]["namespaces"]} >= {"pid", "mount", "network"}
    assert config["mounts"][-1]["destination"] == "/dev/init"
    if os.path.exists(DEFAULT_SECCOMP_PROFILE):
        assert config["linux"]["seccomp"]["defaultErrnoRet"] == 38
    non_root = replace(spec, process=replace(spec.process, user=User(uid=1000)))
    assert config_for(non_root)["process"]["capabilities"]["effective"] == []


def test_exec_report_end_of_file_means_exec_succeeded() -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    await_exec(read_fd)
    os.close(read_fd)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, json.dumps({"error": "CommandNotFound", "message": "exec: nope"}).encode())
    os.close(write_fd)
    with pytest.raises(CommandNotFound, match="nope") as raised:
        await_exec(read_fd)
    assert raised.value.exit_code == 127
    os.close(read_fd)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"garbage")
    os.close(write_fd)
    with pytest.raises(DriverFailed, match="unreadable"):
        await_exec(read_fd)
    os.close(read_fd)


def test_driver_plugins_import_cheaply() -> None:
    """Loading the plugins must not load the container-setup machinery (ctypes, libseccomp)."""
    code = (
        "import sys\n"
        "import dockyard.plugins.isolation.namespaces, dockyard.plugins.isolation.oci\n"
        "import dockyard.plugins.network.none, dockyard.plugins.network.host\n"
        "heavy = [m for m in sys.modules if m.startswith('dockyard.core.linux') or m in\n"
        "         ('ctypes', 'pyseccomp', 'subprocess', 'dockyard.plugins.isolation.container_init')]\n"
        "print(heavy)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_paths_are_created_inside_the_root_whatever_the_symlinks(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    (root / "relative").symlink_to("../outside/dir")  # would leave the root if followed on the host
    (root / "absolute").symlink_to(str(outside))
    (root / "loop").symlink_to("loop")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for path, directory in (("/relative/pts", True), ("/absolute/init", False), ("/a/b/c", True)):
            os.close(ensure_in_root(root_fd, path, directory=directory))
        with pytest.raises(OSError, match="symbolic links"):
            ensure_in_root(root_fd, "/relative/x", directory=True, no_symlinks=True)
        with pytest.raises(OSError):
            ensure_in_root(root_fd, "/loop/x", directory=True)
    finally:
        os.close(root_fd)
    assert not outside.exists()
    assert (root / "outside" / "dir" / "pts").is_dir()
    assert (root / tmp_path.relative_to("/") / "outside" / "init").is_file()
    assert (root / "a" / "b" / "c").is_dir()
