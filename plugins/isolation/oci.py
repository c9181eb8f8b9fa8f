"""The `oci` isolation driver: the same containers through an OCI runtime (runc, crun, runsc).

It writes the ContainerSpec as an OCI bundle (`config.json` in `spec.state_dir`, root.path being
the rootfs) and drives the runtime's CLI: `create` + `start` (with `--pid-file`, and
`--console-socket` plus a relay for terminals, see `oci_console`), `exec --detach`, `pause`,
`resume`, `events --stats`, `delete --force`. Running the same spec through runc is also the proof
that the spec is complete.

The runtime is the `runtime` driver option, else `$DOCKYARD_OCI_RUNTIME`, else `runc`; its state
lives under `<run_dir>/<runtime name>`. Priority 0: used only when named (`--isolation-driver oci`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.core.drivers import Availability, DriverContext, ResourceUsage
from dockyard.core.errors import (
    CommandNotExecutable,
    CommandNotFound,
    DockyardError,
    DriverFailed,
    UsageError,
)

if TYPE_CHECKING:
    import subprocess

    from dockyard.core.spec import ContainerSpec, ProcessSpec

__all__ = ["OciDriver"]

_ENVIRONMENT = "DOCKYARD_OCI_RUNTIME"


class OciDriver:
    """Containers run by an OCI runtime from a generated bundle (see the module docstring)."""

    name = "oci"

    def __init__(self, context: DriverContext) -> None:
        self._runtime = context.options.get("runtime") or os.environ.get(_ENVIRONMENT) or "runc"
        self._root = context.run_dir / Path(self._runtime).name
        self._rootless = context.rootless

    def available(self) -> Availability:
        """Usable as root when the runtime's executable is found."""
        import shutil

        if shutil.which(self._runtime) is None:
            return Availability(
                False,
                f"OCI runtime {self._runtime!r} not found (install runc, or set {_ENVIRONMENT})",
                missing=True,
            )
        if os.geteuid() != 0 or self._rootless:
            return Availability(False, "needs root (use the rootless driver)")
        return Availability(True)

    def start(self, spec: ContainerSpec, *, stdio: tuple[int, int, int], console: int | None = None) -> int:
        """Write the bundle, `create` and `start` the container; return its first process's pid.
        The runtime makes the terminal inside the container; its master goes on to `console`."""
        from dockyard.core import store
        from dockyard.plugins.isolation.oci_config import config_for
        from dockyard.plugins.isolation.sysctls import validate_sysctls

        bundle = self._bundle(spec)
        _refuse_escaping_dev(spec)
        validate_sysctls(
            spec.sysctls,
            private_network=spec.namespace("network") is not None,
            private_ipc=spec.namespace("ipc") is not None,
        )
        store.write_json(bundle / "config.json", config_for(spec))
        pid_file = bundle / "runtime.pid"
        pid_file.unlink(missing_ok=True)
        create = ["create", "--bundle", str(bundle), "--pid-file", str(pid_file), spec.id]
        try:
            if spec.process.terminal:
                self._run_with_terminal(create, stdio[0], console=console, log=bundle / "runtime.log")
            else:
                self._run(create, stdio=stdio, log=bundle / "runtime.log")
            pid = int(pid_file.read_text())
            self._run(["start", spec.id], log=bundle / "runtime.log")
        except (DockyardError, OSError, ValueError) as exc:
            self._forget(spec)
            if isinstance(exc, DockyardError):
                raise
            raise DriverFailed(f"{self._runtime}: cannot start container {spec.id}: {exc}") from exc
        return pid

    def exec(
        self,
        spec: ContainerSpec,
        *,
        pid: int,
        process: ProcessSpec,
        stdio: tuple[int, int, int],
        console: int | None = None,
    ) -> int:
        """`exec --detach` the process in the container; return its pid (`console` as for `start`)."""
        from dockyard.core import store
        from dockyard.plugins.isolation.oci_config import process_for

        bundle = self._bundle(spec)
        process_file, pid_file = bundle / f"exec-{os.getpid()}.json", bundle / f"exec-{os.getpid()}.pid"
        store.write_json(process_file, process_for(process))
        command = ["exec", "--detach", "--pid-file", str(pid_file), "--process", str(process_file), spec.id]
        try:
            if process.terminal:
                self._run_with_terminal(command, stdio[0], console=console, log=bundle / "runtime.log")
            else:
                self._run(command, stdio=stdio, log=bundle / "runtime.log")
            return int(pid_file.read_text())
        except (OSError, ValueError) as exc:
            raise DriverFailed(f"{self._runtime}: exec in {spec.id} failed: {exc}") from exc
        finally:
            process_file.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)

    def delete(self, spec: ContainerSpec) -> None:
        """`delete --force` (killing what runs) and remove the bundle's files; idempotent."""
        self._forget(spec)
        if spec.state_dir:
            for name in ("config.json", "runtime.pid", "runtime.log"):
                (Path(spec.state_dir) / name).unlink(missing_ok=True)

    def pause(self, spec: ContainerSpec) -> None:
        """Freeze the container through the runtime."""
        self._run(["pause", spec.id])

    def resume(self, spec: ContainerSpec) -> None:
        """Thaw the container through the runtime."""
        self._run(["resume", spec.id])

    def usage(self, spec: ContainerSpec) -> ResourceUsage:
        """The runtime's `events --stats` figures."""
        import json

        output = self._run(["events", "--stats", spec.id])
        try:
            data: dict[str, Any] = json.loads(output)["data"]
            memory = data.get("memory", {}).get("usage", {})
            limit = int(memory.get("limit", 0))
            block = data.get("blkio", {}).get("ioServiceBytesRecursive") or []
            return ResourceUsage(
                cpu_seconds=int(data.get("cpu", {}).get("usage", {}).get("total", 0)) / 1e9,
                memory_bytes=int(memory.get("usage", 0)),
                memory_limit=0 if limit >= 1 << 62 else limit,
                pids=int(data.get("pids", {}).get("current", 0)),
                block_read=sum(int(entry.get("value", 0)) for entry in block if entry.get("op") == "Read"),
                block_write=sum(int(entry.get("value", 0)) for entry in block if entry.get("op") == "Write"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DriverFailed(f"{self._runtime}: unreadable stats for {spec.id}: {output[:200]!r}") from exc

    def _bundle(self, spec: ContainerSpec) -> Path:
        if not spec.state_dir:
            raise UsageError("the oci driver needs a state directory for the container's bundle")
        return Path(spec.state_dir)

    def _forget(self, spec: ContainerSpec) -> None:
        result = self._invoke(["delete", "--force", spec.id], stdio=None)
        if result.returncode != 0 and "does not exist" not in result.stderr:
            raise DriverFailed(f"{self._runtime} delete {spec.id} failed: {result.stderr.strip()}")

    def _run(
        self, args: list[str], *, stdio: tuple[int, int, int] | None = None, log: Path | None = None
    ) -> str:
        """Run a runtime command; its failure becomes the matching Dockyard error."""
        result = self._invoke(args, stdio=stdio, log=log)
        if result.returncode != 0:
            raise _error(self._runtime, args[0], _log_error(log) or result.stderr.strip())
        return result.stdout

    def _invoke(
        self, args: list[str], *, stdio: tuple[int, int, int] | None, log: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        import subprocess

        command = [self._runtime, "--root", str(self._root)]
        if log is not None:
            log.unlink(missing_ok=True)
            command += ["--log", str(log), "--log-format", "json"]
        try:
            if stdio is None:
                return subprocess.run(command + args, capture_output=True, text=True, check=False)
            # The container inherits the runtime's standard streams, so its errors land on the
            # container's stderr: the log file holds them for us.
            returncode = subprocess.call(command + args, stdin=stdio[0], stdout=stdio[1], stderr=stdio[2])
            return subprocess.CompletedProcess(command + args, returncode, "", "")
        except OSError as exc:
            raise DriverFailed(f"cannot run the OCI runtime {self._runtime}: {exc.strerror}") from exc

    def _run_with_terminal(self, args: list[str], peer: int, *, console: int | None, log: Path) -> None:
        """Run a runtime command that makes a terminal; pass its master on to `console`, or
        without one relay it to the caller's pty `peer`."""
        import subprocess

        from dockyard.core.linux.console import send_terminal
        from dockyard.plugins.isolation.oci_console import console_socket, receive_master, start_relay

        log.unlink(missing_ok=True)
        with console_socket() as (path, server):
            command = [
                self._runtime,
                "--root",
                str(self._root),
                "--log",
                str(log),
                "--log-format",
                "json",
                args[0],
                "--console-socket",
                path,
                *args[1:],
            ]
            try:
                runtime = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
            except OSError as exc:
                raise DriverFailed(f"cannot run the OCI runtime {self._runtime}: {exc.strerror}") from exc
            master = receive_master(server, runtime)
            _, stderr = runtime.communicate()
        if runtime.returncode != 0 or master is None:
            if master is not None:
                os.close(master)
            raise _error(self._runtime, args[0], _log_error(log) or stderr.decode(errors="replace").strip())
        try:
            if console is not None:
                send_terminal(console, master)
            else:
                start_relay(master, peer)
        finally:
            os.close(master)


def _refuse_escaping_dev(spec: ContainerSpec) -> None:
    """Refuse an image whose /dev leads out of the rootfs when resolved on the host.

    Dockyard's own driver resolves every path inside the root; runc 1.1 does too for mount
    destinations, but creates /dev/ptmx and the /dev/fd, /dev/std* symlinks by plain path joins,
    through a symlinked /dev, on the host. So /dev is checked the way such a runtime resolves it.
    """
    root = os.path.realpath(spec.rootfs)
    resolved = os.path.realpath(os.path.join(root, "dev"))
    if not resolved.startswith(root + "/"):
        raise DriverFailed(f"/dev in the image leads out of the root filesystem (to {resolved}): refusing it")


def _log_error(log: Path | None) -> str:
    """The last error message in a runtime's JSON log."""
    import json

    if log is None or not log.exists():
        return ""
    message = ""
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            message = str(entry.get("msg", ""))
    return message


def _error(runtime: str, action: str, message: str) -> DockyardError:
    """Docker's reading of a runtime's failure: exec errors become 127 / 126."""
    if 'exec: "' in message:
        if "executable file not found" in message or "no such file or directory" in message:
            return CommandNotFound(message)
        if "permission denied" in message:
            return CommandNotExecutable(message)
    return DriverFailed(f"{runtime} {action} failed: {message}")
