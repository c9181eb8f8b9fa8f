"""The isolation drivers (`namespaces`, `oci` with runc) and the `none` / `host` network drivers on
the real kernel: no system call is mocked.

Each container is started the way the monitor starts one: from a throwaway child that makes itself
a child subreaper, calls `start` (or `exec`) and exits; the test process is a subreaper too, so the
container's first process is reparented to it and waited for here. The root filesystem is Debian's
static busybox; the spec is Docker's default (`dockyard.core.defaults.default_spec`).
"""

from __future__ import annotations

import os
import pickle
import select
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from dockyard.core.defaults import DEFAULT_CAPABILITIES, DEFAULT_PATH, DEFAULT_SECCOMP_PROFILE, default_spec
from dockyard.core.drivers import DriverContext, IsolationDriver, NetworkAttachment
from dockyard.core.errors import (
    CommandNotExecutable,
    CommandNotFound,
    DockyardError,
    DriverFailed,
    UsageError,
)
from dockyard.core.linux.capabilities import capability_mask, capability_numbers
from dockyard.core.linux.cgroups import ContainerCgroups
from dockyard.core.linux.process import set_child_subreaper
from dockyard.core.monitor import Console
from dockyard.core.spec import ContainerSpec, MountSpec, NamespaceSpec, ProcessSpec, Resources, User
from dockyard.plugins.isolation.namespaces import NamespacesDriver
from dockyard.plugins.isolation.oci import OciDriver
from dockyard.plugins.network.host import HostNetworkDriver
from dockyard.plugins.network.none import NoneNetworkDriver
from tests.conftest import build_busybox_rootfs

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

DRIVERS: dict[str, type[NamespacesDriver] | type[OciDriver]] = {
    "namespaces": NamespacesDriver,
    "oci": OciDriver,
}
INIT = shutil.which("docker-init") or shutil.which("tini")


# --- harness -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _subreaper() -> Iterator[None]:
    """Make the test process adopt the containers its starter children leave behind."""
    set_child_subreaper(True)
    yield
    set_child_subreaper(False)
    while True:  # reap anything adopted and not waited for (a runtime's helpers)
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A busybox root filesystem shared by the tests (the containers do not write to it)."""
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    build_busybox_rootfs(root)
    (root / "bin" / "noexec").write_text("#!/bin/sh\necho never\n")
    (root / "bin" / "noexec").chmod(0o644)
    return root


def _in_starter(call: Callable[[], int], *, leak: Path | None = None) -> int:
    """Run `call()` (returning a pid) in a forked child subreaper that exits right after, as the
    monitor's starter does; re-raise its DockyardError here. `leak` is opened in the starter
    without close-on-exec first, as a careless caller would."""
    read_fd, write_fd = os.pipe()
    starter = os.fork()
    if starter == 0:
        result: tuple[str, object] = ("error", DriverFailed("starter died"))
        try:
            os.close(read_fd)
            set_child_subreaper(True)
            if leak is not None:
                os.set_inheritable(os.open(leak, os.O_RDONLY), True)
            result = ("pid", call())
        except DockyardError as exc:
            result = ("error", exc)
        finally:
            os.write(write_fd, pickle.dumps(result))
            os._exit(0)
    os.close(write_fd)
    data = b""
    while chunk := os.read(read_fd, 65536):
        data += chunk
    os.close(read_fd)
    os.waitpid(starter, 0)
    kind, value = pickle.loads(data)
    if kind == "error":
        assert isinstance(value, DockyardError)
        raise value
    assert isinstance(value, int)
    return value


def _read_all(fd: int, *, timeout: float = 20) -> str:
    """Everything written to the pipe until every writer closed it."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: a pty whose other side is gone
            break
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


@dataclass
class Result:
    exit_code: int
    output: str


