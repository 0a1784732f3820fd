"""The Go backend: cached build, MCP behaviour, GC pause events on the harness's clock, GC modes, HTTP mode,
each cycle's two stop-the-world phases placed at their own times, the wall-to-monotonic conversion (go test)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time

import pytest

from gcbench.backends import get_backend
from gcbench.backends.base import CellContext
from gcbench.backends.go import HERE, GoBackend, _go_version, go_mode_env, godebug_env
from gcbench.gcmode import parse_gc_mode
from gcbench.mcp import call_template
from gcbench.probes.go_gctrace import parse_log
from gcbench.runner import read_side_channel
from gcbench.scenario import Scenario, Server

ALLOC = {"alloc_objects": 50_000, "cyclic_fraction": 0.2}  # 800 KB of garbage per call


@pytest.fixture(scope="module")
def go_backend() -> GoBackend:
    avail = GoBackend().availability()
    if not avail.ok:
        pytest.skip(avail.reason)
    backend = get_backend("go")
    backend.prepare(lambda msg: None)
    return backend


def start(backend, tmp_path, mode="default", heap_objects=0):
    ctx = CellContext(tmp_path / "events.jsonl", tmp_path / "stderr.txt")
    scenario = Scenario(name="t", server=Server(heap_objects=heap_objects, heap_shape="lists"))
    handle = backend.start(parse_gc_mode(mode), scenario, ctx)
    handle.session.handshake("work")
    return handle, ctx


def call(handle, args) -> dict:
    return handle.session.request("tools/call", {"name": "work", "arguments": args})


def read_events(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if r["type"] == "gc"], [r for r in rows if r["type"] == "stats"]


def finished_events(backend, ctx):
    """The events and stats record as the runner keeps them: after the backend's finish_events."""
    events, stats, bad = read_side_channel(ctx.events_path)
    assert bad == 0
    return backend.finish_events(events, stats, ctx)


BIG_HEAP = 1_000_000  # live objects: a concurrent mark of milliseconds between the two stop-the-world phases


def run_calls(backend, tmp_path, mode, args, calls, **kw):
    """Start, make `calls` calls, flush, stop; returns (gc events, last stats, t_start_ns, t_end_ns)."""
    t_start_ns = time.monotonic_ns()
    handle, ctx = start(backend, tmp_path, mode, **kw)
    try:
        for _ in range(calls):
            assert call(handle, args)["result"]["isError"] is False
        flushed = handle.session.control("gcbench/flush")
        t_end_ns = time.monotonic_ns()
    finally:
        assert handle.stop() == 0
    events, stats = read_events(ctx.events_path)
    assert flushed["events"] <= len(events)  # cycles that end after the flush are written at exit
    return events, stats[-1], t_start_ns, t_end_ns


def test_build_is_cached(go_backend):
    first = go_backend.binary
    mtime_ns = first.stat().st_mtime_ns
    again = GoBackend()
    messages = []
    again.prepare(messages.append)
    assert again.binary == first
    assert first.stat().st_mtime_ns == mtime_ns
    assert messages == []  # no "building" line


