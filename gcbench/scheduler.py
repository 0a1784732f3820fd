"""The run's schedule: prepare the run, measure each cell into a CellOutcome, finish the run folder.

`Scheduler.run()` is what `runner.execute` does: `prepare()` records the machine, opens the run folder and
prepares every backend (and the hiccup control process); `run_cell()` measures one (repetition, backend, gc
mode) and returns its CellOutcome (skipped, failed, ok, or ok with call errors) without writing it;
`record()` is the one place an outcome is saved, sorted into the failed / call-error lists, logged with the
time left (gcbench/progress.py) and shown to `on_cell`; `finish()` marks run.json. A cell that fails (server
crash, hang, protocol violation, memory cap, a backend that cannot be prepared) fails alone; on Interrupted the
folder is marked 'interrupted' and the exception goes on to the caller.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gcbench import procs
from gcbench.backends.base import Backend
from gcbench.config import RunConfig
from gcbench.errors import CellError, GcbenchError
from gcbench.gcmode import GcMode
from gcbench.procs import Interrupted
from gcbench.progress import Progress
from gcbench.store import RUN_JSON, RunWriter, new_run_id

SKIPPED, FAILED, OK, CALL_ERRORS = "skipped", "failed", "ok", "call-errors"


@dataclass
class RunResult:
    path: Path
    meta: dict
    failed: list[dict] = field(default_factory=list)
    call_errors: list[dict] = field(default_factory=list)  # cells measured whole, some calls answered an error


@dataclass
class CellOutcome:
    """One cell as it ended: `cell` is its run.json entry; calls and events only when it was measured."""
    label: str  # "[i/n] backend gc=mode rep=r", the start of its log line
    status: str  # SKIPPED, FAILED, OK or CALL_ERRORS
    cell: dict
    calls: pd.DataFrame | None = None
    events: pd.DataFrame | None = None
    seconds: float = 0.0  # from its server's start to its stop


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_environment(config: RunConfig) -> dict:
    """The machine as run.json records it, the backends' versions, pinning and the wake-up floor."""
    from gcbench.metadata import collect_environment
    from gcbench.wakeup import measure_floor

    env = collect_environment()
    env["backend_versions"] = {b.name: b.availability().version for b in config.backends}
    env["pinning"] = pin_cores(config.pin)
    env["wakeup_floor"] = measure_floor(env["pinning"])  # the machine's own round trip (gcbench/wakeup.py)
    return env


def mode_order(modes: list, rep: int) -> list:
    """The GC modes in the order repetition `rep` measures them: rotated by one each repetition, so that no
    mode always runs first (or right after start-up, or last) and the machine's drift over a run falls on
    every mode alike, not on the one compared against (default is listed first)."""
    k = rep % len(modes) if modes else 0
    return list(modes[k:]) + list(modes[:k])


