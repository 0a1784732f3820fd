"""`gcbench record`: the recorder's think times from given read times (either thread may parse first), and the
real proxy between a client and a server: every byte forwarded unchanged both ways, nothing held back for a
line, the trace written whole when the session ends, and replayed by `gcbench run --trace`."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gcbench import record as record_mod
from gcbench.record import Recorder
from gcbench.store import load_run
from gcbench.trace import load_trace

from .conftest import REPO, run_cli

SERVER = Path(__file__).parent / "two_tools_server.py"
MS = 1_000_000


def _call(i, tool="echo", args=None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                       "params": {"name": tool, "arguments": args or {}}}).encode() + b"\n"


def _reply(i) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": i, "result": {"content": []}}).encode() + b"\n"


def _recorder():
    lines: list[dict] = []
    rec = Recorder(lambda out: lines.extend(json.loads(x) for x in out))
    return rec, lines


T0 = 5_555_000_000_017  # an odd start: nothing may rely on time starting at zero


def test_think_time_runs_from_the_previous_reply_to_the_next_request():
    rec, lines = _recorder()
    rec.from_client(_call(1, "alloc", {"n": 3}), T0)
    rec.from_server(_reply(1), T0 + 2 * MS)
    rec.from_client(_call(2, "echo", {"text": "x"}), T0 + 7 * MS)
    rec.from_server(_reply(2), T0 + 8 * MS)
    rec.from_client(_call(3), T0 + 8 * MS + 250_000)
    rec.finish()
    assert lines == [{"tool": "alloc", "arguments": {"n": 3}}, {"tool": "echo", "arguments": {"text": "x"},
                     "think_ms": 5.0}, {"tool": "echo", "arguments": {}, "think_ms": 0.25}]


def test_either_thread_may_parse_first():
    """The two directions are parsed on two threads after forwarding: a fast server's reply can be parsed
    before its request, and the client's next request before the reply it followed."""
    rec, lines = _recorder()
    rec.from_server(_reply(1), T0 + 1 * MS)  # the reply first
    rec.from_client(_call(1), T0)
    rec.from_client(_call(2), T0 + 4 * MS)
    rec.from_client(_call(3), T0 + 10 * MS)  # before the reply to 2 was parsed
    assert len(lines) == 2  # call 3 waits: its think time is not known yet
    rec.from_server(_reply(2), T0 + 6 * MS)
    assert [ln.get("think_ms") for ln in lines] == [None, 3.0, 4.0]


def test_a_call_sent_before_the_previous_was_answered_has_no_think_time():
    rec, lines = _recorder()
    rec.from_client(_call(1) + _call(2), T0)  # two calls in flight (an agent calling tools in parallel)
    rec.from_server(_reply(2), T0 + 3 * MS)
    rec.from_server(_reply(1), T0 + 4 * MS)
    rec.from_client(_call("a"), T0 + 5 * MS)
    rec.from_client(_call(4), T0 + 6 * MS)  # "a" is never answered
    assert len(lines) == 3
    rec.finish()
    assert [ln.get("think_ms") for ln in lines] == [None, 0.0, 1.0, 0.0]


def test_messages_split_anywhere_batches_and_other_traffic():
    stream = (b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}\n'
              b'{"jsonrpc":"2.0","method":"notifications/initialized"}\r\n'
              + _call(1, "alloc") + b"not json at all \xff\n"
              + b"[" + _call(2, "echo").strip() + b"," + _call(3, "alloc", {"n": 1}).strip() + b"]\n"
              + b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":5}}\n'  # no usable tool
              + b'{"jsonrpc":"2.0","id":"1","result":{}}\n')  # the client answering the server: not a reply
    rec, lines = _recorder()
    for i in range(len(stream)):  # one byte at a time
        rec.from_client(stream[i:i + 1], T0)
    rec.finish()
    assert [(ln["tool"], ln["arguments"]) for ln in lines] == [("alloc", {}), ("echo", {}), ("alloc", {"n": 1})]
    assert rec.calls == 3 and rec.not_recorded == 1


def test_ids_1_and_string_1_are_different_calls():
    rec, lines = _recorder()
    rec.from_client(_call(1), T0)
    rec.from_server(_reply("1"), T0 + MS)  # not the answer to id 1
    rec.from_client(_call(2), T0 + 2 * MS)
    assert len(lines) == 1


