"""The scheduler (gcbench/scheduler.py) on fake backends, a fake cell runner and a fake clock: how outcomes are
sorted and saved, and the time left on every cell line (no server is started)."""

import json
import random

import pandas as pd
import pytest

from gcbench.backends.base import Availability, Backend
from gcbench.config import RunConfig
from gcbench.errors import CellError
from gcbench.gcmode import GcMode
from gcbench.procs import Interrupted
from gcbench.progress import Progress
from gcbench.scenario import Scenario
from gcbench.scheduler import CALL_ERRORS, FAILED, OK, SKIPPED, Scheduler

CELL_S = 10.0


class Clock:
    def __init__(self):
        self.t = random.uniform(1e3, 1e6)  # never starts at zero

    def __call__(self):
        return self.t


class Fake(Backend):
    def __init__(self, name, skips=(), broken=False):
        self.name, self.runtime, self.skips, self.broken = name, "fake", skips, broken

    def availability(self):
        return Availability(True, version="fake 1")

    def unsupported_reason(self, mode):
        return f"{self.name} cannot run {mode}" if str(mode) in self.skips else None

    def prepare(self, log):
        if self.broken:
            raise CellError("the build failed")

    def start(self, mode, scenario, ctx):  # the fake cell runner never starts a server
        raise AssertionError("no server in these tests")


def frames(backend, mode, rep, errors=0):
    calls = pd.DataFrame([{"backend": backend, "gc_mode": mode, "rep": rep, "agent": 0, "chain": 0, "call": i,
                           "tool": "work", "t_send_ns": 10 * i, "t_recv_ns": 10 * i + 5, "t_intended_ns": 0,
                           "latency_ns": 5, "ok": i >= errors, "error": "boom" if i < errors else None,
                           "gc_overlap_ns": 0} for i in range(4)])
    events = pd.DataFrame([{"backend": backend, "gc_mode": mode, "rep": rep, "source": "server", "type": "gc",
                            "runtime": "fake", "kind": "gen0", "generation": 0, "start_ns": 11, "end_ns": 12,
                            "duration_ns": 1, "collected": 0, "measured": True}])
    return calls, events


def fake_runner(clock, ran):
    """Each cell takes CELL_S on the fake clock; a: default ok, disabled crashes; b: default has call errors."""
    def measure(backend, mode, rep, scenario, config, writer, control):
        ran.append((backend.name, str(mode)))
        clock.t += CELL_S
        if (backend.name, str(mode)) == ("a", "disabled"):
            raise CellError("server exited with code 1")
        cell = {"backend": backend.name, "runtime": "fake", "gc_mode": str(mode), "rep": rep, "status": "ok"}
        return (cell, *frames(backend.name, str(mode), rep, errors=1 if backend.name == "b" else 0))
    return measure


def schedule(tmp_path, on_cell=lambda c: None, progress=None, measure=None):
    clock = Clock()
    ran = []
    config = RunConfig(Scenario("fake"), [Fake("a"), Fake("b", skips=("disabled",)), Fake("c", broken=True)],
                       [GcMode("default"), GcMode("disabled")], tmp_path / "runs", run_id="r")
    lines = []
    s = Scheduler(config, lines.append, on_cell, progress or Progress(6, clock=clock, live=False),
                  measure=measure or fake_runner(clock, ran), environment=lambda c: {"pinning": {}}, clock=clock)
    return s, lines, ran, clock


def test_outcomes_are_sorted_saved_and_shown_in_cell_order(tmp_path):
    seen = []
    s, lines, ran, _ = schedule(tmp_path, on_cell=seen.append)
    result = s.run()
    assert ran == [("a", "default"), ("a", "disabled"), ("b", "default")]  # no runner for skipped or unprepared
    meta = json.loads((result.path / "run.json").read_text())
    assert meta["status"] == "complete-with-failures"
    assert [(c["backend"], c["gc_mode"], c["status"]) for c in meta["cells"]] == [
        ("a", "default", "ok"), ("a", "disabled", "failed"), ("b", "default", "ok"), ("b", "disabled", "skipped"),
        ("c", "default", "failed"), ("c", "disabled", "failed")]
    assert [c["gc_mode"] for c in seen] == ["default", "disabled"] * 3 and seen == meta["cells"]
    assert [(c["backend"], c["gc_mode"]) for c in result.failed] == [("a", "disabled"), ("c", "default"),
                                                                     ("c", "disabled")]
    assert result.failed[1]["reason"] == "backend not ready: the build failed"
    assert [(c["backend"], c["call_errors"], c["first_call_error"]) for c in result.call_errors] == [("b", 1, "boom")]
    assert set(meta["environment"]["backend_runtimes"]) == {"a", "b"}  # c was never prepared


