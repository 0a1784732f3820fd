"""What servers write beside MCP (issue 16): a flooded stderr is capped (head and tail kept), a side channel
over its cap fails its cell as incomplete, and malformed side-channel lines are dropped and counted while the
cell's calls stay (a hypothesis fuzz test over the reader). Memory per side-channel event is bounded.
"""

from __future__ import annotations

import json
import re
import subprocess
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gcbench
from gcbench.errors import CellError

from .faultkit import FAULT_SCENARIO, assert_no_orphans, new_marker, only_run_folder, run_gcbench
from .test_faults_store import MIB, execute_in_process, output_fault_cmd


@pytest.fixture
def scenario(tmp_path):
    p = tmp_path / "faults.toml"
    p.write_text(FAULT_SCENARIO)  # 3 chains x 5 calls, no warm-up
    return p

# ---------------------------------------------------------------------------------------------- 2. caps


def test_head_tail_log_keeps_both_ends_and_counts_the_middle(tmp_path):
    from gcbench.output_guard import HeadTail

    log = HeadTail(tmp_path / "err.log", head_bytes=100, tail_bytes=50)
    data = bytes(range(256)) * 40  # 10240 bytes
    for i in range(0, len(data), 7):
        log.write(data[i:i + 7])
    assert log.dropped == len(data) - 150
    assert log.last_bytes(20) == data[-20:]
    log.close()
    text = (tmp_path / "err.log").read_bytes()
    assert text.startswith(data[:100]) and text.endswith(data[-50:])
    assert f"[gcbench: {len(data) - 150} bytes dropped here".encode() in text
    assert len(text) < 150 + 200


def test_a_server_flooding_stderr_is_capped_and_its_cell_kept(tmp_path, scenario):
    marker = new_marker()
    out = tmp_path / "runs"
    proc = run_gcbench(["run", "-s", str(scenario), "--server-cmd", output_fault_cmd("stderr-flood"), "-g", "default",
                        "-o", str(out)], marker, FLOOD_BYTES=str(MIB))
    assert_no_orphans(marker)
    assert proc.returncode == 0, proc.stderr
    run = gcbench.load(only_run_folder(out))
    (cell,) = run.meta["cells"]
    assert cell["status"] == "ok" and len(run.calls) == 15
    assert cell["stderr_dropped_bytes"] == 15 * MIB - 2 * MIB  # 1 MiB per call; the first and last MiB kept
    log = run.path / "cells" / "custom__default__r0.stderr.log"
    assert 2 * MIB <= log.stat().st_size < 2 * MIB + 200
    assert b"bytes dropped here" in log.read_bytes()


def test_a_side_channel_over_the_cap_fails_its_cell_as_incomplete(tmp_path, scenario, monkeypatch):
    from gcbench import output_guard

    monkeypatch.setattr(output_guard, "SIDE_CHANNEL_MAX_BYTES", 2 * MIB)
    monkeypatch.setenv("FLOOD_BYTES", str(MIB))
    result = execute_in_process(scenario, tmp_path / "runs", output_fault_cmd("side-flood"), backends=())
    (cell,) = result.meta["cells"]
    assert cell["status"] == "failed"
    assert re.search(r"GC side channel .*over the cap of 2 MiB \(its GC events would be incomplete\)", cell["reason"])


def test_the_guard_stops_a_server_whose_side_channel_passes_the_cap(tmp_path):
    from gcbench.output_guard import OutputGuard

    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen(["sleep", "30"], stderr=subprocess.PIPE, start_new_session=True)
    guard = OutputGuard(tmp_path / "err.log", events, side_channel_max_bytes=MIB)
    guard.start(proc.stderr, proc.pid)
    try:
        events.write_bytes(b"x" * (2 * MIB))
        assert proc.wait(timeout=10) == -9
        assert "its GC events would be incomplete" in guard.verdict
    finally:
        if proc.poll() is None:
            proc.kill()
        guard.close()


# ---------------------------------------------------------------------------------------------- 9/10. side channel


def _lines(*recs) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in recs)


GOOD = {"type": "gc", "runtime": "python", "kind": "gen0", "generation": 0, "start_ns": 10, "end_ns": 20,
        "collected": 3, "new_field": 1.5, "nested": {"dropped": [1]}}