def test_a_line_over_the_cap_is_forwarded_but_not_parsed(monkeypatch):
    monkeypatch.setattr(record_mod, "MAX_LINE_BYTES", 100)
    rec, lines = _recorder()
    big = _call(1, "alloc", {"pad": "x" * 300})
    rec.from_client(big[:150], T0)
    rec.from_client(big[150:] + _call(2), T0)
    rec.finish()
    assert [ln["tool"] for ln in lines] == ["echo"] and rec.skipped_lines == 1


# ---------------------------------------------------------------------------------------------- the real proxy

# Reads its stdin with os.read and logs every byte; writes every byte it sends to its stdout log too. Answers
# each tools/call line (and a batch) after the whole line; a "split" request is answered in two halves, the
# second only after the client sent "go" (it can only do so after the first half reached it); at EOF it
# writes a last line without a newline and exits 7.
RAW_SERVER = textwrap.dedent('''
    import json, os, sys
    inlog = open(sys.argv[1], "wb", buffering=0)
    outlog = open(sys.argv[2], "wb", buffering=0)

    def out(data):
        outlog.write(data)
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]

    buf = b""
    while True:
        chunk = os.read(0, 4096)
        if not chunk:
            break
        inlog.write(chunk)
        buf += chunk
        while b"\\n" in buf:
            line, buf = buf.split(b"\\n", 1)
            if line == b"go":
                out(b'second half"}}\\n')
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                out(b"\\xff\\xfe the server's own garbage\\n")
                continue
            if isinstance(msg, list):
                out(json.dumps([{"jsonrpc": "2.0", "id": m["id"], "result": {}} for m in msg]).encode() + b"\\n")
            elif msg.get("method") == "split":
                out(b'{"jsonrpc":"2.0","id":%d,"result":{"text":"first half, ' % msg["id"])
            elif "id" in msg:
                out(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {"ok": "\\u00e9"}}).encode() + b"\\n")
    out(b"bye, no newline")
    sys.exit(7)
''')


