"""Latency under load: the sweep's agents and rate axes, the analysis on known calls, the study's section."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gcbench.analysis.load import corrected_latency_ns, load_table, max_rate_holding
from gcbench.errors import GcbenchError
from gcbench.formats import SWEEP_FORMAT
from gcbench.report import export
from gcbench.report.study import build_study
from gcbench.report.study_document import study_document
from gcbench.sweep import expand, grid_points, load_sweep, load_sweep_runs, read_manifest
from tests.conftest import run_cli
from tests.synthetic import Cell, write_run

DATA = Path(__file__).parent / "data"
MS = 1_000_000
T0 = 5_432_100_000_000  # not zero: nothing may rely on time starting at 0

SWEEP = """
name = "load-test"
[chain]
calls = 4
chains = 10
warmup_calls = 1
[work]
alloc_objects = 300
[sweep]
backends = ["python"]
heap_objects = [0]
"""


# ---------------------------------------------------------------------------------------------- sweep axes


def test_the_axes_expand_the_grid_with_ids_that_say_them(write_scenario):
    spec = load_sweep(write_scenario(SWEEP + "agents = [1, 4]\nrate_per_s = [10, 20.5]\np99_target_ms = 30\n"))
    points = expand(spec)
    assert [p.id for p in points] == ["h0-base-a1-r10", "h0-base-a1-r20.5", "h0-base-a4-r10", "h0-base-a4-r20.5"]
    assert [(p.scenario.chain.agents, p.scenario.chain.rate_per_s) for p in points] == [
        (1, 10.0), (1, 20.5), (4, 10.0), (4, 20.5)]
    assert points[1].scenario.name == "load-test-h0-base-a1-r20.5" and spec.p99_target_ms == 30.0
    assert spec.to_dict()["agents"] == [1, 4] and spec.to_dict()["rate_per_s"] == [10.0, 20.5]
    assert list(grid_points(spec.to_dict())) == [p.id for p in points]  # what the study reads back


def test_a_grid_without_the_axes_keeps_its_ids_and_hash(write_scenario):
    plain = load_sweep(write_scenario(SWEEP, "plain.toml"))
    same = load_sweep(write_scenario(SWEEP + "agents = [1]\nrate_per_s = [0]\np99_target_ms = 20\n", "same.toml"))
    assert [p.id for p in expand(plain)] == [p.id for p in expand(same)] == ["h0-base"]
    assert plain.grid_hash() == same.grid_hash()  # one value, the base's: the grid before the axes existed
    rated = load_sweep(write_scenario(SWEEP + "rate_per_s = [10]\n", "rated.toml"))
    assert rated.grid_hash() != plain.grid_hash() and [p.id for p in expand(rated)] == ["h0-base-r10"]


def test_the_shipped_load_sweep_steps_the_rate_for_four_runtimes():
    spec = load_sweep("load")
    assert set(spec.backends) >= {"python", "node", "go", "rust"} and spec.p99_target_ms > 0
    assert len(spec.rates) >= 4 and list(spec.rates) == sorted(spec.rates) and spec.rates[0] > 0
    assert all(str(m) == "default" for ms in spec.gc_modes.values() for m in ms)


def test_the_golden_sweep_keeps_the_grid_hash_it_was_written_with():
    stored = json.loads((DATA / "sweep-format-1" / "sweep.json").read_text())["grid_hash"]
    assert load_sweep(DATA / "golden-sweep.toml").grid_hash() == stored


@pytest.mark.parametrize("extra, field, problem", [
    ("agents = []", "sweep.agents", "non-empty array"),
    ("agents = 4", "sweep.agents", "non-empty array"),
    ("agents = [0]", "sweep.agents[0]", ""),
    ("agents = [2, \"x\"]", "sweep.agents[1]", ""),
    ("agents = [2, 2]", "sweep.agents[1]", "listed twice"),
    ("rate_per_s = [10, -1]", "sweep.rate_per_s[1]", ""),
    ("rate_per_s = [0.0001]", "sweep.rate_per_s[0]", "closed loop"),
    ("rate_per_s = [\"fast\"]", "sweep.rate_per_s[0]", ""),
    ("p99_target_ms = 0", "sweep.p99_target_ms", "above 0"),
    ("p99_target_ms = \"50\"", "sweep.p99_target_ms", ""),
    ("rates = [10]", "sweep.rates", ""),
])
def test_bad_axes_name_the_field(write_scenario, extra, field, problem):
    with pytest.raises(GcbenchError, match=re.escape(f"'{field}'") + ".*" + re.escape(problem)):
        load_sweep(write_scenario(SWEEP + extra + "\n", "bad.toml"))


def test_a_format_1_manifest_reads_with_one_value_axes_and_its_points_keep_their_profile(tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(DATA / "sweep-format-1", folder)
    m = read_manifest(folder)
    assert m["schema_version"] == SWEEP_FORMAT and m["p99_target_ms"] is None
    assert m["grid"]["agents"] == [1] and m["grid"]["rate_per_s"] == [0.0]
    assert list(grid_points(m["grid"])) == ["h0-base"]
    (info, _), = load_sweep_runs(folder)
    assert (info["profile"], info["agents"], info["rate_per_s"]) == ("base", 1, 0.0)


# ---------------------------------------------------------------------------------------------- analysis


def _calls(rate: float, latency_ms: float, n_chains: int = 100, calls: int = 1, rep: int = 0, backend: str = "go",
           late_ms: dict[int, float] | None = None) -> pd.DataFrame:
    """Open loop: chain i due at T0 + i / rate; each call answered latency_ms after its send; the chains in
    `late_ms` were sent that late (the client stalled) after they were due."""
    rows = []
    for i in range(n_chains):
        due = T0 + int(i * 1e9 / rate)
        for k in range(calls):
            send = due + int((late_ms or {}).get(i, 0.0) * MS)
            recv = send + int(latency_ms * MS)
            rows.append({"backend": backend, "gc_mode": "default", "rep": rep, "agent": i, "chain": i, "call": k,
                         "t_send_ns": send, "t_recv_ns": recv, "t_intended_ns": due, "latency_ns": recv - send,
                         "ok": True, "error": None, "gc_overlap_ns": 0, "rate_per_s": rate})
            due = recv
    return pd.DataFrame(rows)


def test_a_stall_before_the_send_counts_in_the_corrected_latency_only():
    calls = pd.concat([_calls(10, 1.0), _calls(20, 1.0, late_ms={i: 80.0 for i in range(5)})], ignore_index=True)
    t = load_table(calls, calls_per_chain=1, n_boot=50)
    assert list(t["rate_per_s"]) == [10.0, 20.0]
    quiet, stalled = t.iloc[0], t.iloc[1]
    assert quiet["corrected_p99_ms"] == pytest.approx(1.0) == quiet["raw_p99_ms"]
    assert stalled["raw_p99_ms"] == pytest.approx(1.0)  # the send-to-reply time never saw the stall
    assert stalled["corrected_p99_ms"] == pytest.approx(81.0)  # 5 of 100 calls waited 80 ms before their send
    assert stalled["corrected_p50_ms"] == pytest.approx(1.0)
    assert stalled["chain_p99_ms"] == pytest.approx(81.0)
    # 100 calls from the first due one (T0) to the last reply (99 / 20 s + 1 ms later)
    assert stalled["achieved_calls_per_s"] == pytest.approx(100 / (99 / 20 + 0.001))
    assert stalled["offered_calls_per_s"] == 20.0 and stalled["reps"] == 1
    assert np.isnan(stalled["corrected_p99_lo_ms"])  # one repetition: no interval


def test_an_unrecorded_intended_start_is_timed_from_the_send():
    calls = _calls(10, 2.0, n_chains=3, late_ms={0: 50.0})
    calls.loc[0, "t_intended_ns"] = 0
    assert list(corrected_latency_ns(calls) / MS) == [2.0, 2.0, 2.0]


def test_repetitions_give_the_corrected_p99_an_interval():
    calls = pd.concat([_calls(10, 1.0 + rep, rep=rep) for rep in range(3)], ignore_index=True)
    r = load_table(calls, calls_per_chain=1, n_boot=200).iloc[0]
    assert r["reps"] == 3 and r["chains"] == 300
    assert 1.0 <= r["corrected_p99_lo_ms"] <= r["corrected_p99_ms"] <= r["corrected_p99_hi_ms"] <= 3.0


def _table(p99_by_rate: dict[float, float], backend: str = "go") -> pd.DataFrame:
    return pd.DataFrame([{"backend": backend, "gc_mode": "default", "rate_per_s": r, "corrected_p99_ms": p}
                         for r, p in p99_by_rate.items()])


def test_the_highest_rate_holding_the_target_stops_at_the_first_failure():
    t = pd.concat([_table({10: 10.0, 20: 60.0, 40: 30.0}, "a"), _table({10: 1.0, 20: 2.0}, "b"),
                   _table({10: 51.0, 20: 1.0}, "c"), _table({0: 1.0}, "d"), _table({10: 1.0, 20: np.nan}, "e")])
    h = max_rate_holding(t, target_ms=50.0).set_index("backend")
    assert (h.loc["a", "status"], h.loc["a", "max_rate_per_s"], h.loc["a", "fails_at_per_s"]) == ("holds", 10, 20)
    assert h.loc["a", "fails_at_p99_ms"] == 60.0  # 40/s passing again is not counted
    assert (h.loc["b", "status"], h.loc["b", "max_rate_per_s"]) == ("holds-all", 20)
    assert h.loc["c", "status"] == "fails-lowest" and np.isnan(h.loc["c", "max_rate_per_s"])
    assert h.loc["d", "status"] == "closed-loop"
    assert (h.loc["e", "status"], h.loc["e", "max_rate_per_s"]) == ("holds", 10)  # not measured is not held
    assert max_rate_holding(_table({10: 10.0, 20: 60.0}), target_ms=60.0).iloc[0]["status"] == "holds-all"


# ---------------------------------------------------------------------------------------------- the study


RATES = (10.0, 50.0)
P99_MS = {"python": {10.0: 5.0, 50.0: 80.0}, "go": {10.0: 1.0, 50.0: 2.0}}


def _load_sweep_folder(root: Path, target: float | None) -> Path:
    root.mkdir()
    grid = {"backends": ["python", "go"], "gc_modes": {"python": ["default"], "go": ["default"]},
            "heap_objects": [0], "profiles": {"base": {}}, "reps": 1, "agents": [1], "rate_per_s": list(RATES),
            "base": {"work": {}, "chain": {"agents": 1, "rate_per_s": 0.0}}}
    (root / "sweep.json").write_text(json.dumps({
        "kind": "gcbench-sweep", "schema_version": 2, "name": "load-study", "grid_hash": "x", "grid": grid,
        "source": "load.toml", "shard": "1/1", "gcbench_version": "test", "machine": {}, "created_utc": "?",
        "p99_target_ms": target}))
    for rate in RATES:
        cells = [Cell(b, "default", np.full((1, 4, 5), int(P99_MS[b][rate] * MS), np.int64),
                      runtime="go" if b == "go" else "python") for b in P99_MS]
        write_run(root, cells, run_id=f"h0-base-r{rate:g}",
                  scenario_extra={"server": {"heap_objects": 0},
                                  "chain": {"calls": 5, "chains": 4, "agents": 1, "warmup_calls": 0, "seed": 1,
                                            "rate_per_s": rate}})
    return root


def test_the_study_has_a_latency_under_load_section(tmp_path):
    folder = _load_sweep_folder(tmp_path / "s", target=50.0)
    st = build_study(folder, n_boot=50)
    assert st.p99_target_ms == 50.0 and st.p99_target_source == "sweep.p99_target_ms"
    # the claim's sections compare heap sizes at one load, the first rate of the grid, and say so
    assert st.claim_point == "1 agent(s), 10 chains/s offered (open loop)" and set(st.cells["rate_per_s"]) == {10.0}
    assert len(st.cells) == 2 and set(st.chains["rate_per_s"]) == {10.0}
    # a point id with the rate in it still names its profile (not "base-r10")
    assert [(i["point"], i["profile"], i["rate_per_s"]) for i, _ in load_sweep_runs(folder)] == [
        ("h0-base-r10", "base", 10.0), ("h0-base-r50", "base", 50.0)]
    assert list(st.load["rate_per_s"]) == [10.0, 50.0, 10.0, 50.0]
    assert list(st.load["corrected_p99_ms"]) == pytest.approx([5.0, 80.0, 1.0, 2.0])
    hold = st.load_hold.set_index("backend")
    assert hold.loc["python", "max_rate_per_s"] == 10.0 and hold.loc["go", "status"] == "holds-all"
    text = export(study_document(st), "text")
    assert "Latency under load" in text and "Highest offered rate holding p99 <= 50 ms" in text
    assert "python/default: holds 50 ms up to 10 chains/s" in text
    html = export(study_document(st), "html", tmp_path / "study.html")
    assert 'id="section-load"' in html and 'id="figure-latency_vs_load"' in html


def test_the_command_line_target_wins_over_the_sweep_file(tmp_path):
    folder = _load_sweep_folder(tmp_path / "s", target=50.0)
    proc = run_cli("study", str(folder), "--p99-target-ms", "100")
    assert proc.returncode == 0, proc.stderr
    assert "Highest offered rate holding p99 <= 100 ms" in proc.stdout and "from --p99-target-ms" in proc.stdout
    bad = run_cli("study", str(folder), "--p99-target-ms", "0")
    assert bad.returncode == 2 and "--p99-target-ms" in bad.stderr


def test_a_sweep_without_open_loop_points_has_no_load_section(tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(DATA / "sweep-format-1", folder)
    text = export(study_document(build_study(folder, n_boot=50)), "text")
    assert "Latency under load" not in text


def test_a_hold_whose_interval_crosses_the_target_says_so(tmp_path):
    t = _table({10: 40.0, 20: 45.0}).assign(corrected_p99_hi_ms=[44.0, 60.0])
    h = max_rate_holding(t, 50.0).iloc[0]
    assert (h["status"], h["max_rate_per_s"], h["max_rate_p99_hi_ms"]) == ("holds-all", 20, 60.0)


def test_the_run_report_has_a_load_section_only_for_an_open_loop_run(tmp_path):
    from gcbench.report.model import build_report
    from gcbench.report.run_document import document
    from gcbench.store import load_run

    cells = [Cell("go", "default", np.full((1, 4, 5), 2 * MS, np.int64), runtime="go")]
    chain = {"calls": 5, "chains": 4, "agents": 1, "warmup_calls": 0, "seed": 1}
    texts = {}
    for rate in (0.0, 25.0):
        path = write_run(tmp_path, cells, run_id=f"r{rate:g}", scenario_extra={"chain": {**chain, "rate_per_s": rate}})
        texts[rate] = export(document(build_report(load_run(path), n_boot=50), "md"), "md")
    assert "Latency under load" not in texts[0.0]
    assert "Latency at 25 chains/s offered (open loop)" in texts[25.0]
    assert "| go | default | 125 |" in texts[25.0]  # 25 chains/s x 5 calls offered