def test_every_cell_line_ends_with_the_time_left_from_the_fake_clock(tmp_path):
    s, lines, _, _ = schedule(tmp_path)
    s.run()
    cells = [line for line in lines if line.startswith("[")]
    assert cells == [
        "[1/6] a gc=default rep=0: 4 calls in 10.0 s, 1 GC events (about 50 s left)",
        "[2/6] a gc=disabled rep=0: FAILED: server exited with code 1 (about 40 s left)",
        "[3/6] b gc=default rep=0: 4 calls in 10.0 s, 1 GC events, 1 call errors (first: boom) (about 30 s left)",
        "[4/6] b gc=disabled rep=0: skipped: b cannot run disabled",  # done, adds no time
        # c's cells fail at once (0 s): they count as measured, so the mean falls
        "[5/6] c gc=default rep=0: FAILED: backend not ready: the build failed (about 8 s left)",
        "[6/6] c gc=disabled rep=0: FAILED: backend not ready: the build failed",
    ]


def test_run_cell_returns_an_outcome_and_writes_nothing(tmp_path):
    s, _, _, _ = schedule(tmp_path)
    s.open()
    s.prepare()
    outcomes = [s.run_cell(i, rep, b, m) for i, (rep, b, m) in enumerate(s.cells, 1)]
    assert [o.status for o in outcomes] == [OK, FAILED, CALL_ERRORS, SKIPPED, FAILED, FAILED]
    assert [o.seconds for o in outcomes] == [CELL_S, CELL_S, CELL_S, 0.0, 0.0, 0.0]
    assert s.writer.meta["cells"] == [] and s.failed == [] and s.call_errors == []


def test_an_interrupt_marks_the_folder_and_keeps_the_cells_saved(tmp_path):
    clock = Clock()
    inner = fake_runner(clock, [])

    def measure(backend, *args):
        if backend.name == "b":
            raise Interrupted(130)
        return inner(backend, *args)

    s, _, _, _ = schedule(tmp_path, measure=measure)
    with pytest.raises(Interrupted):
        s.run()
    meta = json.loads((s.writer.path / "run.json").read_text())
    assert meta["status"] == "interrupted" and [c["status"] for c in meta["cells"]] == ["ok", "failed"]


@pytest.mark.slow
def test_gcbench_run_on_a_pipe_prints_the_same_cell_lines_as_before(tmp_path):
    """stderr not a terminal: no bar, no escape codes; each cell line as `gcbench run` always printed it, the
    time left at its end but the last."""
    import re

    from .conftest import run_cli

    proc = run_cli("run", "-b", "python", "-g", "default,disabled", "--chains", "2", "--calls", "5",
                   "-o", str(tmp_path / "runs"), timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr
    cells = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    line = r"python gc={} rep=0: 10 calls in \d+\.\d s, \d+ GC events"
    assert re.fullmatch(r"\[1/2\] " + line.format("default") + r" \(about \d+ s left\)", cells[0]), cells
    assert re.fullmatch(r"\[2/2\] " + line.format("disabled"), cells[1]), cells
    assert proc.stderr.splitlines()[0].startswith("gcbench: run folder ")


def test_each_repetition_rotates_the_gc_modes_so_none_always_runs_first(tmp_path):
    """Three modes over three repetitions: each mode runs first once (the old order put default first in every
    repetition, so drift over a run always fell on the same side of advise's comparison)."""
    clock, ran = Clock(), []

    def measure(backend, mode, rep, scenario, config, writer, control):
        ran.append((rep, str(mode)))
        cell = {"backend": backend.name, "runtime": "fake", "gc_mode": str(mode), "rep": rep, "status": "ok"}
        return (cell, *frames(backend.name, str(mode), rep))

    modes = [GcMode("default"), GcMode("freeze"), GcMode("disabled")]
    config = RunConfig(Scenario("fake"), [Fake("a")], modes, tmp_path / "runs", reps=3, run_id="r")
    Scheduler(config, lambda line: None, lambda c: None, Progress(9, clock=clock, live=False), measure=measure,
              environment=lambda c: {"pinning": {}}, clock=clock).run()
    firsts = [m for i, (rep, m) in enumerate(ran) if i % 3 == 0]
    assert firsts == ["default", "freeze", "disabled"]
    assert sorted(ran) == sorted((rep, str(m)) for rep in range(3) for m in modes)  # every cell once
