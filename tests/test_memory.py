"""Memory, the other half of the trade: the watcher's RSS samples, each cell's memory record, the
pause-vs-memory table, and the large robust memory effects of a retained heap and of Go's GOGC."""

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from gcbench.gcmode import GcMode, parse_gc_mode
from gcbench.memory import (
    TIMELINE_POINTS,
    cell_memory,
    downsample_max,
    memory_table,
    runtime_heap,
    window_peak,
)
from gcbench.memwatch import MemoryWatch, Samples
from gcbench.runner import RunConfig, execute
from gcbench.scenario import Chain, Scenario, Server, Work
from gcbench.store import load_run

from .conftest import ready_backend

MIB = 1024 * 1024


# ---------------------------------------------------------------------------------------------- pure parts


def test_samples_buffer_stays_bounded_spans_the_cell_and_keeps_the_exact_peak():
    s = Samples(limit=8)
    for i in range(100):
        s.add(1_000 + i * 10, 5_000 if i == 37 else 100 + i)  # the peak at a sample decimation drops
    assert len(s.t_ns) < 8 and s.stride == 16 and s.offered == 100
    assert s.t_ns[0] == 1_000 and s.t_ns[-1] >= 1_000 + (100 - 16) * 10  # first to (nearly) last
    assert list(s.t_ns) == [1_000 + i * 10 for i in range(0, 100, 16)]  # every 16th: evenly spaced
    assert 5_000 not in s.rss and (s.peak_rss, s.peak_t_ns) == (5_000, 1_370)
    assert s.csv().decode().splitlines()[:2] == ["t_ns,rss_bytes", "1000,100"]


def test_downsample_keeps_each_time_buckets_largest_sample():
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.integers(5_000_000, 15_000_000, 10_000))
    rss = rng.integers(10, 20, 10_000) * MIB
    rss[4321] = 900 * MIB  # a one-sample spike
    td, rd = downsample_max(t, rss)
    assert len(td) <= TIMELINE_POINTS and (np.diff(td) > 0).all()
    assert 900 * MIB in rd and td[list(rd).index(900 * MIB)] == t[4321]
    edges = np.linspace(t[0], t[-1], TIMELINE_POINTS + 1)
    for x, y in zip(td, rd, strict=True):  # each point is the largest of its bucket
        b = min(np.searchsorted(edges, x, side="right") - 1, TIMELINE_POINTS - 1)
        in_bucket = (t >= edges[b]) & ((t < edges[b + 1]) if b < TIMELINE_POINTS - 1 else (t <= edges[-1]))
        assert y == rss[in_bucket].max()
    short_t, short_r = downsample_max(t[:50], rss[:50])
    assert (short_t == t[:50]).all() and (short_r == rss[:50]).all()


def test_window_peak_holds_the_level_from_before_the_window():
    t = np.array([0, 10, 20, 30, 40])
    rss = np.array([5, 50, 7, 8, 60])
    assert window_peak(t, rss, 12, 35) == 50  # 50 is resident from t=10 until the sample at 20
    assert window_peak(t, rss, 21, 29) == 7  # no sample inside: the level then
    assert window_peak(t, rss, 41, 50) == 60
    assert window_peak(t, rss, -20, -10) is None


def test_runtime_heap_copies_the_figures_and_counts_frozen_python_objects():
    stats = {"type": "stats", "runtime": "python", "tracked_objects": 120, "freeze_count": 1_000,
             "collections": [5, 1, 0], "gc_collected": [30, 0, 0], "python_version": "3.11.7", "gc_enabled": True,
             "max_rss_bytes": 20 * MIB, "heap_alloc_bytes": float("nan")}
    heap = runtime_heap(stats)
    assert heap == {"tracked_objects": 120, "freeze_count": 1_000, "collections": [5, 1, 0],
                    "gc_collected": [30, 0, 0], "max_rss_bytes": 20 * MIB, "python_objects": 1_120}
    assert runtime_heap({}) == {}


