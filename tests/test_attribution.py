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


def test_large_input_is_vectorised_and_exact():
    n = 200_000
    base = 7_123_456_789_013 + np.arange(n, dtype=np.int64) * 2_000  # calls of 1,000 ns every 2,000 ns
    # pause k starts 500 ns into call k and runs 750 ns (250 of them in the gap after it); every 4th call
    # also sits inside a pause that starts 10 ns before it and ends 10 ns after it (overlapping the first)
    gs = np.concatenate([base + 500, base[::4] - 10])
    ge = np.concatenate([base + 1_250, base[::4] + 1_010])
    expected = np.full(n, 500, np.int64)
    expected[::4] = 1_000
    got = overlap_ns(base, base + 1_000, gs, ge)
    assert got.dtype == np.int64 and np.array_equal(got, expected)


def test_random_overlaps_equal_a_nanosecond_timeline():
    """Against an independent count: a boolean array with one slot per nanosecond."""
    rng = np.random.default_rng(0)
    span = 2_000_000
    cs = np.sort(rng.integers(0, span - 5_000, 3_000))
    ce = cs + rng.integers(0, 5_000, 3_000)
    gs = rng.integers(0, span - 3_000, 1_500)
    ge = gs + rng.integers(0, 3_000, 1_500)
    busy = np.zeros(span, bool)
    for s, e in zip(gs, ge, strict=True):
        busy[s:e] = True
    covered = np.concatenate(([0], np.cumsum(busy)))
    assert overlap_ns(cs, ce, gs, ge).tolist() == (covered[ce] - covered[cs]).tolist()
