"""Backend faults: each one is a clear per-cell error, the run goes on, finished cells are saved, nothing is
left running.

Each fault runs as a real `gcbench run` subprocess with the built-in python server and a misbehaving server
(tests/fault_servers/fault_server.py through --server-cmd), two repetitions: cells are python, faulty,
python, faulty-again. The faulty server misbehaves only the first time it starts (FAULT_ONCE_FILE), so the
run shows a healthy cell of the same server after the failure. Every process the run starts carries an
environment marker; after the run none may be alive.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import sys
from pathlib import Path

import pytest

import gcbench

from .faultkit import (
    FAULT_SCENARIO,
    FAULT_SERVER,
    assert_no_orphans,
    fault_cmd,
    new_marker,
    only_run_folder,
    run_gcbench,
)

CALLS_PER_CELL = 15  # FAULT_SCENARIO: 3 chains x 5 calls


@pytest.fixture
def scenario(tmp_path) -> Path:
    p = tmp_path / "faults.toml"
    p.write_text(FAULT_SCENARIO)
    return p


def run_with_fault(tmp_path: Path, scenario: Path, mode: str, k: int | None, *extra: str, **env: str):
    marker = new_marker()
    out = tmp_path / "runs"
    proc = run_gcbench(
        ["run", "-s", str(scenario), "-b", "python", "--server-cmd", fault_cmd(mode, k), "-g", "default",
         "--reps", "2", "-o", str(out), "--call-timeout", "2", "--start-timeout", "10", *extra],
        marker, FAULT_ONCE_FILE=str(tmp_path / "fault-once"), **env,
    )
    assert_no_orphans(marker)
    assert not re.search(r"^Traceback", proc.stderr, re.M), proc.stderr  # gcbench's own: never
    return proc, out


def check_failed_cell_and_the_rest(proc, out: Path, reason: str) -> dict:
    """Exit 3; the faulty server's first cell failed with the reason; the three other cells are saved."""
    assert proc.returncode == 3, proc.stderr
    run = gcbench.load(only_run_folder(out))
    cells = run.meta["cells"]
    assert [(c["backend"], c["rep"], c["status"]) for c in cells] == [
        ("python", 0, "ok"), ("custom", 0, "failed"), ("python", 1, "ok"), ("custom", 1, "ok")]
    failed = cells[1]
    assert re.search(reason, failed["reason"]), failed["reason"]
    assert run.meta["status"] == "complete-with-failures"
    per_cell = run.calls.groupby(["backend", "rep"]).size().to_dict()
    assert per_cell == {("python", 0): CALLS_PER_CELL, ("python", 1): CALLS_PER_CELL, ("custom", 1): CALLS_PER_CELL}
    assert run.calls["ok"].all()
    # the terminal says it twice: as the cell ends, and in the closing list of failed cells
    assert re.search(r"\[2/4\] custom gc=default rep=0: FAILED: .*" + reason, proc.stderr), proc.stderr
    assert re.search(r"FAILED cell custom gc=default rep=0: .*" + reason, proc.stderr), proc.stderr
    # the server's stderr is kept beside the cell for the post-mortem
    assert (run.path / "cells" / "custom__default__r0.stderr.log").is_file()
    return failed


@pytest.mark.parametrize(
    "mode, k, extra, reason",
    [
        ("crash", 4, (), r"server closed its output \(exit code 3\)"),
        ("garbage", 2, (), r"server wrote non-JSON on stdout: b'this is not JSON"),
        ("wrong-id", 2, (), r"server answered with an id it was never sent: 987654321"),
        ("no-handshake", None, ("--start-timeout", "1"), r"no answer to initialize within 1 s"),
        ("huge", 1, (), r"server wrote more than 256 MiB without a newline"),
    ],
    ids=["crash-at-call-k", "garbage-on-stdout", "wrong-id", "never-finishes-handshake", "huge-output"],
)
def test_protocol_fault_fails_only_its_cell(tmp_path, scenario, mode, k, extra, reason):
    proc, out = run_with_fault(tmp_path, scenario, mode, k, *extra)
    check_failed_cell_and_the_rest(proc, out, reason)