def _cell(backend, mode, rep, peak_mib, **heap):
    return {"backend": backend, "runtime": backend, "gc_mode": mode, "rep": rep, "status": "ok",
            "memory": {"status": "ok", "peak_rss_bytes": int(peak_mib * MIB),
                       "peak_rss_measured_bytes": int(peak_mib * MIB) - MIB, "watcher_cpu_share": 0.01,
                       "runtime_heap": runtime_heap(heap)}}


def _calls(backend, mode, rep, dead_ms_per_chain, chains=2, calls=3):
    rows = []
    for ch in range(chains):
        for c in range(calls):
            t = (ch * calls + c) * 10_000_000
            rows.append({"backend": backend, "gc_mode": mode, "rep": rep, "agent": 0, "chain": ch, "call": c,
                         "t_send_ns": t, "t_recv_ns": t + 5_000_000, "t_intended_ns": t, "latency_ns": 5_000_000,
                         "ok": True, "gc_overlap_ns": int(dead_ms_per_chain * 1e6) if c == 0 else 0})
    return rows


class _Run:
    def __init__(self, cells, calls):
        self.meta = {"cells": cells}
        self.calls = pd.DataFrame(calls)


def test_memory_table_sets_dead_time_against_peak_rss_within_each_backend():
    cells = [_cell("python", "default", 0, 100, tracked_objects=10, freeze_count=0),
             _cell("python", "default", 1, 110, tracked_objects=30, freeze_count=0),
             _cell("python", "disabled", 0, 300), _cell("python", "freeze", 0, 105),
             _cell("go", "default", 0, 40, heap_alloc_bytes=10 * MIB, heap_sys_bytes=20 * MIB, gc_cpu_fraction=0.1),
             _cell("go", "gogc:400", 0, 80, heap_alloc_bytes=30 * MIB, heap_sys_bytes=60 * MIB, gc_cpu_fraction=0.02),
             {"backend": "go", "runtime": "go", "gc_mode": "gogc:50", "rep": 0, "status": "ok"},  # made before memory
             {"backend": "go", "runtime": "go", "gc_mode": "memlimit:8", "rep": 0, "status": "failed"}]
    calls = (_calls("python", "default", 0, 4.0) + _calls("python", "default", 1, 2.0) + _calls("python", "disabled", 0, 0)
             + _calls("python", "freeze", 0, 1.0) + _calls("go", "default", 0, 0.5) + _calls("go", "gogc:400", 0, 0.25)
             + _calls("go", "gogc:50", 0, 1.0))
    t = memory_table(_Run(cells, calls))
    assert list(zip(t["backend"], t["gc_mode"], strict=True)) == [
        ("python", "default"), ("python", "disabled"), ("python", "freeze"), ("go", "default"), ("go", "gogc:400"),
        ("go", "gogc:50")]
    r = t.set_index(["backend", "gc_mode"])
    assert r.loc[("python", "default"), "reps"] == 2
    assert r.loc[("python", "default"), "peak_rss_mib"] == pytest.approx(105)
    assert (r.loc[("python", "default"), "peak_rss_min_mib"], r.loc[("python", "default"), "peak_rss_max_mib"]) == (100, 110)
    assert r.loc[("python", "default"), "dead_mean_ms"] == pytest.approx(3.0)
    assert r.loc[("python", "default"), "python_objects"] == pytest.approx(20)
    assert r.loc[("python", "disabled"), "peak_rss_vs_default"] == pytest.approx(300 / 105)
    assert r.loc[("python", "freeze"), "peak_rss_vs_off"] == pytest.approx(105 / 300)
    assert r.loc[("python", "freeze"), "dead_mean_vs_default"] == pytest.approx(1 / 3)
    assert r.loc[("go", "gogc:400"), "peak_rss_vs_default"] == pytest.approx(2.0)
    assert np.isnan(r.loc[("go", "gogc:400"), "peak_rss_vs_off"])  # no go/disabled cell: no GC-off ratio
    assert (r.loc[("go", "gogc:400"), "heap_used_mib"], r.loc[("go", "gogc:400"), "heap_total_mib"]) == (30, 60)
    assert r.loc[("go", "gogc:400"), "gc_cpu_fraction"] == pytest.approx(0.02)
    assert np.isnan(r.loc[("go", "gogc:50"), "peak_rss_mib"])  # not recorded: NaN, never a made-up figure
    assert r.loc[("go", "gogc:50"), "dead_mean_ms"] == pytest.approx(1.0)
    assert memory_table(_Run([], [])).empty


