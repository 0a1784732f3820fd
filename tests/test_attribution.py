import numpy as np
import pandas as pd

from gcbench.analysis import attribute, merge_intervals, overlap_ns


def test_overlap_exact_cases():
    # calls:            [100,200]  [200,300]  [300,400]  [1000,1100]  [50,60]
    calls_s = np.array([100, 200, 300, 1000, 50])
    calls_e = np.array([200, 300, 400, 1100, 60])
    # pauses: straddles the 100 edge, nested in call 2, touches 300 exactly at its start, one far away
    gc_s = np.array([90, 250, 300, 5000])
    gc_e = np.array([110, 260, 320, 5100])
    got = overlap_ns(calls_s, calls_e, gc_s, gc_e)
    assert got.tolist() == [10, 10, 20, 0, 0]


def test_overlap_counts_overlapping_pauses_once_and_handles_unsorted_input():
    got = overlap_ns(np.array([0]), np.array([100]), np.array([50, 10, 20]), np.array([60, 30, 40]))
    # union of [10,30] and [20,40] is [10,40] (30 ns) plus [50,60] (10 ns)
    assert got.tolist() == [40]


def test_pause_longer_than_call_and_call_inside_pause():
    got = overlap_ns(np.array([100, 0]), np.array([150, 1000]), np.array([50]), np.array([500]))
    assert got.tolist() == [50, 450]


def test_no_pauses_gives_zeros():
    assert overlap_ns(np.array([1, 2]), np.array([3, 4]), np.array([]), np.array([])).tolist() == [0, 0]


def test_merge_intervals():
    s, e = merge_intervals(np.array([5, 1, 2, 10]), np.array([6, 3, 4, 12]))
    assert s.tolist() == [1, 5, 10] and e.tolist() == [4, 6, 12]


def test_attribute_uses_only_server_events_of_the_same_cell():
    calls = pd.DataFrame({
        "backend": ["a", "a", "b"], "gc_mode": ["default"] * 3, "rep": [0, 0, 0],
        "t_send_ns": [0, 100, 0], "t_recv_ns": [50, 200, 50],
    })
    events = pd.DataFrame({
        "backend": ["a", "a", "b", "a"], "gc_mode": ["default"] * 4, "rep": [0, 0, 0, 0],
        "source": ["server", "server", "server", "client"], "type": ["gc", "stall", "gc", "gc"],
        "start_ns": [40, 150, 0, 0], "end_ns": [45, 1000, 7, 1000],
    })
    assert attribute(calls, events).tolist() == [5, 50, 7]
    # a hiccup (the meter woke late) is not GC: it never counts as dead time
    hiccup = events.assign(type=["hiccup"] * 4)
    assert attribute(calls, hiccup).tolist() == [0, 0, 0]


def test_large_input_is_vectorised():
    rng = np.random.default_rng(0)
    n = 200_000
    starts = np.sort(rng.integers(0, 10**12, n))
    calls_s, calls_e = starts, starts + 1000
    gs = np.sort(rng.integers(0, 10**12, n))
    got = overlap_ns(calls_s, calls_e, gs, gs + 500)
    assert got.shape == (n,) and (got >= 0).all() and (got <= 1000).all()