def test_hung_server_times_out_and_is_killed_even_if_it_ignores_sigterm(tmp_path, scenario):
    # blocked at call 2, stdin no longer read, SIGTERM ignored: only the SIGKILL of the escalation ends it
    proc, out = run_with_fault(tmp_path, scenario, "hang-stubborn", 2, "--call-timeout", "1")
    failed = check_failed_cell_and_the_rest(proc, out, r"no answer within 1 s \(call 2 of chain 0\)")
    assert failed["reason"].startswith("no answer within 1 s")


def test_call_timeout_default_is_thirty_seconds(tmp_path):
    from click.testing import CliRunner

    from gcbench.cli import main

    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert re.search(r"--call-timeout FLOAT RANGE.*\[default: 30", " ".join(help_text.split()))
    assert re.search(r"--start-timeout FLOAT RANGE.*\[default: 60", " ".join(help_text.split()))


def test_json_rpc_error_is_a_failed_call_and_the_chain_goes_on(tmp_path, scenario):
    # call 1, 6, 11 of the first server answer a JSON-RPC error; every other call is answered normally
    proc, out = run_with_fault(tmp_path, scenario, "rpc-error", 1)
    assert proc.returncode == 3, proc.stderr  # call errors count as a failure for the exit code
    run = gcbench.load(only_run_folder(out))
    cells = run.meta["cells"]
    assert [c["status"] for c in cells] == ["ok"] * 4  # the cell itself was measured whole
    assert cells[1]["call_errors"] == 3 and "simulated failure 1" in cells[1]["first_call_error"]
    custom0 = run.calls[(run.calls["backend"] == "custom") & (run.calls["rep"] == 0)].sort_values(["chain", "call"])
    assert len(custom0) == CALLS_PER_CELL
    bad = custom0[~custom0["ok"]]
    assert list(bad["chain"] * 5 + bad["call"]) == [1, 6, 11]
    assert bad["error"].str.startswith("JSON-RPC error -32000: simulated failure").all()
    assert custom0[custom0["ok"]]["error"].isna().all()
    assert (custom0["latency_ns"] > 0).all()  # the failed calls are timed like the others
    assert run.meta["status"] == "complete-with-failures"
    assert "CALL ERRORS in cell custom gc=default rep=0: 3 calls answered with an error" in proc.stderr


def test_server_over_the_memory_cap_is_stopped_and_reported(tmp_path, scenario):
    proc, out = run_with_fault(tmp_path, scenario, "balloon", 1, "--max-server-memory", "150MiB",
                               FAULT_BALLOON_MB="400")
    failed = check_failed_cell_and_the_rest(
        proc, out, r"stopped by gcbench: its processes used \d+ MiB, over the --max-server-memory cap of 150 MiB")
    used = int(re.search(r"used (\d+) MiB", failed["reason"])[1])
    assert 150 < used < 600
    run = gcbench.load(only_run_folder(out))
    assert run.meta["config"]["max_server_memory_bytes"] == 150 * 2**20


def test_default_memory_cap_is_half_the_ram(tmp_path, scenario):
    from gcbench.memwatch import total_memory_bytes

    proc, out = run_with_fault(tmp_path, scenario, "ok", None)
    assert proc.returncode == 0, proc.stderr
    cap = gcbench.load(only_run_folder(out)).meta["config"]["max_server_memory_bytes"]
    assert cap == total_memory_bytes() // 2


def test_bad_memory_cap_is_bad_input(tmp_path, scenario):
    proc = run_gcbench(["run", "-s", str(scenario), "-b", "python", "--max-server-memory", "lots", "-o",
                        str(tmp_path / "runs")], new_marker())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ERROR: --max-server-memory: expected a size such as 50%, 4GiB or 512MiB, or off; got 'lots'"]


