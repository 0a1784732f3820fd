"""The Python server's code called inside the harness process: no transport, no subprocess.

For notebooks and fast tests. The GC mode applies to the harness process itself for the duration of the
cell (and is restored after), so the harness's own allocations are part of what is measured: results are
labelled in-process and are not comparable with subprocess backends.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections import deque

from gcbench.backends.base import Availability, Backend, CellContext, ServerHandle
from gcbench.backends.python import PYTHON_MODES
from gcbench.backends.python import server as pyserver
from gcbench.gcmode import GcMode
from gcbench.mcp import Session
from gcbench.scenario import Scenario


class InprocTransport:
    kind = "inproc"

    def __init__(self, server: pyserver.Server) -> None:
        self.server = server
        self._ready: deque = deque()
        self._clock = time.monotonic_ns
        self._oob = server.gc_mode == "oob"

    def send(self, data: bytes, agent: int = 0) -> None:
        reply = self.server.handle(json.loads(data))
        if reply is not None:
            self._ready.append((self._clock(), reply))
        if self._oob:
            self.server.collect_out_of_band()

    def connect(self, agents: int) -> None:
        """Nothing to open: calls are function calls."""

    def poll(self, timeout_s: float | None) -> list[tuple[int, dict]]:
        if not self._ready:
            if timeout_s:
                time.sleep(timeout_s)
            return []
        out = list(self._ready)
        self._ready.clear()
        return out

    def close(self) -> None:
        pass


class InprocHandle(ServerHandle):
    def __init__(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> None:
        self._saved = (gc.isenabled(), gc.get_threshold())
        self.server = pyserver.Server(str(mode), scenario.server.heap_objects, str(ctx.events_path),
                                      heap_shape=scenario.server.heap_shape)
        self.transport = InprocTransport(self.server)
        self.session = Session(self.transport, ctx.timeout_s)
        self.pid = None

    def stop(self, grace_s: float | None = None) -> int | None:
        self.server.probe.flush()
        self.server.probe.uninstall()
        enabled, thresholds = self._saved
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        (gc.enable if enabled else gc.disable)()
        self.server.state = None
        return 0


class InprocBackend(Backend):
    name = "inproc"
    runtime = "python"
    description = "the Python server's tool called inside the harness process (no transport; labelled in-process)"
    in_process = True
    in_default_run = False
    gc_modes = PYTHON_MODES
    gc_setting = "CPython"
    gc_takes = "Python"

    def availability(self) -> Availability:
        return Availability(True, version=f"{sys.implementation.name} {sys.version.split()[0]} (in-process)")

    def start(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> ServerHandle:
        return InprocHandle(mode, scenario, ctx)
