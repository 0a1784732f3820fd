"""The hiccup meter on the harness side: which servers run it, and the idle control process beside each cell.

Every built-in server runs the meter (PROTOCOL.md, "Hiccup meter") when GCBENCH_HICCUP_US is set. A backend
is metered by wrapping it in `Metered`, which adds the meter's settings to the server's environment; with
`--meter-overhead` each backend runs twice in the same run, as itself (meter off) and as `<name>+meter`, so
the meter's own cost can be read off the two rows.

The control process is the Rust server in its meter-only mode (GCBENCH_CONTROL=1): no MCP, no GC, no work,
only the meter, started before a cell's server and stopped after it. Its hiccups are the machine's own noise
during that cell (scheduler, other processes), stored with source "control".
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
from pathlib import Path

from gcbench import procs
from gcbench.backends.base import Availability, Backend, CellContext, LaunchSpec, SubprocessBackend
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

DEFAULT_HICCUP_US = 1000  # 1 ms, jHiccup's default resolution
DEFAULT_FLOOR_US = 200  # above the ~60-80 us a sleep overshoots by on an idle Linux machine
METER_SUFFIX = "+meter"
CONTROL_STOP_GRACE_S = 5.0
# server-environment variables the control process must not inherit from the harness
_SERVER_VARS = ("GCBENCH_STALLS", "GCBENCH_STALL_MODE", "GCBENCH_HEAP_OBJECTS", "GCBENCH_GC_MODE")


def meter_env(hiccup_us: int, floor_us: int = DEFAULT_FLOOR_US) -> dict[str, str]:
    return {"GCBENCH_HICCUP_US": str(int(hiccup_us)), "GCBENCH_HICCUP_FLOOR_US": str(int(floor_us))}


class Metered(SubprocessBackend):
    """A subprocess backend whose server runs the hiccup meter; everything else is the wrapped backend's."""

    def __init__(self, inner: SubprocessBackend, hiccup_us: int, floor_us: int = DEFAULT_FLOOR_US,
                 suffix: str = "") -> None:
        self.inner = inner
        self.hiccup_us = hiccup_us
        self.floor_us = floor_us
        self.name = inner.name + suffix
        self.runtime = inner.runtime
        self.description = inner.description + (" (with the hiccup meter)" if suffix else "")
        self.in_process = inner.in_process
        self.in_default_run = inner.in_default_run
        self.tool = inner.tool

    def __getattr__(self, name: str):  # anything else a caller may ask the wrapped backend
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def availability(self) -> Availability:
        return self.inner.availability()

    def unsupported_reason(self, mode: GcMode) -> str | None:
        return self.inner.unsupported_reason(mode)

    def prepare(self, log) -> None:
        self.inner.prepare(log)

    def tool_arguments(self, scenario: Scenario) -> dict:
        return self.inner.tool_arguments(scenario)

    def runtime_metadata(self) -> dict:
        return self.inner.runtime_metadata()

    def before_measure(self, handle, mode: GcMode, ctx: CellContext) -> dict:
        return self.inner.before_measure(handle, mode, ctx)

    def finish_events(self, events: list[dict], stats: dict, ctx: CellContext) -> tuple[list[dict], dict]:
        return self.inner.finish_events(events, stats, ctx)

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        spec = self.inner.launch_spec(mode, scenario, ctx)
        return dataclasses.replace(spec, env={**spec.env, **meter_env(self.hiccup_us, self.floor_us)})


def meter_hiccup_us(backend: Backend) -> int:
    """The meter interval a backend's server runs with (0: no meter)."""
    return backend.hiccup_us if isinstance(backend, Metered) else 0


def with_meter(backends: list[Backend], hiccup_us: int, floor_us: int = DEFAULT_FLOOR_US,
               overhead: bool = False) -> list[Backend]:
    """The run's backends with the meter on (hiccup_us > 0). With `overhead`, each metered backend also stays
    in the list without the meter, right before its `+meter` twin. In-process backends are never metered."""
    if hiccup_us <= 0:
        return list(backends)
    out: list[Backend] = []
    for b in backends:
        if not isinstance(b, SubprocessBackend) or b.in_process:
            out.append(b)
        elif overhead:
            out += [b, Metered(b, hiccup_us, floor_us, METER_SUFFIX)]
        else:
            out.append(Metered(b, hiccup_us, floor_us))
    return out


def rep_order(backends: list[Backend], rep: int) -> list[Backend]:
    """The backends in the order a repetition measures them: each `X`, `X+meter` pair swaps on odd
    repetitions, so that neither side of the overhead comparison always runs first."""
    out = list(backends)
    if rep % 2:
        for i in range(len(out) - 1):
            a, b = out[i], out[i + 1]
            if isinstance(b, Metered) and b.inner is a:
                out[i], out[i + 1] = b, a
    return out


def control_binary(log) -> tuple[Path | None, str]:
    """(the Rust server binary, "") to run as the control process, or (None, why not)."""
    from gcbench.backends.rust import build_server, rustc_version
    from gcbench.errors import GcbenchError

    version, reason = rustc_version()
    if not version:
        return None, reason
    try:
        return build_server(log), ""
    except GcbenchError as e:
        return None, str(e)


class ControlProcess:
    """The idle meter-only process beside one cell, in its own process group (never left behind)."""

    def __init__(self, binary: Path, events_path: Path, stderr_path: Path, hiccup_us: int,
                 floor_us: int = DEFAULT_FLOOR_US) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _SERVER_VARS}
        env.update(meter_env(hiccup_us, floor_us))
        env.update({"GCBENCH_CONTROL": "1", "GCBENCH_EVENTS": str(events_path), "GCBENCH_TRANSPORT": "stdio"})
        self.events_path = events_path
        with procs.held():  # a process that exists is registered before a signal can act
            self._stderr = open(stderr_path, "wb")  # noqa: SIM115  (closed in stop)
            try:
                self.proc = subprocess.Popen(
                    [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr, env=env,
                    start_new_session=True, close_fds=True,  # not pinned: it must not compete with the server
                )
            except OSError:
                self._stderr.close()
                raise
            self.pid = self.proc.pid
            procs.register_group(self.pid, "hiccup control process")

    def stop(self, grace_s: float = CONTROL_STOP_GRACE_S) -> int | None:
        """EOF on stdin (it flushes and exits), then SIGTERM, then SIGKILL to its process group."""
        proc = self.proc
        with procs.held():
            try:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
                try:
                    proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGTERM)
                    try:
                        proc.wait(timeout=grace_s)
                    except subprocess.TimeoutExpired:
                        pass
                self._signal_group(signal.SIGKILL)
                if proc.poll() is None:
                    proc.wait()
                return proc.returncode
            finally:
                procs.unregister_group(self.pid)
                self._stderr.close()

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
