"""A user's own MCP stdio server, started from a command line, with the GC probe attached when it can be.

The command is split like a shell would (shlex) and run without a shell. gcbench.detect finds what it really
runs (a console script's shebang, uvx, npx, a Go binary, ...); --runtime overrides that. Python servers get
the probe through a sitecustomize on PYTHONPATH, Node servers through NODE_OPTIONS=--require; both reach
every process the server starts, and neither changes the user's code. Go, Java and other servers are measured
without GC events (latency only) for now.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import psutil

from gcbench.backends.base import Availability, CellContext, LaunchSpec, ServerHandle, SubprocessBackend
from gcbench.backends.node import node_mode_reason
from gcbench.detect import RUNTIMES, Detection, detect_runtime
from gcbench.errors import CellError, GcbenchError
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

PROBES = Path(__file__).resolve().parents[2] / "probes"
PYTHON_AUTOLOAD = PROBES / "autoload"
NODE_PROBE = PROBES / "node_gc.js"
PYTHON_MODES = {"default", "disabled", "thresholds", "freeze"}
NODE_MODES = {"default", "semi", "old"}
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
    description = "your own MCP stdio server (--server-cmd), GC probe auto-attached for Python and Node"

    def __init__(self, command: str | None = None, tool: str = "work", tool_args: dict | None = None,
                 name: str = "custom", runtime: str | None = None) -> None:
        self.command = command
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
        if self.runtime in ("go", "java"):
            return None, (f"no GC probe for a {self.runtime} server started with --server-cmd yet: latency only")
        return None, ("no GC probe for this command's runtime: latency only (if it runs Python or Node, say so "
                      "with --runtime)")

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
            if mode.name not in PYTHON_MODES:
                return f"{mode} is not a CPython GC setting (a Python server takes: {', '.join(sorted(PYTHON_MODES))})"
            return None
        if self.runtime == "node":
            if mode.name in NODE_MODES:
                return None
            if mode.name == "oob":
                return OOB_REASON
            return node_mode_reason(mode) or f"{mode} is not a Node setting (Node takes: semi:MiB, old:MiB)"
        return (f"GC modes for a {self.runtime} server started with --server-cmd are not implemented yet "
                f"(only default runs)")

    def runtime_metadata(self) -> dict:
        attach, why_not = self.probe_attach()
        return {"command": self.command, "argv": self.argv, "runtime": self.runtime,
                "runtime_source": self.runtime_source,
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
        return LaunchSpec(list(self.argv), env)

    # -- between warm-up and measurement ---------------------------------------------------------------------

    def before_measure(self, handle: ServerHandle, mode: GcMode, ctx: CellContext) -> dict:
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
