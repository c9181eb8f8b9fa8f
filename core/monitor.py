"""The per-container monitor: one small process that outlives the CLI and owns the container.

It is started as `python -S -I -c MONITOR_BOOT .../monitor.py CONTAINER_DIR` (see
core/monitor_launch.py) and imports only the standard library pieces below, because one runs
per container: a bare interpreter is already most of its memory. Everything heavy (plugins,
drivers) runs in short-lived children it forks: the *starter*, which mounts the root
filesystem, attaches the network and asks the isolation driver to start the process, and the
*cleaner*, which undoes that after the exit. The monitor is a child subreaper,
so the container's first process becomes its child once the starter exits, and it alone reaps it
(the caller sets PR_SET_CHILD_SUBREAPER before exec; the flag is preserved across execve).

It owns the container's stdio: pipes, or for `-t` the master of the pseudo-terminal the isolation
driver made from the container's own devpts and sent over a socket pair (`Console`). Output goes to the log in
Docker's json-file format and to every attached client; clients reach it through a unix socket
(`attach.sock`) speaking small frames:

    frame = kind (1 byte) + length (4 bytes, big endian) + payload
    monitor -> client: 1 stdout, 2 stderr, 3 exit (payload: the exit code in ASCII)
    client -> monitor: 0 stdin data, 5 stdin closed, 6 terminal size ("ROWS COLS"), 7 cleaned up

A client first sends one JSON line saying which streams it wants. The exit frame is sent only after
the cleaner has finished (and removed the container, for `--rm`), so a `run` that returns has
nothing left behind. A client that offered to clean up (`"cleanup": true`, as an attached `run`
does: it has every module loaded already) gets the exit frame first and answers with frame 7;
if it goes away without answering, the monitor's cleaner does the work after all. Restart
policies are applied here, since there is no daemon to do it.

Memory (at most 4 MB PSS per idle monitor with 100 running) decides the imports: the C halves
`_json`, `_socket` and `_signal` instead of json, socket and signal, whose Python halves pull in
re, enum and selectors (about 1 MB each per process), and no contextlib or typing. The monitor
is imported rather than run as a script (see core/monitor_launch.py), so it loads its cached
bytecode: compiling this file from source would leave about 1.3 MB of parser memory behind.
"""

from __future__ import annotations

import _json
import _socket
import errno
import fcntl
import os
import select
import struct
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing; mypy honours the name
if TYPE_CHECKING:
    import signal as _signal  # the same functions and constants, with type stubs
    from typing import Any
else:
    import _signal

STDOUT, STDERR, EXIT = 1, 2, 3
STDIN, STDIN_CLOSED, RESIZE, CLEANED = 0, 5, 6, 7
HANDOFF_TIMEOUT = 120.0
HEADER = struct.Struct(">BI")
ATTACH_TIMEOUT = 30.0
TIOCSWINSZ = 0x5414


def now() -> str:
    """RFC 3339 UTC with nanoseconds, as Docker's logs and state use."""
    nanoseconds = time.time_ns()
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def start_time(pid: int) -> int | None:
    """The start time of a process (see core/procs.py), to tell it from a recycled pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


# JSON through the C half of the json package, configured as json.loads and json.dumps configure it.

JSON_WHITESPACE = " \t\n\r"


class JSONSettings:
    """What json.JSONDecoder hands its C scanner: plain dicts, ints, floats and Python's NaN."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__


def _unserialisable(value: object) -> object:
    """The encoder's fallback for other types: json.dumps's error."""
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The stub types the scanner's settings as a scanner; any object with the attributes above will do.
_scan_json = _json.make_scanner(JSONSettings())  # type: ignore[arg-type]
_json_encoders = {
    separators: _json.make_encoder(
        None, _unserialisable, _json.encode_basestring_ascii, None, *separators, False, False, True
    )
    for separators in ((": ", ", "), (":", ","))
}


def json_loads(data: bytes | str) -> Any:
    """json.loads. Malformed input is handed to the json package itself, imported only then, so
    it fails with json's usual ValueError (without the package the C scanner reports some
    mistakes as SystemError or StopIteration)."""
    text = (data.decode() if isinstance(data, bytes) else data).strip(JSON_WHITESPACE)
    try:
        value, end = _scan_json(text, 0)
    except (StopIteration, SystemError, ValueError):
        end = -1
    if end != len(text):
        import json

        return json.loads(data)
    return value


