"""What every backend provides, and the subprocess machinery shared by all server backends."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from gcbench.errors import CellError
from gcbench.gcmode import GcMode
from gcbench.mcp import Session, StdioTransport
from gcbench.mcp_http import HttpTransport
from gcbench.scenario import Scenario

STOP_GRACE_S = 5.0


@dataclass(frozen=True)
class Availability:
    ok: bool
    version: str = ""  # the runtime's version string, when available
    reason: str = ""  # why not, with the command that fixes it


@dataclass(frozen=True)
class LaunchSpec:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to the harness's environment
    cwd: str | None = None


@dataclass
class CellContext:
    """Where one cell's server writes its side channel and its stderr."""

    events_path: Path
    stderr_path: Path
    transport: str = "stdio"
    timeout_s: float = 30.0
    cpu_affinity: list[int] | None = None  # --pin: the server's cores (inherited by all its threads)


class ServerHandle(ABC):
    """A live server for one cell: a Session to talk to it and a way to stop it."""

    session: Session
    pid: int | None

    @abstractmethod
    def stop(self) -> int | None:
        """Stop the server (and everything it started); return its exit code when known."""


class Backend(ABC):
    name: str = ""
    runtime: str = ""  # python, node, go, rust, ...
    description: str = ""
    in_process: bool = False
    in_default_run: bool = True  # False: only run when named (in-process, calibration)
    tool: str = "work"

    @abstractmethod
    def availability(self) -> Availability: ...

    def unsupported_reason(self, mode: GcMode) -> str | None:
        """None when this backend can run the GC mode, else why not (the cell is skipped with it)."""
        return None

    def prepare(self, log) -> None:
        """Build or install what the server needs (cached); called once per run before any cell."""

    def tool_arguments(self, scenario: Scenario) -> dict:
        return scenario.work.as_arguments()

    @abstractmethod
    def start(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> ServerHandle: ...


class SubprocessBackend(Backend):
    """A server that runs as a child process; subclasses only say how to launch it."""

    @abstractmethod
    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec: ...

    def start(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> ServerHandle:
        spec = self.launch_spec(mode, scenario, ctx)
        env = dict(os.environ)
        env.update(
            {
                "GCBENCH_EVENTS": str(ctx.events_path),
                "GCBENCH_HEAP_OBJECTS": str(scenario.server.heap_objects),
                "GCBENCH_GC_MODE": str(mode),
                "GCBENCH_TRANSPORT": ctx.transport,
            }
        )
        env.update(spec.env)
        return SubprocessServer(spec, env, ctx)


def _read_tail(path: Path, limit: int = 600) -> str:
    try:
        data = path.read_bytes()[-limit:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()


class SubprocessServer(ServerHandle):
    """Runs a server in its own process group so that stopping it never leaves a child behind."""

    def __init__(self, spec: LaunchSpec, env: dict[str, str], ctx: CellContext) -> None:
        self.ctx = ctx
        self._stderr = open(ctx.stderr_path, "wb")  # noqa: SIM115  (closed in stop)
        try:
            self.proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                cwd=spec.cwd,
                start_new_session=True,
                close_fds=True,
                # set before exec, so every thread and child the server starts inherits it
                preexec_fn=(lambda: os.sched_setaffinity(0, ctx.cpu_affinity)) if ctx.cpu_affinity else None,
            )
        except OSError as e:
            self._stderr.close()
            raise CellError(f"cannot start server {spec.argv[0]!r}: {e.strerror or e}") from None
        self.pid = self.proc.pid
        if ctx.transport == "http":
            try:
                port = self._read_listening_port(ctx.timeout_s)
            except CellError:
                self.stop()
                raise
            self.transport = HttpTransport("127.0.0.1", port)
        else:
            self.transport = StdioTransport(self.proc.stdin.fileno(), self.proc.stdout.fileno(), self.describe_exit)
        self.session = Session(self.transport, ctx.timeout_s)

    def _read_listening_port(self, timeout_s: float) -> int:
        """HTTP mode: the server's first stdout line is `GCBENCH_LISTENING <port>`."""
        reader = StdioTransport(-1, self.proc.stdout.fileno(), self.describe_exit)
        deadline = time.monotonic() + timeout_s
        try:
            while b"\n" not in reader.buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CellError(f"server did not announce its HTTP port within {timeout_s:g} s")
                reader.read_raw(left)
        finally:
            reader.close()
        line = bytes(reader.buffer).split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        word, _, port = line.partition(" ")
        if word != "GCBENCH_LISTENING" or not port.isdigit():
            raise CellError(f"expected 'GCBENCH_LISTENING <port>' from the server in HTTP mode, got {line[:80]!r}")
        return int(port)

    def describe_exit(self) -> str:
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
        tail = _read_tail(self.ctx.stderr_path)
        out = "" if code is None else f" (exit code {code})"
        return out + (f"; its stderr ends: {tail}" if tail else "")

    def stop(self) -> int | None:
        proc = self.proc
        try:
            if proc.stdin and not proc.stdin.closed:
                try:
                    proc.stdin.close()  # EOF: the polite way to ask an MCP stdio server to exit
                except OSError:
                    pass
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
            # whatever the server started is ended too, even if the server itself exited
            self._signal_group(signal.SIGKILL)
            if proc.poll() is None:
                proc.wait()
            return proc.returncode
        finally:
            self.transport.close()
            if proc.stdout:
                proc.stdout.close()
            self._stderr.close()

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
