"""Every built-in server backend, over stdio and HTTP, speaks the same protocol and reports its GC."""

import json
import textwrap

import pytest

from gcbench.backends import all_backends, get_backend
from gcbench.backends.base import CellContext
from gcbench.gcmode import parse_gc_mode
from gcbench.runner import read_side_channel
from gcbench.scenario import Scenario, Work

from .conftest import ready_backend

SERVER_BACKENDS = [b.name for b in all_backends() if not b.in_process and b.name != "custom"]
GC_RUNTIMES = {"python", "node", "go", "java"}
# The JVM sizes its heap from the machine's memory: on a large one 30 calls never fill the young generation.
# A fixed 64 MiB heap makes the same workload collect on any machine.
CONFORMANCE_MODE = {"java": "g1:64"}
ALLOCATING = Work(alloc_objects=20000, cyclic_fraction=0.5, payload_bytes=100)




@pytest.fixture(params=["stdio", "http"])
def transport(request):
    return request.param


@pytest.mark.parametrize("name", SERVER_BACKENDS)
def test_protocol_conformance(name, transport, tmp_path):
    backend = ready_backend(name)
    ctx = CellContext(tmp_path / "events.jsonl", tmp_path / "stderr.log", transport=transport, timeout_s=60)
    handle = backend.start(parse_gc_mode(CONFORMANCE_MODE.get(name, "default")), Scenario("t"), ctx)
    try:
        s = handle.session
        init = s.handshake("work")
        assert init["protocolVersion"] and init["serverInfo"]["name"]
        assert s.request("ping")["result"] == {}
        reply = s.request("tools/call", {"name": "work", "arguments": {"payload_bytes": 37, "alloc_objects": 10}})
        content = reply["result"]["content"][0]
        assert content["type"] == "text" and content["text"] == "x" * 37
        assert not reply["result"].get("isError")
        assert s.request("no/such/method")["error"]["code"] == -32601
        bad = s.request("tools/call", {"name": "work", "arguments": {"alloc_objects": -5}})
        assert bad["result"]["isError"] is True and "alloc_objects" in bad["result"]["content"][0]["text"]
        unknown = s.request("tools/call", {"name": "work", "arguments": {"nonsense": 1}})
        if name == "python-sdk":  # the SDK's argument model ignores unknown keys (documented in PROTOCOL.md)
            assert unknown["result"].get("isError") is False
        else:
            assert unknown["result"]["isError"] is True and "nonsense" in unknown["result"]["content"][0]["text"]
        for _ in range(30):
            assert "result" in s.request("tools/call", {"name": "work", "arguments": ALLOCATING.as_arguments()})
        s.control("gcbench/measure")
        s.control("gcbench/flush")
    finally:
        handle.stop()
    events, stats, bad_lines = read_side_channel(ctx.events_path)
    assert bad_lines == 0
    gc_events = [e for e in events if e["type"] == "gc"]
    if backend.runtime in GC_RUNTIMES:
        assert len(gc_events) > 0, f"{name} reported no GC events on an allocating workload"
        assert all(e["end_ns"] >= e["start_ns"] for e in gc_events)
    else:
        assert gc_events == []
    assert stats.get("runtime") == backend.runtime


def test_unknown_backend_and_unavailable_backend_are_exit_2_errors():
    from gcbench.errors import GcbenchError

    with pytest.raises(GcbenchError, match="known backends"):
        get_backend("fortran")


USER_SERVER = textwrap.dedent('''
    import json, sys
    junk = []
    for line in sys.stdin:
        msg = json.loads(line)
        if "id" not in msg:
            continue
        method = msg["method"]
        if method == "initialize":
            result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "users-own", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": "lookup", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            for _ in range(msg["params"]["arguments"]["n"]):
                a = []
                a.append(a)  # a reference cycle: only the cyclic GC frees it
            result = {"content": [{"type": "text", "text": "found"}]}
        else:
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"],
                                         "error": {"code": -32601, "message": "no"}}) + "\\n")
            sys.stdout.flush()
            continue
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}) + "\\n")
        sys.stdout.flush()
''')


def test_users_own_python_server_gets_the_probe_attached(tmp_path):
    import sys

    from .conftest import run_cli

    server = tmp_path / "my_server.py"
    server.write_text(USER_SERVER)
    proc = run_cli("run", "--server-cmd", f"{sys.executable} {server}", "--tool", "lookup",
                   "--tool-args", '{"n": 3000}', "--chains", "3", "--calls", "10",
                   "--gc-mode", "default,disabled,freeze", "--out", str(tmp_path / "runs"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "will run your server command" in proc.stderr
    import gcbench

    run = gcbench.load(json.loads(proc.stdout)["run"])
    cells = {c["gc_mode"]: c for c in run.meta["cells"]}
    assert cells["freeze"]["status"] == "ok" and cells["freeze"]["frozen"]  # on the harness's flag file
    ev = run.gc_events[(run.gc_events["source"] == "server") & run.gc_events["measured"]]
    assert (ev["gc_mode"] == "default").sum() > 0
    assert (ev["gc_mode"] == "disabled").sum() == 0
    assert len(run.calls) == 3 * 3 * 10 and run.calls["ok"].all()


def test_server_cmd_that_does_not_exist_is_a_clear_error(tmp_path):
    from .conftest import run_cli

    proc = run_cli("run", "--server-cmd", "/no/such/server --flag", "--out", str(tmp_path))
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_one_run_with_every_available_backend_gives_one_table(tmp_path):
    from .conftest import run_cli

    proc = run_cli("run", "--chains", "2", "--calls", "5", "--gc-mode", "default,disabled",
                   "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    available = {b.name for b in all_backends() if b.in_default_run and b.availability().ok}
    rows = {(r["backend"], r["gc_mode"]) for r in info["summary"]}
    assert {b for b, _ in rows} == available
    assert all((b, "default") in rows for b in available)
    run = __import__("gcbench").load(info["run"])
    skipped = [c for c in run.meta["cells"] if c["status"] == "skipped"]
    assert all(c["reason"] for c in skipped)  # never skipped silently


def test_python_sdk_freeze_happens_at_start_up(tmp_path):
    """The SDK has no measurement hook, so `freeze` freezes the imported SDK and the start-up heap."""
    from .conftest import run_cli

    ready_backend("python-sdk")
    proc = run_cli("run", "--backend", "python-sdk", "--gc-mode", "default,freeze", "--chains", "2", "--calls", "5",
                   "--out", str(tmp_path), "--json")
    assert proc.returncode == 0, proc.stderr
    run = __import__("gcbench").load(json.loads(proc.stdout)["run"])
    stats = {c["gc_mode"]: c["stats"] for c in run.meta["cells"]}
    assert stats["default"]["freeze_count"] == 0
    assert stats["freeze"]["freeze_count"] > 10_000  # the SDK's own import-time objects
