"""The CPython GC probe and the Python server's out-of-band mode.

The probe must not disturb what it measures: its gc.callbacks hook only appends (no write, no JSON, no heap
walk), events are written on flush alone, every collection it saw is written or counted as dropped, and a
drop shows up as a cell warning. The oob mode applies CPython's own trigger rule to CPython's own counts.
"""

import gc
import json
from types import SimpleNamespace

import numpy as np
import pytest

import gcbench
from gcbench.backends.python import server as pyserver
from gcbench.probes import python_gc
from gcbench.probes.python_gc import GcProbe
from gcbench.runner import cell_id, probe_drop_warnings

from .conftest import run_cli

OLD_FLUSH_EVERY_EVENTS = 10_000  # the old probe wrote its buffer from inside the callback at this size


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def probe(tmp_path):
    p = GcProbe(str(tmp_path / "events.jsonl")).install()
    yield p
    p.uninstall()


def test_the_callback_never_writes_however_many_events(probe, tmp_path):
    n = 2 * OLD_FLUSH_EVERY_EVENTS + 500
    for _ in range(n):
        gc.collect(0)
    assert not (tmp_path / "events.jsonl").exists()  # nothing written before flush
    assert probe.seen >= n and probe.pending() == probe.seen and probe.dropped == 0
    written = probe.flush()
    assert written == probe.seen
    recs = _lines(tmp_path / "events.jsonl")  # (collections from here on wait for the next flush)
    gcs = [r for r in recs if r["type"] == "gc"]
    (stats,) = [r for r in recs if r["type"] == "stats"]
    assert len(gcs) == stats["gc_events_seen"] == written and stats["gc_events_dropped"] == 0
    starts = [r["start_ns"] for r in gcs]
    assert starts == sorted(starts)  # chunks come back in order
    assert all(r["start_ns"] <= r["end_ns"] for r in gcs)


def test_past_the_cap_events_are_counted_as_dropped_and_reported(probe, tmp_path, monkeypatch):
    monkeypatch.setattr(python_gc, "GC_MAX_EVENTS", 100)
    monkeypatch.setattr(python_gc, "CHUNK_EVENTS", 16)  # several chunks below the cap
    for _ in range(250):
        gc.collect(0)
    assert probe.pending() == 100 and probe.dropped == probe.seen - 100 >= 150
    probe.flush()
    recs = _lines(tmp_path / "events.jsonl")
    (stats,) = [r for r in recs if r["type"] == "stats"]
    assert sum(r["type"] == "gc" for r in recs) == 100
    assert stats["gc_events_dropped"] == stats["gc_events_seen"] - 100 and stats["gc_events_max"] == 100
    # room again after the flush
    gc.collect(0)
    assert probe.pending() == 1


def test_flush_holds_automatic_gc_off_and_restores_it(probe, tmp_path):
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            probe.flush()
            assert gc.isenabled() is enabled
            assert _lines(tmp_path / "events.jsonl")[-1]["gc_enabled"] is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_a_drop_count_becomes_a_cell_warning():
    assert probe_drop_warnings({"gc_events_dropped": 0, "hiccup_dropped": 0}) == []
    assert probe_drop_warnings({}) == []
    (w,) = probe_drop_warnings({"gc_events_dropped": 7})
    assert "dropped 7 GC events" in w
    assert len(probe_drop_warnings({"gc_events_dropped": 1, "hiccup_dropped": 2})) == 2


MANY_EVENTS = """
    name = "many-gc-events"
    [chain]
    calls = 50
    chains = 18
    warmup_calls = 5
    [work]
    alloc_objects = 20000
    cyclic_fraction = 0.05
    payload_bytes = 100
"""


