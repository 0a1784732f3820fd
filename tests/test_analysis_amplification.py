"""GC amplification: calls delayed per pause, server GC time against dead time summed over chains."""

import math

import numpy as np
import pandas as pd

from gcbench.analysis import attribute, summarize
from gcbench.analysis.amplification import (
    Amplification,
    amplification_findings,
    amplification_table,
    calls_delayed,
    cell_amplification,
    pause_table,
)

T0 = 5_432_109_876_543  # not zero: nothing may rely on time starting at 0


def _calls(intervals, backend="python", gc_mode="default", rep=0):
    """One call per (t_send, t_recv) offset pair from T0, each its own chain (concurrent agents)."""
    s = np.array([a for a, _ in intervals], np.int64) + T0
    e = np.array([b for _, b in intervals], np.int64) + T0
    n = len(s)
    return pd.DataFrame({"backend": backend, "gc_mode": gc_mode, "rep": rep, "agent": np.arange(n, dtype=np.int32),
                         "chain": np.arange(n, dtype=np.int32), "call": np.zeros(n, np.int32), "tool": "work",
                         "t_send_ns": s, "t_recv_ns": e, "t_intended_ns": s, "latency_ns": e - s, "ok": True,
                         "error": None, "gc_overlap_ns": np.zeros(n, np.int64)})


def _events(pauses, backend="python", gc_mode="default", rep=0, measured=True):
    rows = [{"backend": backend, "gc_mode": gc_mode, "rep": rep, "source": "server", "type": "gc",
             "runtime": "python", "kind": "gen0", "generation": 0, "start_ns": T0 + a, "end_ns": T0 + b,
             "duration_ns": b - a, "collected": 0, "measured": measured} for a, b in pauses]
    return pd.DataFrame(rows)


def _attributed(calls, events):
    calls["gc_overlap_ns"] = attribute(calls, events)
    return calls


def test_calls_delayed_matches_a_brute_force_count():
    rng = np.random.default_rng(7)
    cs = rng.integers(0, 10_000, 300)
    ce = cs + rng.integers(0, 500, 300)
    ps = rng.integers(0, 10_000, 200)
    pe = ps + rng.integers(0, 300, 200)
    brute = [int(((cs < b) & (ce > a)).sum()) if b > a else 0 for a, b in zip(ps, pe, strict=True)]
    assert calls_delayed(cs, ce, ps, pe).tolist() == brute


def test_a_call_touching_a_pause_is_not_delayed_by_it():
    # [0, 100] ends where the pause starts, [300, 400] starts where it ends: 0 ns of overlap, as attribution says
    assert calls_delayed(np.array([0, 300, 150]), np.array([100, 400, 160]), np.array([100]), np.array([300])).tolist() \
        == [1]
    assert calls_delayed(np.array([0]), np.array([1000]), np.array([500]), np.array([500])).tolist() == [0]


def test_one_pause_under_k_concurrent_calls_is_amplified_k_times():
    k = 8
    calls = _attributed(_calls([(0, 10_000)] * k), _events([(2_000, 5_000)]))
    a = cell_amplification(calls, _events([(2_000, 5_000)]))
    r = a.iloc[0]
    assert (r.pauses, r.gc_ns, r.dead_ns) == (1, 3_000, k * 3_000)
    assert r.amplification == k and r.calls_delayed_mean == k and r.calls_delayed_max == k


def test_a_single_chain_is_never_amplified():
    calls = [(0, 1_000), (1_500, 2_500), (3_000, 4_000)]  # sequential calls of one chain
    pauses = [(500, 700), (1_200, 1_400), (2_400, 3_100)]  # inside, between calls, straddling two
    ev = _events(pauses)
    a = cell_amplification(_attributed(_calls(calls), ev), ev).iloc[0]
    assert a.gc_ns == 200 + 200 + 700
    assert a.dead_ns == 200 + 0 + (100 + 100)
    assert a.amplification <= 1
    assert pause_table(_calls(calls), ev)["calls_delayed"].tolist() == [1, 0, 2]
    assert a.pauses_by_calls_delayed == {0: 1, 1: 1, 2: 1}


def test_no_gc_time_gives_no_figure_not_zero_or_inf():
    calls = _calls([(0, 1_000)] * 3)
    a = cell_amplification(calls, pd.DataFrame()).iloc[0]
    assert a.gc_ns == 0 and a.pauses == 0
    assert math.isnan(a.amplification) and math.isnan(a.calls_delayed_mean)
    g = amplification_table(calls, pd.DataFrame()).iloc[0]
    assert math.isnan(g.amplification)
    f = Amplification("python/disabled", 0, 0.0, 0.0, float("nan"), float("nan"))
    assert str(f) == "python/disabled: no figure: no server GC time in the measured window"


def test_gc_time_counts_overlapping_pauses_once_and_only_inside_the_window():
    calls = _calls([(0, 10_000)] * 2)
    ev = _events([(1_000, 3_000), (2_000, 4_000), (9_000, 12_000)])  # two overlap; one runs past the window
    calls = _attributed(calls, ev)
    cells = [{"backend": "python", "gc_mode": "default", "rep": 0, "t_measure_start_ns": T0,
              "t_measure_end_ns": T0 + 10_000}]
    a = cell_amplification(calls, ev, cells).iloc[0]
    assert a.gc_ns == 3_000 + 1_000
    assert a.dead_ns == 2 * 4_000
    assert a.amplification == 2


def test_unmeasured_and_client_pauses_are_left_out():
    calls = _calls([(0, 10_000)] * 4)
    ev = pd.concat([_events([(1_000, 2_000)]), _events([(3_000, 4_000)], measured=False)], ignore_index=True)
    client = _events([(5_000, 6_000)]).assign(source="client")
    ev = pd.concat([ev, client], ignore_index=True)
    calls = _attributed(calls, ev[ev["measured"]])
    a = cell_amplification(calls, ev).iloc[0]
    assert (a.pauses, a.gc_ns) == (1, 1_000)


def test_repetitions_are_summed_before_the_ratio():
    ev0, ev1 = _events([(0, 1_000)], rep=0), _events([(0, 3_000)], rep=1)
    c0 = _attributed(_calls([(0, 5_000)] * 4, rep=0), ev0)  # 4 x 1000 over 1000
    c1 = _attributed(_calls([(0, 5_000)] * 2, rep=1), ev1)  # 2 x 3000 over 3000
    g = amplification_table(pd.concat([c0, c1], ignore_index=True), pd.concat([ev0, ev1], ignore_index=True))
    r = g.iloc[0]
    assert (r.amp_gc_ms, r.amp_dead_ms) == (4_000 / 1e6, 10_000 / 1e6)
    assert r.amplification == 2.5  # 10,000 / 4,000, not the mean of 4 and 2
    assert r.calls_delayed_mean == 3 and r.calls_delayed_max == 4


def test_summarize_carries_the_amplification_and_its_finding():
    ev = _events([(2_000, 5_000)])
    calls = _attributed(_calls([(0, 10_000)] * 4), ev)
    s = summarize(calls, ev, calls_per_chain=1, n_boot=20)
    r = s.iloc[0]
    assert (r.amp_pauses, r.amplification, r.calls_delayed_mean) == (1, 4, 4)
    (f,) = amplification_findings(s)
    assert str(f) == ("python/default: 1 pause(s), 0.003 ms of server GC delayed the calls by 0.012 ms summed over "
                      "chains: amplification x4, 4 call(s) in flight per pause on average")