class Client:
    """The test's side of the proxy: raw bytes in and out, every byte kept."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=REPO, bufsize=0)
        self.sent = bytearray()
        self.got = bytearray()

    def send(self, data: bytes) -> None:
        self.sent += data
        self.proc.stdin.write(data)

    def read_until(self, marker: bytes, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while marker not in self.got:
            left = deadline - time.monotonic()
            assert left > 0, f"waited {timeout_s} s for {marker!r}; got {bytes(self.got[-200:])!r}"
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.got += chunk

    def finish(self, timeout_s: float = 30.0) -> tuple[int, str]:
        rest, err = self.proc.communicate(timeout=timeout_s)  # closes stdin: the client is done
        self.got += rest
        return self.proc.returncode, err.decode()


def _record_argv(trace: Path, *server: str) -> list[str]:
    return [sys.executable, "-m", "gcbench", "record", "-o", str(trace), "--", *server]


def test_the_proxy_forwards_every_byte_unchanged_both_ways_and_writes_the_trace(tmp_path):
    script = tmp_path / "raw_server.py"
    script.write_text(RAW_SERVER)
    inlog, outlog, trace = tmp_path / "in.log", tmp_path / "out.log", tmp_path / "session.jsonl"
    c = Client(_record_argv(trace, sys.executable, str(script), str(inlog), str(outlog)))
    c.send(b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}\n')
    c.read_until(b'"id": 0')
    call = _call(1, "alloc", {"n": 5, "s": "caf\u00e9 \\n %d"})
    for piece in (call[:7], call[7:30], call[30:]):  # one message in three writes
        c.send(piece)
        time.sleep(0.02)
    c.read_until(b'"id": 1,')
    time.sleep(0.15)  # think time
    c.send(b"\x00\xff not json\n" + _call(2, "echo") + _call(3, "echo", {"text": "x"}))
    c.read_until(b'"id": 3,')
    c.send(b"[" + _call(4, "alloc").strip() + b"]\n")
    c.read_until(b'[{"jsonrpc"')
    # half a line from the server must reach the client at once: only then can the client say "go"
    c.send(b'{"jsonrpc":"2.0","id":5,"method":"split"}\n')
    c.read_until(b"first half, ")
    assert b"second half" not in c.got
    c.send(b"go\n")
    c.read_until(b'second half"}}\n')
    c.send(b"a last partial line without newline")
    code, err = c.finish()
    assert code == 7, err  # the server's exit code
    assert inlog.read_bytes() == bytes(c.sent)  # what the client sent is what the server read
    assert bytes(c.got) == outlog.read_bytes()  # and the other way
    assert c.got.endswith(b"bye, no newline") and b"\xff\xfe the server's own garbage\n" in c.got
    assert err.strip().splitlines() == [f"gcbench record: 4 tools/call written to {trace}"]
    assert not trace.with_name(trace.name + ".partial").exists()
    steps = load_trace(trace).steps  # a trace `gcbench run --trace` reads
    assert [(s.tool, s.arguments) for s in steps] == [("alloc", {"n": 5, "s": "caf\u00e9 \\n %d"}), ("echo", {}),
                                                      ("echo", {"text": "x"}), ("alloc", {})]
    assert steps[0].think_ms is None and steps[1].think_ms >= 140  # slept 150 ms after the reply
    assert steps[2].think_ms == 0.0  # sent with call 2, before its reply: no think time


def test_sigterm_ends_the_session_and_the_trace_is_written_whole(tmp_path):
    trace = tmp_path / "t.jsonl"
    c = Client(_record_argv(trace, sys.executable, str(SERVER)))
    for i in (1, 2):
        c.send(_call(i, "echo", {"text": f"t{i}"}))
        c.read_until(f'"id": {i},'.encode())
    partial = trace.with_name("t.jsonl.partial")
    deadline = time.monotonic() + 10
    while partial.read_bytes().count(b"\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # the proxy writes a line after forwarding the call
    assert partial.read_bytes().count(b"\n") == 2  # appended call by call, before the session ends
    c.proc.send_signal(signal.SIGTERM)  # passed on to the server, which exits on it
    code, err = c.finish()
    assert code == 128 + signal.SIGTERM, err
    assert [s.arguments for s in load_trace(trace).steps] == [{"text": "t1"}, {"text": "t2"}]
    assert not trace.with_name("t.jsonl.partial").exists()


@pytest.mark.parametrize("args, problem", [
    (["-o", "/nonexistent-dir/t.jsonl", "--", sys.executable], "-o /nonexistent-dir/t.jsonl: folder /nonexistent-dir does not exist"),
    (["-o", "{tmp}/t.jsonl", "--", "/no/such/server"], "record: cannot start '/no/such/server'"),
])
def test_bad_record_usage_is_one_error_line(tmp_path, args, problem):
    proc = run_cli("record", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith(f"ERROR: {problem}"), proc.stderr
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_a_session_of_the_sdk_client_is_recorded_and_replayed(tmp_path):
    """The official MCP SDK's client launches `gcbench record` as its server; `gcbench run --trace` replays it."""
    pytest.importorskip("mcp")
    trace = tmp_path / "sdk.jsonl"
    client = textwrap.dedent(f'''
        import asyncio, sys
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        async def main():
            params = StdioServerParameters(command=sys.executable, args={_record_argv(trace, sys.executable,
                                                                                      str(SERVER))[1:]!r})
            async with stdio_client(params) as (r, w):
                async with ClientSession(r, w) as s:
                    await s.initialize()
                    await s.list_tools()
                    for k in range(3):
                        await s.call_tool("alloc", {{"n": 2000 + k}})
                        await asyncio.sleep(0.05)
                        print((await s.call_tool("echo", {{"text": f"w{{k}}"}})).content[0].text)
        asyncio.run(main())
    ''')
    proc = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["w0", "w1", "w2"]
    steps = load_trace(trace).steps
    assert [(s.tool, s.arguments) for s in steps] == [
        ("alloc", {"n": 2000}), ("echo", {"text": "w0"}), ("alloc", {"n": 2001}), ("echo", {"text": "w1"}),
        ("alloc", {"n": 2002}), ("echo", {"text": "w2"})]
    assert all(s.think_ms >= 45 for s in steps[1::2])  # the client slept 50 ms before each echo
    run = run_cli("run", "--server-cmd", f"{sys.executable} {SERVER}", "--trace", str(trace), "--chains", "2",
                  "-g", "default", "-o", str(tmp_path / "runs"), "--json")
    assert run.returncode == 0, run.stderr
    calls = load_run(json.loads(run.stdout)["run"]).calls
    assert calls["tool"].tolist() == ["alloc", "echo"] * 6 and calls["ok"].all()
    # replayed with the recorded think times: each echo was sent at least its think time after the reply before
    gaps = (calls["t_send_ns"].to_numpy()[1::2] - calls["t_recv_ns"].to_numpy()[0::2]) / 1e6
    assert (gaps >= 0.99 * min(s.think_ms for s in steps[1::2])).all()
