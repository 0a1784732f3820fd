"""Versioned formats: golden folders of every past format load (upgraded in memory), `gcbench upgrade` rewrites
them, a newer format is refused with one line, the sweep manifest is version-checked and written atomically."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import gcbench
from gcbench import formats
from gcbench.errors import GcbenchError
from gcbench.formats import CALL_COLUMNS, EVENT_COLUMNS, RUN_FORMAT, RUN_UPGRADES, RunTables, apply_upgrades
from gcbench.report import build, export, report_document
from gcbench.store import RUN_JSON, RunWriter, load_run
from gcbench.sweep import MANIFEST, load_sweep_runs, merge, read_manifest

from .conftest import run_cli

DATA = Path(__file__).parent / "data"
# golden folder -> the format it holds (tests/data/README.md says which commit wrote each)
GOLDEN_RUNS = {
    "run-format-1": 1,
    "run-format-2-as-schema-1": 2,
    "run-format-2": 2,
    "run-format-3": 3,
    "run-format-4": 4,
    "sweep-format-1/h0-base": 2,  # a sweep point written at acd07a8: says 1, holds t_intended_ns
    "sweep-format-2/h0-base": 4,
    "sweep-format-3/h0-base": 4,
}


def _copy(tmp_path: Path, name: str) -> Path:
    dst = tmp_path / name.replace("/", "_")
    shutil.copytree(DATA / name, dst)
    return dst


def _stored_meta(folder: Path) -> dict:
    return json.loads((folder / RUN_JSON).read_text())


def test_a_golden_folder_of_every_format_is_there():
    assert set(range(1, RUN_FORMAT + 1)) <= set(GOLDEN_RUNS.values())
    assert _stored_meta(DATA / f"run-format-{RUN_FORMAT}")["schema_version"] == RUN_FORMAT


@pytest.mark.parametrize("name", list(GOLDEN_RUNS))
def test_every_golden_run_folder_loads_as_the_latest_format(name):
    run = gcbench.load(DATA / name)
    assert run.stored_format == GOLDEN_RUNS[name]
    assert run.meta["schema_version"] == RUN_FORMAT
    assert set(CALL_COLUMNS) <= set(run.calls) and set(EVENT_COLUMNS) <= set(run.gc_events)
    assert len(run.calls) == 6 * len(run.meta["cells"]) and run.calls["ok"].all()  # 2 chains x 3 calls a cell
    assert (run.gc_events["type"] == "gc").any()
    assert run.meta["scenario"]["chain"]["rate_per_s"] == 0.0
    due, sent = run.calls["t_intended_ns"], run.calls["t_send_ns"]
    assert due.dtype == "int64"
    notes = run.meta.get("format_notes", [])
    if run.stored_format == 1:  # not recorded: 0, said in run.json, never made up
        assert (due == 0).all() and "t_intended_ns was not recorded" in notes[0]
    else:
        assert ((due > 0) & (due <= sent)).all()
    # format 2 called one tool, `work` on the built-in servers: filled from the configuration, with a note
    assert run.calls["tool"].dtype == "string" and (run.calls["tool"] == "work").all()
    assert [n for n in notes if "calls.tool" in n] == (
        ["format 2 -> 3: calls.tool filled from the run's configuration (a format 2 chain called one tool: "
         "python: work)"] if run.stored_format < 3 else [])
    assert len(notes) == (run.stored_format == 1) + (run.stored_format < 3) + (run.stored_format < 4)
    # before format 4 neither the wake-up floor nor the harness's load was measured: None, said, never made up
    if run.stored_format < 4:
        assert run.meta["environment"]["wakeup_floor"] is None
        assert all(c["harness"] is None for c in run.meta["cells"] if c["status"] == "ok")
        assert notes[-1] == ("format 3 -> 4: the machine's wake-up floor and the harness's CPU share and send lag "
                             "were not recorded")
    else:
        assert run.meta["environment"]["wakeup_floor"]["idle"]["p50_ns"] > 0
        assert all(c["harness"]["send_lag_calls"] == 6 for c in run.meta["cells"])
    # a server before format 3 built 2-lists only: the upgrade says so, so compare does not refuse old baselines
    if run.stored_format < 3:
        assert run.meta["scenario"]["server"]["heap_shape"] == "lists"
        assert run.meta["scenario"]["work"]["retain_shape"] == "lists"


@pytest.mark.parametrize("name", ["run-format-1", "run-format-2-as-schema-1", "run-format-2"])
def test_golden_folders_report_and_compare_with_todays_run(name, tmp_path):
    rep = build(DATA / name)
    for fmt in ("text", "json"):
        assert "python" in export(report_document(rep, fmt), fmt)
    doc = json.loads(export(report_document(rep, "json"), "json"))
    assert (doc["kind"], doc["schema_version"], doc["run_schema_version"]) == ("gcbench-report", 2, RUN_FORMAT)
    # a CI baseline kept from before this change compares with a run of today's format
    proc = run_cli("compare", str(DATA / name), str(DATA / f"run-format-{RUN_FORMAT}"), "--ratio", "--threshold", "1000")
    assert proc.returncode == 0, proc.stderr


def test_the_upgrade_chain_has_one_function_per_version_and_reaches_the_latest_columns():
    assert sorted(RUN_UPGRADES) == list(range(2, RUN_FORMAT + 1))
    assert sorted(formats.SWEEP_UPGRADES) == list(range(2, formats.SWEEP_FORMAT + 1))
    assert set(formats.COLUMN_SINCE.values()) <= set(RUN_UPGRADES)
    old = DATA / "run-format-1"
    meta = _stored_meta(old)
    calls, events = pd.read_parquet(old / "calls.parquet"), pd.read_parquet(old / "gc_events.parquet")
    assert set(CALL_COLUMNS) - set(calls) == {c for c, v in formats.COLUMN_SINCE.items() if v > 1}
    up = apply_upgrades(RUN_UPGRADES, 1, RUN_FORMAT, RunTables(meta, calls, events))
    assert set(CALL_COLUMNS) <= set(up.calls) and set(EVENT_COLUMNS) <= set(up.gc_events)
    assert up.calls[list(calls.columns)].equals(calls)  # what was measured is kept as it was
    # every upgrade leaves a folder that already has its columns alone (an upgrade cut short is re-run)
    new = DATA / f"run-format-{RUN_FORMAT}"
    latest = RunTables(_stored_meta(new), pd.read_parquet(new / "calls.parquet"),
                       pd.read_parquet(new / "gc_events.parquet"))
    for version, upgrade in RUN_UPGRADES.items():
        again = upgrade(RunTables(dict(latest.meta), latest.calls, latest.gc_events))
        assert again.calls.equals(latest.calls) and again.gc_events.equals(latest.gc_events), version


@pytest.mark.parametrize("backend, argv, server_tool, expected", [
    ("custom", ["gcbench", "run", "--server-cmd", "srv --tool x", "--tool", "lookup"], "search", "lookup"),
    ("custom", ["gcbench", "run", "--tool=find", "--server-cmd", "srv"], "search", "find"),
    ("custom", ["gcbench", "run", "--server-cmd", "srv --tool x"], "search", "search"),  # one argv element
    ("python+meter", ["gcbench", "run", "--tool", "lookup"], "search", "work"),  # a built-in server: work
])
def test_format_2_to_3_takes_the_tool_from_the_configuration_of_the_run(backend, argv, server_tool, expected):
    """What `gcbench run` of format 2 called: --tool, else the scenario's server.tool; `work` on a built-in server."""
    old = DATA / "run-format-2"
    meta = _stored_meta(old)
    meta["command"], meta["scenario"]["server"]["tool"] = argv, server_tool
    calls = pd.read_parquet(old / "calls.parquet").assign(backend=backend)
    up = RUN_UPGRADES[3](RunTables(meta, calls, pd.read_parquet(old / "gc_events.parquet")))
    assert (up.calls["tool"] == expected).all() and up.calls.drop(columns="tool").equals(calls)
    assert up.meta["format_notes"] == [f"format 2 -> 3: calls.tool filled from the run's configuration (a format 2 "
                                       f"chain called one tool: {backend}: {expected})"]
    assert "trace" not in up.meta["scenario"]  # no trace: the scenario as format 2 wrote it


