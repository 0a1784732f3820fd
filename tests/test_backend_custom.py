"""--server-cmd end to end: a user's server behind a console-script wrapper gets the probe, its GC modes, and
the probe reaches the threads and subprocesses the server starts. Real servers, real runtimes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from .conftest import REPO

# A user's MCP stdio server (standard library only), started through a wrapper with no .py in its name.
# Env knobs: SRV_HEAP (2-lists built at start-up), SRV_WORKER=1 (each call's allocations also run in a worker
# subprocess), SRV_THREAD=1 (the call's allocations run on a thread), SRV_FORK=1 (fork a child at start-up
# that collects and exits normally, running atexit). Tool `lookup`: n reference cycles; collect: gc.collect().
USER_SERVER = textwrap.dedent('''
    import gc, json, os, subprocess, sys, threading

    def churn(n):
        for _ in range(n):
            a = []
            a.append(a)

    if sys.argv[1:] == ["--worker"]:
        for line in sys.stdin:
            churn(int(line))
            print("ok", flush=True)
        sys.exit(0)

    heap = [[i, None] for i in range(int(os.environ.get("SRV_HEAP", "0")))]
    worker = None
    if os.environ.get("SRV_WORKER"):
        worker = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
    if os.environ.get("SRV_FORK"):
        for _ in range(3):
            gc.collect()  # events in the probe's buffer, not yet written
        pid = os.fork()
        if pid == 0:
            gc.collect()
            sys.exit(0)  # a normal exit: atexit handlers run in the child
        os.waitpid(pid, 0)

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
            args = msg["params"]["arguments"]
            if os.environ.get("SRV_THREAD"):
                t = threading.Thread(target=churn, args=(args["n"],))
                t.start()
                t.join()
            else:
                churn(args["n"])
            if args.get("collect"):
                gc.collect()
            if worker is not None:
                worker.stdin.write(f"{args['n']}\\n")
                worker.stdin.flush()
                worker.stdout.readline()
            result = {"content": [{"type": "text", "text": "found"}]}
        else:
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"],
                                         "error": {"code": -32601, "message": "no"}}) + "\\n")
            sys.stdout.flush()
            continue
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}) + "\\n")
        sys.stdout.flush()
''')


@pytest.fixture
def wrapped_server(tmp_path):
    """`my-mcp-server` in a PATH folder: `#!/usr/bin/env python3` (python3 there is this interpreter)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    server = bindir / "my-mcp-server"
    server.write_text("#!/usr/bin/env python3\n" + USER_SERVER)
    server.chmod(0o755)
    return bindir