def test_malformed_side_channel_lines_are_dropped_and_counted(tmp_path):
    from gcbench.runner import read_side_channel

    path = tmp_path / "events.jsonl"
    path.write_bytes(_lines(
        GOOD,
        b"[" * 100_000,  # RecursionError in json
        {"type": "gc", "start_ns": 2**70, "end_ns": 2**70 + 1},  # over int64
        {"type": "gc", "start_ns": 30, "end_ns": 20},  # ends before it starts
        {"type": "gc", "start_ns": 30},  # no end
        {"type": "gc", "start_ns": 1, "end_ns": 2, "collected": None},
        {"type": "gc", "start_ns": 1, "end_ns": 2, "kind": "k" * 1000},
        [1, 2], 7, b"\xff\xfe not utf-8", b"{" + b" " * (1 << 17) + b"}",  # over MAX_LINE_BYTES
        {"type": "stats", "num_gc": 1, "extra": {"deep": [1, 2]}},
        {"type": "a-future-record"},  # skipped, not counted: new probes may write new kinds of records
        {"type": "hiccup", "start_ns": 40, "end_ns": 50, "kind": 3},
    ) + b'{"type": "gc", "start_ns": 5')  # a last line cut short
    events, stats, bad = read_side_channel(path)
    assert bad == 11
    assert stats == {"type": "stats", "num_gc": 1, "extra": {"deep": [1, 2]}}
    assert events == [{k: v for k, v in GOOD.items() if k != "nested"},
                      {"type": "hiccup", "start_ns": 40, "end_ns": 50, "kind": "3"}]


def test_a_bad_side_channel_line_keeps_the_cells_calls(tmp_path, scenario):
    result = execute_in_process(scenario, tmp_path / "runs", output_fault_cmd("side-garbage", 2), backends=())
    (cell,) = result.meta["cells"]
    assert cell["status"] == "ok", cell.get("reason")
    assert cell["side_channel_bad_lines"] == 6
    run = gcbench.load(result.path)
    assert len(run.calls) == 15 and run.calls["ok"].all()
    server = run.gc_events[(run.gc_events["source"] == "server") & (run.gc_events["duration_ns"] == 1000)]
    assert len(server) == 2  # the two well-formed events written with the garbage


def test_side_channel_memory_per_event_is_bounded(tmp_path):
    from gcbench.runner import read_side_channel

    line = json.dumps({"type": "gc", "runtime": "python", "kind": "gen0", "generation": 0, "start_ns": 10**15,
                       "end_ns": 10**15 + 10**5, "collected": 12, "uncollectable": 0, "pid": 12345}).encode()
    path = tmp_path / "events.jsonl"
    n = 20_000
    path.write_bytes((line + b"\n") * n)
    tracemalloc.start()
    try:
        events, _, bad = read_side_channel(path)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(events) == n and bad == 0
    assert held / n < 500, f"{held / n:.0f} bytes per event"  # a parsed line alone is about 1 KB


def test_side_channel_event_and_byte_caps_fail_the_cell(tmp_path):
    from gcbench.side_channel import read_side_channel

    path = tmp_path / "events.jsonl"
    path.write_bytes(_lines(*[GOOD] * 10))
    with pytest.raises(CellError, match=r"more than 5 events.*incomplete"):
        read_side_channel(path, max_events=5)
    with pytest.raises(CellError, match=r"over the cap.*incomplete"):
        read_side_channel(path, max_bytes=100)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.sampled_from([2**63, 2**70, -(2**63) - 1, 10**30]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["type", "start_ns", "end_ns", "generation", "collected", "kind", "runtime", "x"]), inner,
        max_size=8),
    max_leaves=20,
)
_record = st.fixed_dictionaries(
    {"type": st.sampled_from(["gc", "stall", "hiccup", "stats", 5])},
    optional={"start_ns": _json | st.integers(0, 2**64), "end_ns": _json | st.integers(0, 2**64),
              "generation": _json, "collected": _json, "kind": _json, "runtime": _json})
_line = st.one_of(
    st.binary(max_size=80),
    _json.map(lambda v: json.dumps(v).encode()),
    _record.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 5000).map(lambda n: b'{"type": "gc", "a": ' * n),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(st.lists(_line, max_size=30))
def test_fuzz_the_side_channel_never_raises_and_never_costs_the_calls(tmp_path, lines):
    from gcbench.analysis import attribute
    from gcbench.runner import events_frame, read_side_channel
    from gcbench.store import EVENT_COLUMNS, conform

    path = tmp_path / "fuzz.jsonl"
    data = b"\n".join(lines)
    path.write_bytes(data)
    events, stats, bad = read_side_channel(path)
    assert isinstance(stats, dict) and 0 <= bad <= data.count(b"\n") + 1
    frame = events_frame(events, [], "b", "default", 0, (0, 2**62))
    if len(frame):
        frame = conform(frame, EVENT_COLUMNS)  # what the store does: every value fits its column
        assert (frame["end_ns"] >= frame["start_ns"]).all()
    t = np.arange(5, dtype=np.int64) * 100
    calls = __import__("pandas").DataFrame({"backend": "b", "gc_mode": "default", "rep": 0, "t_send_ns": t,
                                            "t_recv_ns": t + 50})
    assert len(attribute(calls, frame)) == 5
