"""What every backend provides, and the subprocess machinery shared by all server backends."""

from __future__ import annotations

import os
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gcbench import procs
from gcbench.backends.process import FAILED_STOP_GRACE_S, ManagedProcess
from gcbench.errors import CellError
from gcbench.gcmode import MODES, GcMode
from gcbench.mcp import Session, StdioTransport
from gcbench.mcp_http import HttpTransport
from gcbench.memwatch import INTERVAL_S, MemoryWatch
from gcbench.output_guard import OutputGuard
from gcbench.scenario import Scenario

STOP_GRACE_S = 5.0  # a healthy server flushes its side channel and exits on stdin EOF well within this
# FAILED_STOP_GRACE_S (process.py): a failed or interrupted cell's server: its data is not kept, do not wait long


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
    # runs once the server has exited, before stop() returns: a probe that turns what the runtime wrote
    # (e.g. the JVM's log) into side-channel events
    after_exit: Callable[[], None] | None = None
    # runs with the server's pid when a healthy server is about to be stopped (the measured calls are over),
    # while it is still alive: a probe that reads what the runtime holds (e.g. Go's pause buffer, from outside)
    before_stop: Callable[[int], None] | None = None
    # HTTP transport: finds the started server's (host, port, path), given its handle; None: the server's
    # first stdout line `GCBENCH_LISTENING <port>` (the built-in servers)
    http_endpoint: Callable[[SubprocessServer], tuple[str, int, str]] | None = None


@dataclass
class CellContext:
    """Where one cell's server writes its side channel and its stderr."""

    events_path: Path
    stderr_path: Path
    transport: str = "stdio"
    timeout_s: float = 30.0  # start-up: from launch to the answer to initialize / the HTTP port
    max_memory_bytes: int | None = None  # RSS cap of the server's process tree (None: no cap)
    cpu_affinity: list[int] | None = None  # --pin: the server's cores (inherited by all its threads)
    rss_samples_path: Path | None = None  # the memory watcher writes the tree's (t_ns, rss_bytes) samples here
    rss_interval_s: float = INTERVAL_S  # the memory watcher's sampling interval


class ServerHandle(ABC):
    """A live server for one cell: a Session to talk to it and a way to stop it."""

    session: Session
    pid: int | None
    memory: dict | None = None  # after stop: the memory watcher's summary (peak RSS, samples), if one ran

    @abstractmethod
    def stop(self, grace_s: float | None = None) -> int | None:
        """Stop the server (and everything it started); return its exit code when known.

        grace_s: how long it may take to exit by itself (None: the default for a healthy server).
        """


def mode_syntax(name: str) -> str:
    """How a mode is written on the command line: `semi:N`, `thresholds:T0,T1,T2`, `default`."""
    if not MODES[name][0]:
        return name
    return f"{name}:T0,T1,T2" if name == "thresholds" else f"{name}:N"


def declared_mode_reason(mode: GcMode, accepted: tuple[str, ...], setting: str, takes: str,
                         reasons: dict[str, str]) -> str | None:
    """The one rule every backend's GC modes follow: None for an accepted mode kind, else the backend's own
    words for that mode (reasons[name], or reasons["*"] for any other), else "not a <setting> GC setting".

    A reason may name {mode} and {takes} (the accepted modes as written on the command line)."""
    if mode.name in accepted:
        return None
    listed = ", ".join(mode_syntax(m) for m in accepted)
    why = reasons.get(mode.name) or reasons.get("*") or "{mode} is not a " + setting + " GC setting ({name} takes: {takes})"
    return why.format(mode=mode, takes=listed, name=takes)


class Backend(ABC):
    name: str = ""
    runtime: str = ""  # python, node, go, rust, ...
    description: str = ""
    in_process: bool = False
    in_default_run: bool = True  # False: only run when named (in-process, calibration)
    tool: str = "work"
    # The GC mode kinds (gcmode.MODES names) the server accepts, as declared data: any other mode's cell is
    # skipped with a reason. None: the backend decides per mode (a user's server).
    gc_modes: tuple[str, ...] | None = None
    gc_setting: str = ""  # "a <gc_setting> GC setting": Go, CPython, JVM, ...
    gc_takes: str = ""  # "(<gc_takes> takes: ...)"; default: the backend's name
    gc_mode_reasons: dict[str, str] = {}  # mode name (or "*": any other) -> why it is refused, if better said

    @abstractmethod
    def availability(self) -> Availability: ...

    def unsupported_reason(self, mode: GcMode) -> str | None:
        """None when this backend can run the GC mode, else why not (the cell is skipped with it)."""
        if self.gc_modes is None:
            return None
        return declared_mode_reason(mode, self.gc_modes, self.gc_setting or self.runtime,
                                    self.gc_takes or type(self).name, self.gc_mode_reasons)

    def base_backend(self) -> Backend:
        """The backend itself; a wrapper (backends/metered.py) returns the backend it wraps."""
        return self

    def prepare(self, log) -> None:  # noqa: B027  (optional hook: most backends need nothing)
        """Build or install what the server needs (cached); called once per run before any cell."""

    def tool_arguments(self, scenario: Scenario) -> dict:
        return scenario.work.as_arguments()

    def runtime_metadata(self) -> dict:
        """What run.json records about this backend's runtime beyond its version string (after prepare()):
        an interpreter's exact build, a detected runtime and how the probe was attached."""
        return {}

    def before_measure(self, handle: ServerHandle, mode: GcMode, ctx: CellContext) -> dict:
        """Called between warm-up and the measured calls; what it returns goes into the cell's record.

        Raises CellError when the GC mode could not be applied (the cell fails with the reason).
        """
        return {}

    @abstractmethod
    def start(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> ServerHandle: ...

    def finish_events(self, events: list[dict], stats: dict, ctx: CellContext) -> tuple[list[dict], dict]:
        """After the server has stopped: complete its side-channel events and stats record from what else it
        left (Go: the phases of each cycle from its stderr). Runs outside the measurement."""
        return events, stats


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
                "GCBENCH_HEAP_SHAPE": scenario.server.heap_shape,
                "GCBENCH_GC_MODE": str(mode),
                "GCBENCH_TRANSPORT": ctx.transport,
            }
        )
        env.update(spec.env)
        return SubprocessServer(spec, env, ctx)


