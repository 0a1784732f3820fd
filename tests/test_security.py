"""Security: no shell, the user's server command shown before it runs, HTTP servers on loopback with a free
port that refuse foreign origins, a private cache, and no path that makes gcbench write outside --out."""

from __future__ import annotations

import json
import re
import socket
import stat
from pathlib import Path

import psutil
import pytest

import gcbench
from gcbench.backends import all_backends, select_backends
from gcbench.backends.base import CellContext
from gcbench.backends.build import cache_dir
from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode
from gcbench.runner import RunConfig, execute
from gcbench.scenario import Scenario, load_scenario

from .conftest import REPO
from .faultkit import FAULT_SCENARIO, assert_no_orphans, fault_cmd, new_marker, only_run_folder, run_gcbench

SERVER_BACKENDS = [b.name for b in all_backends() if not b.in_process and b.name != "custom"]


def test_nothing_runs_through_a_shell():
    pattern = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|getoutput\(|getstatusoutput\(|"
                         r"create_subprocess_shell|child_process\.exec\b|execSync\(")
    hits = [f"{p.relative_to(REPO)}:{n}" for p in (REPO / "gcbench").rglob("*") if p.suffix in (".py", ".js", ".go", ".rs")
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_shell_syntax_in_server_cmd_is_not_interpreted(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(FAULT_SCENARIO)
    pwned = tmp_path / "pwned"
    marker = new_marker()
    proc = run_gcbench(["run", "-s", str(scenario), "-g", "default", "-o", str(tmp_path / "runs"),
                        "--server-cmd", f"echo hi; touch {pwned} && touch $(echo {pwned}) | sh", "--start-timeout", "5"],
                       marker)
    assert_no_orphans(marker)
    assert not pwned.exists()
    # echo got every word as an argument, printed them and exited: not an MCP server, so its cell fails
    assert proc.returncode == 3
    assert "will run your server command (no shell): ['echo', 'hi;', 'touch'," in proc.stderr
    cell = gcbench.load(only_run_folder(tmp_path / "runs")).meta["cells"][0]
    assert cell["status"] == "failed"
    assert "b'hi; touch" in cell["reason"] or cell["reason"].startswith("server closed its")


@pytest.mark.parametrize("source", ["--server-cmd", "scenario [server] command"])
def test_the_server_command_is_shown_before_it_runs(tmp_path, monkeypatch, source):
    started = tmp_path / "started"
    monkeypatch.setenv("FAULT_STARTED_FILE", str(started))
    scenario = tmp_path / "s.toml"
    if source == "--server-cmd":
        scenario.write_text(FAULT_SCENARIO)
        sc = load_scenario(str(scenario))
        backends = select_backends(None, fault_cmd("ok"))
    else:
        scenario.write_text(FAULT_SCENARIO + f"[server]\ncommand = {json.dumps(fault_cmd('ok'))}\n")
        sc = load_scenario(str(scenario))
        backends = select_backends(None, sc.server.command)
    assert not started.exists()  # choosing the backend runs nothing
    log: list[tuple[str, bool]] = []
    execute(RunConfig(sc, backends, [GcMode("default")], tmp_path / "runs"),
            log=lambda msg: log.append((msg, started.exists())))
    shown = [i for i, (msg, _) in enumerate(log) if "will run your server command (no shell)" in msg]
    assert shown and log[shown[0]][1] is False  # logged while the server had not started yet
    assert fault_cmd("ok").split()[-1] in log[shown[0]][0]
    assert started.exists()  # and then it ran


def _post(port: int, origin: str | None) -> int:
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n")
    if origin is not None:
        head += f"Origin: {origin}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        first = s.recv(64)
    return int(first.split(b" ")[1])


@pytest.mark.parametrize("name", SERVER_BACKENDS)
def test_http_servers_listen_on_loopback_on_a_free_port_and_refuse_foreign_origins(name, tmp_path):
    backend = next(b for b in all_backends() if b.name == name)
    avail = backend.availability()
    if not avail.ok:
        pytest.skip(f"{name}: {avail.reason}")
    backend.prepare(lambda msg: None)
    handles = []
    try:
        for i in range(2):  # two at once: a fixed port could not serve both
            ctx = CellContext(tmp_path / f"e{i}.jsonl", tmp_path / f"s{i}.log", transport="http", timeout_s=60)
            handles.append(backend.start(GcMode("default"), Scenario("t"), ctx))
        ports = [h.transport.port for h in handles]
        assert ports[0] != ports[1] and all(p > 0 for p in ports)
        for h in handles:
            listening = {c.laddr for p in [psutil.Process(h.pid), *psutil.Process(h.pid).children(recursive=True)]
                         for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN}
            assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
        port = ports[0]
        for origin in ("http://evil.example", "http://localhost.evil.example", "http://127.0.0.1.evil.example",
                       "null"):
            assert _post(port, origin) == 403, origin
        for origin in (None, f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            assert _post(port, origin) == 200, origin
    finally:
        for h in handles:
            h.stop()


def test_cache_folder_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("GCBENCH_CACHE", str(tmp_path / "new" / "cache"))
    assert stat.S_IMODE(cache_dir().stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    monkeypatch.setenv("GCBENCH_CACHE", str(loose))
    assert stat.S_IMODE(cache_dir().stat().st_mode) == 0o700
    monkeypatch.setenv("GCBENCH_CACHE", "/proc/no-such/cache")
    with pytest.raises(GcbenchError, match="cache folder /proc/no-such/cache"):
        cache_dir()


def test_scenario_name_cannot_place_the_run_folder_elsewhere(tmp_path):
    scenario = tmp_path / "evil.toml"
    scenario.write_text('name = "../../../escaped/../x/"\n[chain]\ncalls = 2\nchains = 1\nwarmup_calls = 0\n')
    out = tmp_path / "nested" / "runs"
    proc = run_gcbench(["run", "-s", str(scenario), "-b", "inproc", "-g", "default", "-o", str(out)], new_marker())
    assert proc.returncode == 0, proc.stderr
    run = only_run_folder(out)
    assert run.parent == out and re.fullmatch(r"\d{8}-\d{6}-escaped-\.\.-x", run.name), run.name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.toml", "nested"]


def test_sweep_profile_names_cannot_name_folders_elsewhere(tmp_path):
    from gcbench.sweep import load_sweep

    sweep = tmp_path / "sweep.toml"
    sweep.write_text('[chain]\ncalls = 2\nchains = 1\n[sweep]\nbackends = ["python"]\n'
                     '[sweep.profiles."../../outside"]\nalloc_objects = 1\n')
    with pytest.raises(GcbenchError, match=r"field 'sweep.profiles': profile name '../../outside' must be"):
        load_sweep(sweep)


def test_scenario_files_are_data(tmp_path):
    """TOML holds values only; a value that looks like code stays a string and is never evaluated."""
    scenario = tmp_path / "s.toml"
    scenario.write_text('name = "__import__(\'os\').system(\'touch pwned\')"\ndescription = "${HOME} $(id)"\n')
    sc = load_scenario(str(scenario))
    assert sc.name.startswith("__import__") and sc.description == "${HOME} $(id)"
    assert sc.server.command == ""  # no command unless the file or the user names one
    assert not Path("pwned").exists()