def test_http_port_in_use_fails_that_server_only(tmp_path, scenario):
    # a server that insists on a fixed port (taken here) fails clearly, each time; the built-in server picks
    # a free port (it binds port 0) and is measured before and after
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        marker = new_marker()
        out = tmp_path / "runs"
        proc = run_gcbench(["run", "-s", str(scenario), "-b", "python", "--server-cmd", fault_cmd("http-port"),
                            "-g", "default", "--reps", "2", "-o", str(out), "--transport", "http"],
                           marker, FAULT_PORT=str(port))
        assert_no_orphans(marker)
    assert proc.returncode == 3, proc.stderr
    run = gcbench.load(only_run_folder(out))
    cells = run.meta["cells"]
    assert [(c["backend"], c["status"]) for c in cells] == [
        ("python", "ok"), ("custom", "failed"), ("python", "ok"), ("custom", "failed")]
    for failed in (cells[1], cells[3]):
        assert failed["reason"].startswith("the server exited before it accepted HTTP connections (exit code 1); "
                                           "its stderr ends: ")
        assert failed["reason"].endswith("OSError: [Errno 98] Address already in use")
        assert "\n" not in failed["reason"]
    assert len(run.calls) == 2 * CALLS_PER_CELL
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("FAILED cell custom")]) == 2


def test_server_cmd_that_does_not_exist_is_bad_input(tmp_path, scenario):
    out = tmp_path / "runs"
    proc = run_gcbench(["run", "-s", str(scenario), "--server-cmd", "/no/such/server --flag", "-o", str(out)],
                       new_marker())
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["ERROR: --server-cmd: server command not found: '/no/such/server'"]
    assert not out.exists()  # refused before any run folder or process


def _fake_go(bin_dir: Path, build_script: str) -> None:
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text("#!/bin/sh\n"
                  'if [ "$1" = version ]; then echo "go version go1.99.0 linux/amd64"; exit 0; fi\n'
                  + build_script)
    go.chmod(go.stat().st_mode | stat.S_IXUSR)


def _path_without(*tools: str, first: Path | None = None) -> str:
    """PATH minus every folder holding one of the tools (gcbench itself runs as sys.executable -m gcbench)."""
    keep = [d for d in os.environ["PATH"].split(os.pathsep) if d and not any((Path(d) / t).exists() for t in tools)]
    return os.pathsep.join(([str(first)] if first else []) + keep)


