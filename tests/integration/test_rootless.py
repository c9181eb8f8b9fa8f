"""Rootless end to end: the real CLI run by unprivileged users created for the session.

Each user gets /etc/subuid and /etc/subgid ranges (useradd's own, or added), a private
XDG_RUNTIME_DIR, and drives `dockyard` through `runuser`, as a person logged in would. The
busybox image carries a file owned by uid 1234 so the id mapping shows: a subordinate range keeps
the owner (on the host it is the range's id), a single-id mapping (newuidmap hidden from PATH)
keeps it as root and warns. /dev/net/tun is 0600 on this machine; each test opens it to everyone
(0666, as distributions ship it) so the default user-mode network works, and restores its mode
after; one test closes it again to show the degraded mode. At the end every user's keeper and
containers are stopped and the users removed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import DOCKYARD, build_busybox_rootfs
from tests.integration.registry.support import Registry, start_registry
from tests.integration.test_rootless_networks import free_port, http_get
from tests.terminal import Terminal

pytestmark = pytest.mark.root

OWNED_UID = 1234
SESSION = f"dyrl{os.getpid() % 10000}"
TUN = Path("/dev/net/tun")
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
HTTPD = "mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


@dataclass
class RootlessUser:
    """An unprivileged user and the environment its `dockyard` commands run with."""

    name: str
    home: Path
    runtime: Path
    path: str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    extra: dict[str, str] = field(default_factory=dict)

    def argv(self, *args: str) -> list[str]:
        variables = {
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "PATH": self.path,
            "DOCKER_CONFIG": str(self.home / ".docker"),
            **self.extra,
        }
        return (
            ["runuser", "-u", self.name, "--", "env", "-i"]
            + [f"{key}={value}" for key, value in variables.items()]
            + [DOCKYARD, *args]
        )

    def __call__(
        self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args), input=input, capture_output=True, timeout=timeout, check=False
        )
        text = subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{self.name}: dockyard {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {text.stdout}\nstderr: {text.stderr}"
            )
        return text

    def keeper_pid(self) -> int | None:
        record = self.runtime / "dockyard" / "userns.json"
        try:
            return int(json.loads(record.read_text())["pid"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def clean(self) -> None:
        """Remove this user's containers, then stop the keeper holding its namespaces."""
        ids = self("ps", "-aq", check=False).stdout.split()
        if ids:
            self("rm", "-f", *ids, check=False)
        pid = self.keeper_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def _subordinate_start(path: str, user: str) -> int | None:
    for line in Path(path).read_text().splitlines():
        fields = line.split(":")
        if len(fields) == 3 and fields[0] == user:
            return int(fields[1])
    return None


def _create_user(name: str, base: Path) -> RootlessUser:
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True)
    if _subordinate_start("/etc/subuid", name) is None or _subordinate_start("/etc/subgid", name) is None:
        uid = pwd.getpwnam(name).pw_uid
        first = 300000 + (uid % 1000) * 65536
        span = f"{first}-{first + 65535}"
        subprocess.run(["usermod", "--add-subuids", span, "--add-subgids", span, name], check=True)
    entry = pwd.getpwnam(name)
    runtime = base / name
    runtime.mkdir(mode=0o700)
    os.chown(runtime, entry.pw_uid, entry.pw_gid)
    return RootlessUser(name, Path(entry.pw_dir), runtime)


@contextlib.contextmanager
def tun_mode(mode: int) -> Iterator[None]:
    """/dev/net/tun with `mode` for the duration, its previous mode restored after."""
    previous = TUN.stat().st_mode & 0o7777
    TUN.chmod(mode)
    try:
        yield
    finally:
        TUN.chmod(previous)


@pytest.fixture(autouse=True)
def tun_as_shipped() -> Iterator[None]:
    """/dev/net/tun open to every user (0666) as distributions ship it, for each test here only
    (test_rootless_networks needs it closed again)."""
    with tun_mode(0o666):
        yield


def path_without(user: RootlessUser, *hidden: str) -> str:
    """A PATH for `user` holding every system command except `hidden` (a directory of symlinks)."""
    directory = user.runtime / ("path-without-" + "-".join(hidden))
    directory.mkdir(exist_ok=True)
    for parent in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for name in os.listdir(parent):
            link = directory / name
            if name not in hidden and not link.exists():
                link.symlink_to(Path(parent) / name)
    return str(directory)


def _readable_by_others(path: Path) -> bool:
    """Whether a user other than root can reach `path` (every directory above it searchable)."""
    return all(os.stat(part).st_mode & 0o001 for part in [path, *path.parents])


