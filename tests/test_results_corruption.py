"""Damaged results: gcbench.load, `gcbench report` and `gcbench compare` on a missing, truncated, corrupted or
future-version run folder give one clear line (exit 2 on the command line), never a traceback; run folders
are written atomically and never overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import gcbench
from gcbench.cli import main
from gcbench.errors import GcbenchError
from gcbench.store import RUN_JSON, RunWriter, load_run

from .conftest import run_cli


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A real run folder (in-process backend: quick), made once and copied for each damage."""
    out = tmp_path_factory.mktemp("good")
    proc = run_cli("run", "-b", "inproc", "-g", "default,disabled", "--chains", "2", "--calls", "5", "-o", str(out),
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    return run


def _meta(folder: Path) -> dict:
    return json.loads((folder / RUN_JSON).read_text())


def _set_meta(folder: Path, meta) -> None:
    (folder / RUN_JSON).write_text(json.dumps(meta))


def _edit_meta(**changes):
    def damage(folder: Path) -> None:
        meta = _meta(folder)
        for k, v in changes.items():
            if v is _DROP:
                meta.pop(k)
            else:
                meta[k] = v
        _set_meta(folder, meta)

    return damage


_DROP = object()


def _truncate(name: str):
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return damage


def _overwrite(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


def _remove(name: str):
    return lambda folder: (folder / name).unlink()


def _rewrite_calls(change):
    def damage(folder: Path) -> None:
        df = pd.read_parquet(folder / "calls.parquet")
        change(df).to_parquet(folder / "calls.parquet", index=False)

    return damage


DAMAGES = {
    "folder-missing": (lambda folder: shutil.rmtree(folder), "not a run folder (no such directory)"),
    "run-json-missing": (_remove(RUN_JSON), "not a run folder (no run.json)"),
    "run-json-empty": (_overwrite(RUN_JSON, b""), "run.json: corrupted (JSONDecodeError"),
    "run-json-truncated": (_truncate(RUN_JSON), "run.json: corrupted (JSONDecodeError"),
    "run-json-binary": (_overwrite(RUN_JSON, bytes(range(256)) * 4), "run.json: corrupted ("),
    "run-json-deep": (_overwrite(RUN_JSON, b"[" * 200000 + b"]" * 200000), "run.json: corrupted (RecursionError"),
    "run-json-a-list": (_overwrite(RUN_JSON, b"[1, 2]"), "run.json: not a gcbench run.json (no schema_version)"),
    "no-schema-version": (_edit_meta(schema_version=_DROP), "not a gcbench run.json (no schema_version)"),
    "future-schema": (_edit_meta(schema_version=99), "schema_version 99 is newer than this gcbench reads (1 to "),
    "schema-as-text": (_edit_meta(schema_version="1"), 'schema_version "1" is not supported'),
    "schema-as-bool": (_edit_meta(schema_version=True), "schema_version true is not supported"),
    "cells-not-a-list": (_edit_meta(cells="none"), "field 'cells' should be list, not str"),
    "cell-damaged": (_edit_meta(cells=[{"backend": 3}]), "cells[0] is damaged"),
    "scenario-missing": (_edit_meta(scenario=_DROP), "field 'scenario' is missing"),
    "environment-not-a-table": (_edit_meta(environment=[]), "field 'environment' should be dict, not list"),
    "run-id-escapes": (_edit_meta(run_id="../../elsewhere"), "field 'run_id' '../../elsewhere' is not a run folder name"),
    "calls-missing": (_remove("calls.parquet"), "calls.parquet: missing table"),
    "calls-truncated": (_truncate("calls.parquet"), "calls.parquet: corrupted table"),
    "events-garbage": (_overwrite("gc_events.parquet", b"PAR1 this is not parquet"), "gc_events.parquet: corrupted table"),
    "calls-column-missing": (_rewrite_calls(lambda df: df.drop(columns=["latency_ns"])),
                             "calls.parquet: missing columns latency_ns"),
    "calls-column-wrong-type": (_rewrite_calls(lambda df: df.assign(latency_ns=df["latency_ns"].astype(str))),
                                "calls.parquet: column 'latency_ns' holds"),
}


@pytest.fixture
def damaged(good_run, tmp_path, request):
    damage, _ = DAMAGES[request.param]
    folder = tmp_path / good_run.name
    shutil.copytree(good_run, folder)
    damage(folder)
    return folder


@pytest.mark.parametrize("damaged", list(DAMAGES), indirect=True)
def test_load_report_and_compare_give_one_clear_line(damaged, good_run, request):
    expected = DAMAGES[request.node.callspec.params["damaged"]][1]
    with pytest.raises(GcbenchError) as exc:
        gcbench.load(damaged)
    msg = str(exc.value)
    assert expected in msg and str(damaged) in msg and "\n" not in msg, msg

    runner = CliRunner()
    for args in (["report", str(damaged)], ["report", str(damaged), "--format", "json"],
                 ["compare", str(good_run), str(damaged)], ["compare", str(damaged), str(good_run)]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert result.stderr.splitlines() == [f"ERROR: {msg}"], (args, result.stderr)
        assert result.stdout == ""


def test_damaged_run_through_the_real_commands(good_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(good_run, folder)
    _truncate(RUN_JSON)(folder)
    for args in (["report", str(folder)], ["compare", str(good_run), str(folder)]):
        proc = run_cli(*args, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("ERROR: ") and "Traceback" not in proc.stderr


def test_the_good_run_loads_and_reports(good_run):
    run = gcbench.load(good_run)
    assert run.meta["status"] == "complete" and len(run.calls) == 2 * 10
    assert CliRunner().invoke(main, ["report", str(good_run)]).exit_code == 0


def test_a_run_folder_is_never_overwritten(good_run, tmp_path):
    before = {p.name: p.read_bytes() for p in good_run.iterdir() if p.is_file()}
    w = RunWriter(good_run.parent, good_run.name, {"scenario": {}, "config": {}, "environment": {}})
    assert w.path != good_run and w.path.name == f"{good_run.name}-2"
    assert {p.name: p.read_bytes() for p in good_run.iterdir() if p.is_file()} == before
    shutil.rmtree(w.path)


def test_a_failed_write_leaves_the_last_complete_state(tmp_path, monkeypatch):
    """Files are written to a temporary name and renamed: a crash in the middle of a write changes nothing."""
    w = RunWriter(tmp_path, "atomic", {"scenario": {}, "config": {}, "environment": {}})
    calls = pd.DataFrame({"backend": ["b"] * 3, "gc_mode": ["default"] * 3, "rep": 0, "agent": 0, "chain": 0,
                          "call": [0, 1, 2], "t_send_ns": [1, 2, 3], "t_recv_ns": [2, 3, 4], "t_intended_ns": [1, 2, 3],
                          "latency_ns": 1, "ok": True, "error": None, "gc_overlap_ns": 0})
    w.add_cell({"backend": "b", "gc_mode": "default", "rep": 0, "status": "ok"}, calls)
    saved = {p.name: p.read_bytes() for p in w.path.iterdir() if p.is_file()}

    real = pd.DataFrame.to_parquet

    def crash_half_way(self, path, *a, **kw):
        Path(path).write_bytes(b"PAR1 half a file")  # what a crash mid-write leaves in the temporary file
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash_half_way)
    with pytest.raises(OSError):
        w.add_cell({"backend": "b", "gc_mode": "default", "rep": 1, "status": "ok"}, calls.assign(rep=1))
    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    assert {p.name: p.read_bytes() for p in w.path.iterdir() if p.is_file() and not p.name.startswith(".")} == saved
    run = load_run(w.path)
    assert len(run.meta["cells"]) == 1 and len(run.calls) == 3


def test_run_ids_cannot_leave_the_output_folder(tmp_path):
    out = tmp_path / "out"
    for rid in ("../escape", "/etc/passwd", "..", ".hidden", "a/../../b", "x" * 500, "名前"):
        w = RunWriter(out, rid, {"scenario": {}, "config": {}, "environment": {}})
        assert w.path.parent == out and not w.path.name.startswith(".") and len(w.path.name) <= 100, w.path
        assert load_run(w.path).meta["run_id"] == w.path.name
    assert sorted(os.listdir(tmp_path)) == ["out"]