@dataclass
class Runner:
    """Builds specs and runs containers with one isolation driver."""

    driver: IsolationDriver
    rootfs: Path
    workdir: Path

    @property
    def name(self) -> str:
        return self.driver.name

    def spec(self, *args: str, rootfs: Path | None = None, **changes: object) -> ContainerSpec:
        container_id = uuid.uuid4().hex * 2
        state = self.workdir / container_id[:12]
        state.mkdir()
        spec = default_spec(
            container_id, str(rootfs or self.rootfs), args, hostname="box", state_dir=str(state)
        )
        return replace(spec, **changes)  # type: ignore[arg-type]

    def start(
        self, spec: ContainerSpec, stdout: int, *, stdin: int | None = None, leak: Path | None = None
    ) -> int:
        stdin_fd = os.open(os.devnull, os.O_RDONLY) if stdin is None else stdin
        try:
            return _in_starter(lambda: self.driver.start(spec, stdio=(stdin_fd, stdout, stdout)), leak=leak)
        finally:
            if stdin is None:
                os.close(stdin_fd)

    def run(self, spec: ContainerSpec, *, leak: Path | None = None) -> Result:
        read_fd, write_fd = os.pipe()
        try:
            try:
                pid = self.start(spec, write_fd, leak=leak)
            finally:
                os.close(write_fd)
            output = _read_all(read_fd)
            return Result(_wait(pid), output)
        finally:
            os.close(read_fd)
            self.driver.delete(spec)

    def exec(self, spec: ContainerSpec, pid: int, *args: str, leak: Path | None = None) -> Result:
        process = ProcessSpec(
            args=args,
            env=(f"PATH={DEFAULT_PATH}",),
            capabilities=DEFAULT_CAPABILITIES,
            seccomp_profile=DEFAULT_SECCOMP_PROFILE,
        )
        read_fd, write_fd = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            try:
                child = _in_starter(
                    lambda: self.driver.exec(
                        spec, pid=pid, process=process, stdio=(null, write_fd, write_fd)
                    ),
                    leak=leak,
                )
            finally:
                os.close(write_fd)
                os.close(null)
            output = _read_all(read_fd)
            return Result(_wait(child), output)
        finally:
            os.close(read_fd)


@pytest.fixture(params=sorted(DRIVERS))
def runner(request: pytest.FixtureRequest, rootfs: Path, tmp_path: Path) -> Runner:
    context = DriverContext(home=tmp_path / "home", run_dir=tmp_path / "run", rootless=False)
    driver = DRIVERS[request.param](context)
    availability = driver.available()
    if not availability.usable:
        pytest.skip(f"{request.param}: {availability.reason}")
    return Runner(driver, rootfs, tmp_path)


@pytest.fixture
def namespaces_runner(rootfs: Path, tmp_path: Path) -> Runner:
    context = DriverContext(home=tmp_path / "home", run_dir=tmp_path / "run", rootless=False)
    return Runner(NamespacesDriver(context), rootfs, tmp_path)


def _status(output: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in output.splitlines() if ":\t" in line)


# --- the basics ----------------------------------------------------------------------------------


def test_echo_hostname_and_pid_1(runner: Runner) -> None:
    result = runner.run(runner.spec("sh", "-c", "echo hi; hostname; echo $$"))
    assert result == Result(0, "hi\nbox\n1\n")


def test_host_processes_are_invisible(runner: Runner) -> None:
    result = runner.run(runner.spec("ps", "-o", "pid,comm"))
    rows = [line.split() for line in result.output.splitlines()[1:]]
    assert rows == [["1", "ps"]], result.output


def test_exit_codes(runner: Runner) -> None:
    assert runner.run(runner.spec("sh", "-c", "exit 3")).exit_code == 3
    with pytest.raises(CommandNotFound, match=r"executable file not found in \$PATH") as missing:
        runner.run(runner.spec("no-such-command"))
    assert missing.value.exit_code == 127
    with pytest.raises(CommandNotExecutable, match="permission denied") as denied:
        runner.run(runner.spec("/bin/noexec"))
    assert denied.value.exit_code == 126


# --- privileges ----------------------------------------------------------------------------------


def test_root_keeps_dockers_capabilities_only(runner: Runner) -> None:
    status = _status(runner.run(runner.spec("cat", "/proc/self/status")).output)
    expected = f"{capability_mask(capability_numbers(DEFAULT_CAPABILITIES)):016x}"
    assert (status["CapInh"], status["CapAmb"]) == ("0" * 16, "0" * 16)
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == expected
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("0", "2")


def test_non_root_user_has_no_capabilities(runner: Runner) -> None:
    spec = runner.spec("cat", "/proc/self/status")
    spec = replace(spec, process=replace(spec.process, user=User(uid=65534, gid=65534, additional_gids=(5,))))
    status = _status(runner.run(spec).output)
    assert status["Uid"].split() == ["65534"] * 4
    assert status["Groups"].split() == ["5"]
    assert status["CapEff"] == status["CapPrm"] == status["CapInh"] == status["CapAmb"] == "0" * 16
    assert status["CapBnd"] == f"{capability_mask(capability_numbers(DEFAULT_CAPABILITIES)):016x}"
    assert status["Seccomp"] == "2"


