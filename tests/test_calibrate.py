"""Calibration against ground truth: the GC-free stall server's known stalls are found, and nothing else is."""

import pytest

from gcbench.backends.stall import StallBackend
from gcbench.calibrate import calibrate, stall_plan


@pytest.fixture(autouse=True)
def _needs_rustc():
    avail = StallBackend().availability()
    if not avail.ok:
        pytest.skip(avail.reason)


def test_stall_plan_is_spaced_and_complete():
    plan = stall_plan(500, (5.0, 10.0), per_duration=10)
    assert len(plan) == 20 and sorted(set(plan.values())) == [5000, 10000]
    idx = sorted(plan)
    assert idx[0] >= 1 and all(b - a >= 3 for a, b in zip(idx, idx[1:], strict=False))


def test_every_5_and_10_ms_stall_is_found(tmp_path):
    res = calibrate(tmp_path, chains=6, stalls_ms=(5.0, 10.0), per_duration=6, log=lambda m: None)
    assert res.summary["injected"].tolist() == [6, 6]
    assert res.summary["found"].tolist() == [6, 6]
    # each stall's server record lies inside its call, and attribution gives it back
    assert res.per_stall["server_recorded_ms"].notna().all()
    assert (res.per_stall["attributed_ms"] >= res.per_stall["planned_ms"] * 0.99).all()
    # recovered durations: a tolerance wide enough for a loaded 2-core machine (tight figures: the command)
    assert (res.per_stall["error_ms"].abs() < 3.0).all()


def test_no_false_stalls_on_a_stall_free_run_of_500_calls(tmp_path):
    res = calibrate(tmp_path, chains=10, stalls_ms=(5.0,), per_duration=0, log=lambda m: None)
    assert res.stall_free_calls == 500 and res.per_stall.empty
    assert res.false_stalls == 0
