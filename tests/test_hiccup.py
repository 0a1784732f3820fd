"""The hiccup meter: every built-in server runs it on demand, the control process comes and goes cleanly, and a
hiccup is never counted as GC. Timing asserts are loose: the machine is shared and noisy."""

import json
import os
import time

import numpy as np
import pandas as pd
import pytest

from gcbench.analysis import attribute, gc_event_table, overlap_ns, summarize
from gcbench.backends import all_backends
from gcbench.backends.base import CellContext
from gcbench.gcmode import GcMode
from gcbench.hiccup import ControlProcess, Metered, control_binary, with_meter
from gcbench.hiccup_analysis import hiccup_table, meter_overhead_table, tail_breakdown
from gcbench.runner import events_frame, read_side_channel
from gcbench.scenario import Scenario, Server
from gcbench.store import load_run

from .conftest import ready_backend, run_cli

METERED = {"python": "python", "python-sdk": "python", "node": "node", "node-sdk": "node", "go": "go",
           "rust": "rust", "stall": "rust"}




def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("name", list(METERED))
def test_meter_writes_hiccups_and_stats(name, tmp_path):
    # floor 0: every late wake-up is an event, so some are certain on any machine
    backend = Metered(ready_backend(name), hiccup_us=1000, floor_us=0)
    ctx = CellContext(tmp_path / "events.jsonl", tmp_path / "stderr.log", timeout_s=60)
    handle = backend.start(GcMode("default"), Scenario("t"), ctx)
    try:
        s = handle.session
        s.handshake("work")
        s.control("gcbench/measure")
        for _ in range(5):
            s.request("tools/call", {"name": "work", "arguments": {"alloc_objects": 1000, "sleep_us": 3000}})
        time.sleep(0.1)  # idle: the meter wakes ~100 times
        s.control("gcbench/flush")
    finally:
        assert handle.stop() == 0
    events, stats, bad = read_side_channel(ctx.events_path)
    assert bad == 0
    hiccups = [e for e in events if e["type"] == "hiccup"]
    assert hiccups, f"{name}: no hiccup events"
    for e in hiccups:
        assert e["runtime"] == METERED[name] and e["kind"] == "hiccup" and e["generation"] == -1
        assert e["end_ns"] > e["start_ns"] and e["pid"] == handle.pid
    assert stats["hiccup_interval_us"] == 1000 and stats["hiccup_floor_us"] == 0
    assert 0 < stats["hiccup_count"] <= stats["hiccup_wakeups"]
    assert stats["hiccup_max_late_ns"] > 0 and stats["hiccup_dropped"] == 0
    if METERED[name] == "node":
        assert stats["eld_count"] > 0


@pytest.mark.parametrize("name", ["python", "rust"])
def test_no_meter_without_the_variable(name, tmp_path):
    ctx = CellContext(tmp_path / "events.jsonl", tmp_path / "stderr.log", timeout_s=60)
    handle = ready_backend(name).start(GcMode("default"), Scenario("t"), ctx)
    try:
        handle.session.handshake("work")
        time.sleep(0.05)
        handle.session.control("gcbench/flush")
    finally:
        handle.stop()
    events, stats, _ = read_side_channel(ctx.events_path)
    assert not [e for e in events if e["type"] == "hiccup"]
    assert "hiccup_wakeups" not in stats


def test_python_gen2_collections_show_as_hiccups(tmp_path):
    """A big heap's full collections hold the GIL for milliseconds: the meter thread wakes late across them."""
    backend = Metered(ready_backend("python"), hiccup_us=1000)
    ctx = CellContext(tmp_path / "events.jsonl", tmp_path / "stderr.log", timeout_s=60)
    scenario = Scenario("t", server=Server(heap_objects=300_000, heap_shape="lists"))
    handle = backend.start(GcMode("default"), scenario, ctx)
    grow = {"alloc_objects": 1000, "retain_objects": 60_000}  # long-lived growth: full collections follow
    try:
        s = handle.session
        s.handshake("work")  # answered after the start-up heap is built and the meter started
        t_ready_ns = time.monotonic_ns()
        s.control("gcbench/measure")
        for _ in range(12):
            s.request("tools/call", {"name": "work", "arguments": grow})
        s.control("gcbench/flush")
    finally:
        handle.stop()
    events, _, _ = read_side_channel(ctx.events_path)
    gen2 = [e for e in events if e["type"] == "gc" and e["generation"] == 2 and e["start_ns"] > t_ready_ns
            and e["end_ns"] - e["start_ns"] > 3e6]
    if not gen2:
        pytest.skip("no full collection longer than 3 ms happened (a very fast machine)")
    hic = [e for e in events if e["type"] == "hiccup"]
    covered = overlap_ns(np.array([e["start_ns"] for e in gen2]), np.array([e["end_ns"] for e in gen2]),
                         np.array([e["start_ns"] for e in hic], np.int64), np.array([e["end_ns"] for e in hic], np.int64))
    # the meter sleeps 1 ms, so all but about its last interval of each long collection is covered
    assert (covered > 0).all(), "a full collection with no hiccup over it"
    total = sum(e["end_ns"] - e["start_ns"] for e in gen2)
    assert covered.sum() > 0.5 * total


