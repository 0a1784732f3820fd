"""The Rust server (the no-GC control) and the stall calibration backend, driven over the real wire."""

import http.client
import json
import os
import select
import signal
import subprocess
import time

import pytest

from gcbench.backends.base import CellContext
from gcbench.backends.rust import NO_GC_REASON, RustBackend, build_server, rustc_version
from gcbench.backends.stall import StallBackend
from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode
from gcbench.mcp import call_template
from gcbench.scenario import Scenario, Server


@pytest.fixture(scope="module")
def server_bin():
    avail = RustBackend().availability()
    if not avail.ok:
        pytest.skip(avail.reason)
    return build_server(log=lambda msg: None)


class Raw:
    """The server binary on pipes, spoken to line by line (bytes in, bytes out)."""

    def __init__(self, binary, env=None):
        self.proc = subprocess.Popen(
            [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def line(self, timeout_s: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buf:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "no answer from the server"
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            assert chunk, f"server exited: {self.proc.stderr.read().decode(errors='replace')}"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def ask(self, data: bytes) -> bytes:
        self.send(data + b"\n")
        return self.line()

    def close(self) -> int:
        self.proc.stdin.close()
        code = self.proc.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


@pytest.fixture
def raw(server_bin):
    r = Raw(server_bin)
    yield r
    if r.proc.poll() is None:
        r.close()


def _req(mid: str, method: str, params: str | None = None) -> bytes:
    """A request written by hand, so ids and strings reach the server exactly as typed."""
    extra = "" if params is None else f',"params":{params}'
    return f'{{"jsonrpc":"2.0","id":{mid},"method":{method}{extra}}}'.encode()


def test_ids_are_echoed_exactly(raw):
    for mid in ("7", "-3", "0", "1.50e3", "12345678901234567890123", "null"):
        line = raw.ask(_req(mid, '"ping"'))
        assert line == b'{"jsonrpc":"2.0","id":' + mid.encode() + b',"result":{}}'
    # a string id with every kind of escape comes back as the same string
    sid = r'"q\"b\\s\/\b\f\n\r\t\u0001\u00e9\u20ac\ud83d\ude00 end"'
    reply = json.loads(raw.ask(_req(sid, '"ping"')))
    assert reply == {"jsonrpc": "2.0", "id": json.loads(sid), "result": {}}
    # raw UTF-8 in, same string out
    reply = json.loads(raw.ask(_req('"caf\u00e9 \u6f22\u5b57 \U0001f600"', '"ping"')))
    assert reply["id"] == "caf\u00e9 \u6f22\u5b57 \U0001f600"


def test_unicode_round_trips_through_an_error_message(raw):
    method = r'"m\u00e9\ud83d\ude00\"\\\n\u001f"'
    reply = json.loads(raw.ask(_req("1", method)))
    assert reply["error"] == {"code": -32601, "message": "Method not found: " + json.loads(method)}
    # a lone surrogate has no place in UTF-8: it becomes U+FFFD and the server carries on
    reply = json.loads(raw.ask(_req("2", r'"a\ud800b\udc00c\ud83dZ"')))
    assert reply["error"]["message"] == "Method not found: a\ufffdb\ufffdc\ufffdZ"


def test_parser_accepts_any_valid_shape(raw):
    # whitespace everywhere, nested values, literals, empty containers, an unknown field
    line = (b' { "jsonrpc" : "2.0" ,\t"id" : 5 , "method" : "initialize" , "params" : { "protocolVersion" : "x" ,'
            b' "capabilities" : { "a" : [ 1 , -2.5e-3 , true , false , null , [ ] , { } , "s" ] } } , "z" : 0 }\r')
    reply = json.loads(raw.ask(line))
    assert reply["id"] == 5 and reply["result"]["protocolVersion"] == "x"
    assert reply["result"]["serverInfo"]["name"] == "gcbench-rust"
    # a repeated key: the last one wins (as in Python's json)
    assert json.loads(raw.ask(b'{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}'))["id"] == 2
    deep = b"[" * 200 + b"]" * 200
    assert json.loads(raw.ask(_req("3", '"ping"', f'{{"deep":{deep.decode()}}}')))["result"] == {}


@pytest.mark.parametrize("bad", [
    b"not json", b"{", b'{"a":}', b'{"a":1,}', b"[1,]", b"tru", b"01", b"1.", b"-", b"1e", b'"\\x"',
    b'"\\u12"', b'"tab\there"', b'"open', b"\xff\xfe", b'{"a" 1}', b"{} {}", b"NaN", b"[" * 100_000,
])
def test_a_line_that_is_not_json_gets_a_parse_error_and_the_server_carries_on(raw, bad):
    reply = json.loads(raw.ask(bad))
    assert reply == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
    assert json.loads(raw.ask(_req("9", '"ping"')))["result"] == {}


def test_invalid_requests_notifications_and_unknown_methods(raw):
    assert json.loads(raw.ask(b"[1]"))["error"]["code"] == -32600
    assert json.loads(raw.ask(b'{"jsonrpc":"1.0","id":4,"method":"ping"}'))["error"]["code"] == -32600
    # a notification is never answered: the next line is the ping's answer
    raw.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n\n   \n')
    assert json.loads(raw.ask(_req("11", '"ping"')))["id"] == 11
    assert json.loads(raw.ask(_req("12", '"resources/list"')))["error"]["code"] == -32601
    tools = json.loads(raw.ask(_req("13", '"tools/list"')))["result"]["tools"]
    assert [t["name"] for t in tools] == ["work"] and tools[0]["inputSchema"]["type"] == "object"


def test_tool_errors(raw):
    reply = json.loads(raw.ask(_req("1", '"tools/call"', '{"name":"nope","arguments":{}}')))
    assert reply["error"]["code"] == -32602 and "nope" in reply["error"]["message"]
    cases = {
        '{"alloc_objects":-1}': "alloc_objects",
        '{"payload_bytes":1.5}': "payload_bytes",
        '{"cpu_iters":1e3}': "cpu_iters",
        '{"sleep_us":true}': "sleep_us",
        '{"retain_objects":"3"}': "retain_objects",
        '{"cyclic_fraction":1.01}': "cyclic_fraction",
        '{"cyclic_fraction":null}': "cyclic_fraction",
        '{"bogus":1}': "bogus",
        "[]": "arguments",
    }
    for args, named in cases.items():
        result = json.loads(raw.ask(_req("2", '"tools/call"', f'{{"name":"work","arguments":{args}}}')))["result"]
        assert result["isError"] is True, args
        assert named in result["content"][0]["text"], args
    ok = json.loads(raw.ask(_req("3", '"tools/call"', '{"name":"work","arguments":{"payload_bytes":17,"cyclic_fraction":1}}')))
    assert ok["result"] == {"content": [{"type": "text", "text": "x" * 17}], "isError": False}
    # no arguments at all means all defaults
    ok = json.loads(raw.ask(_req("4", '"tools/call"', '{"name":"work"}')))
    assert ok["result"]["content"][0]["text"] == ""


def _events(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _ctx(tmp_path, transport="stdio"):
    return CellContext(tmp_path / "events.jsonl", tmp_path / "stderr.txt", transport=transport, timeout_s=30.0)


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_allocating_workload_gives_no_gc_events_and_a_stats_record(server_bin, tmp_path, transport):
    backend = RustBackend()
    scenario = Scenario(name="t", server=Server(heap_objects=5000, heap_shape="lists"))
    ctx = _ctx(tmp_path, transport)
    handle = backend.start(GcMode("default"), scenario, ctx)
    try:
        init = handle.session.handshake("work")
        assert init["serverInfo"]["name"] == "gcbench-rust"
        assert handle.session.control("gcbench/measure") == {}
        args = {"alloc_objects": 20000, "cyclic_fraction": 0.5, "retain_objects": 1000, "retain_cap": 5000,
                "payload_bytes": 100, "cpu_iters": 1000}
        for _ in range(20):
            reply = handle.session.request("tools/call", {"name": "work", "arguments": args})
            assert reply["result"]["content"][0]["text"] == "x" * 100
        assert handle.session.control("gcbench/flush") == {"events": 0}
    finally:
        code = handle.stop()
    assert code == 0
    records = _events(ctx.events_path)
    assert [r for r in records if r["type"] != "stats"] == []
    stats = records[-1]
    assert stats["type"] == "stats" and stats["runtime"] == "rust" and stats["gc"] is False
    assert stats["num_gc"] == 0 and stats["pause_total_ns"] == 0
    assert stats["calls"] == 20 and stats["retained_objects"] == 5000 and stats["heap_objects"] == 5000
    assert stats["max_rss_bytes"] > 0


@pytest.mark.parametrize("mode", ["busy", "sleep"])
def test_a_stall_lands_inside_the_planned_call_and_nowhere_else(server_bin, tmp_path, mode):
    stall_us = 30_000
    backend = StallBackend(stalls={3: stall_us}, mode=mode)
    ctx = _ctx(tmp_path)
    handle = backend.start(GcMode("default"), Scenario(name="t"), ctx)
    template = call_template("work", {"alloc_objects": 100, "payload_bytes": 64})
    transport = handle.transport
    try:
        handle.session.handshake("work")

        def call(i):
            t_send = time.monotonic_ns()
            transport.send(template % i)
            while True:
                for t_recv, msg in transport.poll(10.0):
                    if msg.get("id") == i:
                        assert msg["result"]["isError"] is False
                        return t_send, t_recv

        for i in range(5):  # warm-up: the plan counts from gcbench/measure, so no stall here
            call(i)
        handle.session.control("gcbench/measure")
        windows = [call(100 + i) for i in range(10)]
        handle.session.control("gcbench/flush")
    finally:
        assert handle.stop() == 0
    stalls = [r for r in _events(ctx.events_path) if r["type"] == "stall"]
    assert len(stalls) == 1
    ev = stalls[0]
    assert ev["call_index"] == 3 and ev["runtime"] == "rust" and ev["kind"] == "stall" and ev["generation"] == -1
    t_send, t_recv = windows[3]
    assert t_send <= ev["start_ns"] <= ev["end_ns"] <= t_recv
    assert ev["end_ns"] - ev["start_ns"] >= stall_us * 1000
    assert t_recv - t_send >= stall_us * 1000


def test_sigterm_flushes_the_side_channel(server_bin, tmp_path):
    events = tmp_path / "events.jsonl"
    r = Raw(server_bin, {"GCBENCH_EVENTS": str(events), "GCBENCH_STALLS": "0:1000"})
    r.ask(_req("1", '"gcbench/measure"'))
    r.ask(_req("2", '"tools/call"', '{"name":"work","arguments":{}}'))
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(timeout=10) == 0
    r.close()
    types = [e["type"] for e in _events(events)]
    assert types == ["stall", "stats"]


def test_bad_configuration_exits_with_a_message(server_bin):
    for env in ({"GCBENCH_GC_MODE": "disabled"}, {"GCBENCH_STALLS": "3"}, {"GCBENCH_STALL_MODE": "nap"},
                {"GCBENCH_TRANSPORT": "pigeon"}, {"GCBENCH_HEAP_OBJECTS": "-1"}):
        proc = subprocess.run([str(server_bin)], input=b"", capture_output=True, env={**os.environ, **env}, timeout=10)
        assert proc.returncode == 2 and proc.stdout == b"", env
        assert b"gcbench rust server:" in proc.stderr, env


def test_http_status_codes_and_keep_alive(server_bin, tmp_path):
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([str(server_bin)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "GCBENCH_TRANSPORT": "http", "GCBENCH_EVENTS": str(events)})
    try:
        word, port = proc.stdout.readline().decode().split()
        assert word == "GCBENCH_LISTENING"
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)

        def post(body, path="/mcp", headers=None):
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
            resp = conn.getresponse()
            return resp.status, resp.read()

        for i in range(3):  # one connection, several requests
            status, body = post(_req(str(i), '"ping"'))
            assert status == 200 and json.loads(body) == {"jsonrpc": "2.0", "id": i, "result": {}}
        assert post(b'{"jsonrpc":"2.0","method":"notifications/initialized"}') == (202, b"")
        assert post(_req("1", '"ping"'), path="/other")[0] == 404
        assert post(_req("1", '"ping"'), headers={"Origin": "http://evil.example"})[0] == 403
        assert post(_req("1", '"ping"'), headers={"Origin": "http://localhost.evil.example"})[0] == 403
        assert post(_req("1", '"ping"'), headers={"Origin": "http://localhost:8123"})[0] == 200
        assert post(_req("1", '"ping"'), headers={"Origin": "http://127.0.0.1"})[0] == 200
        status, body = post(b"{oops")  # not JSON: 400 with the JSON-RPC error as the body
        assert status == 400 and json.loads(body)["error"]["code"] == -32700
        conn.request("GET", "/mcp")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 405
        # a large body behind Expect: 100-continue
        big = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping", "params": {"pad": "y" * 300_000}}).encode()
        status, body = post(big, headers={"Expect": "100-continue"})
        assert status == 200 and json.loads(body)["id"] == 9
        conn.close()
        proc.stdin.close()  # EOF on stdin stops the server in HTTP mode too
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert [e["type"] for e in _events(events)] == ["stats"]


def test_adapter_modes_and_stall_plan_validation(monkeypatch):
    assert RustBackend().unsupported_reason(GcMode("default")) is None
    for mode in (GcMode("disabled"), GcMode("gogc", "400"), GcMode("oob")):
        assert RustBackend().unsupported_reason(mode) == NO_GC_REASON
        assert StallBackend().unsupported_reason(mode) == NO_GC_REASON
    assert StallBackend().server_env() == {"GCBENCH_STALLS": "", "GCBENCH_STALL_MODE": "busy"}
    assert StallBackend({7: 10, 2: 5000}, mode="sleep").server_env() == {
        "GCBENCH_STALLS": "2:5000,7:10", "GCBENCH_STALL_MODE": "sleep"}
    for stalls, mode in (({-1: 5}, "busy"), ({1: -5}, "busy"), ({1: 1.5}, "busy"), ({}, "nap")):
        with pytest.raises(GcbenchError):
            StallBackend(stalls, mode=mode)


def test_missing_rustc_is_reported_with_the_fix(monkeypatch):
    rustc_version.cache_clear()
    monkeypatch.setenv("PATH", "/nonexistent")
    try:
        avail = RustBackend().availability()
    finally:
        rustc_version.cache_clear()
    assert not avail.ok and avail.reason == "no rustc on PATH; install Rust (rustup) 1.70+"
