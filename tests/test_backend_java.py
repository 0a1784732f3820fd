"""The Java backend and the JVM log parser.

Parser tests read real lines OpenJDK 17.0.15 wrote (tests/fixtures/jvm_log: excerpts of logs taken with
`-Xlog:safepoint,gc,gc+phases:...:timenanos,uptimenanos,tid,level,tags`, or `gc*,safepoint*` for the
*-gc-star ones, under load from a small allocating program). Server tests run the real JVM; they are skipped
with the reason when there is no JDK 17+.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gcbench import analysis
from gcbench.backends import java as jb
from gcbench.backends.base import CellContext
from gcbench.backends.java import JavaBackend
from gcbench.errors import CellError, GcbenchError
from gcbench.gcmode import GcMode, parse_gc_mode
from gcbench.hiccup import Metered
from gcbench.probes import jvm_log
from gcbench.scenario import Chain, Scenario, Server, Work

FIXTURES = Path(__file__).parent / "fixtures" / "jvm_log"


def fixture(name: str) -> jvm_log.JvmLog:
    return jvm_log.parse_file(FIXTURES / name)


# ---------------------------------------------------------------------------------------------- the parser


def test_g1_pauses_are_safepoints_with_the_collectors_kind_and_heap():
    log = fixture("g1.log")
    assert log.collector == "g1" and log.collector_name == "G1"
    assert log.bad_lines == 0 and log.unmatched_pause_lines == 0 and log.dropped_messages == 0
    assert [e.kind for e in log.events] == ["young", "young", "young", "young", "remark", "young", "full",
                                            "young", "remark", "cleanup"]
    assert all(e.gc and e.stop_the_world for e in log.events)
    first = log.events[0]
    # [1725163649131ns] Safepoint "G1CollectForAllocation", ... Reaching safepoint: 3592 ns, ... Total: 7180690 ns
    assert first.end_ns - first.start_ns == 7180690
    assert first.end_ns <= 1725163649131 and first.operation == "G1CollectForAllocation"
    assert first.pause == "Pause Young (Normal) (G1 Evacuation Pause)" and first.gc_id == 0
    assert first.collector_pause_ns == 7_116_000  # the collector's own number, without reaching the safepoint
    assert (first.heap_before_bytes, first.heap_after_bytes, first.heap_capacity_bytes) == (20 << 20, 14 << 20,
                                                                                           160 << 20)
    # a young collection that ran out of space became a full one inside the same safepoint
    full = log.events[6]
    assert full.pause == "Pause Young (Normal) (G1 Evacuation Pause) + Pause Full (G1 Compaction Pause)"
    assert full.gc_id == 53 and full.heap_after_bytes == 81 << 20
    assert full.collector_pause_ns == 1_721_000 + 71_599_000
    assert log.events[4].operation == "G1PauseRemark" and log.events[9].operation == "G1PauseCleanup"
    assert log.gc_ids == {0, 9, 10, 11, 52, 53, 54, 284}


def test_zgc_pauses_the_early_pause_line_and_allocation_stalls():
    log = fixture("zgc.log")
    assert log.collector == "zgc" and log.collector_name == "The Z Garbage Collector"
    stw = [e for e in log.events if e.stop_the_world]
    assert [e.kind for e in stw] == ["mark-start", "mark-end", "relocate-start"]
    assert [e.operation for e in stw] == ["ZMarkStart", "ZMarkEnd", "ZRelocateStart"]
    # ZMarkStart: its pause line is logged at 1737683960814 (0.008 ms), the safepoint line at 1737684050807
    # with Reaching 5038, Cleanup 5900, Total 62954 ns: log time - Total would start the safepoint after its
    # own pause line, so the start comes from the pause line instead (the log line was written late)
    mark = stw[0]
    assert mark.start_ns == 1737683960814 - 8000 - 5038 - 5900
    assert mark.end_ns - mark.start_ns == 62954
    assert mark.collector_pause_ns == 8000 and mark.time_to_safepoint_ns == 5038
    # the other two: [log time - Total, log time]
    assert (stw[1].start_ns, stw[1].end_ns) == (1737858946795 - 73873, 1737858946795)
    stalls = [e for e in log.events if not e.stop_the_world]
    assert len(stalls) == 11 and all(e.gc and e.kind == "allocation-stall" and e.thread == "main" for e in stalls)
    big = max(stalls, key=lambda e: e.end_ns - e.start_ns)
    assert (big.start_ns, big.end_ns) == (1737861151146 - 183_569_000, 1737861151146)
    assert jvm_log.summary_stats(log)["allocation_stalls"] == 11


def test_shenandoah_parallel_serial_and_epsilon():
    sh = fixture("shenandoah.log")
    assert sh.collector == "shenandoah"
    assert [e.kind for e in sh.events] == ["init-mark", "final-mark", "init-update-refs", "final-update-refs",
                                           "degenerated"]
    assert sh.events[-1].operation == "ShenandoahDegeneratedGC"
    # a user's log with gc*,safepoint*: gc,start and phase lines are not pauses, stats lines are skipped
    par = fixture("parallel-gc-star.log")
    assert par.collector == "parallel" and par.bad_lines == 0
    assert [(e.kind, e.operation) for e in par.events] == [("young", "ParallelGCFailedAllocation"),
                                                           ("full", "ParallelGCSystemGC")]
    assert par.events[1].pause == "Pause Young (System.gc()) + Pause Full (System.gc())"
    ser = fixture("serial-gc-star.log")
    assert [(e.kind, e.operation) for e in ser.events] == [("young", "GenCollectForAllocation"),
                                                           ("young", "GenCollectForAllocation"),
                                                           ("full", "GenCollectFull")]
    eps = fixture("epsilon.log")
    assert eps.collector == "epsilon" and eps.gc_pauses == [] and eps.gc_ids == set()
    (cleanup,) = eps.events  # the JVM still stops, for something else than GC
    assert not cleanup.gc and cleanup.kind == "Cleanup" and cleanup.end_ns - cleanup.start_ns == 219745
    stats = jvm_log.summary_stats(eps)
    assert stats["gc_pauses"] == 0 and stats["num_gc"] == 0 and stats["safepoints_non_gc"] == 1


def test_dropped_async_messages_are_counted():
    log = fixture("dropped.log")
    assert log.dropped_messages == 1287 + 410 and log.collector == "serial"


def test_a_log_without_safepoint_lines_is_timed_by_its_pause_lines():
    lines = [
        "[100000000ns][5000ns][7][info][gc] Using G1",
        "[200000000ns][9000ns][7][info][gc] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 24M->3M(256M) 2.500ms",
        "[300000000ns][9500ns][7][info][gc] GC(1) Pause Remark 10M->10M(256M) 0.125ms",
    ]
    log = jvm_log.parse_lines(lines)
    assert [(e.kind, e.start_ns, e.end_ns, e.timing) for e in log.events] == [
        ("young", 200000000 - 2_500_000, 200000000, "gc-line"), ("remark", 300000000 - 125_000, 300000000, "gc-line")]
    assert log.unmatched_pause_lines == 0  # no safepoint lines at all: nothing was lost


def test_a_pause_line_of_a_lost_safepoint_is_kept_on_its_own_timing():
    lines = [
        "[100000000ns][9000ns][7][info][gc] GC(0) Pause Young (Normal) (G1 Evacuation Pause) 24M->3M(256M) 2.000ms",
        # the next safepoint starts 50 ms later: the pause line above is not in it (its own line was dropped)
        '[150100000ns][9500ns][7][info][safepoint] Safepoint "Cleanup", Time since last: 1 ns, '
        "Reaching safepoint: 1000 ns, Cleanup: 1000 ns, At safepoint: 1000 ns, Total: 100000 ns",
    ]
    log = jvm_log.parse_lines(lines)
    assert [(e.kind, e.gc, e.timing) for e in log.events] == [("young", True, "gc-line"), ("Cleanup", False,
                                                                                          "safepoint")]
    assert log.unmatched_pause_lines == 1


def test_timenanos_must_be_told_apart_from_uptimenanos():
    with pytest.raises(jvm_log.JvmLogError, match="timenanos and uptimenanos"):
        jvm_log.parse_lines(["[123456ns][info][gc] Using G1"])
    # lenient: the line is counted as bad, the rest is read
    log = jvm_log.parse_lines(["[123456ns][info][gc] Using G1"], strict_decorators=False)
    assert log.bad_lines == 1


@pytest.mark.parametrize("name, kind", [
    ("Pause Young (Normal) (G1 Evacuation Pause)", "young"),
    ("Pause Young (Concurrent Start) (G1 Humongous Allocation)", "young"),
    ("Pause Young (Mixed) (G1 Evacuation Pause)", "mixed"),
    ("Pause Full (System.gc())", "full"),
    ("Pause Remark", "remark"),
    ("Pause Mark Start", "mark-start"),
    ("Pause Init Mark (unload classes)", "init-mark"),
    ("Pause Degenerated GC (Mark)", "degenerated"),
])
def test_pause_kinds(name, kind):
    assert jvm_log.pause_kind(name) == kind


def test_side_channel_lines_and_the_merged_stats_record(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"type":"hiccup","runtime":"java","kind":"hiccup","generation":-1,"start_ns":1,"end_ns":2}\n'
                      '{"type":"stats","runtime":"java","pid":4242,"calls":9}\n')
    jvm_log.append_to_side_channel(FIXTURES / "epsilon.log", events)
    jvm_log.append_to_side_channel(FIXTURES / "g1.log", events)
    rows = [json.loads(line) for line in events.read_text().splitlines()]
    gc = [r for r in rows if r["type"] == "gc"]
    assert len(gc) == 10 and all(r["pid"] == 4242 and r["collector"] == "g1" and r["generation"] == -1 for r in gc)
    assert gc[0]["kind"] == "young" and gc[0]["operation"] == "G1CollectForAllocation"
    assert "heap_before_bytes" in gc[0] and "thread" not in gc[0]  # the log's -1 / "" fields are left out
    (other,) = [r for r in rows if r["type"] == "safepoint"]
    assert other["kind"] == "Cleanup" and other["collector"] == "epsilon"
    stats = rows[-1]
    assert stats["type"] == "stats" and stats["calls"] == 9 and stats["jvm_collector"] == "g1"
    assert stats["gc_pauses"] == 10 and stats["pause_max_ns"] == max(r["end_ns"] - r["start_ns"] for r in gc)


def test_xlog_options_keep_warnings_off_stdout():
    opts = jvm_log.xlog_options("/tmp/a b:c,d.log")
    assert opts[0] == "-Xlog:disable" and "stderr" in opts[1] and "-Xlog:async" in opts
    assert 'file="/tmp/a b:c,d.log"' in opts[3] and "timenanos,uptimenanos" in opts[3]
    with pytest.raises(ValueError):
        jvm_log.xlog_options('/tmp/"x".log')


# ---------------------------------------------------------------------------------------- adapter, no JVM


def test_modes_and_heap_flags(monkeypatch):
    assert parse_gc_mode("g1") == GcMode("g1") and parse_gc_mode("g1:512") == GcMode("g1", "512")
    for bad in ("heap", "g1:0", "zgc:x", "epsilon:"):
        with pytest.raises(GcbenchError):
            parse_gc_mode(bad)
    b = JavaBackend()
    reason = b.unsupported_reason(parse_gc_mode("disabled"))
    assert "not a JVM GC setting" in reason and "epsilon" in reason
    for mode in ("freeze", "oob", "gogc:100", "semi:16"):
        assert "not a JVM GC setting" in b.unsupported_reason(parse_gc_mode(mode))
    s = Scenario("t")
    assert jb.heap_flags(parse_gc_mode("default"), s) == []  # the JVM's own sizing
    # a named collector without a size: one fixed heap for all, sized from the scenario's live heap
    assert jb.heap_flags(parse_gc_mode("g1"), s) == jb.heap_flags(parse_gc_mode("zgc"), s) \
        == ["-Xms256m", "-Xmx256m", "-XX:+AlwaysPreTouch"]
    big_heap = Scenario("b", server=Server(heap_objects=3_000_000, heap_shape="records"))
    assert int(jb.heap_flags(parse_gc_mode("g1"), big_heap)[1][4:-1]) > 4 * 3_000_000 * 800 / (1 << 20)
    assert jb.heap_flags(parse_gc_mode("zgc:768"), s) == ["-Xms768m", "-Xmx768m", "-XX:+AlwaysPreTouch"]
    assert jb.heap_flags(parse_gc_mode("heap:256"), s) == ["-Xms256m", "-Xmx256m", "-XX:+AlwaysPreTouch"]
    # Epsilon frees nothing: its heap holds the whole cell's allocation, and grows with it
    small = jb.heap_flags(parse_gc_mode("epsilon"), Scenario("t", chain=Chain(calls=10, chains=2)))
    big = Scenario("t", chain=Chain(calls=50, chains=20), work=Work(alloc_objects=100_000),
                   server=Server(heap_objects=1_000_000, heap_shape="lists"))
    need_mib = (20 * 50 + 20) * 100_000 * 28 // (1 << 20)
    assert int(jb.heap_flags(parse_gc_mode("epsilon"), big)[1][4:-1]) > need_mib > int(small[1][4:-1]) / 100
    monkeypatch.setattr(jb, "physical_memory_bytes", lambda: 4 << 30)
    with pytest.raises(CellError, match="epsilon:N"):
        jb.heap_flags(parse_gc_mode("epsilon"), big)
    assert jb.heap_flags(parse_gc_mode("epsilon:1024"), big)[:2] == ["-Xms1024m", "-Xmx1024m"]


def test_missing_jdk_is_reported_with_the_fix(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    javac, _, reason = jb.jdk.__wrapped__()
    assert javac == "" and "javac" in reason and "JDK 17" in reason


def test_epsilon_is_the_java_gc_off_reference():
    present = {("java", "g1"), ("java", "epsilon"), ("rust", "default")}
    assert analysis.reference_cell("java", "g1", present) == ("java", "epsilon")  # not the rust control
    assert analysis.reference_cell("java+meter", "g1", present | {("java+meter", "epsilon")}) == \
        ("java+meter", "epsilon")
    assert analysis.reference_cell("go", "default", present | {("go", "disabled")}) == ("go", "disabled")
    assert analysis.OFF_MODES["java"] == jb.OFF_MODE == "epsilon"


# ---------------------------------------------------------------------------------------- the real JVM

ALLOC = {"alloc_objects": 50_000, "cyclic_fraction": 0.2, "payload_bytes": 10}  # ~1.4 MB of garbage per call


@pytest.fixture(scope="module")
def java_backend() -> JavaBackend:
    b = JavaBackend()
    avail = b.availability()
    if not avail.ok:
        pytest.skip(avail.reason)
    b.prepare(lambda msg: None)
    return b


def _ctx(tmp_path, transport="stdio"):
    return CellContext(tmp_path / "events.jsonl", tmp_path / "stderr.txt", transport=transport, timeout_s=60)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_cell(backend, tmp_path, mode, args, calls, heap_objects=0):
    """Start, make `calls` calls, flush, stop; returns (side-channel rows, t before start, t after stop)."""
    ctx = _ctx(tmp_path)
    t0 = time.monotonic_ns()
    scenario = Scenario("t", server=Server(heap_objects=heap_objects, heap_shape="lists"))
    handle = backend.start(parse_gc_mode(mode), scenario, ctx)
    try:
        handle.session.handshake("work")
        handle.session.control("gcbench/measure")
        for _ in range(calls):
            assert handle.session.request("tools/call", {"name": "work", "arguments": args})["result"]["isError"] \
                is False
        handle.session.control("gcbench/flush")
    finally:
        code = handle.stop()
    t1 = time.monotonic_ns()
    assert code == 0, (tmp_path / "stderr.txt").read_text()
    return _rows(ctx.events_path), t0, t1


def test_build_is_cached(java_backend):
    jar = java_backend.jar
    mtime_ns = jar.stat().st_mtime_ns
    again = JavaBackend()
    said = []
    again.prepare(said.append)
    assert again.jar == jar and jar.stat().st_mtime_ns == mtime_ns and said == []


def test_g1_pauses_come_from_the_jvm_log_on_the_harness_clock(java_backend, tmp_path, monkeypatch):
    # an option in the harness's environment must not change the collector (the adapter empties these)
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-XX:+UseSerialGC")
    rows, t0, t1 = run_cell(java_backend, tmp_path, "g1:64", ALLOC, 40)
    gc = [r for r in rows if r["type"] == "gc"]
    stats = rows[-1]
    assert stats["type"] == "stats" and stats["jvm_collector"] == "g1" and "-XX:+UseG1GC" in stats["jvm_args"]
    assert stats["heap_max_bytes"] == 64 << 20 and stats["calls"] == 40
    assert len(gc) >= 1 and stats["gc_pauses"] == len(gc)  # 56 MB of garbage through a 64 MiB heap
    assert stats["gc_bean_g1_young_generation_count"] >= 1
    for e in gc:
        assert e["runtime"] == "java" and e["collector"] == "g1" and e["stop_the_world"] is True
        assert e["kind"] in ("young", "mixed", "full", "remark", "cleanup") and e["operation"].startswith("G1")
        assert t0 <= e["start_ns"] < e["end_ns"] <= t1
        assert e["pid"] == stats["pid"]
    assert stats["jvm_log_bad_lines"] == 0 and stats["jvm_log_dropped_messages"] == 0
    assert (tmp_path / "events.jvm.log").stat().st_size > 0  # the raw log stays beside the side channel


def test_epsilon_never_collects(java_backend, tmp_path):
    rows, _, _ = run_cell(java_backend, tmp_path, "epsilon", ALLOC, 40)
    stats = rows[-1]
    assert [r for r in rows if r["type"] == "gc"] == []
    assert stats["jvm_collector"] == "epsilon" and stats["num_gc"] == 0 and stats["gc_pauses"] == 0
    assert "-XX:+UseEpsilonGC" in stats["jvm_args"]
    # the adapter sized the heap for the cell (Scenario("t"): 20 warm-up + 20 x 50 calls), not the default
    assert stats["heap_max_bytes"] == jb.epsilon_heap_mib(Scenario("t")) << 20


@pytest.mark.slow
def test_zgc_largest_pause_is_far_below_g1s_on_a_large_live_heap(java_backend, tmp_path):
    """Same heap size, same large live heap (1.5M start-up objects + a 200k-object cache that keeps changing):
    G1 copies the survivors in its pauses, ZGC moves objects concurrently and stops only for its roots."""
    args = {"alloc_objects": 20_000, "retain_objects": 10_000, "retain_cap": 300_000, "payload_bytes": 10}
    pauses = {}
    for mode in ("g1:512", "zgc:512"):
        cell_dir = tmp_path / mode.replace(":", "-")
        cell_dir.mkdir()
        rows, _, _ = run_cell(java_backend, cell_dir, mode, args, 400,
                              heap_objects=1_500_000)
        measure_ns = rows[-1]["measure_ns"]  # the calls only, as in a run's report (not the start-up heap)
        stw = [r["end_ns"] - r["start_ns"] for r in rows
               if r["type"] == "gc" and r["stop_the_world"] and r["start_ns"] >= measure_ns]
        assert stw, f"{mode}: no pauses"
        pauses[mode] = max(stw)
    print("largest stop-the-world pause (ns):", pauses)
    assert pauses["zgc:512"] * 5 < pauses["g1:512"], pauses


def test_timenanos_and_nanotime_are_clock_monotonic(java_backend, tmp_path):
    """The claim that timenanos (and System.nanoTime) is CLOCK_MONOTONIC: a forced GC, logged with timenanos,
    lies between two time.monotonic_ns() reads taken around the request that forced it."""
    src = tmp_path / "ForceGc.java"
    src.write_text(
        "public class ForceGc { public static void main(String[] a) throws Exception {\n"
        "  java.io.BufferedReader in = new java.io.BufferedReader(new java.io.InputStreamReader(System.in));\n"
        "  while (in.readLine() != null) { long t = System.nanoTime(); System.gc();\n"
        "    System.out.println(t + \" \" + System.nanoTime()); System.out.flush(); } } }\n")
    log = tmp_path / "clock.jvm.log"
    _, java, _ = jb.jdk()
    proc = subprocess.Popen([java, "-XX:+UseSerialGC", *jvm_log.xlog_options(log), str(src)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **{v: "" for v in jb.JVM_OPTION_VARS}})
    windows, stamps = [], []
    try:
        for _ in range(3):
            before = time.monotonic_ns()
            proc.stdin.write("gc\n")
            proc.stdin.flush()
            stamps.append(tuple(int(x) for x in proc.stdout.readline().split()))
            windows.append((before, time.monotonic_ns()))
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    full = [e for e in jvm_log.parse_file(log).gc_pauses if e.operation == "GenCollectFull"]
    assert len(full) == 3
    for (before, after), (n0, n1), e in zip(windows, stamps, full, strict=True):
        assert before <= n0 <= e.start_ns < e.end_ns <= n1 <= after, (before, n0, e, n1, after)
    # the windows are milliseconds wide, the clocks ruled out differ by far more: uptime starts at 0
    # (uptimenanos), CLOCK_REALTIME is ~1.7e18
    assert all(after - before < 5e9 for before, after in windows)


def _raw_server(backend, tmp_path, mode="default", env=None, transport="stdio"):
    spec = backend.launch_spec(parse_gc_mode(mode), Scenario("t"), _ctx(tmp_path, transport))
    full_env = {**os.environ, **spec.env, "GCBENCH_GC_MODE": mode, "GCBENCH_TRANSPORT": transport,
                "GCBENCH_EVENTS": str(tmp_path / "events.jsonl"), **(env or {})}
    return subprocess.Popen(spec.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=full_env), spec


def _ask(proc, line: bytes, timeout_s=30.0) -> bytes:
    proc.stdin.write(line + b"\n")
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, "no answer"
    return proc.stdout.readline().rstrip(b"\n")


def test_json_rpc_details_over_raw_stdio(java_backend, tmp_path):
    proc, _ = _raw_server(java_backend, tmp_path)
    try:
        for mid in ("7", "-3", "1.50e3", "12345678901234567890123", "null", '"s\\u00e9\\n"'):
            assert _ask(proc, b'{"jsonrpc":"2.0","id":' + mid.encode() + b',"method":"ping"}') == \
                b'{"jsonrpc":"2.0","id":' + (mid.encode() if mid[0] != '"' else '"s\u00e9\\n"'.encode()) + \
                b',"result":{}}'
        reply = json.loads(_ask(proc, rb'{"jsonrpc":"2.0","id":1,"method":"a\ud800b\ud83d\ude00"}'))
        assert reply["error"] == {"code": -32601, "message": "Method not found: a\ufffdb\U0001f600"}
        for bad in (b"not json", b'{"a":1,}', b"01", b'"\\x"', b"\xff\xfe", b"{} {}", b"[" * 100_000):
            assert json.loads(_ask(proc, bad)) == {"jsonrpc": "2.0", "id": None,
                                                   "error": {"code": -32700, "message": "Parse error"}}, bad
        assert json.loads(_ask(proc, b"[1]"))["error"]["code"] == -32600
        assert json.loads(_ask(proc, b'{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}'))["id"] == 2
        proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n\n  \n')
        assert json.loads(_ask(proc, b'{"jsonrpc":"2.0","id":11,"method":"ping"}'))["id"] == 11

        def call(args: str) -> dict:
            line = b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"work","arguments":' + \
                args.encode() + b"}}"
            return json.loads(_ask(proc, line))["result"]

        for args, named in {'{"alloc_objects":-1}': "alloc_objects", '{"payload_bytes":1.5}': "payload_bytes",
                            '{"cpu_iters":1e3}': "cpu_iters", '{"sleep_us":true}': "sleep_us",
                            '{"cyclic_fraction":1.01}': "cyclic_fraction", '{"bogus":1}': "bogus",
                            '{"alloc_objects":99999999999}': "cannot allocate",
                            '{"retain_objects":99999999999999999999}': "too large", "[]": "arguments"}.items():
            res = call(args)
            assert res["isError"] is True and named in res["content"][0]["text"], args
        assert call('{"payload_bytes":17,"cyclic_fraction":1,"cpu_iters":100,"sleep_us":50,"retain_objects":3}') \
            == {"content": [{"type": "text", "text": "x" * 17}], "isError": False}
        unknown = json.loads(_ask(proc, b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"x"}}'))
        assert unknown["error"]["code"] == -32602 and "x" in unknown["error"]["message"]
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        proc.stdout.close()
        proc.stderr.close()


def test_http_status_codes_keep_alive_and_sigterm_flush(java_backend, tmp_path):
    proc, _ = _raw_server(java_backend, tmp_path, transport="http")
    try:
        word, port = proc.stdout.readline().decode().split()
        assert word == "GCBENCH_LISTENING"
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)

        def post(body: bytes, path="/mcp", headers=None):
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type"), resp.read()

        ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
        for _ in range(3):  # one connection, several requests
            assert post(ping) == (200, "application/json", b'{"jsonrpc":"2.0","id":1,"result":{}}')
        assert post(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')[::2] == (202, b"")
        assert post(ping, path="/mcpx")[0] == 404
        assert post(ping, headers={"Origin": "http://evil.example"})[0] == 403
        assert post(ping, headers={"Origin": "http://localhost.evil.example"})[0] == 403
        assert post(ping, headers={"Origin": "http://localhost:5173"})[0] == 200
        status, _, body = post(b"{oops")
        assert status == 400 and json.loads(body)["error"]["code"] == -32700
        conn.request("GET", "/mcp")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 405 and resp.getheader("Allow") == "POST"
        big = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping", "params": {"pad": "y" * 300_000}}).encode()
        assert json.loads(post(big, headers={"Expect": "100-continue"})[2])["id"] == 9
        conn.close()
        proc.send_signal(signal.SIGTERM)  # the JVM runs the shutdown hook (flush), then exits 143
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert [r["type"] for r in _rows(tmp_path / "events.jsonl")] == ["stats"]


def test_a_heap_too_small_ends_the_server_with_the_reason_on_stderr(java_backend, tmp_path):
    """Epsilon frees nothing: a 32 MiB heap holds two 14 MB calls, not three. The JVM's own message goes to
    stderr (HotSpot prints it on stdout by default, which would break MCP over stdio)."""
    proc, _ = _raw_server(java_backend, tmp_path, mode="epsilon:32")
    call = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"work","arguments":{"alloc_objects":500000}}}'
    try:
        for _ in range(2):
            assert json.loads(_ask(proc, call))["result"]["isError"] is False
        proc.stdin.write(call + b"\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 3  # -XX:+ExitOnOutOfMemoryError
        assert proc.stdout.read() == b""
        stderr = proc.stderr.read()
        assert b"Terminating due to java.lang.OutOfMemoryError: Java heap space" in stderr
        assert b"epsilon frees nothing; heap 32 MiB" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_a_collector_other_than_the_mode_is_refused(java_backend, tmp_path):
    spec = java_backend.launch_spec(parse_gc_mode("zgc"), Scenario("t"), _ctx(tmp_path))
    argv = [a for a in spec.argv if a != "-XX:+UseZGC"]
    argv.insert(1, "-XX:+UseSerialGC")
    proc = subprocess.run(argv, input=b"", capture_output=True, timeout=60,
                          env={**os.environ, **spec.env, "GCBENCH_GC_MODE": "zgc"})
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"GC mode zgc but the JVM runs the collectors [Copy, MarkSweepCompact]" in proc.stderr


def test_the_hiccup_meter_and_the_jvm_log_both_reach_the_side_channel(java_backend, tmp_path):
    """With the meter on the backend is wrapped (Metered): the JVM log must still be parsed after exit."""
    metered = Metered(java_backend, hiccup_us=1000, floor_us=0)
    rows, t0, t1 = run_cell(metered, tmp_path, "g1:64", ALLOC, 40)
    stats = rows[-1]
    hiccups = [r for r in rows if r["type"] == "hiccup"]
    assert stats["hiccup_interval_us"] == 1000 and stats["hiccup_wakeups"] > 0
    assert hiccups and all(t0 <= r["start_ns"] <= r["end_ns"] <= t1 for r in hiccups)  # floor 0: every wake-up
    assert stats["gc_pauses"] > 0 and len([r for r in rows if r["type"] == "gc"]) == stats["gc_pauses"]


def test_shenandoah_runs_or_is_skipped_with_the_jvms_reason(java_backend):
    reason = java_backend.unsupported_reason(parse_gc_mode("shenandoah"))
    if reason is not None:
        assert "shenandoah" in reason and "UseShenandoahGC" in reason
    assert java_backend.unsupported_reason(parse_gc_mode("g1")) is None
    assert java_backend.unsupported_reason(parse_gc_mode("epsilon")) is None
