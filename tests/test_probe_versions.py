"""What the CPython probe calls a collection on each interpreter, and what counts as a full collection.

The info dicts are the ones each version's gc.callbacks gives (see gcbench/probes/pygc_kinds.py for the
sources): the probe is told which interpreter it runs on (version_info, Py_GIL_DISABLED) instead of the real
one being patched. The interpreters this machine has are run for real.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gcbench.analysis import stats_warnings, summarize
from gcbench.probes import pygc_kinds as kinds
from gcbench.probes.python_gc import GcProbe
from tests.synthetic import Cell, Pause, constant_cell, write_run

PROBES = Path(kinds.__file__).resolve().parent
MS = 1_000_000


class FakeClock:
    """Starts at an odd offset; each read advances by `step_ns`."""

    def __init__(self, step_ns: int = 5_000) -> None:
        self.t = 8_765_432_109_871
        self.step = step_ns

    def __call__(self) -> int:
        self.t += self.step
        return self.t


def _classic(g):  # 3.10-3.13, 3.14.0-3.14.4 too (same keys, other meaning)
    return {"generation": g, "collected": 3, "uncollectable": 0}


def _with_3_15_keys(g):  # 3.15: duration (s) and candidates at "stop"; zeros at "start"
    return {"generation": g, "collected": 3, "uncollectable": 0, "candidates": 1200, "duration": 4e-6}


def _free_threaded_3_15(g):  # gh-141720 added duration to the free-threaded callback; candidates not confirmed
    return {"generation": g, "collected": 3, "uncollectable": 0, "duration": 4e-6}


GEN = ("gen0", "gen1", "gen2")
INC = ("young", "increment", "full")
FT = ("full", "full", "full")
CASES = [
    # version_info, Py_GIL_DISABLED, info dict, design, kind of generation 0, 1, 2
    ((3, 10, 13, "final", 0), False, _classic, "generational", GEN),
    ((3, 11, 7, "final", 0), False, _classic, "generational", GEN),
    ((3, 12, 1, "final", 0), False, _classic, "generational", GEN),
    ((3, 13, 0, "final", 0), False, _classic, "generational", GEN),
    ((3, 13, 0, "alpha", 5), False, _classic, "generational", GEN),  # before gh-108362 landed
    ((3, 13, 0, "alpha", 6), False, _classic, "incremental", INC),
    ((3, 13, 0, "candidate", 2), False, _classic, "incremental", INC),
    ((3, 13, 0, "candidate", 3), False, _classic, "generational", GEN),  # gh-124567 reverted it
    ((3, 14, 0, "final", 0), False, _classic, "incremental", INC),
    ((3, 14, 4, "final", 0), False, _classic, "incremental", INC),
    ((3, 14, 5, "candidate", 1), False, _classic, "generational", GEN),  # gh-142516
    ((3, 14, 5, "final", 0), False, _classic, "generational", GEN),
    ((3, 14, 6, "final", 0), False, _classic, "generational", GEN),
    ((3, 15, 0, "alpha", 8), False, _with_3_15_keys, "incremental", INC),
    ((3, 15, 0, "beta", 1), False, _with_3_15_keys, "generational", GEN),
    ((3, 15, 0, "final", 0), False, _with_3_15_keys, "generational", GEN),
    ((3, 13, 0, "final", 0), True, _classic, "free-threaded", FT),
    ((3, 14, 2, "final", 0), True, _classic, "free-threaded", FT),
    ((3, 14, 6, "final", 0), True, _classic, "free-threaded", FT),  # the revert left this collector alone
    ((3, 15, 0, "final", 0), True, _free_threaded_3_15, "free-threaded", FT),
]


def _ids(case):
    v, gil = case[0], case[1]
    level = {"alpha": "a", "beta": "b", "candidate": "rc", "final": ""}[v[3]]
    return f"{v[0]}.{v[1]}.{v[2]}{level}{v[4] if level else ''}{'t' if gil else ''}"


def _run_callbacks(probe: GcProbe, info_of, generations) -> None:
    for g in generations:
        stop = info_of(g)
        start = {k: (0.0 if k == "duration" else 0) for k in stop} | {"generation": g}
        probe._callback("start", start)
        probe._callback("stop", stop)


def _records(path: Path) -> tuple[list[dict], dict]:
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in recs if r["type"] == "gc"], [r for r in recs if r["type"] == "stats"][-1]


@pytest.mark.parametrize("version,gil,info_of,design,expected", CASES, ids=[_ids(c) for c in CASES])
def test_each_interpreter_s_callback_info_gets_its_honest_kind(tmp_path, version, gil, info_of, design, expected):
    path = tmp_path / "events.jsonl"
    probe = GcProbe(str(path), version_info=version, gil_disabled=gil, clock=FakeClock())  # never installed
    _run_callbacks(probe, info_of, (0, 1, 2))
    probe.flush()
    events, stats = _records(path)
    assert [e["kind"] for e in events] == list(expected)
    assert [e["generation"] for e in events] == [0, 1, 2]  # the raw generation stays in the record
    assert stats["gc_design"] == design and stats["gc_kinds"] == list(expected)
    assert stats["python_version_info"] == list(version) and stats["python_gil_disabled"] is gil
    full = kinds.full_collection_kinds(stats)
    assert [e["kind"] in full for e in events] == ([True] * 3 if design == "free-threaded"
                                                   else [False, False, True])
    has_duration = "duration" in info_of(0)
    assert all(("cpython_duration_ns" in e) is has_duration for e in events)
    assert all(("candidates" in e) is ("candidates" in info_of(0)) for e in events)
    if has_duration:
        assert {e["cpython_duration_ns"] for e in events} == {4_000}
        assert all(e["end_ns"] - e["start_ns"] == 5_000 for e in events)  # one fake-clock step
        assert stats["gc_duration_checked"] == 3 and stats["gc_duration_probe_short"] == 0
        assert stats["gc_duration_excess_max_ns"] == 1_000
    else:
        assert stats["gc_duration_checked"] == 0 and stats["gc_duration_excess_max_ns"] is None


def test_an_automatic_collection_of_the_incremental_gc_is_an_increment_not_a_full_one(tmp_path):
    # 3.14.0-3.14.4: _Py_RunGC always asks for generation 1 (young + an increment of the old generation)
    path = tmp_path / "events.jsonl"
    probe = GcProbe(str(path), version_info=(3, 14, 2, "final", 0), gil_disabled=False, clock=FakeClock())
    _run_callbacks(probe, _classic, [1] * 40)
    probe.flush()
    events, stats = _records(path)
    assert {e["kind"] for e in events} == {"increment"}
    assert not any(e["kind"] in kinds.full_collection_kinds(stats) for e in events)


def test_on_a_free_threaded_build_an_automatic_generation_0_collection_is_full(tmp_path):
    # gc_free_threading.c: _Py_RunGC passes generation 0, and every collection visits the whole heap
    path = tmp_path / "events.jsonl"
    probe = GcProbe(str(path), version_info=(3, 14, 2, "final", 0), gil_disabled=True, clock=FakeClock())
    _run_callbacks(probe, _classic, [0] * 3)
    probe.flush()
    events, stats = _records(path)
    assert [e["kind"] for e in events] == ["full"] * 3
    assert all(e["kind"] in kinds.full_collection_kinds(stats) for e in events)


def test_a_probe_interval_shorter_than_cpython_s_own_duration_is_counted_and_warned(tmp_path):
    path = tmp_path / "events.jsonl"
    probe = GcProbe(str(path), version_info=(3, 15, 0, "final", 0), gil_disabled=False,
                    clock=FakeClock(step_ns=5_000))
    probe._callback("start", {"generation": 0, "collected": 0, "uncollectable": 0, "candidates": 0, "duration": 0.0})
    probe._callback("stop", {"generation": 0, "collected": 0, "uncollectable": 0, "candidates": 9, "duration": 9e-6})
    probe.flush()
    events, stats = _records(path)
    assert events[0]["cpython_duration_ns"] == 9_000 and events[0]["candidates"] == 9
    assert stats["gc_duration_checked"] == 1 and stats["gc_duration_probe_short"] == 1
    assert stats["gc_duration_excess_max_ns"] == -4_000
    (w,) = stats_warnings([stats])
    assert "1 of 1 CPython collection(s) lasted less by the probe's clock" in str(w)
    assert stats_warnings([{**stats, "gc_duration_probe_short": 0}]) == []


def test_the_harness_s_in_process_use_keeps_its_five_fields():
    probe = GcProbe(None, version_info=(3, 14, 2, "final", 0), gil_disabled=False, clock=FakeClock())
    _run_callbacks(probe, _with_3_15_keys, (1,))
    ((g, start, end, collected, uncollectable),) = probe.drain()
    assert (g, end - start, collected, uncollectable) == (1, 5_000, 3, 0)
    assert probe.kind(g) == "increment" and probe.kind(7) == "gen7"


# -------------------------------------------------------------------------------- what counts as full


def test_full_collection_kinds_from_new_old_and_empty_records():
    assert kinds.full_collection_kinds({"gc_design": "generational"}) == {"gen2"}
    assert kinds.full_collection_kinds({"gc_design": "incremental"}) == {"full", "gen2"}
    assert kinds.full_collection_kinds({"gc_design": "free-threaded"}) >= {"full", "gen0", "gen1", "gen2"}
    # records written before the probe named its design: from the version alone (build taken as default)
    assert kinds.full_collection_kinds({"python_version": "3.11.7"}) == {"gen2"}
    assert kinds.full_collection_kinds({"python_version": "3.14.3"}) == {"full", "gen2"}
    assert kinds.full_collection_kinds({"python_version": "3.15.0a8+"}) == {"full", "gen2"}
    assert kinds.full_collection_kinds({"python_version_info": [3, 14, 0, "final", 0],
                                        "python_gil_disabled": True}) >= {"gen0"}
    assert kinds.full_collection_kinds(None) == kinds.full_collection_kinds({}) == {"gen2", "full"}
    assert kinds.parse_version("3.13.0rc3") == (3, 13, 0, "candidate", 3)
    assert kinds.parse_version("not a version") is None


def test_the_full_collection_mask_reads_each_cell_s_interpreter():
    ev = pd.DataFrame({
        "backend": ["py314", "py314", "py314t", "py311", "py311", "py311", "node"],
        "gc_mode": "default", "rep": 0,
        "source": ["server", "server", "server", "server", "server", "client", "server"],
        "type": "gc", "runtime": ["python"] * 6 + ["node"],
        "kind": ["increment", "full", "full", "gen1", "gen2", "gen2", "full"],
    })
    cells = [{"backend": "py314", "gc_mode": "default", "rep": 0, "stats": {"gc_design": "incremental"}},
             {"backend": "py314t", "gc_mode": "default", "rep": 0, "stats": {"gc_design": "free-threaded"}},
             {"backend": "py311", "gc_mode": "default", "rep": 0, "stats": {"python_version": "3.11.7"}}]
    # the harness's own (client) collections and other runtimes are never a server's CPython full collection
    assert kinds.full_collection_mask(ev, cells) == [False, True, True, False, True, False, False]


def _warnings_of(tmp_path, pauses, stats, name):
    cell = constant_cell("python", "default", MS, reps=1, pauses=pauses)
    cell.info = {"stats": stats}
    run = write_run(tmp_path / name, [cell])
    import gcbench

    r = gcbench.load(run)
    s = summarize(r.calls, r.gc_events, 5, cells=r.meta["cells"])
    return [str(w) for w in s.loc[0, "warnings"]]  # typed findings; their sentences


def test_the_few_full_collections_warning_says_what_a_full_collection_is_there(tmp_path):
    six = [Pause(rep=0, chain=c % 4, call=c // 4, offset_ns=10, duration_ns=100, generation=0) for c in range(6)]
    inc = [Pause(rep=0, chain=c % 4, call=c // 4, offset_ns=10, duration_ns=100, generation=1) for c in range(6)]
    # free-threaded: six automatic (generation 0) collections are six full ones: no warning (the old code
    # counted generation == 2 and said "only 0 CPython full collection(s) seen")
    w = _warnings_of(tmp_path, six, {"gc_design": "free-threaded", "python_version": "3.14.2"}, "ft")
    assert not any("full collection" in x for x in w), w
    # incremental: no full collection, and the advice is not "run longer"
    (w,) = [x for x in _warnings_of(tmp_path, inc, {"python_version": "3.14.2"}, "inc") if "full collection" in x]
    assert w.startswith("only 0 CPython full collection(s) seen: on the incremental GC")
    assert "6 other collection(s)" in w and "longer runs" not in w
    # generational (3.11): the generation-0 collections are not full ones
    (w,) = [x for x in _warnings_of(tmp_path, six, {"python_version": "3.11.7"}, "gen") if "full collection" in x]
    assert w.startswith("only 0 CPython full collection(s) seen: too few") and "25% pending rule" in w


def test_the_study_s_full_collection_table_counts_a_free_threaded_build_s_collections(tmp_path):
    from gcbench.report.study import build_study

    root = tmp_path / "sweep"
    root.mkdir()
    heaps = [0, 1_000_000]
    grid = {"backends": ["python"], "gc_modes": {"python": ["default"]}, "heap_objects": heaps,
            "profiles": {"light": {}}, "reps": 1, "base": {}}
    (root / "sweep.json").write_text(json.dumps({
        "kind": "gcbench-sweep", "schema_version": 1, "name": "ft-study", "grid_hash": "0123456789abcdef",
        "grid": grid, "source": "ft.toml", "shard": "1/1", "gcbench_version": "test",
        "machine": {"hostname": "host-a"}, "created_utc": "2026-01-01T00:00:00Z"}))
    for i, heap in enumerate(heaps):
        ms = 2.0 if heap == 0 else 20.0
        pauses = [Pause(rep=0, chain=c, call=1, offset_ns=10, duration_ns=int(ms * MS), generation=0)
                  for c in range(4)]
        cell = Cell("python", "default", np.full((1, 4, 5), 30 * MS, np.int64), pauses,
                    info={"stats": {"type": "stats", "gc_design": "free-threaded", "tracked_objects": heap + 30_000}})
        path = write_run(root, [cell], run_id=f"h{heap}-light", scenario_extra={"server": {"heap_objects": heap}})
        meta = json.loads((path / "run.json").read_text())
        meta["created_utc"] = f"2026-01-01T00:00:{10 * i:02d}Z"
        meta["finished_utc"] = f"2026-01-01T00:00:{10 * i + 8:02d}Z"
        (path / "run.json").write_text(json.dumps(meta))
    study = build_study(root, n_boot=50)
    f = study.full_gc.set_index("heap_objects")
    # the old code selected generation == 2 and found none
    assert f["count"].tolist() == [4, 4]
    assert f["p50_ms"].tolist() == pytest.approx([2.0, 20.0])


# -------------------------------------------------------------------------------- the real interpreters


def _interpreters() -> list[tuple[str, str]]:
    out = {sys.executable: f"harness-{sys.version.split()[0]}"}
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for d in sorted(root.glob("3.*")) if root.is_dir() else []:
        m = re.match(r"^3\.(\d+)\.\d+$", d.name)
        exe = d / "bin" / "python3"
        if m and int(m.group(1)) >= 7 and exe.exists():
            out.setdefault(str(exe), d.name)
    return sorted(out.items(), key=lambda kv: kv[1])


_SCRIPT = """
import gc, json, sys
sys.path.insert(0, sys.argv[1])
from python_gc import GcProbe
gc.disable()  # only the three collections below
p = GcProbe(sys.argv[2]).install()
for g in (0, 1, 2):
    gc.collect(g)
p.flush()
print(json.dumps(list(sys.version_info)))
"""


@pytest.mark.parametrize("exe,name", _interpreters(), ids=[n for _, n in _interpreters()])
def test_the_real_probe_on_each_cpython_here_labels_gc_collect_0_1_2(tmp_path, exe, name):
    path = tmp_path / "events.jsonl"
    proc = subprocess.run([exe, "-c", _SCRIPT, str(PROBES), str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    version = json.loads(proc.stdout)
    events, stats = _records(path)
    assert [(e["generation"], e["kind"]) for e in events] == [(0, "gen0"), (1, "gen1"), (2, "gen2")]
    assert stats["python_version_info"] == version and stats["python_gil_disabled"] is False
    assert stats["gc_design"] == "generational"  # every CPython on this machine: 3.7-3.13.0 final builds
    assert not any("cpython_duration_ns" in e or "candidates" in e for e in events)  # keys 3.15 adds