class Scheduler:
    def __init__(self, config: RunConfig, log: Callable[[str], None] = _log,
                 on_cell: Callable[[dict], None] = lambda cell: None, progress: Progress | None = None, *,
                 measure: Callable | None = None, environment: Callable[[RunConfig], dict] = run_environment,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from gcbench.hiccup import rep_order, with_meter
        from gcbench.runner import measure_cell

        self.config, self.log, self.on_cell, self.clock = config, log, on_cell, clock
        self.measure = measure or measure_cell  # (backend, mode, rep, scenario, config, writer, control)
        self.environment = environment
        self.backends = with_meter(config.backends, config.hiccup_us, config.hiccup_floor_us, config.meter_overhead)
        self.cells = [(rep, b, m) for rep in range(config.reps) for b in rep_order(self.backends, rep)
                      for m in mode_order(config.modes_for(b.base_backend()), rep)]
        self.own_progress = progress is None  # a sweep passes its own: one estimate over all its cells
        self.progress = Progress(len(self.cells), clock=clock) if progress is None else progress
        self.writer: RunWriter | None = None
        self.control: tuple[Path | None, str] = (None, "")
        self.unprepared: dict[str, str] = {}
        self.failed: list[dict] = []
        self.call_errors: list[dict] = []

    def run(self) -> RunResult:
        procs.check()  # a signal before anything started: no run folder
        self.open()
        try:
            if self.own_progress:
                self.progress.__enter__()
            try:
                self.prepare()
                for i, (rep, backend, mode) in enumerate(self.cells, 1):
                    procs.check()  # a signal held while the last cell was stopped and saved
                    self.record(self.run_cell(i, rep, backend, mode))
            finally:
                if self.own_progress:
                    self.progress.__exit__(None, None, None)
        except (Interrupted, KeyboardInterrupt):
            self.abandon("interrupted run", "interrupted")
            raise
        except BaseException as e:
            self.abandon("aborted run", "aborted", error=f"{e.__class__.__name__}: {e}")
            raise
        return self.finish()

    def open(self) -> None:
        """The run folder, with run.json saying 'running': the scenario, the config and the machine."""
        config, scenario = self.config, self.config.scenario
        self.writer = RunWriter(config.out_dir, config.run_id or new_run_id(scenario.name), {
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": sys.argv,
            "scenario": scenario.to_dict(),
            "scenario_source": scenario.source,
            **({"trace_source": scenario.trace_source} if scenario.trace is not None else {}),
            "config": config.to_dict(),
            "environment": self.environment(config),
        })
        procs.set_run_json(self.writer.path / RUN_JSON)
        self.log(f"gcbench: run folder {self.writer.path}")

    def prepare(self) -> None:
        """The hiccup control process and every backend (a build that fails fails that backend's cells)."""
        from gcbench.hiccup import control_binary

        if self.config.hiccup_us > 0:
            with procs.raising():
                self.control = control_binary(self.log)
            if self.control[0] is None:
                self.log(f"gcbench: no hiccup control process: {self.control[1]}")
        for backend in self.backends:
            procs.check()
            try:
                with procs.raising():
                    backend.prepare(self.log)
            except (CellError, GcbenchError) as e:
                self.unprepared[backend.name] = f"backend not ready: {e}"
                self.log(f"gcbench: {backend.name}: {e}; its cells will be failed")
            _end_strays(self.log, backend.name)
        # per backend, once prepared: e.g. a Python backend's exact interpreter, its build and GC thresholds
        self.writer.meta["environment"]["backend_runtimes"] = {
            b.name: b.runtime_metadata() for b in self.backends if b.name not in self.unprepared}

    def run_cell(self, i: int, rep: int, backend: Backend, mode: GcMode) -> CellOutcome:
        """Measure one cell; any failure of it is its outcome, never an exception (but Interrupted)."""
        label = f"[{i}/{len(self.cells)}] {backend.name} gc={mode} rep={rep}"
        reason = backend.unsupported_reason(mode)
        if reason:
            return CellOutcome(label, SKIPPED, cell_meta(backend, mode, rep, status="skipped", reason=reason))
        t0 = self.clock()
        self.progress.start_cell()
        calls = events = None
        try:
            if backend.name in self.unprepared:
                raise CellError(self.unprepared[backend.name])
            cell, calls, events = self.measure(backend, mode, rep, self.config.scenario, self.config, self.writer,
                                               self.control)
        except (CellError, GcbenchError) as e:
            cell = cell_meta(backend, mode, rep, status="failed", reason=str(e))
        except Exception as e:  # noqa: BLE001  (a fault no check foresaw fails this cell, not the run)
            cell = cell_meta(backend, mode, rep, status="failed", reason=f"internal error: {e.__class__.__name__}: {e}")
        seconds = self.clock() - t0
        strays = _end_strays(self.log, label)
        if strays:
            cell["stray_processes_killed"] = strays
        if cell["status"] == "failed":
            return CellOutcome(label, FAILED, cell, seconds=seconds)
        errs = int((~calls["ok"]).sum())
        if errs:
            cell["call_errors"] = errs
            cell["first_call_error"] = str(calls.loc[~calls["ok"], "error"].iloc[0])
        return CellOutcome(label, CALL_ERRORS if errs else OK, cell, calls, events, seconds)

    def record(self, outcome: CellOutcome) -> None:
        """Save the outcome, sort it, count it in the time left, log its line, show it to on_cell."""
        cell = outcome.cell
        self.progress.end_cell(measured=outcome.status != SKIPPED)
        if outcome.status == SKIPPED:
            self.writer.add_cell(cell)
            self.log(f"{outcome.label}: skipped: {cell['reason']}")
            self.on_cell(self.writer.meta["cells"][-1])
            return
        if outcome.status == FAILED:
            self.failed.append(cell)
            self.writer.add_cell(cell)
            self.log(f"{outcome.label}: FAILED: {cell['reason']}{self.progress.left_text()}")
        else:
            if outcome.status == CALL_ERRORS:
                self.call_errors.append(cell)
            self.writer.add_cell(cell, outcome.calls, outcome.events)
            self.log(f"{outcome.label}: {cell_line(outcome)}{self.progress.left_text()}")
        self.on_cell(cell)

    def finish(self) -> RunResult:
        status = "complete" if not (self.failed or self.call_errors) else "complete-with-failures"
        self.writer.finish(status, load_average_after=list(os.getloadavg()))
        procs.set_run_json(None)
        return RunResult(self.writer.path, self.writer.meta, self.failed, self.call_errors)

    def abandon(self, what: str, status: str, **kw) -> None:
        """An interrupted or aborted run: end what is left running, mark run.json (quietly: the error that
        stopped the run is the one raised)."""
        _end_strays(self.log, what)
        failure = self.writer.finish_quietly(status, load_average_after=list(os.getloadavg()), **kw)
        if failure:  # e.g. a full disk
            self.log(f"gcbench: run.json not marked (it still says 'running'; the cells it lists are intact): "
                     f"{failure}")
        procs.set_run_json(None)


def cell_line(outcome: CellOutcome) -> str:
    """A measured cell's log line after its label: calls, time, GC events, hiccups, call errors, warnings."""
    cell, calls, events = outcome.cell, outcome.calls, outcome.events
    return (
        f"{len(calls)} calls in {outcome.seconds:.1f} s, "
        f"{int(((events['source'] == 'server') & (events['type'] != 'hiccup')).sum()) if len(events) else 0}"
        " GC events"
        + (f", {int(((events['type'] == 'hiccup') & (events['source'] == 'server')).sum())} hiccups"
           if cell.get("hiccup_us") else "")
        + (f", {int((events['source'] == 'control').sum())} control hiccups" if cell.get("control") else "")
        + (f", {cell['call_errors']} call errors (first: {cell['first_call_error']})" if cell.get("call_errors")
           else "")
        + (f", {cell['side_channel_bad_lines']} malformed side-channel lines dropped"
           if cell.get("side_channel_bad_lines") else "")
        + "".join(f"; WARNING: {w}" for w in cell.get("warnings", []))
    )


def pin_cores(pin: bool) -> dict:
    """--pin: the harness keeps the first allowed core, servers get the rest (when there are at least two)."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin:
        return {"pinned": False, "harness_cores": cores, "server_cores": cores}
    if len(cores) < 2:
        return {"pinned": False, "reason": f"only {len(cores)} core allowed", "harness_cores": cores,
                "server_cores": cores}
    os.sched_setaffinity(0, cores[:1])
    return {"pinned": True, "harness_cores": cores[:1], "server_cores": cores[1:]}


def cell_meta(backend: Backend, mode: GcMode, rep: int, **kw) -> dict:
    return {"backend": backend.name, "runtime": backend.runtime, "gc_mode": str(mode), "rep": rep,
            "in_process": backend.in_process, **kw}


def _end_strays(log: Callable[[str], None], label: str) -> int:
    """Kill what a server or build left running after it was stopped (only under the CLI); say so."""
    n = procs.kill_strays()
    if n:
        log(f"{label}: ended {n} process(es) a server or helper left running")
    return n