def test_control_process_runs_and_leaves_nothing(tmp_path):
    binary, reason = control_binary(lambda msg: None)
    if binary is None:
        pytest.skip(reason)
    ctl = ControlProcess(binary, tmp_path / "c.jsonl", tmp_path / "c.err", hiccup_us=1000, floor_us=0)
    time.sleep(0.2)
    assert ctl.stop() == 0
    assert _gone(ctl.pid)
    events, stats, bad = read_side_channel(tmp_path / "c.jsonl")
    assert bad == 0 and stats["control"] is True and stats["num_gc"] == 0
    assert stats["hiccup_wakeups"] > 10 and stats["hiccup_count"] >= len(events) > 0
    assert all(e["type"] == "hiccup" for e in events)
    assert (tmp_path / "c.err").read_text() == ""

    # SIGTERM: it flushes and exits 0 as well
    ctl = ControlProcess(binary, tmp_path / "t.jsonl", tmp_path / "t.err", hiccup_us=1000)
    time.sleep(0.1)
    os.kill(ctl.pid, 15)
    ctl.proc.wait(timeout=10)
    assert ctl.stop() == 0 and _gone(ctl.pid)
    assert read_side_channel(tmp_path / "t.jsonl")[1]["control"] is True


def test_with_meter_variants():
    py = next(b for b in all_backends() if b.name == "python")
    inproc = next(b for b in all_backends() if b.name == "inproc")
    assert with_meter([py, inproc], 0) == [py, inproc]
    on = with_meter([py, inproc], 1000)
    assert [b.name for b in on] == ["python", "inproc"] and on[0] is not py and on[1] is inproc
    both = with_meter([py, inproc], 500, overhead=True)
    assert [b.name for b in both] == ["python", "python+meter", "inproc"]
    spec = both[1].launch_spec(GcMode("default"), Scenario("t"), None)
    assert spec.env["GCBENCH_HICCUP_US"] == "500" and spec.argv == py.launch_spec(GcMode("default"), Scenario("t"), None).argv


# ---------------------------------------------------------------------------------------------- analysis

MS = 1_000_000


def _cell(n_calls=100, slow_ms=10):
    """One cell of 1 ms calls back to back, call 50 taking `slow_ms`."""
    lat = np.full(n_calls, 1 * MS)
    lat[50] = slow_ms * MS
    send = 1_000 * MS + np.concatenate(([0], np.cumsum(lat)[:-1]))
    return pd.DataFrame({"backend": "python", "gc_mode": "default", "rep": 0, "chain": 0, "call": np.arange(n_calls),
                         "t_send_ns": send, "t_recv_ns": send + lat, "t_intended_ns": send - 20_000,
                         "latency_ns": lat, "ok": True, "gc_overlap_ns": 0})


def _events(calls, spec):
    """spec: (source, type, start ms after call 50's send, length ms)."""
    t0 = int(calls["t_send_ns"].iloc[50])
    rows = [{"backend": "python", "gc_mode": "default", "rep": 0, "source": src, "type": typ, "runtime": "python",
             "kind": typ if typ != "gc" else "gen2", "generation": 2 if typ == "gc" else -1,
             "start_ns": t0 + int(a * MS), "end_ns": t0 + int((a + d) * MS), "duration_ns": int(d * MS),
             "collected": 0, "measured": True} for src, typ, a, d in spec]
    return pd.DataFrame(rows)


def test_hiccups_are_never_gc_dead_time():
    calls = _cell()
    events = _events(calls, [("server", "hiccup", 0, 8), ("control", "hiccup", 0, 8)])
    assert (attribute(calls, events) == 0).all()
    calls["gc_overlap_ns"] = attribute(calls, events)
    s = summarize(calls, events, calls_per_chain=100, n_boot=50)
    assert s["gc_events"].iloc[0] == 0 and s["dead_max_ms"].iloc[0] == 0 and s["pause_max_ms"].iloc[0] == 0
    assert len(gc_event_table(events)) == 0
    # with a real GC event beside them, only the GC event counts
    events = _events(calls, [("server", "gc", 1, 2), ("server", "hiccup", 0, 8), ("control", "hiccup", 0, 8)])
    got = attribute(calls, events)
    assert got[50] == 2 * MS and got.sum() == 2 * MS


