"""Versioned file formats: what each version of a run folder, a sweep manifest and the JSON report holds, and
the upgrades that read an older run folder or manifest as the latest one (applied in memory on load;
`gcbench upgrade` rewrites a folder on disk). A format newer than this gcbench is refused: "upgrade gcbench".

Every file carries an integer "schema_version"; sweep.json and the JSON report also carry a "kind", as they
can be found anywhere (run.json is named by its folder).

To add a column or a field (the tool, memory and concurrency columns to come, for example):
  1. raise RUN_FORMAT, declare the column in CALL_COLUMNS or EVENT_COLUMNS and its version in COLUMN_SINCE;
  2. add one function to RUN_UPGRADES, under the new version, turning a folder of the previous version into
     the new one. It says what an old folder did not record (a documented "not recorded" value, with a note)
     and never invents a measurement; it leaves a column it finds already there alone;
  3. add a line to the history below and a golden folder of the previous version to tests/data/
     (tests/data/README.md says how they are made); tests/test_formats.py loads every one of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple

import pandas as pd

from gcbench.errors import GcbenchError

# ---------------------------------------------------------------------------------------------- run folder
# run.json "schema_version"; tables calls.parquet and gc_events.parquet.
#   1  The original (commit 5f63d4b): calls without t_intended_ns.
#   2  calls.t_intended_ns: when each call was due (closed loop: previous reply + think time; open loop: its
#      slot in the fixed chain schedule). Commit d8ba415 added the column without raising the version, so the
#      folders written from then until 5980df5 (the first to write 2) say 1 and hold the column: the loader reads
#      "1 with t_intended_ns" as 2 (see stored_run_format). Upgrading a real format 1 sets it to 0, which the
#      analysis reads as "not recorded" (a chain is then timed from its first send). The same commit added
#      scenario.chain.rate_per_s to run.json: a format 1 chain was closed loop, rate_per_s 0.0 (without it,
#      compare refuses an old baseline: "scenario.chain.rate_per_s differs").
#   3  calls.tool: the tool each call called (a trace mixes tools: `--trace`, [[trace]]); run.json's scenario
#      has "trace" (its calls) and run.json "trace_source" when the run replayed one. A format 2 chain called
#      one tool: `work` on a built-in server; on a user's server (backend "custom") the `--tool` of the recorded
#      command line, else the scenario's server.tool. The upgrade fills the column from that, with a note.
#      The same version added scenario.server.heap_shape and scenario.work.retain_shape (`records` by default);
#      every format 2 server built `lists`, which the upgrade writes (without it, compare refuses an old
#      baseline: "scenario.server.heap_shape differs").
#   4  run.json: environment "wakeup_floor" (the machine's pipe round trip between two processes, busy and
#      idle: gcbench/wakeup.py) and each measured cell's "harness" (the harness's CPU time and share of one core
#      over the measured window, its send lag p50/p99/max, the schedule's gap between due sends:
#      analysis/harness_load.py). No column changed. A format 3 folder measured neither: the upgrade writes
#      None for both, which the reports show as "not recorded", with a note.
RUN_FORMAT = 4

CALL_COLUMNS = {
    "backend": "string",
    "gc_mode": "string",
    "rep": "int32",
    "agent": "int32",
    "chain": "int32",
    "call": "int32",
    "tool": "string",  # the tool called (format 3)
    "t_send_ns": "int64",
    "t_recv_ns": "int64",
    "t_intended_ns": "int64",  # when the call was due (format 2; 0: not recorded)
    "latency_ns": "int64",
    "ok": "bool",
    "error": "string",
    "gc_overlap_ns": "int64",
}
EVENT_COLUMNS = {
    "backend": "string",
    "gc_mode": "string",
    "rep": "int32",
    "source": "string",  # server | client | control (the idle hiccup-meter process beside the cell)
    "type": "string",  # gc | stall | hiccup (late wake-ups: never GC) | gc_unplaced (a Go cycle whose phases could not be timed: left out of attribution) | safepoint (JVM, not GC)
    "runtime": "string",
    "kind": "string",
    "generation": "int32",
    "start_ns": "int64",
    "end_ns": "int64",
    "duration_ns": "int64",
    "collected": "int64",
    "measured": "bool",  # inside the cell's measurement window (not warm-up or shutdown)
}
# the format a column first appeared in (the others are in every format): a folder is checked for the
# columns of its own format before it is upgraded
COLUMN_SINCE = {"t_intended_ns": 2, "tool": 3}


class RunTables(NamedTuple):
    meta: dict
    calls: pd.DataFrame
    gc_events: pd.DataFrame


def _note(meta: dict, text: str) -> None:
    """What an upgrade could not recover, kept in run.json for whoever reads the numbers."""
    meta.setdefault("format_notes", []).append(text)


def _add_t_intended(run: RunTables) -> RunTables:
    chain = run.meta.get("scenario", {}).get("chain")
    if isinstance(chain, dict):
        chain.setdefault("rate_per_s", 0.0)  # closed loop: the only kind of chain format 1 knew
    if "t_intended_ns" in run.calls:
        return run
    calls = run.calls.copy()
    calls["t_intended_ns"] = pd.Series(0, index=calls.index, dtype="int64")
    _note(run.meta, "format 1 -> 2: calls.t_intended_ns was not recorded (0); chains are timed from their first send")
    return RunTables(run.meta, calls, run.gc_events)


BUILTIN_TOOL = "work"  # the one tool of every built-in server (backends/PROTOCOL.md)


def _format2_tool(meta: dict, backend: str) -> str:
    """The one tool a format 2 cell called: what `gcbench run` passed to the backend then."""
    if backend.split("+")[0] != "custom":  # built-in servers, with or without the hiccup meter (`+meter`)
        return BUILTIN_TOOL
    argv = meta.get("command")
    if isinstance(argv, list):  # click takes `--tool NAME` and `--tool=NAME`
        for i, a in enumerate(argv):
            if a == "--tool" and i + 1 < len(argv):
                return str(argv[i + 1])
            if isinstance(a, str) and a.startswith("--tool="):
                return a[len("--tool="):]
    server = meta.get("scenario", {}).get("server")
    tool = server.get("tool") if isinstance(server, dict) else None
    return tool if isinstance(tool, str) else BUILTIN_TOOL


def _add_tool(run: RunTables) -> RunTables:
    scenario = run.meta.get("scenario")
    if isinstance(scenario, dict):  # a format 2 server built only 2-lists: its heap shape was `lists`
        if isinstance(scenario.get("server"), dict):
            scenario["server"].setdefault("heap_shape", "lists")
        if isinstance(scenario.get("work"), dict):
            scenario["work"].setdefault("retain_shape", "lists")
    if "tool" in run.calls:
        return run
    calls = run.calls.copy()
    names = {b: _format2_tool(run.meta, b) for b in calls["backend"].astype(str).unique()}
    calls["tool"] = calls["backend"].astype(str).map(names).astype("string")
    _note(run.meta, "format 2 -> 3: calls.tool filled from the run's configuration (a format 2 chain called one "
                    "tool: " + ", ".join(f"{b}: {t}" for b, t in names.items()) + ")")
    return RunTables(run.meta, calls, run.gc_events)


def _add_harness_load(run: RunTables) -> RunTables:
    env = run.meta.get("environment")
    missing = isinstance(env, dict) and "wakeup_floor" not in env
    if missing:
        env["wakeup_floor"] = None
    for cell in run.meta.get("cells") or ():
        if isinstance(cell, dict) and cell.get("status") == "ok" and "harness" not in cell:
            cell["harness"] = None
            missing = True
    if missing:
        _note(run.meta, "format 3 -> 4: the machine's wake-up floor and the harness's CPU share and send lag were "
                        "not recorded")
    return run


# version -> the function that turns a folder of version - 1 into that version
RUN_UPGRADES: dict[int, Callable[[RunTables], RunTables]] = {
    2: _add_t_intended,
    3: _add_tool,
    4: _add_harness_load,
}


def stored_run_format(schema_version: int, call_columns) -> int:
    """The format a folder really holds: "1 with t_intended_ns" was written between d8ba415 and format 2."""
    if schema_version == 1 and "t_intended_ns" in call_columns:
        return 2
    return schema_version


def upgrade_run(run: RunTables, found: int) -> RunTables:
    run = apply_upgrades(RUN_UPGRADES, found, RUN_FORMAT, run)
    run.meta["schema_version"] = RUN_FORMAT
    return run


# ---------------------------------------------------------------------------------------------- sweep manifest
# sweep.json "kind": "gcbench-sweep", "schema_version".
#   1  The original (commit 908feaf): name, grid_hash, grid, source, shard, gcbench_version, machine,
#      created_utc (merge adds merged_from).
#   2  grid.agents and grid.rate_per_s: the agents and offered-rate axes (each a list; a grid without the axis
#      holds its base scenario's one value, which grid_hash leaves out, so a format 1 grid keeps its hash), and
#      p99_target_ms: the load study's p99 target from the sweep file (null: the study's default). The upgrade
#      fills the axes from grid.base.chain (the only values a format 1 grid measured) and sets p99_target_ms null.
#   3  "machines": the machines the points were measured on (each its metadata.MACHINE_KEYS fields: hostname,
#      cpu_model, cpu_count, machine), and "point_machines": each measured point's index into "machines", read
#      from the point's own run.json environment (a sweep adds its point when the point ends; a merge of shards
#      from several machines, a CI matrix, keeps every machine). "machine" stays: the shard's own machine, which
#      a resumed sweep must match. A format 1 or 2 manifest named one machine, without its architecture field: the
#      upgrade lists that one (architecture None) and leaves point_machines empty, as format 1 did not record
#      them (readers take a point's machine from its run.json).
#   4  grid.think_ms: the think-time axis (a list of fixed think times between calls, ms; a grid without the axis
#      holds its base chain's one value, which grid_hash and the point ids leave out, so a format 3 grid keeps its
#      hash and its points their folders). The upgrade fills it from grid.base.chain.think.ms (the only think time
#      a format 3 grid measured).
SWEEP_KIND = "gcbench-sweep"
SWEEP_FORMAT = 4


def _add_load_axes(manifest: dict) -> dict:
    grid = manifest.get("grid")
    if isinstance(grid, dict):
        base = grid.get("base")
        chain = base.get("chain") if isinstance(base, dict) else None
        chain = chain if isinstance(chain, dict) else {}
        grid.setdefault("agents", [chain.get("agents", 1)])
        grid.setdefault("rate_per_s", [chain.get("rate_per_s", 0.0)])
    manifest.setdefault("p99_target_ms", None)
    return manifest


def _add_machines(manifest: dict) -> dict:
    from gcbench.metadata import MACHINE_KEYS

    machine = manifest.get("machine")
    if "machines" not in manifest and isinstance(machine, dict):
        manifest["machines"] = [{k: machine.get(k) for k in MACHINE_KEYS}]
    manifest.setdefault("point_machines", {})
    return manifest


def _add_think_axis(manifest: dict) -> dict:
    grid = manifest.get("grid")
    if isinstance(grid, dict):
        base = grid.get("base")
        chain = base.get("chain") if isinstance(base, dict) else None
        think = chain.get("think") if isinstance(chain, dict) else None
        ms = think.get("ms", 0.0) if isinstance(think, dict) else 0.0
        grid.setdefault("think_ms", [float(ms) if type(ms) in (int, float) else 0.0])
    return manifest


SWEEP_UPGRADES: dict[int, Callable[[dict], dict]] = {2: _add_load_axes, 3: _add_machines, 4: _add_think_axis}


def upgrade_manifest(manifest: dict, found: int) -> dict:
    manifest = apply_upgrades(SWEEP_UPGRADES, found, SWEEP_FORMAT, manifest)
    manifest["schema_version"] = SWEEP_FORMAT
    return manifest


# ---------------------------------------------------------------------------------------------- JSON report
# `gcbench report --format json`; written for other tools, never read back by gcbench (so no upgrades).
#   1  "schema": "gcbench-report/1" (commit e50227f).
#   2  "kind": "gcbench-report", "schema_version": 2 (the scheme of sweep.json), and "run_schema_version":
#      the run folder format the report was made from (after upgrading on load: always RUN_FORMAT).
REPORT_KIND = "gcbench-report"
REPORT_FORMAT = 2


# ---------------------------------------------------------------------------------------------- shared


def check_version(path, version: object, latest: int) -> int:
    """The stored schema_version as an int from 1 to latest, or one line saying why not."""
    shown = json.dumps(version)[:40]
    if type(version) is not int or version < 1:
        raise GcbenchError(f"{path}: schema_version {shown} is not supported by this gcbench (it reads 1 to {latest})")
    if version > latest:
        raise GcbenchError(f"{path}: schema_version {version} is newer than this gcbench reads (1 to {latest}): "
                           f"upgrade gcbench")
    return version


def apply_upgrades(upgrades: dict, found: int, latest: int, doc):
    """Run the upgrades from version found + 1 to latest, in order, one function per version."""
    for version in range(found + 1, latest + 1):
        doc = upgrades[version](doc)
    return doc
