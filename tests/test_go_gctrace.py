"""GODEBUG=gctrace=1 lines: parsing real captured lines, the printed precision, and the split of a Go cycle's summed
stop-the-world time into its two phases, each attributed to the call it really fell in."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from gcbench.analysis import attribute, gc_event_table, measured_server_events, stats_warnings, summarize
from gcbench.probes.go_gctrace import MsValue, parse_line, parse_log, parse_ms, place_cycles, split_cycle
from gcbench.report.model import build_report
from gcbench.store import load_run
from tests.synthetic import constant_cell, write_run

# Captured from the gcbench Go server on go1.27.3 (2 cores): 3M live objects, GOGC=100; the oob mode's forced
# collection; a tiny heap under memlimit:8.
REAL_LINES = [
    "gc 15 @2.122s 21%: 0.20+97+0.004 ms clock, 0.40+5.1/45/67+0.009 ms cpu, 138->153->87 MB, 163 MB goal, "
    "0 MB stacks, 0 MB globals, 2 P",
    "gc 1 @0.062s 13%: 0.26+61+0.012 ms clock, 0.53+0/34/83+0.025 ms cpu, 71->71->68 MB, 8532210231534 MB goal, "
    "0 MB stacks, 0 MB globals, 2 P (forced)",
    "gc 2 @0.006s 23%: 0.25+2.4+0.004 ms clock, 0.50+1.9/0.17/0.22+0.008 ms cpu, 2->2->2 MB, 2 MB goal, "
    "0 MB stacks, 0 MB globals, 2 P",
]
# Built from go1.27.3's print statement (gcMarkTermination): the goroutine-leak note before the colon.
LEAK_NOTE_LINE = ("gc 7 @10.500s 2% (checking for goroutine leaks): 0.031+12+0.045 ms clock, 0.12+0.5/11/20+0.18 ms "
                  "cpu, 4->5->2 MB, 5 MB goal, 0 MB stacks, 0 MB globals, 4 P")


def fmt_ns_as_ms(ns: int) -> str:
    """The runtime's fmtNSAsMS and itoaDiv (runtime/mgc.go), transcribed: what gctrace prints for ns."""
    if ns >= 10_000_000:
        return str(ns // 1_000_000)
    x = ns // 1_000
    if x == 0:
        return "0"
    dec = 3
    while x >= 100:
        x //= 10
        dec -= 1
    digits = str(x).rjust(dec + 1, "0")
    return f"{digits[:-dec]}.{digits[-dec:]}" if dec else digits


@pytest.mark.parametrize("text,lo_ns,width_ns", [
    ("44", 44_000_000, 1_000_000), ("4.4", 4_400_000, 100_000), ("0.45", 450_000, 10_000),
    ("0.063", 63_000, 1_000), ("0.004", 4_000, 1_000), ("0", 0, 1_000), ("244", 244_000_000, 1_000_000),
])
def test_parse_ms(text, lo_ns, width_ns):
    assert parse_ms(text) == MsValue(lo_ns, width_ns)


def test_every_printed_value_is_an_interval_holding_the_true_value():
    rng = random.Random(7)
    values = [rng.randrange(0, 10 ** rng.randrange(1, 10)) for _ in range(20_000)] + [999, 1_000, 9_999_999, 10**7]
    for ns in values:
        v = parse_ms(fmt_ns_as_ms(ns))
        assert v.lo_ns <= ns < v.hi_ns, (ns, fmt_ns_as_ms(ns), v)
        assert v.width_ns <= max(1_000, ns // 9)  # two significant digits, or whole ms at 10 ms and above


def test_parse_real_lines():
    big, forced, tiny = (parse_line(x) for x in REAL_LINES)
    assert big.cycle == 15 and big.cpu_percent == 21 and not big.forced and big.procs == 2
    assert big.start_ns == MsValue(2_122_000_000, 1_000_000)
    assert (big.sweep_termination, big.mark, big.mark_termination) == (
        MsValue(200_000, 10_000), MsValue(97_000_000, 1_000_000), MsValue(4_000, 1_000))
    assert (big.heap_start_mb, big.heap_marked_end_mb, big.heap_live_mb, big.heap_goal_mb) == (138, 153, 87, 163)
    assert forced.forced and forced.cycle == 1 and forced.heap_goal_mb == 8532210231534
    assert tiny.mark == MsValue(2_400_000, 100_000)
    leak = parse_line(LEAK_NOTE_LINE)
    assert leak.cycle == 7 and leak.mark == MsValue(12_000_000, 1_000_000) and leak.procs == 4


def test_parse_log_counts_damaged_lines_only(tmp_path):
    log = tmp_path / "stderr.log"
    log.write_text("\n".join([REAL_LINES[2], "GC forced", "gcbench go server: cannot write events: x",
                              REAL_LINES[0], "gc 16 @2.3s 21%: 0.20+9"]) + "\n")  # the last one cut off
    cycles, damaged = parse_log(log)
    assert sorted(cycles) == [2, 15] and damaged == 1
    assert parse_log(tmp_path / "missing.log") == ({}, 0)


END_NS = 7_123_456_789_013  # an odd clock start: nothing may rely on zero


def test_split_cycle_exact():
    # cycle 15 above, with its real PauseNs (203748 ns): a little less than the printed phases allow, by the few
    # hundred ns between tSweepTerm / tMarkTerm and the start of stopping the world
    p = split_cycle(END_NS, 203_748, parse_line(REAL_LINES[0]))
    mark_term_ns = (4_000 + 3_748) // 2  # the middle of what 0.004 ms and 203748 - 0.20 ms allow
    assert p.mark_term_end_ns == END_NS and p.mark_term_start_ns == END_NS - mark_term_ns
    assert p.sweep_end_ns == END_NS - mark_term_ns - 97_500_000  # the middle of the printed "97" ms of mark
    assert p.sweep_end_ns - p.sweep_start_ns == 203_748 - mark_term_ns
    assert p.position_error_ns == 500_000 + p.split_error_ns and p.split_error_ns <= 200


def test_split_cycle_refuses_a_line_of_another_cycle():
    assert split_cycle(END_NS, 2_000_000, parse_line(REAL_LINES[0])) is None  # 2 ms cannot be 0.20 + 0.004 ms


def stw_cycle(cycle: int, end_ns: int, pause_ns: int) -> dict:
    return {"type": "gc", "runtime": "go", "kind": "stw_cycle", "generation": -1, "start_ns": end_ns - pause_ns,
            "end_ns": end_ns, "pause_ns": pause_ns, "cycle": cycle, "pid": 1}


def test_place_cycles():
    other = {"type": "gc", "runtime": "go", "kind": "oob-collect", "generation": -1, "start_ns": 1, "end_ns": 2}
    events = [stw_cycle(15, END_NS, 203_748), stw_cycle(16, END_NS + 10**9, 150_000), other]
    out, summary = place_cycles(events, {15: parse_line(REAL_LINES[0])})
    assert [(e["type"], e["kind"]) for e in out] == [
        ("gc", "sweep_termination"), ("gc", "mark_termination"), ("gc_unplaced", "stw_cycle"), ("gc", "oob-collect")]
    assert out[0]["pause_ns"] + out[1]["pause_ns"] == 203_748 and out[0]["cycle"] == out[1]["cycle"] == 15
    assert out[2] == {**events[1], "type": "gc_unplaced"} and out[3] is other
    assert summary["cycles"] == 2 and summary["placed"] == 1 and summary["unplaced_no_line"] == 1
    assert summary["unplaced_pause_ns"] == 150_000 and summary["sweep_position_error_max_ns"] > 500_000
    assert 97_000_000 < summary["phase_gap_p50_ns"] < 98_000_000


def events_frame(events: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(events).assign(backend="go", gc_mode="default", rep=0, source="server", collected=-1,
                                     measured=True)
    return df.assign(duration_ns=df["end_ns"] - df["start_ns"])


def test_each_phase_is_charged_to_the_call_it_fell_in():
    """The defect: the summed pause, placed as one interval at mark termination, charged the sweep termination
    (97 ms earlier) to the call running at mark termination. Each phase now delays its own call."""
    placed, _ = place_cycles([stw_cycle(15, END_NS, 203_748)], {15: parse_line(REAL_LINES[0])})
    sweep, mark = placed
    calls = pd.DataFrame({"backend": "go", "gc_mode": "default", "rep": 0,  # 10 ms calls around each phase
                          "t_send_ns": [sweep["start_ns"] - 5_000_000, mark["start_ns"] - 5_000_000],
                          "t_recv_ns": [sweep["end_ns"] + 5_000_000, mark["end_ns"] + 5_000_000]})
    got = attribute(calls, events_frame(placed))
    assert list(got) == [sweep["pause_ns"], mark["pause_ns"]]
    assert got[0] > 190_000 and got[1] < 10_000
    # the per-kind table and "largest pause" see single phases, never the cycle's sum
    t = gc_event_table(events_frame(placed)).set_index("kind")
    assert set(t.index) == {"sweep_termination", "mark_termination"}
    assert t.loc["sweep_termination", "pause_max_ms"] == pytest.approx(sweep["pause_ns"] / 1e6)


def test_unplaced_cycles_stay_out_of_attribution_and_pause_tables():
    placed, _ = place_cycles([stw_cycle(16, END_NS, 150_000)], {})
    ev = events_frame(placed)
    calls = pd.DataFrame({"backend": "go", "gc_mode": "default", "rep": 0, "t_send_ns": [END_NS - 10**6],
                          "t_recv_ns": [END_NS + 10**6]})
    assert list(attribute(calls, ev)) == [0]
    assert len(measured_server_events(ev)) == 0


def test_stats_warnings():
    assert stats_warnings([{"clock_steps": 0, "clock_step_max_ns": 400}, {}]) == []
    (w,) = map(str, stats_warnings([{"clock_steps": 1, "clock_step_max_ns": 5_000_000_000}, {"clock_steps": 2}]))
    assert "stepped 3 time(s)" in w and "largest 5000 ms" in w
    (w,) = map(str, stats_warnings([{"stw_phases": {"unplaced_no_line": 2, "unplaced_mismatch": 1,
                                                    "unplaced_pause_ns": 450_000}}]))
    assert w.startswith("3 GC cycle(s) could not be split") and "0.45 ms" in w


def test_clock_step_warning_reaches_the_report(tmp_path):
    run = load_run(write_run(tmp_path / "runs", [constant_cell("go", "default", 1_000_000)]))
    assert build_report(run, n_boot=10).summary["warnings"].iloc[0] == []
    run.meta["cells"][0]["stats"] = {"clock_steps": 1, "clock_step_max_ns": 2_500_000}
    (w,) = map(str, build_report(run, n_boot=10).summary["warnings"].iloc[0])
    assert "wall clock stepped 1 time(s) (largest 2.5 ms)" in w
    summary = summarize(run.calls, run.gc_events, 5, n_boot=10, cells=[{**run.meta["cells"][0], "status": "failed"}])
    assert summary["warnings"].iloc[0] == []  # only measured cells count