def test_no_new_privileges(runner: Runner) -> None:
    spec = runner.spec("cat", "/proc/self/status")
    spec = replace(spec, process=replace(spec.process, no_new_privileges=True))
    status = _status(runner.run(spec).output)
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")


def test_kernel_interfaces_are_closed(runner: Runner) -> None:
    script = """
        (echo x > /proc/sys/kernel/domainname) 2>/dev/null && echo sys:writable || echo sys:readonly
        mount -t tmpfs none /mnt 2>/dev/null && echo mount:allowed || echo mount:denied
        insmod /bin/busybox 2>&1 | grep -q 'not permitted' && echo module:denied || echo module:other
        stat -c 'keys:%t:%T' /proc/keys
        ls -A /sys/firmware | wc -l | sed 's/^ */firmware:/'
        [ -e /proc/kcore ] && stat -c 'kcore:%t:%T' /proc/kcore || echo kcore:absent
    """
    lines = runner.run(runner.spec("sh", "-c", script)).output.split()
    kcore = "kcore:1:3" if os.path.exists("/proc/kcore") else "kcore:absent"
    assert lines == ["sys:readonly", "mount:denied", "module:denied", "keys:1:3", "firmware:0", kcore]


def test_leaked_host_descriptor_is_not_inherited(runner: Runner, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("host\n")
    result = runner.run(runner.spec("ls", "-l", "/proc/self/fd/"), leak=secret)
    assert result.exit_code == 0
    assert "host-secret" not in result.output
    assert "tmp" not in result.output, result.output


def test_rlimits_are_applied_and_cannot_exceed_the_hosts(runner: Runner) -> None:
    spec = runner.spec("sh", "-c", "ulimit -Sn; ulimit -Hn")
    spec = replace(spec, process=replace(spec.process, rlimits=(("RLIMIT_NOFILE", 512, 1024),)))
    assert runner.run(spec).output.split() == ["512", "1024"]
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    too_high = replace(spec, process=replace(spec.process, rlimits=(("RLIMIT_NOFILE", 512, hard + 1),)))
    with pytest.raises(DriverFailed):
        runner.run(too_high)


def test_readonly_rootfs_and_volumes(runner: Runner, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "data").write_text("from the host\n")
    script = """
        cat /ro/data /rw/data
        touch /rootfile 2>/dev/null && echo root:writable || echo root:readonly
        touch /ro/new 2>/dev/null && echo ro:writable || echo ro:readonly
        touch /rw/new && echo rw:writable
        touch /tmp/x 2>/dev/null || echo tmp:readonly
    """
    mounts = (
        MountSpec("/ro", "bind", str(volume), ("rbind", "ro", "rprivate")),
        MountSpec("/rw", "bind", str(volume), ("rbind", "rprivate")),
    )
    spec = runner.spec("sh", "-c", script)
    spec = replace(spec, readonly_rootfs=True, mounts=(*spec.mounts, *mounts))
    assert runner.run(spec).output.splitlines() == [
        "from the host",
        "from the host",
        "root:readonly",
        "ro:readonly",
        "rw:writable",
        "tmp:readonly",
    ]
    assert (volume / "new").exists()


# --- hostile images ------------------------------------------------------------------------------


def _symlinked_rootfs(tmp_path: Path, directory: str, target: Path) -> Path:
    root = tmp_path / f"symlinked-{directory}"
    build_busybox_rootfs(root)
    (root / directory).rmdir()
    (root / directory).symlink_to(target)
    return root


def _host_mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        return [line for line in mountinfo if str(path) in line]


def test_symlinked_dev_changes_nothing_on_the_host(runner: Runner, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    root = _symlinked_rootfs(tmp_path, "dev", canary)
    try:
        result = runner.run(runner.spec("sh", "-c", "echo ok > /dev/null && echo ran", rootfs=root))
        assert result.output == "ran\n"
    except DriverFailed:
        pass  # refusing the image is as good as containing it
    assert list(canary.iterdir()) == []
    assert _host_mounts_under(canary) == []


def test_symlinked_proc_is_refused_and_changes_nothing(runner: Runner, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.mkdir()
    root = _symlinked_rootfs(tmp_path, "proc", canary)
    with pytest.raises(DriverFailed):
        runner.run(runner.spec("true", rootfs=root))
    assert list(canary.iterdir()) == []
    assert _host_mounts_under(canary) == []


# --- cgroups -------------------------------------------------------------------------------------


def _limit_files() -> list[str]:
    """Where the memory, pids and cpu limits show inside a container on this host's layout: at the
    top of /sys/fs/cgroup on v2, in the directory named after the host's mount point on v1."""
    layout = ContainerCgroups.below_own("dockyard/probe")
    files = []
    for controller, v2_file, v1_file in (
        ("memory", "memory.max", "memory.limit_in_bytes"),
        ("pids", "pids.max", "pids.max"),
        ("cpu", "cpu.max", "cpu.cfs_quota_us"),
    ):
        found = layout.controller(controller)
        assert found is not None, f"this host lacks the {controller} controller"
        if found[0] == 2:
            files.append(f"/sys/fs/cgroup/{v2_file}")
        else:
            hierarchy = found[1]
            while not os.path.ismount(hierarchy):
                hierarchy = os.path.dirname(hierarchy)
            files.append(f"/sys/fs/cgroup/{os.path.basename(hierarchy)}/{v1_file}")
    return files


def test_memory_and_pids_limits_are_applied(runner: Runner) -> None:
    memory_file, pids_file, cpu_file = _limit_files()
    script = f"""
        cat {memory_file} {pids_file} {cpu_file}
        i=0; while [ $i -lt 40 ]; do sleep 3 & i=$((i+1)); done 2>&1
        echo started
    """
    spec = runner.spec("sh", "-c", script, resources=Resources(memory=64 << 20, pids=16, cpus=0.5))
    lines = runner.run(spec).output.splitlines()
    assert lines[:3] == [str(64 << 20), "16", "50000" if cpu_file.endswith("_us") else "50000 100000"]
    assert any("can't fork" in line or "Resource temporarily unavailable" in line for line in lines), lines


def test_pause_resume_and_usage(runner: Runner) -> None:
    spec = runner.spec("sh", "-c", "while :; do echo x; sleep 0.05; done")
    read_fd, write_fd = os.pipe()
    pid = runner.start(spec, write_fd)
    os.close(write_fd)
    try:
        assert os.read(read_fd, 1) == b"x"
        runner.driver.pause(spec)
        time.sleep(0.2)
        os.set_blocking(read_fd, False)
        while _drain(read_fd):
            pass
        time.sleep(0.4)
        assert not _drain(read_fd), "a paused container kept writing"
        usage = runner.driver.usage(spec)
        assert usage.pids >= 1 and usage.memory_bytes > 0
        runner.driver.resume(spec)
        os.set_blocking(read_fd, True)
        assert os.read(read_fd, 1) == b"x"
    finally:
        os.kill(pid, signal.SIGKILL)
        _wait(pid)
        os.close(read_fd)
        runner.driver.delete(spec)


def _drain(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return b""


# --- sysctls -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("kernel.shm_rmid_forced", "1+kernel.core_pattern=|/tmp/x"),
        ("kernel.shm_rmid_forced", "1\nkernel.core_pattern=|/tmp/x"),
        ("kernel.core_pattern", "|/tmp/x"),
        ("vm.swappiness", "0"),
        ("kernel/../../kernel/core_pattern", "x"),
    ],
)
def test_sysctl_smuggling_is_rejected(runner: Runner, key: str, value: str) -> None:
    with pytest.raises(UsageError, match="sysctl"):
        runner.run(runner.spec("true", sysctls=((key, value),)))


def test_namespaced_sysctls_are_written(runner: Runner) -> None:
    spec = runner.spec(
        "cat",
        "/proc/sys/kernel/shm_rmid_forced",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        sysctls=(("kernel.shm_rmid_forced", "1"), ("net.ipv4.ip_unprivileged_port_start", "80")),
    )
    assert runner.run(spec).output.split() == ["1", "80"]


def test_net_sysctl_needs_a_private_network(runner: Runner) -> None:
    spec = runner.spec("true", sysctls=(("net.ipv4.ip_forward", "1"),))
    spec = replace(spec, namespaces=tuple(ns for ns in spec.namespaces if ns.kind != "network"))
    with pytest.raises(UsageError, match="host's network namespace"):
        runner.run(spec)


# --- exec, init, terminal ------------------------------------------------------------------------


def test_exec_joins_the_container(runner: Runner, tmp_path: Path) -> None:
    spec = runner.spec("sleep", "60")
    null = os.open(os.devnull, os.O_WRONLY)
    pid = runner.start(spec, null)
    os.close(null)
    secret = tmp_path / "exec-secret"
    secret.write_text("host\n")
    try:
        result = runner.exec(
            spec, pid, "sh", "-c", "hostname; cat /proc/1/comm; ls -l /proc/self/fd/", leak=secret
        )
        lines = result.output.splitlines()
        assert result.exit_code == 0
        assert lines[:2] == ["box", "sleep"]
        assert "exec-secret" not in result.output
        assert runner.exec(spec, pid, "sh", "-c", "exit 7").exit_code == 7
        with pytest.raises(CommandNotFound):
            runner.exec(spec, pid, "no-such-command")
    finally:
        os.kill(pid, signal.SIGKILL)
        _wait(pid)
        runner.driver.delete(spec)


@pytest.mark.skipif(INIT is None, reason="tini is not installed")
def test_init_runs_in_front_of_the_command(runner: Runner) -> None:
    spec = runner.spec("sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 5", init=INIT)
    result = runner.run(spec)
    assert result.exit_code == 5
    assert result.output.startswith("/dev/init -- sh -c"), result.output


def test_terminal_becomes_the_controlling_terminal(runner: Runner) -> None:
    master, slave = os.openpty()
    spec = runner.spec("sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; cut -d' ' -f7 /proc/self/stat")
    spec = replace(spec, process=replace(spec.process, terminal=True))
    try:
        pid = _in_starter(lambda: runner.driver.start(spec, stdio=(slave, slave, slave)))
        os.close(slave)
        output = _read_all(master, timeout=10)
        assert _wait(pid) == 0
    finally:
        os.close(master)
        runner.driver.delete(spec)
    lines = output.replace("\r", "").split()
    assert lines[0] == "is-a-tty"
    assert int(lines[1]) != 0, "the process has no controlling terminal"


def test_console_gets_a_terminal_from_the_containers_own_devpts(runner: Runner) -> None:
    """With `console` the pty comes from the container's devpts: `tty` names a /dev/pts/N that
    exists inside (a host pty would say "not a tty"), an exec gets the next one, and the master
    sent over the socket drives both."""
    spec = runner.spec("sh", "-c", "tty; ls -1 /dev/pts; read line; echo got-$line")
    spec = replace(spec, process=replace(spec.process, terminal=True))
    null = os.open(os.devnull, os.O_RDWR)
    first, second = Console(), Console()
    try:
        pid = _in_starter(
            lambda: runner.driver.start(spec, stdio=(null, null, null), console=first.driver_end.fileno())
        )
        master = first.receive()
        assert master is not None
        process = replace(spec.process, args=("sh", "-c", "tty; [ -t 0 ] && echo exec-on-a-tty"))
        child = _in_starter(
            lambda: runner.driver.exec(
                spec, pid=pid, process=process, stdio=(null, null, null), console=second.driver_end.fileno()
            )
        )
        exec_master = second.receive()
        assert exec_master is not None
        exec_output = _read_all(exec_master, timeout=10)
        assert _wait(child) == 0
        os.write(master, b"x\n")
        output = _read_all(master, timeout=10)
        assert _wait(pid) == 0
        os.close(master)
        os.close(exec_master)
    finally:
        os.close(null)
        first.close()
        second.close()
        runner.driver.delete(spec)
    assert output.replace("\r", "").split("\n")[:3] == ["/dev/pts/0", "0", "ptmx"], output
    assert "got-x" in output
    assert exec_output.replace("\r", "").split() == ["/dev/pts/1", "exec-on-a-tty"]


# --- network drivers -----------------------------------------------------------------------------


def _with_network(spec: ContainerSpec, attachment: NetworkAttachment) -> ContainerSpec:
    others = tuple(ns for ns in spec.namespaces if ns.kind != "network")
    if attachment.netns_path is None:
        return replace(spec, namespaces=others)
    return replace(spec, namespaces=(*others, NamespaceSpec("network", attachment.netns_path)))


def test_none_network_has_only_loopback_up(runner: Runner, tmp_path: Path) -> None:
    network = NoneNetworkDriver(DriverContext(tmp_path / "nethome", tmp_path / "netrun", rootless=False))
    assert network.available().usable
    attachment = network.attach("c1", hostname="box")
    try:
        assert attachment.netns_path is not None and os.path.exists(attachment.netns_path)
        output = runner.run(_with_network(runner.spec("ip", "-o", "link"), attachment)).output
    finally:
        network.detach("c1")
    links = [line.split(":")[1].strip() for line in output.splitlines()]
    assert links == ["lo"], output
    assert "UP" in output.split("<", 1)[1].split(">", 1)[0].split(",")
    assert not os.path.exists(str(attachment.netns_path))
    network.detach("c1")  # idempotent


def test_host_network_sees_the_hosts_links(runner: Runner, tmp_path: Path) -> None:
    network = HostNetworkDriver(DriverContext(tmp_path / "nethome", tmp_path / "netrun", rootless=False))
    attachment = network.attach("c2", hostname="box")
    assert attachment.netns_path is None
    output = runner.run(_with_network(runner.spec("ip", "-o", "link"), attachment)).output
    links = {line.split(":")[1].strip().split("@")[0] for line in output.splitlines()}
    assert links == set(os.listdir("/sys/class/net"))
    network.detach("c2")


# --- driver-specific -----------------------------------------------------------------------------


def test_namespaces_driver_cleans_its_cgroups(namespaces_runner: Runner) -> None:
    spec = namespaces_runner.spec("true", resources=Resources(pids=10))
    assert namespaces_runner.run(spec).exit_code == 0
    layout = ContainerCgroups.below_own(spec.cgroup_path)
    assert not any(os.path.exists(directory) for directory in layout.directories())
    namespaces_runner.driver.delete(spec)  # idempotent


def test_unavailable_limit_is_refused_not_ignored(namespaces_runner: Runner) -> None:
    layout = ContainerCgroups.below_own("dockyard/probe")
    memory = layout.controller("memory")
    assert memory is not None
    swap_file = "memory.swap.max" if memory[0] == 2 else "memory.memsw.limit_in_bytes"
    spec = namespaces_runner.spec("true", resources=Resources(memory=64 << 20, memory_swap=128 << 20))
    if os.path.exists(os.path.join(os.path.dirname(os.path.dirname(memory[1])), swap_file)):
        assert namespaces_runner.run(spec).exit_code == 0
    else:
        with pytest.raises(DockyardError, match="swap"):
            namespaces_runner.run(spec)


def test_seccomp_program_is_compiled_once_per_profile_and_kept(
    namespaces_runner: Runner, tmp_path: Path
) -> None:
    """The compiled program comes from the run directory on later starts, a changed profile gets
    its own, and a damaged cache file is compiled again; each start enforces its profile."""
    import json

    profile = tmp_path / "deny-mkdir.json"
    cache = tmp_path / "run" / "seccomp"

    def run_with_profile() -> str:
        spec = namespaces_runner.spec("sh", "-c", "mkdir /dev/shm/made 2>&1; echo $?")
        spec = replace(spec, process=replace(spec.process, seccomp_profile=str(profile)))
        return namespaces_runner.run(spec).output

    def write_profile(errno_ret: int) -> None:
        rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_ret}
        profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}))

    write_profile(13)
    assert "Permission denied" in run_with_profile()
    (first,) = cache.glob("*.bpf")
    before = first.stat()
    assert "Permission denied" in run_with_profile()
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    time.sleep(0.01)  # a new modification time even on coarse clocks
    write_profile(1)
    assert "Operation not permitted" in run_with_profile()
    (second,) = set(cache.glob("*.bpf")) - {first}
    size = second.stat().st_size
    second.write_bytes(second.read_bytes()[:-8])  # cut short, as a crash could leave it
    assert "Operation not permitted" in run_with_profile()
    assert second.stat().st_size == size


def test_namespace_probe_is_remembered_until_the_next_boot(tmp_path: Path) -> None:
    """A successful probe is kept in the run directory with this boot's id; a marker from another
    boot is probed again and replaced."""
    run_dir = tmp_path / "run"
    driver = NamespacesDriver(DriverContext(home=tmp_path / "home", run_dir=run_dir, rootless=False))
    boot = Path("/proc/sys/kernel/random/boot_id").read_text()
    assert driver.available().usable
    marker = run_dir / "namespaces-probed"
    assert marker.read_text() == boot
    marker.write_text("another boot\n")
    assert driver.available().usable
    assert marker.read_text() == boot