@pytest.fixture(scope="session")
def rootless_users() -> Iterator[tuple[RootlessUser, RootlessUser]]:
    """Two unprivileged users with subordinate ranges; removed at the end with what they ran.

    Their runtime directories live under a fresh /tmp directory of mode 0755 (pytest's own
    temporary tree is root's alone)."""
    if not _readable_by_others(Path(DOCKYARD).resolve().parent):
        pytest.fail(f"{DOCKYARD} is not reachable by other users: the venv must be world-readable")
    base = Path(tempfile.mkdtemp(prefix="dockyard-rootless-"))
    base.chmod(0o755)
    users: list[RootlessUser] = []
    try:
        for suffix in ("a", "b"):
            users.append(_create_user(f"{SESSION}{suffix}", base))
        yield users[0], users[1]
    finally:
        for user in users:
            user.clean()
        for user in users:
            subprocess.run(["userdel", "--remove", "--force", user.name], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_owned_tar(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """busybox plus /owned, a file of uid and gid 1234, as a tarball's bytes."""
    rootfs = tmp_path_factory.mktemp("rootless-busybox")
    build_busybox_rootfs(rootfs)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(rootfs, arcname=".")
        owned = tarfile.TarInfo("owned")
        owned.uid = owned.gid = OWNED_UID
        owned.size = 3
        archive.addfile(owned, io.BytesIO(b"hi\n"))
    return buffer.getvalue()


@pytest.fixture(scope="session")
def user(rootless_users: tuple[RootlessUser, RootlessUser], busybox_owned_tar: bytes) -> RootlessUser:
    """The first user, with busybox imported."""
    first = rootless_users[0]
    first("import", "-c", 'CMD ["sh"]', "-", "busybox", input=busybox_owned_tar)
    return first


@pytest.fixture(scope="session")
def rootless_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    registry = start_registry(tmp_path_factory.mktemp("rootless-registry"))
    yield registry
    registry.stop()


def test_info_reports_rootless_mode_mapping_and_drivers(user: RootlessUser) -> None:
    info = user("info").stdout
    start = _subordinate_start("/etc/subuid", user.name)
    uid = pwd.getpwnam(user.name).pw_uid
    assert "Rootless: true" in info
    assert f"Id Mapping: subordinate ids, uid 0:{uid}:1,1:{start}:" in info
    assert f"Storage Root: {user.home}/.local/share/dockyard" in info
    assert f"Run Root: {user.runtime}/dockyard" in info
    assert "Storage Driver: overlay" in info  # the kernel mounts overlays in a user namespace here
    assert "rootless (dockyard.plugins.isolation.rootless, priority 20): available" in info
    assert "namespaces (dockyard.plugins.isolation.namespaces, priority 20): unavailable: needs root" in info


def test_lifecycle_as_an_unprivileged_user(user: RootlessUser) -> None:
    shown = user("run", "--rm", "busybox", "sh", "-c", "id -u; stat -c %u:%g /owned; cat /owned").stdout
    assert shown.split() == ["0", f"{OWNED_UID}:{OWNED_UID}", "hi"]
    # On the host the file belongs to the subordinate id the mapping gives 1234.
    start = _subordinate_start("/etc/subuid", user.name)
    assert start is not None
    owners = {
        path.stat().st_uid for path in (user.home / ".local/share/dockyard").rglob("owned") if path.is_file()
    }
    assert owners == {start + OWNED_UID - 1}

    container = user("run", "-d", "--name", "clock", "busybox", "sh", "-c", "echo started; sleep 300")
    cid = container.stdout.strip()
    assert cid in user("ps", "-q", "--no-trunc").stdout
    deadline = time.monotonic() + 10
    while "started" not in user("logs", "clock").stdout:
        assert time.monotonic() < deadline, "no log line from the detached container"
        time.sleep(0.1)
    assert user("exec", "clock", "sh", "-c", "echo $((6 * 7))").stdout == "42\n"
    assert user("stop", "-t", "1", "clock").stdout == "clock\n"
    assert user("ps", "-a", "--filter", "name=clock", "--format", "{{.Status}}").stdout.startswith("Exited")
    assert user("rm", "clock").stdout == "clock\n"
    assert user("ps", "-aq").stdout == ""


def test_run_it_through_a_real_terminal(user: RootlessUser) -> None:
    terminal = Terminal(user.argv("run", "-it", "--rm", "busybox", "sh"), env=dict(os.environ))
    terminal.expect(b"# ")
    terminal.send(b"echo $((3 * 5))\n")
    terminal.expect(b"15")
    terminal.send(b"tty; [ -c $(tty) ] && echo exists-inside\n")  # the container's own devpts
    terminal.expect(b"/dev/pts/0\r\nexists-inside")
    terminal.send(b"exit 3\n")
    assert terminal.close() == 3


def test_push_and_pull_with_the_local_registry(user: RootlessUser, rootless_registry: Registry) -> None:
    target = f"{rootless_registry.host}/rootless/busybox:1"
    user("tag", "busybox", target)
    assert "digest: sha256:" in user("push", target).stdout
    user("rmi", target)
    assert f"Downloaded newer image for {target}" in user("pull", target).stdout
    # The pulled layer keeps the file's owner through the same mapping.
    assert user("run", "--rm", target, "stat", "-c", "%u", "/owned").stdout == f"{OWNED_UID}\n"
    user("rmi", target)


def test_limits_without_a_delegated_cgroup_fail_with_one_line(user: RootlessUser) -> None:
    result = user("run", "--rm", "--memory", "64m", "--pids-limit", "10", "busybox", "true", check=False)
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--memory, --pids-limit: rootless limits need a cgroup v2 subtree delegated" in result.stderr
    assert "run without them" in result.stderr
    assert user("ps", "-aq").stdout == ""  # nothing half-made is left behind
    assert user("run", "--rm", "busybox", "true").returncode == 0


def test_host_and_none_networks_and_an_unusable_tun(user: RootlessUser) -> None:
    # An administrator closed /dev/net/tun (0600, as on this machine before the session opened it):
    # the default network and the user-mode drivers say why, and what still works does.
    with tun_mode(0o600):
        for network in ([], ["--network", "slirp4netns"], ["--network", "pasta"]):
            result = user("run", "--rm", *network, "busybox", "true", check=False)
            assert result.returncode == 125, result
            assert "/dev/net/tun (mode 0600) cannot be opened by this user" in result.stderr
            assert "--network none and --network host still work" in result.stderr
            assert result.stderr.count("\n") == 1, result.stderr
        assert user("ps", "-aq").stdout == ""
        assert "none (dockyard.plugins.network.none, priority 10): available" in user("info").stdout
        listed = user("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net").stdout
        assert listed.split() == ["lo"]
        host_links = user(
            "run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net"
        ).stdout.split()
        assert sorted(host_links) == sorted(os.listdir("/sys/class/net"))


def test_default_network_is_pasta_with_published_ports(user: RootlessUser) -> None:
    port = free_port()
    cid = user("run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c", HTTPD).stdout.strip()
    try:
        assert http_get(port) == f"hello from {cid[:12]}\n"
        networks = user("inspect", "-f", "{{json .NetworkSettings.Networks}}", cid).stdout
        assert list(json.loads(networks)) == ["pasta"]
        assert user("port", cid).stdout == f"80/tcp -> 0.0.0.0:{port}\n"
        # The container reaches out through pasta's copy of the host's addressing.
        links = user("exec", cid, "ls", "/sys/class/net").stdout.split()
        assert sorted(links) == ["eth0", "lo"]
    finally:
        user("rm", "-f", cid)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)  # pasta left with the container


def test_default_network_is_slirp4netns_without_pasta(user: RootlessUser) -> None:
    without_pasta = RootlessUser(user.name, user.home, user.runtime, path=path_without(user, "pasta"))
    port = free_port()
    cid = without_pasta(
        "run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", HTTPD
    ).stdout.strip()
    try:
        assert http_get(port) == f"hello from {cid[:12]}\n"
        networks = json.loads(
            without_pasta("inspect", "-f", "{{json .NetworkSettings.Networks}}", cid).stdout
        )
        assert list(networks) == ["slirp4netns"]
        assert networks["slirp4netns"]["IPAddress"] == "10.0.2.100"
        assert "nameserver 10.0.2.3" in without_pasta("exec", cid, "cat", "/etc/resolv.conf").stdout
    finally:
        without_pasta("rm", "-f", cid)


def test_a_port_below_the_unprivileged_start_names_the_sysctl(user: RootlessUser) -> None:
    start = int(UNPRIVILEGED_PORT_START.read_text())
    assert start > 80, f"this host lets users bind port 80 (ip_unprivileged_port_start={start})"
    result = user("run", "--rm", "-p", "80:80", "busybox", "true", check=False)
    assert result.returncode == 125
    assert result.stderr == (
        f"Error: cannot publish 0.0.0.0:80: ports below {start} need root on this host (sysctl "
        f"net.ipv4.ip_unprivileged_port_start={start}); publish {start} or above, or have an "
        "administrator run sysctl -w net.ipv4.ip_unprivileged_port_start=80\n"
    )
    assert user("ps", "-aq").stdout == ""
    # At the start itself the sysctl allows it: the same run goes through when the port is free.
    if _port_free(start):
        user("run", "--rm", "-p", f"{start}:80", "busybox", "true")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_build_commit_and_push_as_an_unprivileged_user(
    user: RootlessUser, rootless_registry: Registry
) -> None:
    context = user.home / "build-context"
    subprocess.run(["runuser", "-u", user.name, "--", "mkdir", "-p", str(context)], check=True)
    (context / "greeting.txt").write_text("hello from COPY\n")
    (context / "Dockerfile").write_text(
        "FROM busybox\n"
        "COPY greeting.txt /greeting.txt\n"
        f"RUN echo built > /built && chown {OWNED_UID}:{OWNED_UID} /built\n"
        'CMD ["cat", "/greeting.txt", "/built"]\n'
    )
    shutil.chown(context / "greeting.txt", user.name, user.name)
    shutil.chown(context / "Dockerfile", user.name, user.name)
    built = user("build", "-t", "rootless-built", str(context))
    assert "Successfully tagged rootless-built:latest" in built.stdout
    assert user("run", "--rm", "rootless-built").stdout == "hello from COPY\nbuilt\n"
    owner = user("run", "--rm", "rootless-built", "stat", "-c", "%u:%g", "/built").stdout
    assert owner == f"{OWNED_UID}:{OWNED_UID}\n"  # the RUN step's chown kept through the subordinate ids
    assert "Using cache" in user("build", "-t", "rootless-built", str(context)).stdout

    user("run", "--name", "to-commit", "rootless-built", "sh", "-c", "echo committed > /committed")
    try:
        assert user("diff", "to-commit").stdout == "A /committed\n"
        user("commit", "-m", "a committed file", "to-commit", "rootless-committed:1")
    finally:
        user("rm", "-f", "to-commit")
    shown = user("run", "--rm", "rootless-committed:1", "cat", "/committed", "/greeting.txt").stdout
    assert shown == "committed\nhello from COPY\n"

    target = f"{rootless_registry.host}/rootless/built:1"
    user("tag", "rootless-committed:1", target)
    assert "digest: sha256:" in user("push", target).stdout
    user("rmi", target, "rootless-committed:1", "rootless-built")
    assert f"Downloaded newer image for {target}" in user("pull", target).stdout
    assert user("run", "--rm", target, "cat", "/committed", "/built").stdout == "committed\nbuilt\n"
    user("rmi", target)


def test_single_id_mapping_when_newuidmap_is_hidden(user: RootlessUser, busybox_owned_tar: bytes) -> None:
    locked = RootlessUser(
        user.name,
        user.home,
        user.runtime / "locked",
        path=path_without(user, "newuidmap", "newgidmap"),
        extra={"XDG_DATA_HOME": str(user.runtime / "locked-data")},
    )
    subprocess.run(["runuser", "-u", user.name, "--", "mkdir", "-p", str(locked.runtime)], check=True)
    try:
        imported = locked("import", "-", "busybox", input=busybox_owned_tar)
        assert "single-id mapping" in imported.stderr
        assert "newuidmap and newgidmap not found (Debian package uidmap)" in imported.stderr
        assert len([line for line in imported.stderr.splitlines() if "single-id" in line]) == 1
        uid = pwd.getpwnam(user.name).pw_uid
        assert f"Id Mapping: single id, uid 0:{uid}:1" in locked("info").stdout
        # The file of uid 1234 could not keep its owner: it is root's, and the import succeeded.
        shown = locked("run", "--rm", "busybox", "sh", "-c", "id -u; stat -c %u /owned; cat /owned")
        assert shown.stdout.split() == ["0", "0", "hi"]
        cid = locked("run", "-d", "busybox", "sleep", "300").stdout.strip()
        assert locked("exec", cid, "echo", "inside").stdout == "inside\n"
        locked("rm", "-f", cid)
    finally:
        locked.clean()


def test_a_second_user_cannot_see_or_touch_the_first_users_containers(
    rootless_users: tuple[RootlessUser, RootlessUser], user: RootlessUser
) -> None:
    other = rootless_users[1]
    cid = user("run", "-d", "--name", "private", "busybox", "sleep", "300").stdout.strip()
    try:
        assert other("ps", "-aq").stdout == ""
        assert other("images", "-q").stdout == ""
        first_root = str(user.home / ".local/share/dockyard")
        listing = other("--root", first_root, "ps", "-a", check=False)
        assert listing.returncode == 1
        assert "Permission denied" in listing.stderr and listing.stderr.count("\n") == 1, listing.stderr
        removal = other("--root", first_root, "rm", "-f", cid, check=False)
        assert removal.returncode != 0 and "Permission denied" in removal.stderr
        assert other("rm", "-f", "private", check=False).returncode != 0
        assert cid in user("ps", "-q", "--no-trunc").stdout  # still running, untouched
    finally:
        user("rm", "-f", cid)