def test_tail_breakdown_nested_unions():
    calls = _cell()
    # GC 3 ms; server hiccup 4 ms overlapping the GC by 1 ms (3 ms new); control hiccup 2 ms apart (2 ms new)
    events = _events(calls, [("server", "gc", 1, 3), ("server", "hiccup", 3, 4), ("control", "hiccup", 7.5, 2),
                             ("client", "gc", 0, 10)])
    t = tail_breakdown(calls, events)
    r = t.iloc[0]
    assert r.tail_calls == 1 and r.tail_mean_ms == pytest.approx(10)
    assert (r.tail_gc_ms, r.tail_hiccup_ms, r.tail_machine_ms, r.tail_other_ms) == pytest.approx((3, 3, 2, 2))
    assert r.tail_gc_share == pytest.approx(0.3) and r.latency_p50_ms == pytest.approx(1)


def test_hiccup_table_counts_and_client_lag():
    calls = _cell()
    events = _events(calls, [("server", "hiccup", 0, 1), ("server", "hiccup", 2, 3), ("control", "hiccup", 0, 0.5),
                             ("server", "gc", 0, 5)])
    events.loc[1, "measured"] = False  # outside the window: not counted
    h = hiccup_table(calls, events).iloc[0]
    assert h.server_hiccups == 1 and h.server_max_ms == pytest.approx(1)
    assert h.control_hiccups == 1 and h.control_max_ms == pytest.approx(0.5)
    assert h.window_s == pytest.approx(0.109) and h.server_per_s == pytest.approx(1 / 0.109)
    assert h.client_lag_p99_ms == pytest.approx(0.02) and h.client_lag_max_ms == pytest.approx(0.02)


def test_meter_overhead_table():
    off, on = _cell(), _cell()
    on["backend"] = "python+meter"
    on["latency_ns"] = on["latency_ns"] * 11 // 10
    o = meter_overhead_table(pd.concat([off, on], ignore_index=True))
    assert list(o["backend"]) == ["python"]
    assert o["p50_change"].iloc[0] == pytest.approx(0.1) and o["calls_on"].iloc[0] == 100
    assert len(meter_overhead_table(off)) == 0


def test_events_frame_marks_control_source():
    df = events_frame([{"type": "hiccup", "start_ns": 5, "end_ns": 9}], [], "rust", "default", 0, (0, 100),
                      control=[{"type": "hiccup", "start_ns": 200, "end_ns": 300}])
    assert list(df["source"]) == ["server", "control"] and list(df["measured"]) == [True, False]


# ---------------------------------------------------------------------------------------------- end to end


def test_run_with_meter_overhead_and_control(tiny_scenario, tmp_path):
    if next(b for b in all_backends() if b.name == "rust").availability().ok is False:
        pytest.skip("no rustc: no control process")
    out = tmp_path / "runs"
    r = run_cli("run", "-s", str(tiny_scenario), "-b", "python", "-g", "default", "--meter-overhead",
                "--hiccup-floor-us", "0", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "Hiccups (meter wakes every 1000 us" in r.stdout and "Meter overhead" in r.stdout
    assert "python+meter" in r.stdout
    run = load_run(next(out.iterdir()))
    assert run.meta["config"]["hiccup_us"] == 1000 and run.meta["config"]["meter_overhead"] is True
    cells = {c["backend"]: c for c in run.meta["cells"]}
    assert cells["python"]["hiccup_us"] == 0 and cells["python+meter"]["hiccup_us"] == 1000
    for c in cells.values():
        assert c["control"]["exit_code"] == 0 and c["control"]["stats"]["control"] is True
        assert _gone(c["control"]["pid"])
    ev = run.gc_events
    kinds = set(zip(ev["backend"], ev["source"], ev["type"], strict=True))
    assert ("python+meter", "server", "hiccup") in kinds and ("python", "server", "hiccup") not in kinds
    assert {("python", "control", "hiccup"), ("python+meter", "control", "hiccup")} <= kinds
    # the GC columns of the summary ignore them
    assert run.calls["gc_overlap_ns"].sum() == attribute(run.calls, ev[ev["type"] == "gc"]).sum()
    rep = run_cli("report", str(run.path), "--format", "text")
    assert rep.returncode == 0 and "Slowest 1% of calls" in rep.stdout
    js = run_cli("report", str(run.path), "--format", "json")
    assert js.returncode == 0 and json.loads(js.stdout)
