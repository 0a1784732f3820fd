"""The harness's send lag and CPU share, the warning when they limited the load, and the reports that show them."""

import time

import numpy as np
import pandas as pd

from gcbench.analysis.harness_load import (
    CPU_SHARE_LIMIT,
    HarnessLimited,
    due_gap_ns,
    harness_figures,
    harness_limits,
    harness_load_table,
    harness_warnings,
)

T0 = 9_876_543_210_123


def _fig(**kw):
    base = {"cpu_s": 0.1, "window_s": 1.0, "cpu_share": 0.1, "send_lag_p50_ns": 10_000, "send_lag_p99_ns": 50_000,
            "send_lag_max_ns": 60_000, "send_lag_calls": 100, "due_gap_ns": 0}
    return {**base, **kw}


def test_harness_figures_are_the_lag_of_the_calls_with_a_due_time_and_cpu_over_the_window():
    due = T0 + np.arange(101, dtype=np.int64) * 1_000_000
    lag = np.arange(101, dtype=np.int64) * 1_000  # 0 .. 100 us
    send = due + lag
    due_with_unknown = np.concatenate([due, [0, 0]])  # 0: not recorded (format 1), never a lag of T0
    send_with_unknown = np.concatenate([send, [T0, T0]])
    f = harness_figures(send_with_unknown, due_with_unknown, cpu_s=0.25, window_ns=500_000_000, gap_ns=2e6)
    assert f == {"cpu_s": 0.25, "window_s": 0.5, "cpu_share": 0.5, "send_lag_p50_ns": 50_000,
                 "send_lag_p99_ns": 99_000, "send_lag_max_ns": 100_000, "send_lag_calls": 101,
                 "due_gap_ns": 2_000_000}


def test_no_call_with_a_due_time_gives_no_lag_figure():
    f = harness_figures(np.array([T0]), np.array([0]), cpu_s=0.0, window_ns=0, gap_ns=0)
    assert f["send_lag_p50_ns"] is None and f["send_lag_p99_ns"] is None and f["cpu_share"] is None
    assert harness_limits(f) == []


def test_due_gap_is_the_mean_think_time_after_the_first_call_and_the_open_loop_interval():
    think = np.array([[0, 4_000_000, 2_000_000], [0, 2_000_000, 4_000_000]])
    assert due_gap_ns(think, 0.0) == 3_000_000
    assert due_gap_ns(think, 1000.0) == 1_000_000  # a chain starts every 1 ms: shorter than the think time
    assert due_gap_ns(np.zeros((3, 4)), 100.0) == 10_000_000
    assert due_gap_ns(np.zeros((3, 4)), 0.0) == 0


def test_cpu_share_above_the_limit_warns():
    assert harness_limits(_fig(cpu_share=CPU_SHARE_LIMIT - 0.01)) == []
    (w,) = harness_limits(_fig(cpu_share=0.97))
    assert isinstance(w, HarnessLimited) and w.cpu_share == 0.97 and w.send_lag_p99_ms is None
    assert str(w) == "the harness may have limited the load: its process used 97% of one core over the measured " \
                     "window (limit 90%)"


def test_send_lag_warns_only_above_both_the_threshold_and_the_schedules_gap():
    assert harness_limits(_fig(send_lag_p99_ns=900_000)) == []  # under 1 ms
    assert harness_limits(_fig(send_lag_p99_ns=5_000_000, due_gap_ns=10_000_000)) == []  # under the think time
    (w,) = harness_limits(_fig(send_lag_p99_ns=5_000_000, due_gap_ns=2_000_000))
    assert w.send_lag_p99_ms == 5.0 and w.cpu_share is None
    assert "p99 send lag was 5 ms, more than 2 ms" in str(w)


def test_per_group_table_and_warnings_read_the_cells():
    groups = pd.DataFrame({"backend": ["python", "go"], "gc_mode": ["default", "default"]})
    cells = [
        {"backend": "python", "gc_mode": "default", "rep": 0, "status": "ok", "harness": _fig(cpu_share=0.2)},
        {"backend": "python", "gc_mode": "default", "rep": 1, "status": "ok",
         "harness": _fig(cpu_share=0.95, send_lag_p99_ns=3_000_000)},
        {"backend": "python", "gc_mode": "default", "rep": 2, "status": "failed", "harness": _fig(cpu_share=1.0)},
        {"backend": "go", "gc_mode": "default", "rep": 0, "status": "ok", "harness": None},  # a format 3 cell
    ]
    t = harness_load_table(cells, groups)
    py, go = t.iloc[0], t.iloc[1]
    assert (py.harness_cells, py.harness_cpu_share_max, py.send_lag_p99_ms_max) == (2, 0.95, 3.0)
    assert go.harness_cells == 0 and np.isnan(go.harness_cpu_share_max)
    assert len(harness_warnings(cells, "python", "default")) == 1
    assert harness_warnings(cells, "go", "default") == []


def test_the_runner_reads_the_harness_cpu_time_around_the_measured_window():
    """A transport that burns 0.2 s of CPU while the chains run: _measure's CPU time holds it."""
    from .test_report import _EchoTransport, _measure_with

    class Busy(_EchoTransport):
        def poll(self, timeout_s):
            t = time.process_time()
            while time.process_time() - t < 0.02:
                pass
            return super().poll(timeout_s)

    *_, cpu_s = _measure_with(Busy(keep=0))
    assert cpu_s >= 0.2  # 10 polls x 0.02 s, at least
    *_, idle_cpu = _measure_with(_EchoTransport(keep=0))
    assert idle_cpu < cpu_s