def test_availability_reason_without_toolchain(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    version, reason = _go_version.__wrapped__()
    assert version is None
    assert "pip install 'gcbench[go]'" in reason


def test_modes():
    b = GoBackend()
    for ok in ("default", "disabled", "oob", "gogc:400", "memlimit:512"):
        assert b.unsupported_reason(parse_gc_mode(ok)) is None
    for no in ("freeze", "thresholds:1,2,3", "semi:16", "old:512"):
        assert "not a Go GC setting" in b.unsupported_reason(parse_gc_mode(no))
    assert go_mode_env(parse_gc_mode("disabled"))["GOGC"] == "off"
    assert go_mode_env(parse_gc_mode("memlimit:64")) == {"GOGC": "off", "GOMEMLIMIT": "64MiB"}
    assert go_mode_env(parse_gc_mode("gogc:50"))["GOGC"] == "50"


def test_protocol(go_backend, tmp_path):
    handle, _ = start(go_backend, tmp_path)
    try:
        s = handle.session
        ok = call(
            handle,
            {
                "payload_bytes": 37,
                "alloc_objects": 10,
                "cyclic_fraction": 0.5,
                "cpu_iters": 100,
                "retain_objects": 5,
                "retain_cap": 3,
                "sleep_us": 10,
            },
        )
        assert ok["result"] == {"content": [{"type": "text", "text": "x" * 37}], "isError": False}
        for bad, name in [
            ({"alloc_objects": -1}, "alloc_objects"),
            ({"sleep_us": 1.5}, "sleep_us"),
            ({"cyclic_fraction": 2}, "cyclic_fraction"),
            ({"payload_bytes": "1"}, "payload_bytes"),
            ({"nope": 1}, "nope"),
        ]:
            res = call(handle, bad)["result"]
            assert res["isError"] is True and name in res["content"][0]["text"]
        assert s.request("tools/call", {"name": "other"})["error"]["code"] == -32602
        assert s.request("no/such")["error"]["code"] == -32601
        assert s.request("ping")["result"] == {}
        assert s.control("gcbench/measure") == {}
        handle.session.transport.send(b"not json\n")
        ((_, msg),) = _poll_one(handle)
        assert msg["id"] is None and msg["error"]["code"] == -32700
    finally:
        assert handle.stop() == 0


def _poll_one(handle):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = handle.session.transport.poll(1.0)
        if got:
            return got
    raise AssertionError("no answer")


def test_default_mode_reports_every_pause_on_the_harness_clock(go_backend, tmp_path):
    events, stats, t0, t1 = run_calls(go_backend, tmp_path, "default", ALLOC, 60)
    assert stats["runtime"] == "go" and stats["num_gc"] > 0
    assert len(events) == stats["num_gc"]  # none lost, none twice
    assert [e["cycle"] for e in events] == list(range(1, len(events) + 1))
    assert stats["pauses_lost"] == 0 and stats["gogc_percent"] == 100
    assert stats["gc_cpu_seconds"] > 0  # concurrent-mark cost, not only pauses
    assert stats["clock_samples"] >= 60 and stats["clock_steps"] == 0 and stats["clock_samples_dropped"] == 0
    for e in events:  # the raw side channel: one summed event per cycle, its end exact
        assert e["runtime"] == "go" and e["kind"] == "stw_cycle" and e["generation"] == -1
        assert t0 <= e["start_ns"] <= e["end_ns"] <= t1
        assert e["end_ns"] - e["start_ns"] == e["pause_ns"]
    assert sum(e["pause_ns"] for e in events) == stats["pause_total_ns"]


def test_godebug_keeps_the_users_settings(monkeypatch):
    monkeypatch.delenv("GODEBUG", raising=False)
    assert godebug_env() == "gctrace=1"
    monkeypatch.setenv("GODEBUG", "madvdontneed=1,")
    assert godebug_env() == "madvdontneed=1,gctrace=1"


def test_each_stop_the_world_phase_at_its_own_time(go_backend, tmp_path):
    """The two phases of a cycle are two events, tens of ms apart at a big heap, placed where gctrace says."""
    t_start_ns = time.monotonic_ns()
    handle, ctx = start(go_backend, tmp_path, heap_objects=BIG_HEAP)
    try:
        for _ in range(40):
            assert call(handle, {"alloc_objects": 200_000})["result"]["isError"] is False
        handle.session.control("gcbench/flush")
    finally:
        assert handle.stop() == 0
    t_end_ns = time.monotonic_ns()
    events, stats = finished_events(go_backend, ctx)
    lines, damaged = parse_log(ctx.stderr_path)
    phases = stats["stw_phases"]
    n = stats["num_gc"]
    assert n >= 3 and damaged == 0 and set(lines) >= set(range(1, n + 1))
    assert phases["placed"] == n and phases["unplaced_no_line"] == phases["unplaced_mismatch"] == 0
    sweeps = {e["cycle"]: e for e in events if e["kind"] == "sweep_termination"}
    marks = {e["cycle"]: e for e in events if e["kind"] == "mark_termination"}
    assert sorted(sweeps) == sorted(marks) == list(range(1, n + 1)) and len(events) == 2 * n
    assert sum(e["pause_ns"] for e in events) == stats["pause_total_ns"]  # the split keeps the exact sum
    err = phases["sweep_position_error_max_ns"]
    assert 0 < err <= 1_000_000  # half the printed mark's 1 ms resolution at most, plus the split's
    offsets = []
    for c in range(1, n + 1):
        sw, mt, line = sweeps[c], marks[c], lines[c]
        assert t_start_ns <= sw["start_ns"] <= sw["end_ns"] <= mt["start_ns"] <= mt["end_ns"] <= t_end_ns
        for e in (sw, mt):
            assert e["type"] == "gc" and e["end_ns"] - e["start_ns"] == e["pause_ns"] > 0
        # the gap between the phases is the cycle's concurrent mark, as gctrace printed it
        assert line.mark.lo_ns - err <= mt["start_ns"] - sw["end_ns"] <= line.mark.hi_ns + err
        offsets.append(sw["start_ns"] - line.start_ns.lo_ns)
    # independent of PauseEnd: gctrace's `@` (ms since the runtime started) puts every sweep termination at
    # one fixed offset from the runtime's start, to the @ field's 1 ms plus the placement error on each side
    assert max(offsets) - min(offsets) <= 1_000_000 + 2 * err + 100_000


def test_gogc_off_has_no_pauses(go_backend, tmp_path):
    events, stats, _, _ = run_calls(go_backend, tmp_path, "disabled", ALLOC, 60)
    assert events == []
    assert stats["num_gc"] == 0 and stats["gogc_percent"] == -1


def test_drains_past_the_runtime_buffer(go_backend, tmp_path):
    # a tight memory limit collects every couple of MB: well over the runtime's 256-entry pause buffer
    events, stats, _, _ = run_calls(go_backend, tmp_path, "memlimit:8", {"alloc_objects": 200_000}, 100)
    assert stats["num_gc"] > 256
    assert len(events) == stats["num_gc"] and stats["pauses_lost"] == 0
    assert [e["cycle"] for e in events] == list(range(1, len(events) + 1))


def test_oob_collects_between_calls(go_backend, tmp_path):
    t_start_ns = time.monotonic_ns()
    handle, ctx = start(go_backend, tmp_path, "oob", heap_objects=BIG_HEAP // 4)
    tmpl = call_template("work", ALLOC)
    spans = [(t_start_ns, t_start_ns)]  # (sent_ns, received_ns) per call; the start-up heap may be collected first
    try:
        for i in range(40):
            sent_ns = time.monotonic_ns()
            handle.session.transport.send(tmpl % i)
            ((recv_ns, msg),) = _poll_one(handle)
            assert msg["result"]["isError"] is False
            spans.append((sent_ns, recv_ns))
        handle.session.control("gcbench/flush")
    finally:
        assert handle.stop() == 0
    events, stats = finished_events(go_backend, ctx)
    assert stats["num_gc"] > 0 and stats["num_forced_gc"] == stats["num_gc"] == stats["oob_collections"]
    assert stats["oob_collect_ns"] >= stats["pause_total_ns"]
    pauses = [e for e in events if e["kind"] in ("sweep_termination", "mark_termination")]
    collects = [e for e in events if e["kind"] == "oob-collect"]
    assert len(pauses) == 2 * stats["num_gc"] and len(collects) == stats["num_gc"]
    assert sum(e["end_ns"] - e["start_ns"] for e in collects) == stats["oob_collect_ns"]
    # both stop-the-world phases lie inside the out-of-band collection that caused them (the first one to
    # within its placement error): the server's own clock reads around runtime.GC() check the placement
    err = stats["stw_phases"]["sweep_position_error_max_ns"]
    assert all(any(c["start_ns"] - err <= p["start_ns"] and p["end_ns"] <= c["end_ns"] for c in collects)
               for p in pauses)
    # each collection ran after a response was written and before the next request was read: its end lies
    # between that call's send and the next call's receive (this also checks the wall-to-monotonic conversion)
    for e in events:
        assert any(
            s <= e["end_ns"] <= nxt_recv
            for (s, _), (_, nxt_recv) in zip(spans, spans[1:] + [(0, 2**63)], strict=True)
        )


def test_http_mode(go_backend, tmp_path):
    env = {
        **os.environ,
        **go_mode_env(parse_gc_mode("default")),
        "GCBENCH_TRANSPORT": "http",
        "GCBENCH_EVENTS": str(tmp_path / "events.jsonl"),
    }
    proc = subprocess.Popen(
        [str(go_backend.binary)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        word, port = proc.stdout.readline().decode().split()
        assert word == "GCBENCH_LISTENING"
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)

        def post(msg, headers=None):
            conn.request(
                "POST", "/mcp", json.dumps(msg), {"Content-Type": "application/json", **(headers or {})}
            )
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()

        status, ctype, body = post(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "work", "arguments": {"payload_bytes": 5}},
            }
        )
        assert status == 200 and ctype == "application/json"
        assert json.loads(body)["result"]["content"][0]["text"] == "xxxxx"
        assert post({"jsonrpc": "2.0", "method": "notifications/initialized"})[::2] == (202, b"")
        assert (
            post({"jsonrpc": "2.0", "id": 2, "method": "ping"}, {"Origin": "http://localhost:5173"})[0] == 200
        )
        assert (
            post({"jsonrpc": "2.0", "id": 3, "method": "ping"}, {"Origin": "http://evil.example"})[0] == 403
        )
        status, _, body = post(
            {"jsonrpc": "2.0", "id": 4, "method": "gcbench/flush"}
        )  # same connection: keep-alive
        assert status == 200 and json.loads(body)["result"]["events"] == 0
        conn.close()
        proc.stdin.close()  # EOF stops the server
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_wall_to_monotonic_conversion_go_unit_tests(go_backend):
    """main_test.go: injected clock samples, a wall-clock step between a pause and the drain, steps counted."""
    go = shutil.which("go")
    proc = subprocess.run([go, "test", "-count=1", "."], cwd=HERE, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **go_backend.build_env()})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok")