def json_dumps(value: object, *, compact: bool = False) -> bytes:
    """json.dumps(value) as bytes (ASCII, as ensure_ascii makes it); `compact` drops the spaces
    after separators, as separators=(",", ":") does."""
    encode = _json_encoders[(":", ",") if compact else (": ", ", ")]
    return "".join(encode(value, 0)).encode()


def unlink_if_present(path: str) -> None:
    """os.unlink, quiet when the path is already gone."""
    try:  # noqa: SIM105 - contextlib would cost every monitor 0.6 MB
        os.unlink(path)
    except FileNotFoundError:
        pass


class State:
    """state.json, updated under the same lock the CLI uses."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "state.json")
        self.lock = os.path.join(directory, "state.lock")

    def read(self) -> dict[str, object]:
        """The current record."""
        try:
            with open(self.path, "rb") as handle:
                data: dict[str, object] = json_loads(handle.read())
                return data
        except (OSError, ValueError):
            return {}

    def update(self, **changes: object) -> dict[str, object]:
        """Merge changes and replace the file atomically."""
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = self.read()
            state.update(changes)
            temporary = f"{self.path}.tmp-{os.getpid()}"
            with open(temporary, "wb") as handle:
                handle.write(json_dumps(state))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            return state
        finally:
            os.close(fd)


class Log:
    """The json-file log: one JSON object per line of output, partial lines flushed at exit."""

    def __init__(self, path: str) -> None:
        self.handle = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the monitor
        self.partial = {"stdout": b"", "stderr": b""}

    def write(self, stream: str, data: bytes) -> None:
        """Record a chunk of output."""
        buffered = self.partial[stream] + data
        *lines, rest = buffered.split(b"\n")
        self.partial[stream] = rest
        for line in lines:
            self._entry(stream, line + b"\n")

    def flush(self) -> None:
        """Write out unterminated lines (the last output of a process that printed no newline)."""
        for stream, rest in self.partial.items():
            if rest:
                self._entry(stream, rest)
            self.partial[stream] = b""

    def _entry(self, stream: str, data: bytes) -> None:
        record = {"log": data.decode("utf-8", errors="replace"), "stream": stream, "time": now()}
        self.handle.write(json_dumps(record, compact=True) + b"\n")


class Client:
    """One attached CLI."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.hello: dict[str, object] | None = None

    def wants(self, stream: str) -> bool:
        """Whether the client asked for this stream."""
        return bool(self.hello and self.hello.get(stream, True))

    def send(self, kind: int, payload: bytes) -> bool:
        """Send a frame; False when the client is gone."""
        try:
            self.sock.sendall(HEADER.pack(kind, len(payload)) + payload)
        except OSError:
            return False
        return True