def test_apply_upgrades_runs_each_version_once_in_order():
    seen = []
    chain = {v: (lambda doc, v=v: seen.append(v) or {**doc, "v": v}) for v in (2, 3, 4)}
    assert apply_upgrades(chain, 1, 4, {})["v"] == 4 and seen == [2, 3, 4]
    seen.clear()
    assert apply_upgrades(chain, 3, 4, {"v": 3}) == {"v": 4} and seen == [4]
    assert apply_upgrades(chain, 4, 4, {"v": 4}) == {"v": 4}


def test_the_writer_writes_the_latest_format(tmp_path):
    w = RunWriter(tmp_path, "w", {"scenario": {}, "config": {}, "environment": {}})
    assert _stored_meta(w.path)["schema_version"] == RUN_FORMAT == 4


def test_gcbench_upgrade_rewrites_an_old_folder_once(tmp_path):
    folder = _copy(tmp_path, "run-format-1")
    before = pd.read_parquet(folder / "calls.parquet")
    proc = run_cli("upgrade", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{folder}: run folder schema_version 1 -> {RUN_FORMAT}, rewritten"
    meta = _stored_meta(folder)
    assert meta["schema_version"] == RUN_FORMAT and meta["upgraded_from_schema_version"] == 1
    assert "t_intended_ns was not recorded" in meta["format_notes"][0]
    after = pd.read_parquet(folder / "calls.parquet")
    assert list(after.columns) == list(CALL_COLUMNS) and after[list(before.columns)].equals(before)
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temp file left
    run = load_run(folder)
    assert run.stored_format == RUN_FORMAT and len(run.meta["format_notes"]) == 3  # not noted twice
    proc = run_cli("upgrade", str(folder))
    assert proc.stdout.strip() == f"{folder}: run folder already schema_version {RUN_FORMAT}"


def test_gcbench_upgrade_of_a_sweep_folder_upgrades_its_points(tmp_path):
    folder = _copy(tmp_path, "sweep-format-1")
    proc = run_cli("upgrade", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{folder}: sweep manifest schema_version 1 -> {formats.SWEEP_FORMAT}, rewritten",
        f"{folder / 'h0-base'}: run folder schema_version 1 -> {RUN_FORMAT}, rewritten",
    ]
    assert _stored_meta(folder / "h0-base")["schema_version"] == RUN_FORMAT
    assert json.loads((folder / MANIFEST).read_text())["schema_version"] == formats.SWEEP_FORMAT


def test_gcbench_upgrade_waits_for_no_sweep_writing_into_the_folder(tmp_path):
    """A sweep or merge holding the folder's lock: upgrade refuses (one line, exit 2) and rewrites nothing.
    The old code rewrote the points under a running sweep."""
    from gcbench.sweep import folder_lock

    folder = _copy(tmp_path, "sweep-format-1")
    with folder_lock(folder):
        line = _one_error_line(run_cli("upgrade", str(folder)))
    assert "another gcbench" in line and str(folder) in line
    assert _stored_meta(folder / "h0-base")["schema_version"] == 1  # left alone
    assert run_cli("upgrade", str(folder)).returncode == 0  # the lock went with its holder


def _one_error_line(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_a_newer_run_folder_is_refused_with_one_line(tmp_path):
    folder = _copy(tmp_path, "run-format-2")
    meta = _stored_meta(folder)
    (folder / RUN_JSON).write_text(json.dumps({**meta, "schema_version": RUN_FORMAT + 1}))
    for args in (["report", str(folder)], ["upgrade", str(folder)], ["compare", str(folder), str(DATA / "run-format-2")]):
        line = _one_error_line(run_cli(*args))
        assert line == (f"ERROR: {folder / RUN_JSON}: schema_version {RUN_FORMAT + 1} is newer than this gcbench "
                        f"reads (1 to {RUN_FORMAT}): upgrade gcbench"), args
    assert _stored_meta(folder)["schema_version"] == RUN_FORMAT + 1  # upgrade left it alone


def test_the_sweep_manifest_version_is_checked_on_load(tmp_path):
    folder = _copy(tmp_path, "sweep-format-1")
    assert read_manifest(folder)["schema_version"] == formats.SWEEP_FORMAT  # upgraded in memory
    (point, run), = load_sweep_runs(folder)
    assert point["point"] == "h0-base" and run.meta["schema_version"] == RUN_FORMAT
    manifest = json.loads((folder / MANIFEST).read_text())
    for version, problem in ((formats.SWEEP_FORMAT + 1, f"is newer than this gcbench reads (1 to {formats.SWEEP_FORMAT}): "
                                                        "upgrade gcbench"),
                             ("1", 'schema_version "1" is not supported'), (None, "no schema_version")):
        doc = {k: v for k, v in manifest.items() if k != "schema_version" or version is not None}
        if version is not None:
            doc["schema_version"] = version
        (folder / MANIFEST).write_text(json.dumps(doc))
        with pytest.raises(GcbenchError, match=f"{folder / MANIFEST}: .*{problem[:20]}"):
            read_manifest(folder)
    (folder / MANIFEST).write_text(json.dumps({**manifest, "schema_version": formats.SWEEP_FORMAT + 1}))
    line = _one_error_line(run_cli("study", str(folder)))
    assert "upgrade gcbench" in line and str(folder / MANIFEST) in line


def test_an_older_sweep_manifest_is_upgraded_on_load(tmp_path):
    """Format 1 -> 3: the grid's agents and rate axes are the base chain's one value, no p99 target (2); the one
    machine format 1 named becomes the list of machines (its architecture was not recorded: None), and no point's
    machine is invented (point_machines empty: readers use each run.json) (3)."""
    folder = _copy(tmp_path, "sweep-format-1")
    m = read_manifest(folder)
    assert m["schema_version"] == formats.SWEEP_FORMAT == 4 and m["p99_target_ms"] is None
    assert (m["grid"]["agents"], m["grid"]["rate_per_s"], m["grid"]["think_ms"]) == ([1], [0.0], [0.0])
    stored = json.loads((folder / MANIFEST).read_text())
    assert m["machines"] == [{"hostname": stored["machine"]["hostname"], "cpu_model": stored["machine"]["cpu_model"],
                              "cpu_count": stored["machine"]["cpu_count"], "machine": None}]
    assert m["point_machines"] == {}
    assert stored["schema_version"] == 1 and "agents" not in stored["grid"]  # in memory only
    assert m["grid_hash"] == stored["grid_hash"]


def test_a_format_2_sweep_manifest_keeps_its_axes_and_gets_its_machine(tmp_path):
    """Format 2 -> 3: the load axes stay as written; the one machine becomes the list of machines."""
    folder = _copy(tmp_path, "sweep-format-2")
    stored = json.loads((folder / MANIFEST).read_text())
    m = read_manifest(folder)
    assert stored["schema_version"] == 2 and m["schema_version"] == 4
    assert (m["grid"]["agents"], m["grid"]["rate_per_s"], m["p99_target_ms"]) == ([1], [0.0], None)
    assert [x["hostname"] for x in m["machines"]] == [stored["machine"]["hostname"]] and m["point_machines"] == {}
    assert m["grid_hash"] == stored["grid_hash"]


def test_a_format_3_sweep_manifest_gets_the_think_axis_of_its_base_chain_and_keeps_its_hash(tmp_path):
    """Format 3 -> 4: grid.think_ms is the base chain's one think time; the hash and the point ids stay."""
    from gcbench.sweep import grid_points, load_sweep

    folder = _copy(tmp_path, "sweep-format-3")
    stored = json.loads((folder / MANIFEST).read_text())
    m = read_manifest(folder)
    assert stored["schema_version"] == 3 and "think_ms" not in stored["grid"] and m["schema_version"] == 4
    assert m["grid"]["think_ms"] == [0.0] and m["machines"] == stored["machines"]
    assert m["grid_hash"] == stored["grid_hash"] == load_sweep(DATA / "golden-sweep.toml").grid_hash()
    assert list(grid_points(m["grid"])) == ["h0-base"]
    (info, run), = load_sweep_runs(folder)
    assert (info["point"], info["think_ms"]) == ("h0-base", 0.0) and len(run.calls) == 6


def test_the_sweep_manifest_is_written_atomically(tmp_path, monkeypatch):
    """A write cut short (here: the rename fails) leaves no sweep.json, and no half of one, behind."""
    shard = _copy(tmp_path, "sweep-format-1")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    out = tmp_path / "merged"
    with pytest.raises(OSError):
        merge(out, [shard], log=lambda m: None)
    assert not (out / MANIFEST).exists() and [p.name for p in out.iterdir()] == [".lock"] and synced  # the lock stays
    monkeypatch.undo()
    merge(out, [shard], log=lambda m: None)
    assert read_manifest(out)["shard"] == "merged"
