"""A user's Streamable HTTP server on the official Python SDK: --server-url against a running one (SSE answers
and a session id, or JSON), with and without the GC probe from `gcbench env`; --server-cmd --transport http with
the URL read from the server's output or given with --url. Loopback only, no network."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gcbench.backends.custom.http import parse_url, url_in_output
from gcbench.errors import GcbenchError

from .conftest import REPO

SERVER = REPO / "tests" / "fixtures" / "sdk_http_server" / "server.py"
pytest.importorskip("mcp")


def test_urls_printed_by_servers_and_given_by_users():
    assert url_in_output(b"INFO:     Uvicorn running on http://127.0.0.1:8123 (Press CTRL+C to quit)") == \
        ("127.0.0.1", 8123, "/mcp")
    assert url_in_output(b"listening at http://0.0.0.0:9000/api/mcp.") == ("127.0.0.1", 9000, "/api/mcp")
    assert url_in_output(b"see http://localhost/ for docs") is None  # no port: not where it listens
    assert url_in_output(b"starting\nGCBENCH_LISTENING 4321\n") == ("127.0.0.1", 4321, "/mcp")
    assert parse_url("http://127.0.0.1:8000", "--url") == ("127.0.0.1", 8000, "/mcp")
    for bad, why in (("https://127.0.0.1:1/mcp", "only http://"), ("127.0.0.1:8000", "only http://"),
                     ("http://[::1]:80/mcp", "IPv6")):
        with pytest.raises(GcbenchError, match=why):
            parse_url(bad, "--server-url")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """The fixture server in its own process group; its URL once it accepts connections."""
    err = open(tmp_path / "server.err", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", str(_free_port()), *args], stdin=subprocess.DEVNULL,
                            stdout=err, stderr=err, env={**os.environ, **(env or {})}, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(rb"http://127\.0\.0\.1:\d+", (tmp_path / "server.err").read_bytes())
        if m:
            return proc, m.group(0).decode() + "/mcp"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    _stop(proc)
    pytest.fail(f"fixture server did not start: {(tmp_path / 'server.err').read_text()[-800:]}")


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _gcbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gcbench", *args], capture_output=True, text=True, timeout=300,
                          cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_server_url_drives_a_running_sse_server_with_a_session_and_the_probe_from_gcbench_env(tmp_path):
    import gcbench as g

    events = tmp_path / "gc.jsonl"
    env_out = _gcbench("env", "--runtime", "python", "--events", str(events), "--json")
    assert env_out.returncode == 0, env_out.stderr
    env = json.loads(env_out.stdout)
    assert env["GCBENCH_EVENTS"] == str(events.resolve()) and env["GCBENCH_FLUSH_SIGNAL"] == "USR1"
    proc, url = _start(tmp_path, env=env)  # stateful, SSE answers: the server insists on its session id
    try:
        out = _gcbench("run", "--server-url", url, "--runtime", "python", "--server-events", str(events),
                       "--tool", "alloc", "--tool-args", '{"n": 3000}', "--chains", "2", "--calls", "20",
                       "-g", "default,disabled", "-o", str(tmp_path / "runs"), "--json")
        assert out.returncode == 0, out.stderr
        assert proc.poll() is None  # gcbench did not stop a server it did not start
    finally:
        _stop(proc)
    run = g.load(json.loads(out.stdout)["run"])
    cells = {c["gc_mode"]: c for c in run.meta["cells"]}
    assert cells["disabled"]["status"] == "skipped" and "did not start the server" in cells["disabled"]["reason"]
    assert cells["default"]["stats"]["server_url"]["probe_pids_flushed"] == [cells["default"]["server_pid"]]
    assert run.meta["config"]["transport"] == "http"
    assert run.calls["ok"].all() and len(run.calls) == 40
    ev = run.gc_events[(run.gc_events["source"] == "server") & run.gc_events["measured"]]
    assert (ev["kind"] == "gen0").sum() > 0  # 3000 cycles per call: CPython's young collections
    assert run.calls["gc_overlap_ns"].sum() > 0


def test_server_url_without_the_probe_measures_latency_and_says_gc_was_not_observed(tmp_path):
    proc, url = _start(tmp_path, "--json", "--stateless")
    try:
        out = _gcbench("run", "--server-url", url, "--tool", "alloc", "--tool-args", '{"n": 10}', "--chains", "2",
                       "--calls", "10", "-g", "default", "-o", str(tmp_path / "runs"), "--json")
    finally:
        _stop(proc)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)["summary"][0]
    assert row["calls"] == 20 and row["latency_p50_ms"] > 0
    assert any("not observed" in w for w in row["warnings"])


def test_server_url_refuses_what_cannot_work(tmp_path):
    from gcbench.backends import select_backends

    out = _gcbench("run", "--server-url", f"http://127.0.0.1:{_free_port()}/mcp", "-o", str(tmp_path))
    assert out.returncode == 2 and "nothing accepts connections" in out.stderr and "Traceback" not in out.stderr
    for kw, why in ((dict(server_cmd="x", server_url="http://127.0.0.1:1/mcp"), "give one of them"),
                    (dict(url="http://127.0.0.1:1/mcp"), "for a running server use --server-url"),
                    (dict(server_events="f"), "applies to --server-url")):
        with pytest.raises(GcbenchError, match=why):
            select_backends(None, **kw)


def test_a_started_server_is_waited_for_at_the_given_url_until_it_accepts(tmp_path):
    from gcbench.backends.custom.http import wait_for_endpoint
    from gcbench.errors import CellError

    class Running:
        def poll(self):
            return None

    class Exited:
        def poll(self):
            return 1

    stderr = tmp_path / "err.log"
    stderr.write_bytes(b"")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert wait_for_endpoint(Running(), stderr, ("127.0.0.1", port, "/api"), 5) == ("127.0.0.1", port, "/api")
        stderr.write_bytes(b"INFO: Uvicorn running on http://127.0.0.1:%d (Press CTRL+C to quit)\n" % port)
        assert wait_for_endpoint(Running(), stderr, None, 5) == ("127.0.0.1", port, "/mcp")
    with pytest.raises(CellError, match="did not accept connections"):
        wait_for_endpoint(Running(), stderr, ("127.0.0.1", _free_port(), "/mcp"), 0.2)
    with pytest.raises(CellError, match="exited before"):
        wait_for_endpoint(Exited(), tmp_path / "none", None, 5)
    stderr.write_bytes(b"starting\n")
    with pytest.raises(CellError, match="give it with --url"):
        wait_for_endpoint(Running(), stderr, None, 0.2)


@pytest.mark.slow
def test_server_cmd_transport_http_starts_the_server_and_finds_the_url_it_prints(tmp_path):
    import gcbench as g

    port = _free_port()
    t0 = time.monotonic()
    out = _gcbench("run", "--server-cmd", f"{sys.executable} {SERVER} --port {port}", "--transport", "http",
                   "--tool", "alloc", "--tool-args", '{"n": 3000}', "--chains", "2", "--calls", "10",
                   "-g", "default", "-o", str(tmp_path / "runs"), "--json")
    assert out.returncode == 0, out.stderr
    run = g.load(json.loads(out.stdout)["run"])
    cells = {c["gc_mode"]: c for c in run.meta["cells"]}
    assert len(cells) == 1 and all(c["status"] == "ok" and c["probe_attached"] for c in cells.values())
    ev = run.gc_events[(run.gc_events["source"] == "server") & run.gc_events["measured"]]
    assert (ev["kind"] == "gen0").sum() > 0 and run.calls["ok"].all()
    # stopped by SIGTERM, not after the 5 s an HTTP server would ignore the end of its stdin for
    assert all(c["exit_code"] is not None for c in cells.values())
    assert time.monotonic() - t0 < 60
    with socket.socket() as s:  # nothing left listening
        assert s.connect_ex(("127.0.0.1", port)) != 0
