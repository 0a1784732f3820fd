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

import os
import subprocess
from pathlib import Path

from gcbench import procs
from gcbench.backends.base import Backend, SubprocessBackend
from gcbench.backends.metered import DEFAULT_FLOOR_US, Metered, meter_env
from gcbench.backends.process import ManagedProcess

# Metered and meter_env live with the backends (backends/metered.py); named here too, for callers of this module
__all__ = ["DEFAULT_FLOOR_US", "DEFAULT_HICCUP_US", "METER_SUFFIX", "ControlProcess", "Metered", "control_binary",
           "meter_env", "meter_hiccup_us", "rep_order", "with_meter"]

DEFAULT_HICCUP_US = 1000  # 1 ms, jHiccup's default resolution
METER_SUFFIX = "+meter"
CONTROL_STOP_GRACE_S = 5.0
# server-environment variables the control process must not inherit from the harness
_SERVER_VARS = ("GCBENCH_STALLS", "GCBENCH_STALL_MODE", "GCBENCH_HEAP_OBJECTS", "GCBENCH_GC_MODE")


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
            if isinstance(b, Metered) and b.base_backend() is a:
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
    """The idle meter-only process beside one cell (a ManagedProcess: its own process group, dies with
    gcbench, never left behind)."""

    def __init__(self, binary: Path, events_path: Path, stderr_path: Path, hiccup_us: int,
                 floor_us: int = DEFAULT_FLOOR_US) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _SERVER_VARS}
        env.update(meter_env(hiccup_us, floor_us))
        env.update({"GCBENCH_CONTROL": "1", "GCBENCH_EVENTS": str(events_path), "GCBENCH_TRANSPORT": "stdio"})
        self.events_path = events_path
        with procs.held():  # a process that exists is registered before a signal can act
            self._stderr = open(stderr_path, "wb")  # noqa: SIM115  (closed in stop)
            try:
                # not pinned: it must not compete with the server
                self.process = ManagedProcess([str(binary)], env, "hiccup control process",
                                              stdout=subprocess.DEVNULL, stderr=self._stderr)
            except OSError:
                self._stderr.close()
                raise
            self.proc = self.process.proc
            self.pid = self.process.pid

    def stop(self, grace_s: float = CONTROL_STOP_GRACE_S) -> int | None:
        """EOF on stdin (it flushes and exits), then SIGTERM, then SIGKILL to its process group."""
        with procs.held():
            try:
                return self.process.terminate(grace_s)
            finally:
                self.process.release()
                self._stderr.close()
