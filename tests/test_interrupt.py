"""Ctrl-C and SIGTERM during a real `gcbench run`: it stops within seconds, every server and helper is ended,
the cells measured so far are saved, run.json says 'interrupted', the exit code is 130/143; a second Ctrl-C
stops at once, still without orphans.

Ctrl-C is simulated as a terminal sends it: SIGINT to gcbench's whole process group.
"""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest

import gcbench

from .faultkit import LiveGcbench, assert_no_orphans, fault_cmd, new_marker, only_run_folder

# 10 chains x 20 calls x 10 ms of sleep: about 2 s per cell, so a signal can land inside a cell
SLOW = """
name = "slow"
[chain]
calls = 20
chains = 10
warmup_calls = 0
[work]
alloc_objects = 100
sleep_us = 10000
"""
CALLS_PER_CELL = 200
PROMPT_S = 10.0  # "within a few seconds", with room for a loaded 2-core machine


@pytest.fixture
def slow(tmp_path) -> Path:
    p = tmp_path / "slow.toml"
    p.write_text(SLOW)
    return p


def _interrupt_mid_cell(tmp_path, slow, sig: int, terminal: bool) -> tuple[LiveGcbench, float, str]:
    marker = new_marker()
    out = tmp_path / "runs"
    g = LiveGcbench(["run", "-s", str(slow), "-b", "python", "-g", "default", "--reps", "3", "-o", str(out)], marker)
    g.wait_for("[1/3] python gc=default rep=0: 200 calls")  # the first cell is saved...
    time.sleep(0.5)  # ...and the second is measuring
    t0 = time.monotonic()
    (g.signal_terminal if terminal else g.signal_process)(sig)
    code = g.finish(timeout=60)
    took = time.monotonic() - t0
    assert_no_orphans(marker)
    assert code == 128 + sig, g.stderr
    return g, took, out


def _check_interrupted_folder(out: Path, min_cells: int = 1) -> None:
    run = gcbench.load(only_run_folder(out))
    assert run.meta["status"] == "interrupted"
    cells = run.meta["cells"]
    assert len(cells) >= min_cells and all(c["status"] == "ok" for c in cells)
    assert len(run.calls) == CALLS_PER_CELL * len(cells)  # whole cells only: no half-measured one
    assert not list(run.path.glob(".*tmp*"))  # no temporary file left behind


def test_ctrl_c_during_a_cell_stops_cleanly(tmp_path, slow):
    g, took, out = _interrupt_mid_cell(tmp_path, slow, signal.SIGINT, terminal=True)
    assert took < PROMPT_S, f"took {took:.1f} s to stop"
    assert "gcbench: interrupted; cells measured so far are saved" in g.stderr
    assert "[2/3]" not in g.stderr  # the cell under way is not reported as measured or failed
    _check_interrupted_folder(out)


def test_sigterm_during_a_cell_stops_cleanly(tmp_path, slow):
    g, took, out = _interrupt_mid_cell(tmp_path, slow, signal.SIGTERM, terminal=False)
    assert took < PROMPT_S, f"took {took:.1f} s to stop"
    _check_interrupted_folder(out)


def test_second_ctrl_c_forces_the_exit_without_orphans(tmp_path, slow):
    # a server that hangs and ignores SIGTERM: the first Ctrl-C's clean stop has to wait for it, the second
    # one kills it at once
    marker = new_marker()
    out = tmp_path / "runs"
    g = LiveGcbench(["run", "-s", str(slow), "-b", "python", "--server-cmd", fault_cmd("hang-stubborn", 3),
                     "-g", "default", "-o", str(out), "--call-timeout", "60"], marker)
    g.wait_for("[1/2] python gc=default rep=0: 200 calls")
    time.sleep(1.0)  # the custom server is now hung at call 3
    g.signal_terminal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.monotonic()
    g.signal_terminal(signal.SIGINT)
    code = g.finish(timeout=30)
    took = time.monotonic() - t0
    assert_no_orphans(marker)
    assert code == 130, g.stderr
    assert "second signal: killing the servers and exiting now" in g.stderr
    assert took < PROMPT_S
    run = gcbench.load(only_run_folder(out))
    assert run.meta["status"] == "interrupted"
    assert [c["backend"] for c in run.meta["cells"]] == ["python"]
    assert len(run.calls) == CALLS_PER_CELL


def test_ctrl_c_while_a_server_is_starting(tmp_path, slow):
    marker = new_marker()
    out = tmp_path / "runs"
    started = tmp_path / "started"
    g = LiveGcbench(["run", "-s", str(slow), "--server-cmd", fault_cmd("slow-start"), "-g", "default", "-o",
                     str(out)], marker, FAULT_STARTED_FILE=str(started), FAULT_SLOW_START_S="60")
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline and g.proc.poll() is None, g.stderr
        time.sleep(0.02)
    t0 = time.monotonic()
    g.signal_terminal(signal.SIGINT)
    code = g.finish(timeout=30)
    assert time.monotonic() - t0 < PROMPT_S
    assert_no_orphans(marker)
    assert code == 130, g.stderr
    run = gcbench.load(only_run_folder(out))
    assert run.meta["status"] == "interrupted" and run.meta["cells"] == []


def test_sigterm_during_a_build_ends_the_build_processes(tmp_path, slow):
    """A helper (a compiler that started a child of its own) is ended too, when SIGTERM reaches gcbench only."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text("#!/bin/sh\n"
                  'if [ "$1" = version ]; then echo "go version go1.99.0 linux/amd64"; exit 0; fi\n'
                  f"touch {tmp_path / 'building'}\n"
                  "sleep 60 &\nsleep 60\n")
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    marker = new_marker()
    out = tmp_path / "runs"
    g = LiveGcbench(["run", "-s", str(slow), "-b", "go", "-g", "default", "-o", str(out)], marker,
                    PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", GCBENCH_CACHE=str(tmp_path / "cache"))
    deadline = time.monotonic() + 30
    while not (tmp_path / "building").exists():
        assert time.monotonic() < deadline and g.proc.poll() is None, g.stderr
        time.sleep(0.02)
    time.sleep(0.2)
    g.signal_process(signal.SIGTERM)
    code = g.finish(timeout=30)
    assert_no_orphans(marker)
    assert code == 143, g.stderr
    assert gcbench.load(only_run_folder(out)).meta["status"] == "interrupted"


def test_interrupt_before_the_run_folder_exists_creates_none(tmp_path):
    """In-process: a signal held before execute() starts stops it before any folder or process."""
    from gcbench import procs
    from gcbench.backends import get_backend
    from gcbench.gcmode import GcMode
    from gcbench.runner import Interrupted, RunConfig, execute
    from gcbench.scenario import Scenario

    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    procs.install_signal_handlers()
    try:
        signal.raise_signal(signal.SIGINT)  # held: nothing is waiting on a server
        assert procs.pending() == 130
        with pytest.raises(Interrupted) as exc:
            execute(RunConfig(Scenario("x"), [get_backend("python")], [GcMode("default")], tmp_path / "runs"))
        assert exc.value.exit_code == 130
        assert not (tmp_path / "runs").exists()
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
        procs._installed, procs._pending = False, None