def _read_tail(data: bytes, lines: int = 3) -> str:
    """The last lines of a server's stderr, on one line (it ends up in a one-line cell failure reason)."""
    text = data.decode("utf-8", "replace")
    kept = [ln.strip() for ln in text.splitlines() if ln.strip().strip("^~ ")]  # not the ^^^ markers
    return " | ".join(kept[-lines:])


class SubprocessServer(ServerHandle):
    """Runs a server in its own process group so that stopping it never leaves a child behind.

    Start-up (process, registration, memory watcher) is never cut short by a first Ctrl-C; whatever fails or
    is interrupted after the process exists stops it before the exception leaves the constructor.
    """

    def __init__(self, spec: LaunchSpec, env: dict[str, str], ctx: CellContext) -> None:
        self.ctx = ctx
        self.after_exit = spec.after_exit
        self.before_stop = spec.before_stop
        self.transport = None
        self.watch: MemoryWatch | None = None
        with procs.held():  # a process that exists is registered (and watched) before a signal can act
            self.guard = OutputGuard(ctx.stderr_path, ctx.events_path)  # stderr capped; side channel watched
            try:
                self.process = ManagedProcess(spec.argv, env, f"server {spec.argv[0]}", cwd=spec.cwd,
                                              cpu_affinity=ctx.cpu_affinity)
            except OSError as e:
                self.guard.close()
                raise CellError(f"cannot start server {spec.argv[0]!r}: {e.strerror or e}") from None
            self.proc = self.process.proc
            self.pid = self.proc.pid
            self.guard.start(self.proc.stderr, self.pid)
            try:
                # the cap, the cell's guard and the RSS samples
                self.watch = MemoryWatch(self.pid, ctx.max_memory_bytes, ctx.rss_interval_s, ctx.rss_samples_path)
            except OSError:
                self.stop(FAILED_STOP_GRACE_S)
                raise
        try:
            if ctx.transport == "http":
                with procs.raising():
                    if spec.http_endpoint is not None:
                        host, port, path = spec.http_endpoint(self)
                    else:
                        host, port, path = "127.0.0.1", self._read_listening_port(ctx.timeout_s), "/mcp"
                        self.guard.drain_stdout(self.proc.stdout.fileno())  # nothing else reads it now
                self.transport = HttpTransport(host, port, path, describe_exit=self.describe_exit)
            else:
                self.transport = StdioTransport(self.proc.stdin.fileno(), self.proc.stdout.fileno(), self.describe_exit,
                                                server_pid=self.pid)
            self.session = Session(self.transport, ctx.timeout_s)
            with procs.raising():
                self.watch.wait_ready()  # its first RSS sample before the first call
        except BaseException:
            self.stop(FAILED_STOP_GRACE_S)
            raise

    def _read_listening_port(self, timeout_s: float) -> int:
        """HTTP mode: the server's first stdout line is `GCBENCH_LISTENING <port>`."""
        reader = StdioTransport(-1, self.proc.stdout.fileno(), self.describe_exit)
        deadline = time.monotonic() + timeout_s
        try:
            while b"\n" not in reader.buffer:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CellError(f"server did not announce its HTTP port within {timeout_s:g} s")
                if len(reader.buffer) > 4096:
                    raise CellError("server wrote more than 4 KiB on stdout without announcing its HTTP port")
                reader.read_raw(left)
        finally:
            reader.close()
        line = bytes(reader.buffer).split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        word, _, port = line.partition(" ")
        if word != "GCBENCH_LISTENING" or not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise CellError(f"expected 'GCBENCH_LISTENING <port>' from the server in HTTP mode, got {line[:80]!r}")
        return int(port)

    def describe_exit(self) -> str:
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
        verdict = (self.watch.verdict(0.2) if self.watch else None) or self.guard.verdict
        if verdict:
            return f" (exit code {code}): {verdict}"
        self.guard.wait_eof(0.5)  # the last of its stderr (a traceback) may still be in the pipe
        tail = _read_tail(self.guard.last_bytes(600))
        out = "" if code is None else f" (exit code {code})"
        return out + (f"; its stderr ends: {tail}" if tail else "")

    @property
    def stderr_dropped_bytes(self) -> int:
        """Bytes of stderr the capped log did not keep (the middle of a flood)."""
        return self.guard.log.dropped

    def stop(self, grace_s: float | None = None) -> int | None:
        """EOF on stdin, then SIGTERM, then SIGKILL to the process group and to every descendant seen."""
        with procs.held():  # once begun, stopping runs to the end (a second signal still kills all at once)
            if self.before_stop is not None and grace_s is None and self.proc.poll() is None:
                self.before_stop(self.pid)
            return self._stop(STOP_GRACE_S if grace_s is None else grace_s)

    def _stop(self, grace_s: float) -> int | None:
        proc = self.proc
        try:
            self.process.terminate(grace_s)
            if self.after_exit is not None:
                self.after_exit()
            return proc.returncode
        finally:
            self.process.release()
            if self.watch:
                self.memory = self.watch.stop()
            if self.transport is not None:
                self.transport.close()
            if proc.stdout:
                proc.stdout.close()
            self.guard.close()