def test_cell_memory_without_a_watcher_says_so_and_keeps_the_heap_figures():
    rec = cell_memory(None, None, (0, 1), {"heap_used_bytes": 5})
    assert rec["status"] == "not measured" and "watcher" in rec["reason"]
    assert rec["runtime_heap"] == {"heap_used_bytes": 5}


# ---------------------------------------------------------------------------------------------- the watcher

GROW = """
import sys, time
blocks = []
for _ in range(20):
    blocks.append(b"\\x01" * (5 << 20))  # written: resident
    time.sleep(0.02)
sys.stdout.write("grown\\n"); sys.stdout.flush()
time.sleep(60)
"""


def _grower():
    proc = subprocess.Popen([sys.executable, "-c", GROW], stdout=subprocess.PIPE, start_new_session=True)
    return proc


def test_watcher_samples_a_growing_process_and_writes_its_samples_only_when_it_ends(tmp_path):
    proc = _grower()
    path = tmp_path / "s.rss.csv"
    try:
        watch = MemoryWatch(proc.pid, None, 0.01, path)
        assert watch.wait_ready()
        assert proc.stdout.readline() == b"grown\n"
        time.sleep(0.2)
        assert not path.exists()  # nothing written while the cell runs
        summary = watch.stop()
        assert proc.poll() is None  # no cap: sampling never stops the server
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert summary["samples_file"] and summary["over_cap"] is False and summary["interval_s"] == 0.01
    assert summary["peak_rss_bytes"] >= 100 * MIB  # 20 x 5 MiB written
    df = pd.read_csv(path)
    assert list(df.columns) == ["t_ns", "rss_bytes"] and len(df) == summary["samples"] == summary["kept"]
    assert (df["t_ns"].diff().dropna() > 0).all()
    assert df["rss_bytes"].iloc[0] < 60 * MIB < 100 * MIB <= df["rss_bytes"].iloc[-1]  # the growth is in the timeline
    assert df["rss_bytes"].max() == summary["peak_rss_bytes"]
    assert 0 < summary["cpu_ns"] < summary["wall_ns"]


def test_watcher_over_the_cap_still_writes_its_samples(tmp_path):
    proc = _grower()
    path = tmp_path / "s.rss.csv"
    try:
        watch = MemoryWatch(proc.pid, 50 * MIB, 0.01, path)
        proc.wait(timeout=30)  # killed by the watcher
        assert watch.verdict(2.0).startswith("stopped by gcbench: its processes used")
        summary = watch.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert summary["over_cap"] is True and summary["peak_rss_bytes"] > 50 * MIB
    assert pd.read_csv(path)["rss_bytes"].max() == summary["peak_rss_bytes"]


# ---------------------------------------------------------------------------------------------- real servers

TINY = Chain(calls=8, chains=3, warmup_calls=4)
HEAP_KEYS = {  # the runtime's own heap figures each built-in server must report
    "python": {"tracked_objects", "python_objects", "freeze_count", "collections", "gc_collected"},
    "node": {"heap_used_bytes", "heap_total_bytes"},
    "go": {"heap_alloc_bytes", "heap_sys_bytes", "num_gc", "gc_cpu_fraction"},
    "java": {"heap_used_bytes", "heap_committed_bytes"},
    "rust": set(),  # no GC heap: RSS only
}
BUILTIN = ["python", "python-sdk", "node", "go", "rust", "java"]


def _run(tmp_path, backends, modes, scenario, reps=1):
    config = RunConfig(scenario, backends, modes, tmp_path / "runs", reps=reps)
    result = execute(config, log=lambda msg: None)
    return load_run(result.path)