def gcbench(args, bindir, timeout=300, **env):
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run([sys.executable, "-m", "gcbench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=full_env)


def events_lines(run_path: Path, cell: str) -> list[dict]:
    return [json.loads(ln) for ln in (run_path / "cells" / f"{cell}.events.jsonl").read_text().splitlines()]


def test_console_script_server_gets_the_probe_and_python_gc_modes(tmp_path, wrapped_server):
    import gcbench as g

    proc = gcbench(["run", "--server-cmd", "my-mcp-server", "--tool", "lookup", "--tool-args", '{"n": 3000}',
                    "--chains", "3", "--calls", "10", "-g", "default,disabled,freeze,thresholds:100,5,5,oob",
                    "-o", str(tmp_path / "runs"), "--json"], wrapped_server)
    assert proc.returncode == 0, proc.stderr
    assert "gcbench: detected runtime python" in proc.stderr and "is a script: #!/usr/bin/env python3" in proc.stderr
    assert "gcbench: GC probe: sitecustomize on PYTHONPATH" in proc.stderr
    run = g.load(json.loads(proc.stdout)["run"])
    info = run.meta["environment"]["backend_runtimes"]["custom"]
    assert info["runtime"] == "python" and info["detected"]["interpreter"] == str(wrapped_server / "python3")
    cells = {c["gc_mode"]: c for c in run.meta["cells"]}
    assert cells["oob"]["status"] == "skipped" and "between calls" in cells["oob"]["reason"]
    for mode in ("default", "disabled", "freeze", "thresholds:100,5,5"):
        assert cells[mode]["status"] == "ok" and cells[mode]["probe_attached"] is True
        assert len(cells[mode]["probe_pids"]) == 1
    ev = run.gc_events[(run.gc_events["source"] == "server") & run.gc_events["measured"]
                       & (run.gc_events["type"] == "gc")]
    per_mode = ev.groupby("gc_mode").size().to_dict()
    assert per_mode.get("default", 0) > 0
    assert per_mode.get("disabled", 0) == 0
    assert per_mode.get("thresholds:100,5,5", 0) > 2 * per_mode["default"]  # 100 vs 700: many more gen0
    frozen = cells["freeze"]["frozen"]
    assert len(frozen) == 1 and frozen[0]["pid"] == cells["freeze"]["probe_pids"][0]
    assert frozen[0]["frozen_objects"] > 1000
    # the freeze happened before the measured window opened
    freeze_rec = next(r for r in events_lines(run.path, "custom__freeze__r0") if r["type"] == "freeze")
    assert freeze_rec["end_ns"] < cells["freeze"]["t_measure_start_ns"]


def test_probe_reaches_threads_and_subprocesses_and_a_fork_writes_no_copies(tmp_path, wrapped_server):
    import gcbench as g

    proc = gcbench(["run", "--server-cmd", "my-mcp-server", "--tool", "lookup", "--tool-args", '{"n": 3000}',
                    "--chains", "2", "--calls", "10", "-g", "default,freeze", "-o", str(tmp_path / "runs"),
                    "--json"], wrapped_server, SRV_WORKER="1", SRV_THREAD="1", SRV_FORK="1")
    assert proc.returncode == 0, proc.stderr
    run = g.load(json.loads(proc.stdout)["run"])
    cells = {c["gc_mode"]: c for c in run.meta["cells"]}
    server_pid = cells["default"]["pid"]
    lines = events_lines(run.path, "custom__default__r0")
    attached = {r["pid"] for r in lines if r["type"] == "attach"}
    assert server_pid in attached and len(attached) == 2  # the server and its worker subprocess
    gc_lines = [r for r in lines if r["type"] == "gc"]
    pids = Counter(r["pid"] for r in gc_lines)
    assert len(pids) >= 2 and server_pid in pids, pids  # collections of the thread's and the worker's garbage
    t0, t1 = cells["default"]["t_measure_start_ns"], cells["default"]["t_measure_end_ns"]
    assert {r["pid"] for r in gc_lines if t0 <= r["start_ns"] <= t1} == attached
    # the forked child drops the parent's unwritten events instead of writing them a second time
    dup = [k for k, n in Counter((r["start_ns"], r["end_ns"]) for r in gc_lines).items() if n > 1]
    assert dup == []
    # freeze reaches both processes, and the harness waited for both
    assert sorted(f["pid"] for f in cells["freeze"]["frozen"]) == cells["freeze"]["probe_pids"]
    assert len(cells["freeze"]["probe_pids"]) == 2


def test_freeze_cuts_full_collection_time_on_a_large_start_up_heap(tmp_path, wrapped_server):
    """Each call ends with gc.collect(): with the 300k-list start-up heap frozen, a full collection skips it."""
    import gcbench as g

    proc = gcbench(["run", "--server-cmd", "my-mcp-server", "--tool", "lookup",
                    "--tool-args", '{"n": 100, "collect": true}', "--chains", "2", "--calls", "10",
                    "-g", "default,freeze", "-o", str(tmp_path / "runs"), "--json"], wrapped_server,
                   SRV_HEAP="300000")
    assert proc.returncode == 0, proc.stderr
    run = g.load(json.loads(proc.stdout)["run"])
    ev = run.gc_events[(run.gc_events["source"] == "server") & run.gc_events["measured"]
                       & (run.gc_events["kind"] == "gen2")]
    median_ms = ev.groupby("gc_mode")["duration_ns"].median() / 1e6
    counts = ev.groupby("gc_mode").size()
    assert counts["default"] >= 20 and counts["freeze"] >= 20
    assert median_ms["freeze"] < 0.25 * median_ms["default"], median_ms.to_dict()


NODE_SERVER = textwrap.dedent('''
    const readline = require('readline');
    const rl = readline.createInterface({ input: process.stdin });
    let keep = [];
    rl.on('line', (line) => {
      const msg = JSON.parse(line);
      if (msg.id === undefined) return;
      let result;
      if (msg.method === 'initialize') {
        result = { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'n', version: '1' } };
      } else if (msg.method === 'tools/list') {
        result = { tools: [{ name: 'lookup', inputSchema: { type: 'object' } }] };
      } else if (msg.method === 'tools/call') {
        const n = msg.params.arguments.n;
        for (let i = 0; i < n; i++) keep.push({ i, s: 'x' + i });
        if (keep.length > 100000) keep = [];
        result = { content: [{ type: 'text', text: 'ok' }] };
      } else {
        process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'no' } }) + '\\n');
        return;
      }
      process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }) + '\\n');
    });
''')


def test_env_node_script_gets_the_node_probe_and_heap_flags(tmp_path):
    import gcbench as g

    if shutil.which("node") is None:
        pytest.skip("no node")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    server = bindir / "node-mcp"
    server.write_text("#!/usr/bin/env node\n" + NODE_SERVER)
    server.chmod(0o755)
    proc = gcbench(["run", "--server-cmd", "node-mcp", "--tool", "lookup", "--tool-args", '{"n": 20000}',
                    "--chains", "2", "--calls", "10", "-g", "default,old:200,disabled", "-o", str(tmp_path / "runs"),
                    "--json"], bindir)
    assert proc.returncode == 0, proc.stderr
    assert "gcbench: detected runtime node" in proc.stderr and "NODE_OPTIONS=--require" in proc.stderr
    run = g.load(json.loads(proc.stdout)["run"])
    cells = {c["gc_mode"]: c for c in run.meta["cells"]}
    assert cells["disabled"]["status"] == "skipped" and "no switch" in cells["disabled"]["reason"]
    ev = run.gc_events[(run.gc_events["source"] == "server") & run.gc_events["measured"]]
    assert (ev["gc_mode"] == "default").sum() > 0
    limit_mib = {m: cells[m]["stats"]["heap_size_limit_bytes"] / 2**20 for m in ("default", "old:200")}
    # old:200 caps the old generation (the limit adds the young generation); the default is ~2-4 GiB here
    assert 200 <= limit_mib["old:200"] < 300 < limit_mib["default"], limit_mib


def test_node_probe_preloaded_by_node_options_also_runs_in_worker_threads(tmp_path):
    """NODE_OPTIONS=--require reaches a worker thread's own V8 isolate (Node 20: two stats records)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node")
    from gcbench.backends.custom import NODE_PROBE

    script = tmp_path / "w.js"
    script.write_text("const { Worker } = require('worker_threads');\n"
                      "new Worker('let k = []; for (let i = 0; i < 2e6; i++) { k.push({ i }); "
                      "if (k.length > 1e5) k = []; }', { eval: true });\n")
    events = tmp_path / "events.jsonl"
    subprocess.run([node, str(script)], check=True, timeout=120,
                   env={**os.environ, "GCBENCH_EVENTS": str(events), "NODE_OPTIONS": f"--require={NODE_PROBE}"})
    stats = [json.loads(ln) for ln in events.read_text().splitlines() if '"stats"' in ln]
    assert len(stats) == 2  # the main thread's and the worker's
    assert max(s["gc_minor"] for s in stats) > 0


# ------------------------------------------------------------------ hooks the outside probes rely on


def test_before_stop_runs_with_the_pid_for_a_healthy_stop_only(tmp_path):
    from gcbench.backends.base import CellContext, LaunchSpec, SubprocessServer

    seen = []
    for grace in (None, 1.0):
        ctx = CellContext(events_path=tmp_path / f"{grace}.events.jsonl", stderr_path=tmp_path / f"{grace}.err")
        spec = LaunchSpec(["cat"], before_stop=lambda pid, g=grace: seen.append((g, pid)))
        server = SubprocessServer(spec, dict(os.environ), ctx)
        pid = server.pid
        assert server.stop(grace) == 0
        if grace is None:
            assert seen == [(None, pid)]  # called while the server was alive, once
    assert len(seen) == 1  # a failed cell's stop (a grace given) does not read the server


def test_the_hiccup_meter_wrapper_keeps_a_backends_hooks(tmp_path):
    """Metered used Backend's no-op finish_events: a metered Go server lost its phase split and a user's Go
    server its events; it must also keep the launch spec's before_stop."""
    from gcbench.backends.base import CellContext
    from gcbench.backends.custom import CustomBackend
    from gcbench.gcmode import GcMode
    from gcbench.hiccup import Metered
    from gcbench.scenario import load_scenario

    class Inner(CustomBackend):
        def finish_events(self, events, stats, ctx):
            return [*events, {"type": "gc", "start_ns": 1, "end_ns": 2}], {**stats, "inner": True}

    inner = Inner(f"{sys.executable} -c pass", runtime="go")
    metered = Metered(inner, 1000)
    ctx = CellContext(events_path=tmp_path / "c.events.jsonl", stderr_path=tmp_path / "c.err")
    events, stats = metered.finish_events([], {}, ctx)
    assert stats == {"inner": True} and len(events) == 1
    spec = metered.launch_spec(GcMode("default"), load_scenario("default"), ctx)
    assert spec.before_stop is not None and spec.env["GODEBUG"].endswith("gctrace=1")
    assert spec.env["GCBENCH_HICCUP_US"] == "1000"


def test_pauses_too_uncertain_to_place_stay_in_pause_tables_but_out_of_attribution():
    import pandas as pd

    from gcbench.analysis import attribute, measured_server_events

    keys = {"backend": "custom", "gc_mode": "default", "rep": 0, "source": "server", "measured": True}
    events = pd.DataFrame([
        {**keys, "type": "gc", "kind": "mark_termination", "start_ns": 100, "end_ns": 110},
        {**keys, "type": "gc_unplaced", "kind": "sweep_termination", "start_ns": 120, "end_ns": 150},
        {**keys, "type": "gc_unplaced", "kind": "stw_cycle", "start_ns": 160, "end_ns": 190},  # a sum of two
    ]).assign(duration_ns=lambda d: d["end_ns"] - d["start_ns"])
    calls = pd.DataFrame([{"backend": "custom", "gc_mode": "default", "rep": 0, "t_send_ns": 0, "t_recv_ns": 1000}])
    assert attribute(calls, events).tolist() == [10]
    assert measured_server_events(events)["kind"].tolist() == ["mark_termination", "sweep_termination"]


def test_gcbench_env_prints_what_each_runtime_reads_and_refuses_what_needs_gcbench_to_start_it(tmp_path):
    import shlex

    from gcbench.backends.custom.env import render_shell, server_environment
    from gcbench.errors import GcbenchError
    from gcbench.gcmode import parse_gc_mode

    env, notes = server_environment("python", tmp_path / "e.jsonl", parse_gc_mode("thresholds:100,5,5"))
    assert env["GCBENCH_GC_MODE"] == "thresholds:100,5,5" and env["PYTHONPATH"].endswith("autoload")
    shell = render_shell(env, notes)
    assert "--server-events" in shell and shlex.split(shell.splitlines()[1]) == ["export", f"GCBENCH_EVENTS={tmp_path / 'e.jsonl'}"]
    go, _ = server_environment("go", tmp_path / "err.log", parse_gc_mode("memlimit:256"))
    assert go == {"GOGC": "off", "GOMEMLIMIT": "256MiB", "GODEBUG": "gctrace=1"}
    if shutil.which("java"):
        java, _ = server_environment("java", tmp_path / "jvm.log", parse_gc_mode("serial"))
        assert "-XX:+UseSerialGC" in java["JAVA_TOOL_OPTIONS"] and f'file="{tmp_path / "jvm.log"}"' in java["JAVA_TOOL_OPTIONS"]
    for runtime, mode, why in (("python", "freeze", "need gcbench to start it"), ("node", "default", "exits"),
                               ("go", "g1", "a Go server takes")):
        with pytest.raises(GcbenchError, match=why):
            server_environment(runtime, tmp_path / "x", parse_gc_mode(mode))
