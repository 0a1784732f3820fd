"""End-to-end runs against the real Python server subprocess (and the in-process backend)."""

import json

import numpy as np
import pytest

import gcbench
from gcbench.formats import RUN_FORMAT
from gcbench.store import load_run

from .conftest import run_cli


def _run(*args, out):
    proc = run_cli("run", *args, "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    return gcbench.load(info["run"]), info


def test_run_writes_a_loadable_folder_with_every_call(tiny_scenario, tmp_path):
    run, info = _run("--scenario", str(tiny_scenario), "--backend", "python,inproc",
                     "--gc-mode", "default,disabled", "--reps", "2", out=tmp_path)
    calls, meta = run.calls, run.meta
    assert meta["status"] == "complete"
    assert json.loads((run.path / "run.json").read_text())["schema_version"] == RUN_FORMAT == run.stored_format
    assert meta["scenario"]["name"] == "tiny"
    assert {"python_version", "cpu_model", "cpu_count", "platform"} <= set(meta["environment"])
    assert meta["environment"]["wakeup_floor"]["idle"]["p50_ns"] > 0  # measured once, at the start of the run
    assert all(c["harness"]["send_lag_calls"] == 15 and c["harness"]["cpu_s"] > 0 for c in meta["cells"])
    cells = meta["cells"]
    assert len(cells) == 2 * 2 * 2 and all(c["status"] == "ok" for c in cells)
    per_cell = calls.groupby(["backend", "gc_mode", "rep"]).size()
    assert len(per_cell) == 8 and (per_cell == 3 * 5).all()  # chains x calls per cell
    assert calls["ok"].all()
    assert (calls["latency_ns"] == calls["t_recv_ns"] - calls["t_send_ns"]).all()
    assert (calls["latency_ns"] > 0).all()
    # calls of a chain are sequential
    for _, ch in calls.groupby(["backend", "gc_mode", "rep", "chain"]):
        ch = ch.sort_values("call")
        assert (ch["t_send_ns"].to_numpy()[1:] >= ch["t_recv_ns"].to_numpy()[:-1]).all()
    # attribution is bounded by the call's own latency
    assert (calls["gc_overlap_ns"] <= calls["latency_ns"]).all()
    assert {r["backend"] for r in info["summary"]} == {"python", "inproc"}
    # the run folder is listed by path and holds the per-cell raw side channel
    assert (run.path / "cells").is_dir()


def test_disabled_gives_zero_server_gc_events_and_default_gives_young_collections(tmp_path):
    run, _ = _run("--scenario", "default", "--backend", "python", "--gc-mode", "default,disabled",
                  "--chains", "4", out=tmp_path)
    server = run.gc_events[(run.gc_events["source"] == "server") & run.gc_events["measured"]]
    assert (server["gc_mode"] == "disabled").sum() == 0
    default = server[server["gc_mode"] == "default"]
    assert (default["generation"] == 0).sum() > 0
    disabled_calls = run.calls[run.calls["gc_mode"] == "disabled"]
    assert (disabled_calls["gc_overlap_ns"] == 0).all()
    default_calls = run.calls[run.calls["gc_mode"] == "default"]
    assert default_calls["gc_overlap_ns"].sum() > 0


def test_harness_gc_is_silent_inside_measured_windows(tmp_path):
    run, _ = _run("--scenario", "default", "--backend", "python", "--gc-mode", "default", "--chains", "4", out=tmp_path)
    client = run.gc_events[run.gc_events["source"] == "client"]
    assert len(client[client["measured"]]) == 0
    assert all(c["client_gc_events_in_window"] == 0 for c in run.meta["cells"])


def test_freeze_makes_full_collections_much_cheaper_on_a_big_heap(write_scenario, tmp_path):
    sc = write_scenario("""
        name = "big-heap-test"
        [chain]
        calls = 50
        chains = 6
        warmup_calls = 5
        [work]
        alloc_objects = 2000
        cyclic_fraction = 0.2
        retain_objects = 2000
        retain_cap = 60000
        retain_shape = "lists"
        [server]
        heap_objects = 600000
        heap_shape = "lists"
    """)
    run, _ = _run("--scenario", str(sc), "--backend", "python", "--gc-mode", "default,freeze", out=tmp_path)
    ev = run.gc_events
    full = ev[(ev["source"] == "server") & (ev["generation"] == 2) & ev["measured"]]
    per_mode = full.groupby("gc_mode")["duration_ns"]
    assert per_mode.size().get("default", 0) >= 1 and per_mode.size().get("freeze", 0) >= 1, per_mode.size()
    ratio = np.median(full[full.gc_mode == "default"]["duration_ns"]) / np.median(full[full.gc_mode == "freeze"]["duration_ns"])
    assert ratio > 2.5, f"freeze full collections only {ratio:.2f}x cheaper"


def test_load_rejects_what_is_not_a_run(tmp_path):
    with pytest.raises(gcbench.errors.GcbenchError, match="not a run folder"):
        load_run(tmp_path)


def test_every_agent_is_connected_before_the_window_over_http(write_scenario, tmp_path):
    """16 agents over HTTP: the connections are opened before measuring. Opened lazily on each agent's first
    send, inside the window, they met the stdlib server's listen backlog of 5 and waited for the kernel's
    SYN retries: the first call of most chains took 1.0 or 2.0 s on the old code."""
    sc = write_scenario("""
        name = "agents16"
        [chain]
        calls = 2
        chains = 16
        agents = 16
        warmup_calls = 1
    """)
    run, _ = _run("--scenario", str(sc), "--backend", "python", "--gc-mode", "disabled",
                  "--transport", "http", out=tmp_path)
    calls = run.calls
    assert len(calls) == 32 and calls["ok"].all()
    first = calls[calls["call"] == 0]
    assert first["latency_ns"].max() < 0.9e9, first["latency_ns"].max()  # no SYN retry (1 s) in the window
