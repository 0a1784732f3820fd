"""A user's own MCP server, started from a command line, with GC events and GC modes applied from outside.

The command is split like a shell would (shlex) and run without a shell. gcbench.detect finds what it really
runs (a console script's shebang, uvx, npx, a Go binary, ...); --runtime overrides that. Nothing in the user's
code changes; everything goes through the environment the runtime itself reads:

- Python: the probe through a sitecustomize on PYTHONPATH; Node: NODE_OPTIONS=--require. Both reach every
  process the server starts.
- Go: GOGC / GOMEMLIMIT for the mode, GODEBUG=gctrace=1 for a line per cycle on stderr, and the runtime's own
  pause buffer read from /proc/<pid>/mem after the measured calls (go.py, go_memstats.py).
- Java: JAVA_TOOL_OPTIONS with the collector, the heap and the unified log of safepoints and GC (java.py).
- Other runtimes: latency only.

With `--transport http` the server's stdout is joined to its stderr and gcbench waits for its URL (http.py).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import psutil

from gcbench.backends.base import (
    Availability,
    CellContext,
    LaunchSpec,
    ServerHandle,
    SubprocessBackend,
    declared_mode_reason,
)
from gcbench.backends.custom import go as go_outside
from gcbench.backends.custom import http as user_http
from gcbench.backends.custom import java as java_outside
from gcbench.backends.go import GO_MODES, go_mode_env, godebug_env
from gcbench.backends.node import NODE_MODE_REASONS
from gcbench.detect import RUNTIMES, Detection, detect_runtime
from gcbench.errors import CellError, GcbenchError
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

PROBES = Path(__file__).resolve().parents[2] / "probes"
PYTHON_AUTOLOAD = PROBES / "autoload"
NODE_PROBE = PROBES / "node_gc.js"
PYTHON_MODES = ("default", "disabled", "freeze", "thresholds")
NODE_MODES = ("default", "semi", "old")
GO_USER_MODES = tuple(m for m in GO_MODES if m != "oob")
LATENCY_ONLY = ("no GC probe on this server: its GC was not observed, so '0 ms GC dead time' means unobserved, "
                "not absent (latency and its outliers are measured)")
FREEZE_FLAG_SUFFIX = ".freeze-flag"  # beside the cell's events file; created at the end of warm-up
ACK_POLL_S = 0.005
OOB_REASON = ("oob runs the collections between calls, and an unmodified server has no hook there (a "
              "collection started from outside could land inside a call)")


def freeze_flag_path(ctx: CellContext) -> Path:
    return Path(str(ctx.events_path) + FREEZE_FLAG_SUFFIX)


def read_probe_records(path: Path) -> tuple[list[dict], list[dict]]:
    """The probes' `attach` and `freeze` records written so far (whole lines only)."""
    attach: list[dict] = []
    freeze: list[dict] = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return attach, freeze
    for line in data.split(b"\n")[:-1]:  # the part after the last newline may still be being written
        if b'"attach"' not in line and b'"freeze"' not in line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("type") == "attach":
            attach.append(rec)
        elif isinstance(rec, dict) and rec.get("type") == "freeze":
            freeze.append(rec)
    return attach, freeze


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class CustomBackend(SubprocessBackend):
    name = "custom"
    runtime = "other"
    description = "your own MCP server (--server-cmd): GC events and modes from outside for Python, Node, Go and Java"

    def __init__(self, command: str | None = None, tool: str = "work", tool_args: dict | None = None,
                 name: str = "custom", runtime: str | None = None, url: str | None = None) -> None:
        self.command = command
        self.url = user_http.parse_url(url, "--url") if url else None
        self._go_cells: dict[str, go_outside.GoCell] = {}
        self.name = name
        self.tool = tool
        self._tool_args = tool_args
        self._log = lambda msg: print(msg, file=sys.stderr, flush=True)
        self.argv: list[str] = []
        self.detected: Detection | None = None
        self.runtime_source = "detected"
        if runtime is not None and runtime not in RUNTIMES:
            raise GcbenchError(f"--runtime: {runtime!r} is not one of {', '.join(RUNTIMES)}")
        if command is not None:
            try:
                self.argv = shlex.split(command)
            except ValueError as e:
                raise GcbenchError(f"--server-cmd: cannot split {command!r}: {e}") from None
            if not self.argv:
                raise GcbenchError("--server-cmd is empty")
            self.detected = detect_runtime(self.argv)
            self.runtime = self.detected.runtime
        if runtime is not None:
            self.runtime = runtime
            self.runtime_source = "--runtime"

    # -- what the probe can do for this command ------------------------------------------------------------

    def probe_attach(self) -> tuple[str | None, str]:
        """(how the probe is attached, or None; why not)."""
        warning = self.detected.warning if self.detected and self.runtime_source == "detected" else None
        if self.runtime == "python":
            if warning:
                return None, warning
            return (f"sitecustomize on PYTHONPATH ({PYTHON_AUTOLOAD} first): every Python process of the server "
                    "loads it, subprocesses included"), ""
        if self.runtime == "node":
            return (f"NODE_OPTIONS=--require {NODE_PROBE}: every Node process of the server preloads it, "
                    "worker threads included"), ""
        if self.runtime == "go":
            return ("GODEBUG=gctrace=1 (the runtime prints every cycle on stderr) and the runtime's own pause "
                    "buffer, read from /proc/<pid>/mem once the measured calls are over"), ""
        if self.runtime == "java":
            return ("JAVA_TOOL_OPTIONS=-Xlog:safepoint,gc,gc+phases (the JVM's own unified log, timenanos on "
                    "CLOCK_MONOTONIC), read after the JVM exits"), ""
        return None, ("no GC probe for this command's runtime: latency only (if it runs Python, Node, Go or a "
                      "JVM, say so with --runtime)")

    def availability(self) -> Availability:
        if not self.argv:
            return Availability(False, reason="needs --server-cmd 'COMMAND ARGS' (or [server] command in the scenario)")
        exe = self.argv[0]
        found = _which(exe)
        if not found:
            return Availability(False, reason=f"server command not found: {exe!r}")
        return Availability(True, version=f"{self.runtime} server: {self.command}")

    def unsupported_reason(self, mode: GcMode) -> str | None:
        attach, why_not = self.probe_attach()
        if mode.name == "default":
            return None
        if self.runtime == "python":
            if attach is None:
                return f"{mode} cannot be applied: {why_not}"
            if mode.name == "oob":
                return OOB_REASON
            return declared_mode_reason(mode, PYTHON_MODES, "CPython", "a Python server", {})
        if self.runtime == "node":
            if mode.name in NODE_MODES:
                return None
            if mode.name == "oob":
                return OOB_REASON
            return declared_mode_reason(mode, NODE_MODES, "Node", "a Node server", NODE_MODE_REASONS)
        if self.runtime == "go":
            if mode.name == "oob":
                return OOB_REASON
            return declared_mode_reason(mode, GO_USER_MODES, "Go", "a Go server", {})
        if self.runtime == "java":
            return java_outside.mode_reason(self.detected.interpreter if self.detected else None, mode)
        return f"{mode} cannot be applied: gcbench has no GC switch for a {self.runtime} server (only default runs)"

    def runtime_metadata(self) -> dict:
        attach, why_not = self.probe_attach()
        return {"command": self.command, "argv": self.argv, "runtime": self.runtime,
                "runtime_source": self.runtime_source,
                "url": f"http://{self.url[0]}:{self.url[1]}{self.url[2]}" if self.url else None,
                "detected": self.detected.to_dict() if self.detected else None,
                "probe": attach, "probe_missing_reason": why_not or None}

    def prepare(self, log) -> None:
        self._log = log
        log(f"gcbench: will run your server command (no shell): {self.argv}")
        d = self.detected
        if d is not None:
            log(f"gcbench: detected runtime {d.runtime}"
                + (f" ({d.interpreter})" if d.interpreter else "") + (f", {d.version}" if d.version else "")
                + f": {d.how}")
        if self.runtime_source == "--runtime":
            log(f"gcbench: runtime {self.runtime} (from --runtime)")
        attach, why_not = self.probe_attach()
        log(f"gcbench: GC probe: {attach}" if attach else f"gcbench: GC probe not attached: {why_not}")

    def tool_arguments(self, scenario: Scenario) -> dict:
        return scenario.work.as_arguments() if self._tool_args is None else self._tool_args

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        env: dict[str, str] = {}
        attach, _ = self.probe_attach()
        if self.runtime == "python" and attach:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PYTHON_AUTOLOAD), os.environ.get("PYTHONPATH")) if p)
            if mode.name == "freeze":
                flag = freeze_flag_path(ctx)
                flag.unlink(missing_ok=True)
                env["GCBENCH_FREEZE_FLAG"] = str(flag)
        elif self.runtime == "node":
            # NODE_OPTIONS takes these V8 flags (Node 20, measured: semi:64 + old:300 gave heap_size_limit
            # 492 MiB = 300 + 3 x 64, the young generation being three semi-spaces).
            probe = str(NODE_PROBE)
            opts = [os.environ.get("NODE_OPTIONS", ""), f'--require "{probe}"' if " " in probe else f"--require={probe}"]
            if mode.name == "semi":
                opts.append(f"--max-semi-space-size={mode.arg}")
            elif mode.name == "old":
                opts.append(f"--max-old-space-size={mode.arg}")
            env["NODE_OPTIONS"] = " ".join(o for o in opts if o)
        after_exit = before_stop = None
        if self.runtime == "go":
            env.update(go_mode_env(mode))
            env["GODEBUG"] = godebug_env()
            cell = self._go_cells[str(ctx.events_path)] = go_outside.GoCell(t_launch_ns=time.monotonic_ns())
            stderr_path = ctx.stderr_path

            def before_stop(pid: int) -> None:
                go_outside.read_before_stop(cell, pid, stderr_path)

            def after_exit() -> None:
                go_outside.kill_sampler(cell)  # a failed cell's (a healthy one's was stopped before)
        elif self.runtime == "java":
            pattern = java_outside.log_pattern(ctx.events_path)
            for old in java_outside.logs_of(pattern):
                old.unlink()  # the parser must see this cell's JVMs only
            env["JAVA_TOOL_OPTIONS"] = java_outside.tool_options(mode, scenario, pattern,
                                                                 java_outside.own_tool_options())
            events_path = ctx.events_path

            def after_exit() -> None:
                java_outside.after_exit(mode, pattern, events_path)
        argv = list(self.argv)
        http_endpoint = None
        if ctx.transport == "http":
            argv = [*user_http.STDOUT_TO_STDERR, *argv]
            url, stderr_path, timeout_s = self.url, ctx.stderr_path, ctx.timeout_s

            def http_endpoint(server) -> tuple[str, int, str]:
                return user_http.wait_for_endpoint(server.proc, stderr_path, url, timeout_s, server.describe_exit)

            stop_first = before_stop

            def before_stop(pid: int) -> None:
                # an HTTP server does not stop at the end of its stdin: SIGTERM is how to ask it
                if stop_first is not None:
                    stop_first(pid)
                try:
                    os.killpg(pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        return LaunchSpec(argv, env, after_exit=after_exit, before_stop=before_stop, http_endpoint=http_endpoint)

    def finish_events(self, events: list[dict], stats: dict, ctx: CellContext) -> tuple[list[dict], dict]:
        if self.probe_attach()[0] is None:
            return events, {**stats, "warnings": [*stats.get("warnings", []), LATENCY_ONLY]}
        if self.runtime != "go":
            return events, stats
        return go_outside.go_events(events, stats, ctx.stderr_path, self._go_cells.pop(str(ctx.events_path), None))

    # -- between warm-up and measurement ---------------------------------------------------------------------

    def before_measure(self, handle: ServerHandle, mode: GcMode, ctx: CellContext) -> dict:
        if self.runtime == "go" and str(ctx.events_path) in self._go_cells:
            cell = self._go_cells[str(ctx.events_path)]
            if handle.pid is not None:
                go_outside.start_sampler(cell, handle.pid, go_outside.samples_path(ctx.events_path))
            cell.t_measure_ns = time.monotonic_ns()
            return {"go_sampler": cell.sampler is not None}
        if self.runtime != "python" or self.probe_attach()[0] is None:
            return {}
        attach, _ = read_probe_records(ctx.events_path)
        info = {"probe_pids": sorted({int(r["pid"]) for r in attach if isinstance(r.get("pid"), int)}),
                "probe_executables": sorted({str(r.get("executable")) for r in attach})}
        if not attach:
            why = ("no process of your server loaded the Python probe (does the command run CPython? one that "
                   "ignores PYTHONPATH, or a wrapper that clears it, cannot get it)")
            if mode.name != "default":
                raise CellError(f"gc mode {mode} was not applied: {why}")
            self._log(f"gcbench: warning: {why}; this cell records latency only")
            return {"probe_attached": False}
        info["probe_attached"] = True
        if mode.name == "freeze":
            info.update(self._freeze(handle, ctx))
        return info

    def _freeze(self, handle: ServerHandle, ctx: CellContext) -> dict:
        """Create the flag file, wait until every live probed process has frozen."""
        flag = freeze_flag_path(ctx)
        t0 = time.monotonic_ns()
        tmp = flag.with_name(flag.name + ".tmp")
        tmp.write_text(f"{t0}\n")
        os.replace(tmp, flag)  # appears whole
        deadline = time.monotonic() + ctx.timeout_s
        while True:
            attach, frozen = read_probe_records(ctx.events_path)
            done = {int(r["pid"]): r for r in frozen}
            waiting = [int(r["pid"]) for r in attach if int(r["pid"]) not in done and _alive(int(r["pid"]))]
            if done and not waiting:
                break
            if not waiting and not done:
                raise CellError("freeze was not applied: every process that loaded the probe has exited")
            if getattr(handle, "proc", None) is not None and handle.proc.poll() is not None:
                raise CellError(f"the server exited while gcbench waited for it to freeze (exit code "
                                f"{handle.proc.returncode})")
            if time.monotonic() > deadline:
                raise CellError(f"freeze was not applied within {ctx.timeout_s:g} s by process(es) {waiting}")
            time.sleep(ACK_POLL_S)
        return {"freeze_wait_ms": round((time.monotonic_ns() - t0) / 1e6, 3),
                "frozen": [{"pid": p, "frozen_objects": r.get("frozen_objects"), "collected": r.get("collected"),
                            "collect_ms": round((r["end_ns"] - r["start_ns"]) / 1e6, 3)}
                           for p, r in sorted(done.items())]}


def _which(exe: str) -> str | None:
    import shutil

    if os.sep in exe:
        return exe if os.access(exe, os.X_OK) else None
    return shutil.which(exe)