def test_every_builtin_server_cell_records_peak_rss_a_timeline_and_its_heap_figures(tmp_path):
    backends = []
    for name in BUILTIN:
        try:
            backends.append(ready_backend(name))
        except pytest.skip.Exception:
            continue  # an unavailable runtime is reported by its own tests
    assert {b.name for b in backends} >= {"python", "rust"}
    # the harness's own peak RSS well above any of these servers': getrusage's ru_maxrss, which Linux carries
    # across execve, would report it as the server's (VmHWM does not)
    ballast = b"\x01" * (400 * MIB)
    run = _run(tmp_path, backends, [GcMode("default")], Scenario(
        "mem", chain=TINY, work=Work(alloc_objects=2000, cyclic_fraction=0.2, payload_bytes=100)))
    del ballast
    cells = {c["backend"]: c for c in run.meta["cells"]}
    assert set(cells) == {b.name for b in backends}
    for name, c in cells.items():
        assert c["status"] == "ok", (name, c.get("reason"))
        mem = c["memory"]
        assert mem["status"] == "ok" and mem["rss_interval_ms"] == 10.0, name
        assert 1 * MIB < mem["peak_rss_bytes"] < 400 * MIB, name
        assert 0 < mem["peak_rss_measured_bytes"] <= mem["peak_rss_bytes"], name
        assert 0 < len(mem["rss_timeline"]["t_ms"]) == len(mem["rss_timeline"]["rss_bytes"]) <= TIMELINE_POINTS
        assert (run.path / mem["rss_samples_file"]).is_file()
        heap = mem["runtime_heap"]
        assert HEAP_KEYS[c["runtime"]] <= set(heap), (name, sorted(heap))
        # the server's own peak (VmHWM of its main process) agrees with the sampled peak of its tree
        assert 0.5 * mem["peak_rss_bytes"] < heap["max_rss_bytes"] < 1.5 * mem["peak_rss_bytes"] + 8 * MIB, name
    table = memory_table(run)
    assert len(table) == len(cells) and table["peak_rss_mib"].notna().all()


def _python_run(tmp_path, heap_objects):
    sc = Scenario("heap", chain=TINY, work=Work(alloc_objects=2000, cyclic_fraction=0.2, payload_bytes=100),
                  server=Server(heap_objects=heap_objects))
    return _run(tmp_path / str(heap_objects), [ready_backend("python")], [GcMode("default")], sc)


def test_a_large_retained_python_heap_shows_in_peak_rss(tmp_path):
    """Measured: 15.4 MiB without a start-up heap, 52.3 MiB with 300,000 objects (ratio 3.4)."""
    small_run = _python_run(tmp_path, 0)
    small = memory_table(small_run).iloc[0]
    big = memory_table(_python_run(tmp_path, 300_000)).iloc[0]
    assert big["peak_rss_mib"] > 2 * small["peak_rss_mib"]
    assert big["python_objects"] > small["python_objects"] + 250_000
    c = small_run.meta["cells"][0]  # and the samples span the measured window, from before its first call
    t_ns = pd.read_csv(small_run.path / c["memory"]["rss_samples_file"])["t_ns"]
    assert t_ns.iloc[0] <= c["t_measure_start_ns"] and c["memory"]["rss_samples"] >= 2


def test_go_gogc_400_trades_memory_for_fewer_collections_against_gogc_50(tmp_path):
    """Measured (3 reps, 300 calls of 20,000 objects): peak RSS 41.3 MiB at gogc:400 against 15.9 MiB at
    gogc:50 (2.6x), 12-14 collections against 114-124."""
    sc = Scenario("gogc", chain=Chain(calls=30, chains=5, warmup_calls=10),
                  work=Work(alloc_objects=20000, cyclic_fraction=0.2, payload_bytes=1024),
                  server=Server(heap_objects=200_000, heap_shape="lists"))  # measured with 2-lists
    run = _run(tmp_path, [ready_backend("go")], [parse_gc_mode("gogc:50"), parse_gc_mode("gogc:400")], sc)
    t = memory_table(run).set_index("gc_mode")
    assert t.loc["gogc:400", "peak_rss_mib"] > 1.5 * t.loc["gogc:50", "peak_rss_mib"]
    num_gc = {c["gc_mode"]: c["memory"]["runtime_heap"]["num_gc"] for c in run.meta["cells"]}
    assert num_gc["gogc:50"] > 2 * num_gc["gogc:400"]