def test_a_cell_with_more_events_than_the_old_buffer_has_no_write_inside_a_call(write_scenario, tmp_path):
    # about 28 young collections per call, 900 calls: over 20,000 events in the measured window
    proc = run_cli("run", "--scenario", str(write_scenario(MANY_EVENTS)), "--backend", "python",
                   "--gc-mode", "default", "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    run = gcbench.load(json.loads(proc.stdout)["run"])
    (cell,) = run.meta["cells"]
    ev = run.gc_events
    server = ev[(ev["source"] == "server") & (ev["type"] == "gc")].sort_values("end_ns")
    assert int(server["measured"].sum()) > 2 * OLD_FLUSH_EVERY_EVENTS
    # every collection the probe saw is a gc_events row, none dropped, no warning
    assert len(server) == cell["stats"]["gc_events_seen"] and cell["stats"]["gc_events_dropped"] == 0
    assert "warnings" not in cell

    # the side channel is written twice (gcbench/flush, exit), both after the measured window
    side = _lines(run.path / "cells" / f"{cell_id(SimpleNamespace(name='python'), 'default', 0)}.events.jsonl")
    flushes = [r for r in side if r["type"] == "stats"]
    assert len(flushes) == 2 and all(r["flush_ns"] > cell["t_measure_end_ns"] for r in flushes)

    # The old probe wrote 10,000 events from inside the callback of each 10,000th collection: JSON, a file
    # write and a heap walk, ~50-70 ms charged to that call but not to GC. Look at exactly those calls (a
    # cell-wide maximum would be at the mercy of this shared machine's scheduler): at least one of them
    # must have an ordinary non-GC time.
    calls = run.calls
    non_gc_ms = (calls["latency_ns"] - calls["gc_overlap_ns"]).to_numpy() / 1e6
    ends = server["end_ns"].to_numpy()
    at_old_flush = []
    for k in range(OLD_FLUSH_EVERY_EVENTS, len(ends) + 1, OLD_FLUSH_EVERY_EVENTS):
        hit = np.flatnonzero((calls["t_send_ns"] <= ends[k - 1]) & (calls["t_recv_ns"] >= ends[k - 1]))
        at_old_flush.extend(non_gc_ms[hit])
    assert len(at_old_flush) >= 2
    bound_ms = max(20.0, 5 * float(np.median(non_gc_ms)))
    assert min(at_old_flush) < bound_ms, (at_old_flush, np.median(non_gc_ms))


# ---------------------------------------------------------------------------------------------- oob


@pytest.fixture
def gc_off():
    was = gc.isenabled()
    gc.disable()
    gc.collect()
    yield
    if was:
        gc.enable()


def _collections():
    return [s["collections"] for s in gc.get_stats()]


def test_oob_runs_nothing_while_the_young_count_is_under_its_threshold(gc_off):
    # CPython only looks at the older generations when the young count exceeds threshold0
    server = SimpleNamespace(thresholds=(700, 10, 10))
    for _ in range(11):
        gc.collect(0)  # each one adds 1 to the gen1 count
    assert gc.get_count()[1] > 10 and gc.get_count()[0] <= 700
    before = _collections()
    assert pyserver.Server.collect_out_of_band(server) is None
    assert _collections() == before


def test_oob_collects_the_oldest_generation_over_its_threshold(gc_off):
    server = SimpleNamespace(thresholds=(700, 10, 10))
    for _ in range(11):
        gc.collect(0)
    keep = [[i] for i in range(2000)]  # young count over 700, and still over it after the call
    assert gc.get_count()[0] > 700
    before = _collections()
    assert pyserver.Server.collect_out_of_band(server) == 1
    after = _collections()
    assert after[1] == before[1] + 1 and after[2] == before[2]
    assert pyserver.Server.collect_out_of_band(server) is None  # young count back at 0
    del keep


def test_oob_counts_only_what_outlived_the_call(gc_off):
    # what the docstring says: garbage freed by reference counting is not counted, garbage in cycles is
    server = SimpleNamespace(thresholds=(700, 10, 10))
    state = pyserver.WorkState()
    pyserver.work(state, {"alloc_objects": 20000})
    assert gc.get_count()[0] < 700
    assert pyserver.Server.collect_out_of_band(server) is None
    pyserver.work(state, {"alloc_objects": 2000, "cyclic_fraction": 1.0})
    assert gc.get_count()[0] > 700
    assert pyserver.Server.collect_out_of_band(server) == 0


def test_oob_with_threshold0_zero_never_collects(gc_off):
    # gc.set_threshold(0) turns CPython's automatic collection off; the emulation follows it
    keep = [[i] for i in range(2000)]
    before = _collections()
    assert pyserver.Server.collect_out_of_band(SimpleNamespace(thresholds=(0, 10, 10))) is None
    assert _collections() == before
    del keep