def test_missing_toolchain_is_bad_input_before_anything_runs(tmp_path, scenario):
    out = tmp_path / "runs"
    proc = run_gcbench(["run", "-s", str(scenario), "-b", "python,go", "-o", str(out)], new_marker(),
                       PATH=_path_without("go"), GCBENCH_CACHE=str(tmp_path / "cache"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: backend go is not available: no go toolchain"), lines
    assert not out.exists()


def test_toolchain_that_fails_to_build_fails_its_cells_and_the_run_goes_on(tmp_path, scenario):
    _fake_go(tmp_path / "bin", 'echo "simulated toolchain failure" >&2; exit 1\n')
    marker = new_marker()
    out = tmp_path / "runs"
    proc = run_gcbench(["run", "-s", str(scenario), "-b", "go,python", "-g", "default", "-o", str(out)], marker,
                       PATH=_path_without("go", first=tmp_path / "bin"), GCBENCH_CACHE=str(tmp_path / "cache"))
    assert_no_orphans(marker)
    assert proc.returncode == 3, proc.stderr
    run = gcbench.load(only_run_folder(out))
    go, py = run.meta["cells"]
    assert go["status"] == "failed" and "simulated toolchain failure" in go["reason"]
    assert go["reason"].startswith("backend not ready: building the gcbench-go server failed")
    assert py["status"] == "ok" and len(run.calls) == CALLS_PER_CELL


def test_default_run_says_which_backends_cannot_run(tmp_path, scenario):
    # only python-based backends are reachable on this PATH: the others are named with their reason
    path = _path_without("go", "rustc", "node", "npm")
    marker = new_marker()
    proc = run_gcbench(["run", "-s", str(scenario), "-g", "default", "-o", str(tmp_path / "runs")], marker,
                       PATH=path, GCBENCH_CACHE=str(tmp_path / "cache"))
    assert_no_orphans(marker)
    assert proc.returncode == 0, proc.stderr
    for name in ("go", "rust", "node"):
        assert re.search(rf"gcbench: not running backend {name}: \S", proc.stderr), proc.stderr


@pytest.mark.parametrize("mode", ["fork", "setsid-child", "daemon"])
def test_what_a_server_starts_is_ended_with_it(tmp_path, scenario, mode):
    """A child in the process group, one that left it (setsid), a detached double-forked daemon: none survive."""
    proc, out = run_with_fault(tmp_path, scenario, mode, None)  # assert_no_orphans ran inside
    assert proc.returncode == 0, proc.stderr
    run = gcbench.load(only_run_folder(out))
    assert [c["status"] for c in run.meta["cells"]] == ["ok"] * 4
    if mode == "daemon":  # only found because gcbench is the subreaper of its descendants
        assert run.meta["cells"][1].get("stray_processes_killed") == 1
        assert "ended 1 process(es) a server or helper left running" in proc.stderr


def test_side_channel_garbage_is_counted_not_fatal(tmp_path, scenario):
    """A server writing nonsense into its side channel: the lines are counted as bad, the cell is kept."""
    server = tmp_path / "noisy_server.py"
    server.write_text(
        "import os, runpy, sys\n"
        "with open(os.environ['GCBENCH_EVENTS'], 'a') as f:\n"
        "    f.write('not json\\n[1,2]\\n{\"type\": \"gc\", \"start_ns\": \"x\", \"end_ns\": 1}\\n'\n"
        "            '{\"type\": \"gc\", \"start_ns\": 1, \"end_ns\": 2, \"generation\": \"old\"}\\n')\n"
        f"sys.argv = [{str(FAULT_SERVER)!r}, 'ok']\n"
        f"runpy.run_path(sys.argv[0], run_name='__main__')\n")
    marker = new_marker()
    out = tmp_path / "runs"
    proc = run_gcbench(["run", "-s", str(scenario), "--server-cmd", f"{sys.executable} {server}", "-g", "default",
                        "-o", str(out)], marker)
    assert_no_orphans(marker)
    assert proc.returncode == 0, proc.stderr
    cell = gcbench.load(only_run_folder(out)).meta["cells"][0]
    assert cell["status"] == "ok" and cell["side_channel_bad_lines"] == 4


def test_failed_cells_are_listed_in_json_output(tmp_path, scenario):
    proc, out = run_with_fault(tmp_path, scenario, "crash", 0, "--json")
    assert proc.returncode == 3
    info = json.loads(proc.stdout)
    assert [c["backend"] for c in info["failed_cells"]] == ["custom"]


def test_hung_server_in_an_open_loop_run_cannot_block_a_send(tmp_path):
    """Open loop keeps sending to a hung server until its input pipe is full: the send times out too."""
    scenario = tmp_path / "open.toml"
    scenario.write_text(FAULT_SCENARIO.replace("chains = 3", "chains = 5000\nrate_per_s = 2000"))
    marker = new_marker()
    out = tmp_path / "runs"
    proc = run_gcbench(["run", "-s", str(scenario), "--server-cmd", fault_cmd("hang", 2), "-g", "default", "-o",
                        str(out), "--call-timeout", "1"], marker, timeout=60)
    assert_no_orphans(marker)
    assert proc.returncode == 3, proc.stderr
    (cell,) = gcbench.load(only_run_folder(out)).meta["cells"]
    assert cell["status"] == "failed"
    assert re.match(r"server stopped reading its input \(a request could not be sent within 1 s\)|"
                    r"no answer within 1 s", cell["reason"]), cell["reason"]