class Monitor:
    """Runs one container: start, relay, log, reap, clean up, restart."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        with open(os.path.join(directory, "monitor.json"), "rb") as handle:
            self.params = json_loads(handle.read())
        self.state = State(directory)
        self.log = Log(self.params["log_path"])
        self.tty = bool(self.params["tty"])
        self.clients: list[Client] = []
        self.listener = self._listen(self.params["attach_socket"])
        self.wakeup_r, self.wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(self.wakeup_w)
        _signal.signal(_signal.SIGCHLD, lambda *_: None)
        _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
        for ignored in (_signal.SIGHUP, _signal.SIGINT, _signal.SIGTERM):
            _signal.signal(ignored, _signal.SIG_IGN)
        self.stdin_w: int | None = None
        self.outputs: dict[int, str] = {}
        self.pid = 0
        self.exit_code: int | None = None
        self.cleaned = False

    @staticmethod
    def _listen(path: str) -> _socket.socket:
        directory, name = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        unlink_if_present(path)
        listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        # A socket path is limited to 108 bytes; a directory descriptor keeps it short whatever
        # the runroot is.
        dirfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            listener.bind(f"/proc/self/fd/{dirfd}/{name}")
        finally:
            os.close(dirfd)
        os.chmod(path, 0o600)
        listener.listen(16)
        listener.setblocking(False)
        return listener

    # stdio

    def _stdio(self) -> tuple[int, int, int]:
        """Make the container's descriptors; keep our ends for relaying."""
        stdio, self.outputs, self.stdin_w = container_stdio(tty=self.tty, stdin=bool(self.params["stdin"]))
        return stdio

    def adopt(self, started: dict[str, object]) -> dict[str, object]:
        """Take over a container the process started before it exec'd this monitor: its pid and
        our ends of its stdio, as `container_stdio` made them (see core/monitor_launch.py)."""
        outputs = started["outputs"]
        assert isinstance(outputs, dict)
        self.outputs = {int(fd): str(stream) for fd, stream in outputs.items()}
        stdin_w = started.get("stdin")
        self.stdin_w = int(str(stdin_w)) if stdin_w is not None else None
        return {"pid": started["pid"]}

    # children

    def _fork_child(
        self, action: str, stdio: tuple[int, int, int] | None, console: Console | None
    ) -> tuple[int, int]:
        """Fork a child that imports Dockyard and runs `action`; returns (pid, report fd)."""
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(report_r)
                _signal.set_wakeup_fd(-1)
                handled = (_signal.SIGCHLD, _signal.SIGPIPE, _signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
                for number in handled:
                    _signal.signal(number, _signal.SIG_DFL)
                sys.path[:0] = self.params["sys_path"]
                from dockyard.core import starter

                terminal = console.driver_end.fileno() if console is not None else None
                starter.child_main(action, self.directory, stdio=stdio, report_fd=report_w, console=terminal)
            finally:
                os._exit(1)
        os.close(report_w)
        return pid, report_r


    def _run_child(
        self, action: str, stdio: tuple[int, int, int] | None = None, console: Console | None = None
    ) -> dict[str, object]:
        """Fork a child for `action` and return its report. A starter keeps running after it
        reported (it tells plugins) and is reaped with the other children; others are waited for."""
        pid, report_fd = self._fork_child(action, stdio, console)
        if stdio is not None:
            for fd in set(stdio):
                os.close(fd)
        if console is not None:
            console.driver_end.close()
        report = read_report(report_fd)
        if action != "start":
            while True:
                try:
                    os.waitpid(pid, 0)
                    break
                except ChildProcessError:
                    break
                except InterruptedError:
                    continue
        if not report:
            report = {"error": f"the {action} process failed", "exit_code": 125}
        return report

    # clients

    def _accept(self) -> None:
        while True:
            try:
                # What socket.socket.accept wraps: accept4 with SOCK_CLOEXEC, giving a descriptor.
                fd, _ = self.listener._accept()  # type: ignore[attr-defined]  # not in the stub
            except (BlockingIOError, InterruptedError):
                return
            sock = _socket.socket(fileno=fd)
            sock.setblocking(True)
            self.clients.append(Client(sock))

    def _client_input(self, client: Client, *, frames: bool = True) -> bool:
        """Read from a client; False when it disconnected. Before the container runs
        (`frames` False) only the hello line is taken: input waits in the buffer."""
        try:
            data = client.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            return False
        client.buffer += data
        if client.hello is None:
            line, newline, rest = client.buffer.partition(b"\n")
            if not newline:
                return True
            client.hello = json_loads(line or b"{}")
            client.buffer = rest
        if frames:
            self._client_frames(client)
        return True

    def _client_frames(self, client: Client) -> None:
        """Act on every complete frame a client has sent."""
        while len(client.buffer) >= HEADER.size:
            kind, length = HEADER.unpack_from(client.buffer)
            if len(client.buffer) < HEADER.size + length:
                break
            payload = client.buffer[HEADER.size : HEADER.size + length]
            client.buffer = client.buffer[HEADER.size + length :]
            self._client_frame(kind, payload)

    def _client_frame(self, kind: int, payload: bytes) -> None:
        if kind == STDIN and self.stdin_w is not None:
            self._write_all(self.stdin_w, payload)
        elif kind == STDIN_CLOSED and self.stdin_w is not None:
            if self.tty:
                self._write_all(self.stdin_w, b"\x04")
            else:
                os.close(self.stdin_w)
                self.stdin_w = None
        elif kind == CLEANED:
            self.cleaned = True
        elif kind == RESIZE and self.tty and self.outputs:
            rows, cols = (int(part) for part in payload.split())
            master = next(iter(self.outputs))
            fcntl.ioctl(master, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                select.select([], [fd], [], 1.0)
                continue
            except OSError:
                return  # the container closed its input: drop what it will never read
            view = view[written:]

    def _broadcast(self, kind: int, payload: bytes, stream: str | None = None) -> None:
        self.clients = [
            client
            for client in self.clients
            if (stream is not None and not client.wants(stream)) or client.send(kind, payload)
        ]

    def _wait_for_first_client(self) -> None:
        deadline = time.monotonic() + ATTACH_TIMEOUT
        while not any(client.hello is not None for client in self.clients):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable, _, _ = select.select(
                [self.listener, *[c.sock for c in self.clients]], [], [], remaining
            )
            if self.listener in readable:
                self._accept()
            for client in list(self.clients):
                if client.sock in readable and not self._client_input(client, frames=False):
                    self.clients.remove(client)

    # the container

    def _relay_output(self, fd: int) -> bool:
        """Move output from the container to the log and clients; False at end of stream."""
        stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError as exc:  # EIO: the pty's last holder closed it
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            os.close(fd)
            del self.outputs[fd]
            return False
        self.log.write(stream, data)
        self._broadcast(STDOUT if stream == "stdout" else STDERR, data, stream)
        return True

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.exit_code = os.waitstatus_to_exitcode(status)
                if self.exit_code < 0:
                    self.exit_code = 128 - self.exit_code

    def _serve(self) -> None:
        """Relay until the container's first process is reaped and its output has drained."""
        drain_deadline: float | None = None
        while self.outputs or self.exit_code is None:
            if self.exit_code is not None and drain_deadline is None:
                # Background children may hold the pipes open: give output a moment, not forever.
                drain_deadline = time.monotonic() + 2.0
            if drain_deadline is not None and time.monotonic() > drain_deadline:
                break
            watched: list[_socket.socket | int] = [self.listener, self.wakeup_r, *self.outputs]
            watched.extend(client.sock for client in self.clients)
            try:
                readable, _, _ = select.select(watched, [], [], 0.5)
            except InterruptedError:
                continue
            if self.wakeup_r in readable:
                try:  # noqa: SIM105 - contextlib would cost every monitor 0.6 MB
                    os.read(self.wakeup_r, 512)
                except BlockingIOError:
                    pass
                self._reap()
            if self.listener in readable:
                self._accept()
            for fd in [fd for fd in readable if fd in self.outputs]:
                self._relay_output(fd)
            for client in [c for c in self.clients if c.sock in readable]:
                if not self._client_input(client):
                    client.sock.close()
                    self.clients.remove(client)
            if self.exit_code is None and not readable:
                self._reap()
        for fd in list(self.outputs):
            os.close(fd)
        self.outputs = {}
        self.log.flush()

    def _should_restart(self, restarts: int) -> bool:
        policy: dict[str, object] = self.params["restart"]
        if self.state.read().get("StopRequested"):
            return False
        if policy["Name"] in ("always", "unless-stopped"):
            return True
        if policy["Name"] == "on-failure" and self.exit_code:
            maximum = int(str(policy.get("MaximumRetryCount") or 0))
            return maximum == 0 or restarts < maximum
        return False

    def run(self, started: dict[str, object] | None = None) -> int:
        """Start the container (again, as its restart policy says) until it is done; `started`
        describes a first process already running (see `adopt`)."""
        self.state.update(MonitorPid=os.getpid(), MonitorStart=start_time(os.getpid()))
        self._wait_for_first_client()  # output waits in the pipes until the CLI says hello
        restarts = 0
        while True:
            self.exit_code = None
            if started is not None:
                report, started = self.adopt(started), None
            else:
                report = self._start()
            if "error" in report:
                code = int(str(report.get("exit_code") or 125))
                self.state.update(
                    Status="exited", ExitCode=code, Error=str(report["error"]), Pid=0, FinishedAt=now()
                )
                for fd in list(self.outputs):
                    os.close(fd)
                self.outputs = {}
                self._run_child("remove" if self.params["auto_remove"] else "cleanup")
                message = str(report["error"]).encode()
                self._broadcast(STDERR, b"Error: " + message + b"\n")
                self._finish(code)
                return code
            self.pid = int(str(report["pid"]))
            for client in self.clients:
                self._client_frames(client)  # input sent before the container was running
            self._reap()  # the starter is gone; the container may already have exited too
            self._serve()
            code = self.exit_code if self.exit_code is not None else 255
            restart = self._should_restart(restarts)
            self.state.update(
                Status="restarting" if restart else "exited",
                ExitCode=code,
                Pid=0,
                FinishedAt=now(),
                RestartCount=restarts + (1 if restart else 0),
            )
            if not restart and self._handed_to_client(code):
                self._close()
                return code
            self._run_child("cleanup" if restart or not self.params["auto_remove"] else "remove")
            if not restart:
                self._finish(code)
                return code
            restarts += 1
            time.sleep(min(0.1 * 2**restarts, 5.0))
            if self.state.read().get("StopRequested"):  # `stop` while it waited to restart
                self.state.update(Status="exited")
                self._finish(code)
                return code

    def _start(self) -> dict[str, object]:
        """Start the container again through a starter; with `-t`, take the terminal it made."""
        stdio = self._stdio()
        if not self.tty:
            return self._run_child("start", stdio)
        console = Console()
        try:
            report = self._run_child("start", stdio, console)
            if "error" not in report:
                master = console.receive()
                if master is None:
                    return {"error": "the isolation driver sent no terminal", "exit_code": 125}
                self.outputs, self.stdin_w = terminal_ends(master, stdin=bool(self.params["stdin"]))
            return report
        finally:
            console.close()

    def _handed_to_client(self, code: int) -> bool:
        """Give the exit to a client that offered to clean up; True once it says it has."""
        if not any(client.hello and client.hello.get("cleanup") for client in self.clients):
            return False
        self._broadcast(EXIT, str(code).encode())
        deadline = time.monotonic() + HANDOFF_TIMEOUT
        while not self.cleaned and time.monotonic() < deadline:
            cleaners = [c for c in self.clients if c.hello and c.hello.get("cleanup")]
            if not cleaners:
                return False
            readable, _, _ = select.select([c.sock for c in cleaners], [], [], 1.0)
            for client in [c for c in cleaners if c.sock in readable]:
                if not self._client_input(client):
                    client.sock.close()
                    self.clients.remove(client)
        return self.cleaned

    def _finish(self, code: int) -> None:
        self._broadcast(EXIT, str(code).encode())
        self._close()

    def _close(self) -> None:
        for client in self.clients:
            client.sock.close()
        self.listener.close()
        unlink_if_present(self.params["attach_socket"])


class Console:
    """A socket pair over which the isolation driver sends the master of the terminal it made
    inside the container (IsolationDriver.start's `console`): the driver gets `driver_end`."""

    def __init__(self) -> None:
        self.ours, self.driver_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)

    def receive(self) -> int | None:
        """The master the driver sent (non-blocking, close-on-exec), None if it sent none; call
        once the driver has returned, so whatever it sent is waiting."""
        flags = _socket.MSG_DONTWAIT | _socket.MSG_CMSG_CLOEXEC
        try:
            _, ancillary, _, _ = self.ours.recvmsg(1, _socket.CMSG_SPACE(4), flags)
        except BlockingIOError:
            return None
        for level, kind, data in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
                master = int(struct.unpack_from("i", data)[0])
                os.set_blocking(master, False)
                return master
        return None

    def close(self) -> None:
        """Close both ends."""
        self.ours.close()
        self.driver_end.close()


def terminal_ends(master: int, *, stdin: bool) -> tuple[dict[int, str], int | None]:
    """The monitor's ends of a terminal: its output descriptor, and its input one with `stdin`."""
    return {master: "stdout"}, master if stdin else None


def container_stdio(*, tty: bool, stdin: bool) -> tuple[tuple[int, int, int], dict[int, str], int | None]:
    """The container's stdin, stdout and stderr, and the monitor's ends: the output descriptors
    (non-blocking, each with its stream name) and the input one (None without `stdin`). With
    `tty` the driver makes the terminal (see `Console`): until it does, /dev/null stands in."""
    if tty:
        null_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        null_w = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        return (null_r, null_w, null_w), {}, None
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(out_r, False)
    os.set_blocking(err_r, False)
    stdin_w = None
    if stdin:
        in_r, stdin_w = os.pipe2(os.O_CLOEXEC)
    else:
        in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return (in_r, out_w, err_w), {out_r: "stdout", err_r: "stderr"}, stdin_w


def main() -> None:
    """Entry point, arguments `CONTAINER_DIR [STARTED]`; detach from the caller's session and
    run the container. STARTED (JSON, see `Monitor.adopt`) names a first process already running.

    The caller made this process a child subreaper before exec (the flag survives execve), so
    the monitor needs no ctypes of its own: one module less in every monitor's memory.
    """
    directory = sys.argv[1]
    started = json_loads(sys.argv[2]) if len(sys.argv) > 2 else None
    if os.getsid(0) != os.getpid():
        os.setsid()
    monitor = Monitor(directory)
    sys.exit(0 if monitor.run(started) == 0 else 1)


if __name__ == "__main__":
    main()


def read_report(fd: int) -> dict[str, object]:
    """The JSON object a starting child sent on `fd` until it closed it (starter.send_report),
    or {} for nothing or garbage; `fd` is closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    try:
        report = json_loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}
