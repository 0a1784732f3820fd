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
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import gcbench

from .conftest import REPO
from .faultkit import (
    FAULT_SCENARIO,
    FAULT_SERVER,
    LiveGcbench,
    assert_no_orphans,
    fault_cmd,
    gcbench_env,
    marked_processes,
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


# ------------------------------------------------------------------------------ issue 16: more faults


def test_notification_flood_cannot_defeat_the_call_timeout(tmp_path, scenario):
    """A server that keeps its pipe full of notifications/progress never lets poll time out: the deadline is
    checked on every wake-up all the same."""
    proc, out = run_with_fault(tmp_path, scenario, "flood", 2, "--call-timeout", "1", FAULT_FLOOD_S="8")
    check_failed_cell_and_the_rest(proc, out, r"no answer within 1 s \(call 2 of chain 0\)")


def test_run_chains_checks_the_deadline_on_every_wake_up():
    """Deterministic: a fake transport that always has a notification, a fake clock 1 ms per read."""
    from gcbench.chain import run_chains
    from gcbench.errors import CellError
    from gcbench.scenario import Chain

    class Flood:
        polls = 0
        t_ns = 7_000_000_000_123  # not zero: nothing may rely on time starting at zero

        def clock(self) -> int:
            self.t_ns += 1_000_000
            return self.t_ns

        def send(self, data, agent=0) -> None:
            pass

        def poll(self, timeout_s):
            self.polls += 1
            assert self.polls < 100_000, "the call timeout was never checked (100 s of fake time)"
            return [(self.t_ns, {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})]

    fake = Flood()
    chain = Chain(calls=5, chains=1)
    with pytest.raises(CellError, match=r"^no answer within 3 s \(call 0 of chain 0\)$"):
        run_chains(fake, chain, "work", {}, np.zeros((1, 5), np.int64), 3.0, clock=fake.clock)
    # one clock read per wake-up: the 3000th wake-up after the send is the first at the deadline
    assert fake.polls == 3000


def test_server_that_exits_while_a_child_holds_its_output(tmp_path, scenario):
    """No end of file comes (the child holds the pipe): the server's own exit is seen, with its exit code."""
    proc, out = run_with_fault(tmp_path, scenario, "orphaned-pipe", 2, "--call-timeout", "20")
    failed = check_failed_cell_and_the_rest(
        proc, out, r"server exited \(exit code 4\); a child still holds its output")
    assert "no answer" not in failed["reason"]


def test_launcher_that_exits_0_and_leaves_a_child_serving_is_measured(tmp_path, scenario):
    """Exit code 0 with the pipe held by a child is a launcher handing over, not a fault."""
    proc, out = run_with_fault(tmp_path, scenario, "launcher", None)
    assert proc.returncode == 0, proc.stderr
    run = gcbench.load(only_run_folder(out))
    assert [c["status"] for c in run.meta["cells"]] == ["ok"] * 4
    assert run.meta["cells"][1]["exit_code"] == 0


def test_http_server_that_logs_to_stdout_is_drained(tmp_path, scenario):
    """Over HTTP nothing reads stdout after the port line: 15 x 32 KiB of log lines would fill the pipe and
    block the server. They are copied into its log instead."""
    marker = new_marker()
    out = tmp_path / "runs"
    proc = run_gcbench(["run", "-s", str(scenario), "--server-cmd", fault_cmd("http-chatty"), "-g", "default",
                        "-o", str(out), "--transport", "http", "--call-timeout", "3"], marker)
    assert_no_orphans(marker)
    assert proc.returncode == 0, proc.stderr
    run = gcbench.load(only_run_folder(out))
    assert [c["status"] for c in run.meta["cells"]] == ["ok"]
    log = (run.path / "cells" / "custom__default__r0.stderr.log").read_bytes()
    assert log.count(b"log: working on a call") >= CALLS_PER_CELL * (32768 // 124)


def test_deeply_nested_json_is_the_servers_fault(tmp_path, scenario):
    proc, out = run_with_fault(tmp_path, scenario, "deep", 2)
    failed = check_failed_cell_and_the_rest(
        proc, out, r"server wrote a message nested deeper than gcbench can parse \(about \d+ levels")
    assert "internal error" not in failed["reason"]


def test_terminal_escape_codes_from_a_server_are_escaped(tmp_path, scenario):
    """A server's stderr tail holds ESC [2K (erase line) and a fake progress line: printed escaped."""
    proc, out = run_with_fault(tmp_path, scenario, "ansi", 2)
    failed = check_failed_cell_and_the_rest(proc, out, r"server closed its output \(exit code 2\); its stderr ends: ")
    assert "\x1b" not in proc.stderr and "\x1b" not in failed["reason"]
    assert "\\x1b[2K" in failed["reason"]
    assert not any(line.startswith("[2/4] custom gc=default rep=0: 15 calls") for line in proc.stderr.splitlines())


def test_terminal_escape_codes_in_a_tool_error_are_escaped(tmp_path, scenario):
    proc, out = run_with_fault(tmp_path, scenario, "ansi-error", 1)
    assert proc.returncode == 3, proc.stderr
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr
    assert "JSON-RPC error -32000: bad\\x1b[2K\\rall ok" in proc.stderr
    run = gcbench.load(only_run_folder(out))
    assert run.meta["cells"][1]["first_call_error"] == "JSON-RPC error -32000: bad\\x1b[2K\\rall ok"


def test_float_id_is_refused_in_warm_up_as_in_chains():
    """One rule: an id comes back exactly as sent, an integer; 1000000000.0 is not the id 1000000000."""
    from gcbench.chain import run_chains
    from gcbench.errors import CellError
    from gcbench.mcp import Session
    from gcbench.scenario import Chain

    class Echo:
        """Answers each request with its id turned into a float."""

        def __init__(self) -> None:
            self.sent: list[int] = []

        def send(self, data, agent=0) -> None:
            self.sent.append(json.loads(data)["id"])

        def poll(self, timeout_s):
            ids, self.sent = self.sent, []
            return [(1, {"jsonrpc": "2.0", "id": float(i), "result": {"content": []}}) for i in ids]

    note = r"\(gcbench sends integer ids and needs them back unchanged, not as a float\)"
    with pytest.raises(CellError, match=r"^answer to tools/call carries unexpected id 1000000000\.0 " + note):
        Session(Echo(), 1.0).request("tools/call", {"name": "work", "arguments": {}})
    with pytest.raises(CellError, match=r"^server answered with an id it was never sent: 1\.0 " + note):
        run_chains(Echo(), Chain(calls=2, chains=1), "work", {}, np.zeros((1, 2), np.int64), 1.0)


def test_float_id_in_warm_up_fails_the_cell(tmp_path):
    """A real server answering the first warm-up call with 1000000002.0: refused there as in the chains."""
    scenario = tmp_path / "warm.toml"
    scenario.write_text(FAULT_SCENARIO.replace("warmup_calls = 0", "warmup_calls = 1"))
    marker = new_marker()
    out = tmp_path / "runs"
    proc = run_gcbench(["run", "-s", str(scenario), "--server-cmd", fault_cmd("float-id", 0), "-g", "default",
                        "-o", str(out)], marker)
    assert_no_orphans(marker)
    assert proc.returncode == 3, proc.stderr
    (cell,) = gcbench.load(only_run_folder(out)).meta["cells"]
    assert cell["status"] == "failed"
    assert cell["reason"] == ("answer to tools/call carries unexpected id 1000000002.0 (gcbench sends integer ids "
                              "and needs them back unchanged, not as a float)")


@pytest.mark.parametrize("sink", ["/dev/full", "closed-pipe"])
def test_summary_to_a_full_or_closed_stdout_is_one_line(tmp_path, scenario, sink):
    marker = new_marker()
    out = tmp_path / "runs"
    if sink == "closed-pipe":
        r, w = os.pipe()
        os.close(r)
        stdout = os.fdopen(w, "wb")
    else:
        stdout = open(sink, "wb")  # noqa: SIM115
    with stdout:
        proc = subprocess.run(
            [sys.executable, "-m", "gcbench", "run", "-s", str(scenario), "--server-cmd", fault_cmd("ok"),
             "-g", "default", "-o", str(out)],
            stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, cwd=REPO, env=gcbench_env(marker))
    assert_no_orphans(marker)
    assert proc.returncode == 2, proc.stderr
    run = only_run_folder(out)
    assert gcbench.load(run).meta["status"] == "complete"
    last = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"ERROR: cannot write the summary to stdout \((No space left on device|Broken pipe)\); "
                        r"the run folder is complete: .*" + re.escape(run.name), last), proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


BAD_VALUES = {
    "call-timeout-nan": (["--call-timeout", "nan"], "ERROR: --call-timeout: expected seconds from 0.001 to 86400, got nan"),
    "call-timeout-inf": (["--call-timeout", "inf"], "ERROR: --call-timeout: expected seconds from 0.001 to 86400, got inf"),
    "start-timeout-huge": (["--start-timeout", "1e308"],
                           "ERROR: --start-timeout: expected seconds from 0.001 to 86400, got 1e+308"),
    "rate-tiny": (["--rate", "1e-300"], "field 'chain.rate_per_s': expected 0 (closed loop) or a rate from 0.001 to "
                                         "100000 chains/s, got 1e-300"),
    "rate-nan": (["--rate", "nan"], "field 'chain.rate_per_s': expected a number from 0 to 100000, got nan"),
    "empty-server-cmd": (["--server-cmd", ""],
                         "ERROR: --server-cmd: empty command; leave the option out to run the built-in servers"),
    "blank-server-cmd": (["--server-cmd", "  "],
                         "ERROR: --server-cmd: empty command; leave the option out to run the built-in servers"),
    "backend-comma": (["-b", ","], "ERROR: --backend: no backend named in ','; see `gcbench backends`"),
    "threshold-huge": (["-g", "thresholds:99999999999999999999,1,1"],
                       "ERROR: --gc-mode 'thresholds:99999999999999999999,1,1': 99999999999999999999 is above the "
                       "cap of 2147483647"),
    "gogc-huge": (["-g", "gogc:2147483648"], "ERROR: --gc-mode 'gogc:2147483648': 2147483648 is above the cap of "
                                             "2147483647"),
    "tool-args-nan": (["--server-cmd", fault_cmd("ok"), "--tool-args", '{"a": {"b": [1, NaN]}}'],
                      "ERROR: --tool-args: a.b[1] is nan, which JSON cannot carry"),
    "tool-args-overflow": (["--server-cmd", fault_cmd("ok"), "--tool-args", '{"a": 1e999}'],
                           "ERROR: --tool-args: a is inf, which JSON cannot carry"),
    "tool-args-deep": (["--server-cmd", fault_cmd("ok"), "--tool-args", "[" * 10_000 + "]" * 10_000],
                       "ERROR: --tool-args: nested too deeply"),
}


@pytest.mark.parametrize("args, expected", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_cli_values_are_refused_up_front(tmp_path, scenario, args, expected):
    out = tmp_path / "runs"
    backend = [] if "-b" in args or "--server-cmd" in args else ["-b", "python"]
    proc = run_gcbench(["run", "-s", str(scenario), *backend, "-o", str(out), *args], new_marker())
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("ERROR: ") and lines[0].endswith(expected), lines[0]
    assert not out.exists()  # refused before any run folder or process


@pytest.mark.parametrize("toml, expected", [
    ("[server]\ncommand = \"x\"\ntool_args = { a = nan }", "field 'server.tool_args': a is nan, which JSON cannot carry"),
    ("[server]\ncommand = \"x\"\ntool_args = { a = [-inf] }", "field 'server.tool_args': a[0] is -inf, which JSON cannot carry"),
    ("[server]\ncommand = \" \"", "field 'server.command': empty command; leave it out to run the built-in servers"),
    ("[chain]\nrate_per_s = 1e-9", "field 'chain.rate_per_s': expected 0 (closed loop) or a rate from 0.001 to 100000 "
                                   "chains/s, got 1e-09"),
], ids=["tool-args-nan", "tool-args-inf", "blank-command", "rate-tiny"])
def test_bad_scenario_values_are_refused(tmp_path, toml, expected):
    from gcbench.errors import GcbenchError
    from gcbench.scenario import load_scenario

    p = tmp_path / "bad.toml"
    p.write_text(toml + "\n")
    with pytest.raises(GcbenchError) as e:
        load_scenario(str(p))
    assert str(e.value) == f"{p}: {expected}"


IMMORTAL_SCENARIO = """
name = "immortal"
[chain]
calls = 50
chains = 3
warmup_calls = 0
"""


@pytest.mark.parametrize("cap", ["50%", "off"])
def test_nothing_of_a_cell_survives_a_sigkill_of_gcbench(tmp_path, cap):
    """gcbench SIGKILLed (or OOM-killed) mid-cell, with a server that ignores end of input and SIGTERM and has
    double-forked a daemon: 5 s later no process of the cell is left (server, daemon, guard)."""
    scenario = tmp_path / "immortal.toml"
    scenario.write_text(IMMORTAL_SCENARIO)
    daemon_file = tmp_path / "daemon.pid"
    marker = new_marker()
    live = LiveGcbench(["run", "-s", str(scenario), "--server-cmd", fault_cmd("immortal"), "-g", "default",
                        "-o", str(tmp_path / "runs"), "--max-server-memory", cap], marker,
                       FAULT_DAEMON_FILE=str(daemon_file))
    try:
        deadline = time.monotonic() + 30
        while not daemon_file.exists():
            assert time.monotonic() < deadline and live.proc.poll() is None, live.stderr
            time.sleep(0.05)
        time.sleep(1.0)  # the chains are running: 150 calls of 0.2 s
        assert live.proc.poll() is None, live.stderr
        daemon = psutil.Process(int(daemon_file.read_text()))
        assert len(marked_processes(marker)) >= 4  # gcbench, server, guard, daemon
        live.signal_process(signal.SIGKILL)
        assert live.finish() == -signal.SIGKILL
    finally:
        assert_no_orphans(marker, settle_s=5.0)
    assert not daemon.is_running() or daemon.status() == psutil.STATUS_ZOMBIE
