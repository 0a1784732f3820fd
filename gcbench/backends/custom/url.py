"""--server-url: a Streamable HTTP MCP server that is already running, measured from outside.

gcbench did not start it, so it cannot set its GC (only `default` runs) and has no process to stop. What it
measures: every call's latency (and so latency outliers: the report's hiccups and tails); GC events only when
the server was started with the environment `gcbench env --runtime R --events FILE` prints and the run is given
`--server-events FILE --runtime R`:

- python: the sitecustomize probe; after the measured calls gcbench sends SIGUSR1 to each process that wrote an
  `attach` record (the probe then writes what it has, from its main thread, outside the calls) and reads FILE.
- go: FILE is the server's stderr (gctrace lines); the process listening on the URL's port is found from the
  kernel's socket table and its pause buffer is read from /proc/<pid>/mem, as for --server-cmd.
- java: FILE is the JVM log (its -Xlog file, `%p` replaced by the pid).

Events are kept from the cell's start onwards (the file also holds what earlier runs saw).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil

from gcbench.backends.base import Availability, Backend, CellContext, ServerHandle
from gcbench.backends.custom import go as go_outside
from gcbench.backends.custom.http import parse_url
from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode
from gcbench.mcp import Session
from gcbench.mcp_http import HttpTransport
from gcbench.probes import jvm_log
from gcbench.scenario import Scenario

EVENT_RUNTIMES = ("python", "go", "java")
FLUSH_WAIT_S = 5.0
FLUSH_POLL_S = 0.01


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on this TCP port (the kernel's socket table), None if not visible."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    pids = {c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}
    return pids.pop() if len(pids) == 1 else None


def _records(path: Path) -> list[dict]:
    out = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    for line in data.split(b"\n")[:-1]:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


class UrlHandle(ServerHandle):
    def __init__(self, backend: UrlBackend, ctx: CellContext) -> None:
        self.backend = backend
        self.ctx = ctx
        self.t_start_ns = time.monotonic_ns()
        host, port, path = backend.address
        self.pid = listening_pid(port) if host in ("127.0.0.1", "localhost") else None
        self.transport = HttpTransport(host, port, path)
        self.session = Session(self.transport, ctx.timeout_s)
        self.go_cell = go_outside.GoCell(t_launch_ns=0)
        self.flushed: dict = {}

    def stop(self, grace_s: float | None = None) -> int | None:
        try:
            if grace_s is None:  # a healthy cell: collect what the server's runtime holds
                self.backend.collect(self)
        finally:
            go_outside.kill_sampler(self.go_cell)
            self.transport.close()
        return None


class UrlBackend(Backend):
    name = "server-url"
    runtime = "other"
    description = "a running Streamable HTTP MCP server (--server-url): latency from outside, GC events if started with `gcbench env`"
    in_default_run = False

    def __init__(self, url: str, tool: str = "work", tool_args: dict | None = None, runtime: str | None = None,
                 events_path: str | None = None) -> None:
        self.url = url
        self.address = parse_url(url, "--server-url")
        self.tool = tool
        self._tool_args = tool_args
        self.runtime = runtime or "other"
        self.events_path = Path(events_path) if events_path else None
        if self.events_path is not None and self.runtime not in EVENT_RUNTIMES:
            raise GcbenchError(f"--server-events needs --runtime {'|'.join(EVENT_RUNTIMES)} (what the server runs)")
        self._handles: dict[str, UrlHandle] = {}

    def availability(self) -> Availability:
        return Availability(True, version=f"running server at {self.url}")

    def unsupported_reason(self, mode: GcMode) -> str | None:
        if mode.name == "default":
            return None
        return (f"{mode}: gcbench did not start the server at {self.url}, so it cannot set its GC (start it with the "
                f"environment `gcbench env --runtime R --gc-mode {mode}` prints, and measure it as default)")

    def run_info(self) -> dict:
        return {"url": self.url, "runtime": self.runtime,
                "server_events": str(self.events_path) if self.events_path else None,
                "gc_events": ("from " + str(self.events_path)) if self.events_path else
                             "none: latency only (no --server-events)"}

    def prepare(self, log) -> None:
        log(f"gcbench: will drive the running server at {self.url} (Streamable HTTP)")
        if self.events_path is None:
            log("gcbench: no --server-events: latency only (start the server with `gcbench env` for GC events)")

    def tool_arguments(self, scenario: Scenario) -> dict:
        return scenario.work.as_arguments() if self._tool_args is None else self._tool_args

    def start(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> ServerHandle:
        handle = UrlHandle(self, ctx)
        self._handles[str(ctx.events_path)] = handle
        return handle

    def before_measure(self, handle: ServerHandle, mode: GcMode, ctx: CellContext) -> dict:
        assert isinstance(handle, UrlHandle)
        if self.runtime == "go" and self.events_path is not None and handle.pid is not None:
            go_outside.start_sampler(handle.go_cell, handle.pid, go_outside.samples_path(ctx.events_path))
        handle.go_cell.t_measure_ns = time.monotonic_ns()
        return {"server_pid": handle.pid}

    # -- after the measured calls -------------------------------------------------------------------------

    def collect(self, handle: UrlHandle) -> None:
        if self.events_path is None:
            return
        if self.runtime == "python":
            handle.flushed = self._flush_python(handle)
        elif self.runtime == "go" and handle.pid is not None:
            go_outside.read_before_stop(handle.go_cell, handle.pid, self.events_path)
        elif self.runtime == "go":
            handle.go_cell.read_error = f"no process found listening on port {self.address[1]}"
            handle.go_cell.t_stop_ns = time.monotonic_ns()

    def _flush_python(self, handle: UrlHandle) -> dict:
        """SIGUSR1 to every live process that attached the probe; wait for each one's stats record."""
        assert self.events_path is not None
        attached = {}
        for r in _records(self.events_path):
            if r.get("type") == "attach" and isinstance(r.get("pid"), int) and r.get("flush_signal") == "USR1":
                attached[r["pid"]] = r
        t0 = time.monotonic_ns()
        signalled = []
        for pid, rec in attached.items():
            try:
                p = psutil.Process(pid)
                if rec.get("executable") and os.path.realpath(p.exe()) != os.path.realpath(rec["executable"]):
                    continue  # the pid now belongs to another program
                os.kill(pid, signal.SIGUSR1)
                signalled.append(pid)
            except (psutil.Error, OSError):
                continue
        deadline = time.monotonic() + FLUSH_WAIT_S
        done: set[int] = set()
        while signalled and time.monotonic() < deadline:
            done = {r["pid"] for r in _records(self.events_path)
                    if r.get("type") == "flushed" and r.get("pid") in signalled and int(r.get("t_ns", 0)) >= t0}
            if done >= set(signalled):
                break
            time.sleep(FLUSH_POLL_S)
        return {"probe_pids_signalled": signalled, "probe_pids_flushed": sorted(done)}

    def finish_events(self, events: list[dict], stats: dict, ctx: CellContext) -> tuple[list[dict], dict]:
        handle = self._handles.pop(str(ctx.events_path), None)
        if self.events_path is None or handle is None:
            from gcbench.backends.custom import LATENCY_ONLY

            return events, {**stats, "warnings": [*stats.get("warnings", []), LATENCY_ONLY]}
        since = handle.t_start_ns
        if self.runtime == "python":
            recs = _records(self.events_path)
            gc = [r for r in recs if r.get("type") == "gc" and isinstance(r.get("end_ns"), int) and r["end_ns"] >= since]
            info = {**handle.flushed, "events_file": str(self.events_path)}
            if not handle.flushed.get("probe_pids_flushed"):
                info["warning"] = ("no probed process answered the flush signal: was the server started with the "
                                   "environment of `gcbench env --runtime python`?")
            return [*events, *gc], {**stats, "runtime": "python", "server_url": info}
        if self.runtime == "go":
            placed, st = go_outside.go_events([], stats, self.events_path, handle.go_cell)
            return [*events, *(e for e in placed if e["end_ns"] >= since)], st
        log = jvm_log.parse_file(self.events_path, strict_decorators=False)
        recs = [r for r in jvm_log.side_channel_records(log, "java", handle.pid) if r["end_ns"] >= since]
        return [*events, *(r for r in recs if r["type"] == "gc")], {**stats, **jvm_log.summary_stats(log),
                                                                     "jvm_log": str(self.events_path)}


def check_reachable(backend: UrlBackend) -> None:
    """Fail early, with the fix, when nothing listens at the URL."""
    import socket

    host, port, _ = backend.address
    try:
        with socket.create_connection((host, port), timeout=5):
            pass
    except OSError as e:
        raise GcbenchError(f"--server-url: nothing accepts connections at {host}:{port} ({e.strerror or e}); "
                           f"start the server first") from None


__all__ = ["UrlBackend", "check_reachable", "listening_pid"]
