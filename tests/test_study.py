"""The study report of a sweep folder, from a synthetic sweep with exactly known pauses and timings."""

import base64
import json
import math
import re

import numpy as np
import pytest

from gcbench.errors import GcbenchError
from gcbench.report import export, format_for
from gcbench.report.study import FORMATS, build_study, fmt_count, heap_crossing, wilson
from gcbench.report.study_document import headline_text, study_document
from gcbench.report.study_figures import FIGURES
from tests.conftest import run_cli
from tests.synthetic import Cell, Pause, write_run

HEAPS = [0, 100_000, 1_000_000]
PROFILES = {"light": {"alloc_objects": 100}, "cyclic": {"alloc_objects": 400, "cyclic_fraction": 1.0}}
GEN2_MS = {0: 2.0, 100_000: 5.0, 1_000_000: 20.0}
# the probe's count of GC-tracked objects: the grid's heap plus the server's own import-time heap (python saw
# 33,035 at heap 0). log-log on those counts, 10 ms is reached at sqrt(133,035 x 1,033,035) tracked objects,
# not at sqrt(1e5 x 1e6) = 316,228 grid objects
BASE_TRACKED = 33_035
CROSSING = math.sqrt((100_000 + BASE_TRACKED) * (1_000_000 + BASE_TRACKED))
GEN0_MS = 1.0
REPS, CHAINS, CALLS = 2, 4, 5
MODES = {"python": ["default", "freeze", "disabled"], "go": ["default"], "rust": ["default"]}
MS = 1_000_000


def _point_cells(heap: int) -> list[Cell]:
    def lat(ms: float) -> np.ndarray:
        return np.full((REPS, CHAINS, CALLS), int(ms * MS), np.int64)

    full = [Pause(rep, 0, 0, 1_000, int(GEN2_MS[heap] * MS), generation=2) for rep in range(REPS)]
    young = [Pause(rep, 1, 2, 1_000, int(GEN0_MS * MS), generation=0) for rep in range(REPS)]
    rust = lat(1.0)
    rust[1] = int(1.2 * MS)  # the second repetition is 20% slower: a known spread
    stats = {"stats": {"type": "stats", "runtime": "python", "tracked_objects": heap + BASE_TRACKED}}
    return [
        Cell("python", "default", lat(30), full + young, info=stats),
        Cell("python", "freeze", lat(29.5), young, info=stats),
        Cell("python", "disabled", lat(29), info=stats),
        Cell("go", "default", lat(1), [Pause(0, 3, 4, 1_000, MS // 10, generation=-1)], runtime="go"),
        Cell("rust", "default", rust, runtime="rust"),
    ]


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    grid = {"backends": list(MODES), "gc_modes": MODES, "heap_objects": HEAPS, "profiles": PROFILES, "reps": REPS,
            "base": {"work": {"alloc_objects": 2000}}}
    (root / "sweep.json").write_text(json.dumps({
        "kind": "gcbench-sweep", "schema_version": 1, "name": "synthetic-study", "grid_hash": "0123456789abcdef",
        "grid": grid, "source": "scenarios/synthetic-study.toml", "shard": "1/1", "gcbench_version": "test",
        "machine": {"hostname": "host-a"}, "created_utc": "2026-01-01T00:00:00Z"}))
    i = 0
    for heap in HEAPS:
        for profile in PROFILES:
            path = write_run(root, _point_cells(heap), run_id=f"h{heap}-{profile}",
                             scenario_extra={"server": {"heap_objects": heap}})
            meta = json.loads((path / "run.json").read_text())
            # points 10 s apart, 8 s each: the sweep spans 58 s and measured for 48 s
            meta["created_utc"] = f"2026-01-01T00:00:{10 * i:02d}Z"
            meta["finished_utc"] = f"2026-01-01T00:00:{10 * i + 8:02d}Z"
            meta["command"] = ["/usr/bin/gcbench", "sweep", "scenarios/synthetic-study.toml", "-o", str(root)]
            (path / "run.json").write_text(json.dumps(meta))
            i += 1
    return root


@pytest.fixture(scope="module")
def study(sweep_dir):
    return build_study(sweep_dir, n_boot=300)


def test_the_study_holds_the_known_numbers(study):
    assert study.heaps == HEAPS and study.profiles == list(PROFILES) and study.calls_per_chain == CALLS
    assert study.claim_ms == 10 * CALLS
    c = study.cell(1_000_000, "cyclic", "python", "default")
    # per repetition: one chain with the full collection, one with a young collection, two without
    assert c.dead_mean_ms == pytest.approx((GEN2_MS[1_000_000] + GEN0_MS) / CHAINS)
    assert c.chains_hit_share == pytest.approx(0.5) and c.calls_delayed_share == pytest.approx(2 / (CHAINS * CALLS))
    assert c.pause_max_ms == pytest.approx(GEN2_MS[1_000_000])
    # the full-collection crossing, per profile and over all profiles
    for key in ("light", "cyclic", "all"):
        assert study.crossings[key].status == "crossed"
        assert study.crossings[key].heap_objects == pytest.approx(CROSSING, rel=1e-9)
    # nanoseconds per tracked object of one full collection, per heap size: the pause / the probe's count
    f = study.full_gc[study.full_gc["profile"] == "all"].set_index("heap_objects")
    assert f["tracked_objects"].tolist() == [h + BASE_TRACKED for h in HEAPS]
    for h in HEAPS:
        assert f.loc[h, "ns_per_object_p50"] == pytest.approx(GEN2_MS[h] * 1e6 / (h + BASE_TRACKED), rel=1e-12)
    # mitigation ratios against the same backend's default at the same point (constant latencies: exact)
    r = study.ratios
    f = r[(r["backend"] == "python") & (r["gc_mode"] == "freeze") & (r["point"] == "h1000000-light")].iloc[0]
    assert f.chain_ratio == pytest.approx((5 * 29.5 + 4e-3) / (5 * 30 + 4e-3))
    assert f.chain_lo == pytest.approx(f.chain_ratio) and f.chain_hi == pytest.approx(f.chain_ratio)
    assert f.dead_ratio == pytest.approx(GEN0_MS / (GEN2_MS[1_000_000] + GEN0_MS))
    d = r[(r["backend"] == "python") & (r["gc_mode"] == "disabled")]
    assert len(d) == len(HEAPS) * len(PROFILES) and (d["dead_ratio"] == 0).all()
    assert not ((r["backend"] == "go") | (r["backend"] == "rust")).any()  # no other modes to compare
    # repetition spread: rust's second repetition is 1.2x slower per call
    ctl = study.cell(0, "light", "rust", "default")
    assert ctl.rep_chain_spread == pytest.approx((5 * 1.2 + 4e-3) / (5 * 1.0 + 4e-3))
    assert ctl.latency_max_ms == pytest.approx(1.2)


def test_headline_states_measured_numbers(study):
    text = headline_text(study)
    worst = (GEN2_MS[1_000_000] + GEN0_MS) / CHAINS
    assert f"{worst:.3g} ms (python at 1M objects" in text
    assert f"about {fmt_count(CROSSING)} tracked objects" in text and fmt_count(CROSSING) == "371,000"
    assert "between 133,000 objects: 5 ms and 1,030,000 objects: 20 ms" in text
    # the median over the heap sizes of the cost per tracked object: 5 ms / 133,035 objects
    assert f"a median {5e6 / (100_000 + BASE_TRACKED):.3g} ns per tracked object" in text
    assert f"{GEN2_MS[1_000_000]:.3g} ms (python" in text  # the largest pause
    assert "No cell fits the claim's arithmetic" in text
    assert "x0.983" in text  # python freeze: the median chain-latency ratio


def test_html_is_self_contained_with_every_figure_and_section(study, tmp_path):
    out = tmp_path / "study.html"
    doc = export(study_document(study), "html", out)
    assert out.read_text() == doc
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', doc)
    assert len(pngs) == len(FIGURES)
    for data in pngs:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    saved = sorted(p.name for p in tmp_path.glob("study-*.png"))
    assert saved == sorted(f"study-{f.__name__}.png" for f in FIGURES)
    for n in range(1, 7):
        assert re.search(rf"<h2>{n}\. ", doc), f"section {n} missing"
    for key in ("headline", "variation", "setup"):
        assert f'id="section-{key}"' in doc
    assert "<script" not in doc and "http://" not in doc and "https://" not in doc
    # the facts: command, wall time from the points' run.json, machine
    assert "gcbench sweep scenarios/synthetic-study.toml -o" in doc
    assert "58 s from the first point&#x27;s start" in doc and "48 s measuring the points" in doc
    assert "Test CPU, 2 CPUs" in doc
    assert 'id="table-control"' in doc and 'id="table-context"' in doc and 'id="table-full-gc"' in doc


def test_markdown_and_text(study, tmp_path):
    out = tmp_path / "s.md"
    md = export(study_document(study), "md", out)
    for n in range(1, 7):
        assert f"\n## {n}. " in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == len(FIGURES) and all((tmp_path / name).is_file() for name in links)
    text = export(study_document(study), "text")
    assert "1. GC dead time per 5-call chain" in text and "data:image" not in text
    assert "think 2 s" in text and "371,000" in text
    assert "x1.2 / -" in text  # rust's spread: chain latency 1.2x between repetitions, no dead time


def test_formats_and_errors(sweep_dir, tmp_path):
    from pathlib import Path

    assert FORMATS == ("text", "md", "html")
    def study_format(out, fmt):
        return format_for(out, fmt, FORMATS, "study report")

    assert study_format(Path("a.md"), None) == "md" and study_format(None, None) == "text"
    with pytest.raises(GcbenchError, match="text, md or html"):
        study_format(Path("a.json"), None)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "sweep.json").write_text((sweep_dir / "sweep.json").read_text())
    with pytest.raises(GcbenchError, match="no measured point"):
        build_study(empty)
    with pytest.raises(GcbenchError, match="not a sweep folder"):
        build_study(tmp_path)


def test_cli_writes_every_output(sweep_dir, tmp_path):
    html, md = tmp_path / "r.html", tmp_path / "r.md"
    res = run_cli("study", str(sweep_dir), "-o", str(html), "-o", str(md), timeout=120)
    assert res.returncode == 0, res.stderr
    assert html.is_file() and md.is_file() and (tmp_path / "r-pause_growth.png").is_file()
    bad = run_cli("study", str(sweep_dir), "-o", str(tmp_path / "r.json"), timeout=120)
    assert bad.returncode == 2 and "ERROR" in bad.stderr and "text, md or html" in bad.stderr


def test_cli_rerun_states_the_share_that_agree_and_the_target(sweep_dir, tmp_path):
    md = tmp_path / "r.md"
    res = run_cli("study", str(sweep_dir), "--rerun", str(sweep_dir), "-o", str(md), timeout=180)
    assert res.returncode == 0, res.stderr
    assert ("reproducibility: 24 of 24 ratios of a setting to its runtime's default at the same point (100%) agree "
            "within 20% between the two runs (the larger at most x1.2 the smaller, or both zero): this meets the "
            "target of 85%") in res.stderr
    assert "Reproducibility: the same command run again" in md.read_text()


@pytest.mark.parametrize("heaps, pauses, status, heap", [
    ([0, 100_000, 1_000_000], [2, 5, 20], "crossed", math.sqrt(1e5 * 1e6)),
    ([100_000, 1_000_000], [5, 10], "crossed", 1_000_000),  # reached exactly at a measured size
    ([10_000, 100_000, 1_000_000], [5, 4, 40], "crossed", 250_000),  # the first upward crossing
    ([10_000, 100_000, 1_000_000], [5, math.nan, 20], "crossed", 100_000),  # an unmeasured size is skipped
    ([100_000, 1_000_000], [1, 2], "not-reached", 1_000_000),
    ([0, 100_000], [3, 12], "already-above", 100_000),  # heap 0 has no logarithm: no interpolation from it
    ([0, 100_000], [11, 12], "already-above", 0),
    ([0, 100_000], [math.nan, math.nan], "no-data", math.nan),
])
def test_heap_crossing(heaps, pauses, status, heap):
    c = heap_crossing(heaps, pauses)
    assert c.status == status
    if heap == heap:
        assert c.heap_objects == pytest.approx(heap, rel=1e-9)
    words = {"crossed": "interpolated log-log", "not-reached": "not reached up to 1,000,000 objects",
             "already-above": "already above 10 ms", "no-data": "no pause"}
    assert words[status] in c.text


def test_wilson_interval():
    lo, hi = wilson(0, 8)
    assert lo == 0 and 0.3 < hi < 0.35
    lo, hi = wilson(8, 8)
    assert hi == 1 and 0.65 < lo < 0.7
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_a_minimal_sweep_renders_and_says_what_it_cannot_answer(tmp_path):
    """One backend without a mode to compare, one heap size, one profile, one repetition, no control."""
    grid = {"backends": ["go"], "gc_modes": {"go": ["default"]}, "heap_objects": [0], "profiles": {"base": {}},
            "reps": 1, "base": {"work": {}}}
    (tmp_path / "sweep.json").write_text(json.dumps({
        "kind": "gcbench-sweep", "schema_version": 1, "name": "tiny", "grid_hash": "x", "grid": grid,
        "source": "tiny.toml", "shard": "1/1", "gcbench_version": "test", "machine": {}, "created_utc": "?"}))
    lat = np.full((1, 3, CALLS), MS, np.int64)
    write_run(tmp_path, [Cell("go", "default", lat, runtime="go")], run_id="h0-base",
              scenario_extra={"server": {"heap_objects": 0}})
    st = build_study(tmp_path, n_boot=100)
    text = export(study_document(st), "text")
    assert "reps = 1" in text and "No CPython full collection" in text and "no no-GC control backend" in text
    assert "nothing to compare" in text and "No call of any chain was delayed" in text
    html = export(study_document(st), "html", tmp_path / "t.html")
    assert 'id="figure-mitigations"' not in html  # no setting to compare: section 3 says so instead
    assert len(re.findall(r"data:image/png;base64,", html)) == len(FIGURES) - 1
    assert not (tmp_path / "t-mitigations.png").exists()


def test_reproducibility_section_compares_the_ratios_of_a_rerun(study):
    from dataclasses import replace

    from gcbench.report.study_document import reproducibility, sections

    n = len(study.ratios)
    assert n == 12  # python freeze and disabled at 6 points; each has a chain and a dead-time ratio
    same_text, same_table = reproducibility(study, study)
    assert f"{2 * n} of {2 * n} ratios of a setting to its runtime's default at the same point (100%) agree within " \
           "20% between the two runs" in same_text
    assert "this meets the target of 85%" in same_text and "Every ratio agreed." in same_text
    assert not same_table.rows
    assert any(s.key == "reproducibility" for s in sections(replace(study, rerun=study, cache={})))


def test_rerun_lists_each_ratio_that_did_not_agree_and_why(study):
    """A deterministic fake re-run: four of the 24 ratios move, each for a different reason; 20 of 24 (83%)
    agree, below the 85% target, and the study says so and which moved."""
    from dataclasses import replace

    from gcbench.report.study import rerun_comparison
    from gcbench.report.study_document import reproducibility

    r = study.ratios.copy()
    fz = r.index[r["gc_mode"] == "freeze"]
    off = r.index[r["gc_mode"] == "disabled"]
    assert (r.loc[off, "dead_ratio"] == 0).all()  # GC off: no dead time in either run, "both zero" agree
    real = fz[0]  # moves by 50%, CIs apart: a real change
    r.loc[real, ["chain_ratio", "chain_lo", "chain_hi"]] = r.loc[real, "chain_ratio"] * np.array([1.5, 1.45, 1.55])
    noisy = fz[1]  # moves by 30% inside a wide CI: noise
    r.loc[noisy, ["chain_ratio", "chain_lo", "chain_hi"]] = [r.loc[noisy, "chain_ratio"] * 1.3, 0.1, 10.0]
    r.loc[off[0], ["dead_ratio", "dead_lo", "dead_hi"]] = [0.01, 0.0, 0.02]  # 0 -> 0.01: both near zero
    r.loc[fz[2], ["dead_ratio", "dead_lo", "dead_hi"]] = math.nan  # the default had no dead time in the re-run
    rerun = replace(study, ratios=r, cache={})
    c = rerun_comparison(study, rerun)
    assert len(c) == 24 and int(c["agree"].sum()) == 20
    why = {(row.point, row.gc_mode, row.metric): row.reason for row in c[~c["agree"]].itertuples()}
    key = lambda i, m: (r.loc[i, "point"], r.loc[i, "gc_mode"], m)  # noqa: E731
    assert why[key(real, "chain")].startswith("the 95% CIs do not overlap")
    assert why[key(noisy, "chain")] == "noise: the two 95% CIs overlap"
    assert why[key(off[0], "dead")].startswith("both near zero (below 0.05)")
    assert why[key(fz[2], "dead")].startswith("defined in one run only")
    text, table = reproducibility(study, rerun)
    assert "20 of 24 ratios" in text and "(83%) agree within 20%" in text
    assert "this does not meet the target of 85%" in text
    assert "The 4 that did not agree: " in text and "1 noise" in text and "1 both near zero" in text
    assert len(table.rows) == 4 and table.headers[-1] == "why"
    first = table.rows[0]  # the undefined one first, then the largest change
    assert first[0] == "GC dead time" and first[4] == "-" and first[-1].startswith("defined in one run only")
    assert table.rows[1][5] == "x1.5" and table.rows[1][-1].startswith("the 95% CIs do not overlap")


def test_the_claim_fits_a_cell_only_when_nearly_every_call_lost_10_ms(tmp_path):
    """Every call meets a 20 us young collection and 20 of 200 calls a 200 ms full one: 100% of calls are
    'delayed' and a delayed call loses 20 ms on average (the old rule said: fits), but 10% lost >= 10 ms."""
    grid = {"backends": ["python"], "gc_modes": {"python": ["default"]}, "heap_objects": [0],
            "profiles": {"base": {}}, "reps": 1, "base": {"work": {}}}
    (tmp_path / "sweep.json").write_text(json.dumps({
        "kind": "gcbench-sweep", "schema_version": 1, "name": "young", "grid_hash": "x", "grid": grid,
        "source": "young.toml", "shard": "1/1", "gcbench_version": "test", "machine": {}, "created_utc": "?"}))
    lat = np.full((1, 20, 10), MS, np.int64)
    lat[0, :, 3] = 250 * MS
    young = [Pause(0, ch, c, 100_000, 20_000) for ch in range(20) for c in range(10)]
    full = [Pause(0, ch, 3, 200_000, 200 * MS, generation=2) for ch in range(20)]
    write_run(tmp_path, [Cell("python", "default", lat, young + full)], run_id="h0-base",
              scenario_extra={"server": {"heap_objects": 0}})
    st = build_study(tmp_path, n_boot=50)
    c = st.cell(0, "base", "python", "default")
    assert c.calls_delayed_share == 1.0 and c.dead_per_delayed_call_ms == pytest.approx(20.02)
    assert c.calls_lost_claim_share == 0.1 and not c.claim_fits
    text = headline_text(st)
    assert "No cell fits the claim's arithmetic (at least 99% of its calls lost >= 10 ms)" in text
    assert "a delayed call lost a median 0.02 ms (p99 200, max 200 ms), and 10% of its calls lost >= 10 ms" in text
    from gcbench.report.study_document import claim_arithmetic_table

    row = claim_arithmetic_table(st).rows[1]
    assert row[3:7] == ["100%", "10%", "10", "0.02 / 200 / 200"]


def test_a_study_of_points_from_two_machines_says_so_and_compares_them_through_ratios(sweep_dir, study, tmp_path):
    """A CI matrix's merge: the cyclic points were measured on another machine. The study names both machines,
    states that across points it compares only same-machine ratios, names the machine of each absolute time
    it quotes, and its ratios are those of the one-machine study (each is of two cells of one point)."""
    import shutil

    folder = tmp_path / "two-machines"
    shutil.copytree(sweep_dir, folder)
    for run in folder.glob("*-cyclic/run.json"):
        meta = json.loads(run.read_text())
        meta["environment"]["hostname"] = "ci-runner-2"
        run.write_text(json.dumps(meta))
    st = build_study(folder, n_boot=300)
    assert len(st.machines) == 2 and st.point_machines["h0-cyclic"].startswith("ci-runner-2 (")
    text = export(study_document(st), "text")
    head = headline_text(st)
    assert "Measured on 2 machines over 6 grid points" in head
    assert "this study compares only same-machine ratios" in head
    assert "Settings (median ratio of mean chain latency to the runtime's default over the grid; below 1 is " \
           "faster; each ratio is of two cells of one point, on one machine): python freeze x" in head
    assert re.search(r"\(python at 1M objects, (light|cyclic), on (host-a|ci-runner-2)\)", head)  # its machine
    assert "Points come from 2 machines" in text and "2 machines, each grid point measured whole on one" in text
    cols = ["point", "backend", "gc_mode", "chain_ratio", "dead_ratio"]
    assert st.ratios[cols].equals(study.ratios[cols])
    one = headline_text(study)
    assert "Measured on this machine" in one and "machines" not in one


# ---------------------------------------------------------------------------------------------- second edition

MIB = 1024 * 1024
V2_HEAPS = [0, 100_000]
V2_GEN2_MS = {0: 4.0, 100_000: 16.0}
V2_RSS_MIB = {"default": 100, "freeze": 110, "disabled": 300}


def _v2_point_cells(heap: int) -> list[Cell]:
    def lat(ms: float) -> np.ndarray:
        return np.full((1, 4, 5), int(ms * MS), np.int64)

    full = [Pause(0, 0, 0, 1_000, int(V2_GEN2_MS[heap] * MS), generation=2)]
    young = [Pause(0, 1, 2, 1_000, int(GEN0_MS * MS), generation=0)]

    def info(mode: str) -> dict:
        return {"stats": {"type": "stats", "runtime": "python", "tracked_objects": heap + BASE_TRACKED},
                "memory": {"peak_rss_bytes": V2_RSS_MIB[mode] * MIB}}

    return [
        Cell("python@3.12", "default", lat(30), full + young, info=info("default")),
        Cell("python@3.12", "freeze", lat(29), young, info=info("freeze")),
        Cell("python@3.12", "disabled", lat(28), info=info("disabled")),
        Cell("java", "default", lat(2), [Pause(0, 0, 1, 1_000, 7 * MS, generation=0),
                                         Pause(0, 2, 3, 1_000, 12 * MS, generation=1)], runtime="java"),
        Cell("java", "zgc", lat(2), [Pause(0, 3, 1, 1_000, MS // 2, generation=0)], runtime="java"),
    ]


def _manifest(root, name: str, grid: dict) -> None:
    (root / "sweep.json").write_text(json.dumps({
        "kind": "gcbench-sweep", "schema_version": 4, "name": name, "grid_hash": "0123456789abcdef",
        "grid": grid, "source": f"scenarios/{name}.toml", "shard": "1/1", "gcbench_version": "test",
        "machine": {"hostname": "host-a"}, "machines": [], "point_machines": {}, "p99_target_ms": None,
        "created_utc": "2026-01-01T00:00:00Z"}))


@pytest.fixture(scope="module")
def v2_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("v2")
    modes = {"python@3.12": ["default", "freeze", "disabled"], "java": ["default", "zgc"]}
    _manifest(root, "v2", {"backends": list(modes), "gc_modes": modes, "heap_objects": V2_HEAPS,
                           "profiles": {"base": {}}, "reps": 1, "base": {"chain": {"agents": 1}}})
    for heap in V2_HEAPS:
        write_run(root, _v2_point_cells(heap), run_id=f"h{heap}-base", scenario_extra={"server": {"heap_objects": heap}})
    return build_study(root, n_boot=200)


def test_cpython_versions_section_gives_each_version_its_numbers_and_crossing(v2_study):
    from gcbench.report.study_document import cpython_table

    st = v2_study
    cross, cross_max = st.crossings_by_backend["python@3.12"]
    # log-log between (100,000 + base) objects: 16 ms and (0 + base): 4 ms, on the tracked objects
    want = math.exp(math.log(BASE_TRACKED) + (math.log(10) - math.log(4)) / (math.log(16) - math.log(4))
                    * (math.log(100_000 + BASE_TRACKED) - math.log(BASE_TRACKED)))
    assert cross.status == "crossed" and cross.heap_objects == pytest.approx(want, rel=1e-9)
    assert "java" not in st.crossings_by_backend
    row, = cpython_table(st).rows
    worst = (V2_GEN2_MS[100_000] + GEN0_MS) / 4
    assert row[0] == "python@3.12" and row[3].startswith(f"{worst:.3g} [")  # the worst mean with its CI
    # 1 call of the 40 lost >= 10 ms (the 16 ms full collection at 100k; 4 ms at 0), 1 of the 20 at that point
    assert (row[4], row[5]) == ("2.5%", "5%")
    assert row[6].startswith(f"{V2_GEN2_MS[100_000]:.3g} (100k objects")
    assert fmt_count(want) in row[7]


def test_jvm_section_gives_the_largest_pause_per_phase(v2_study):
    from gcbench.report.study import jvm_phases

    ph = jvm_phases(v2_study)
    got = {(r.gc_mode, r.kind): (int(r.count), r.max_ms) for r in ph.itertuples()}
    # one gen0 and one gen1 pause per point in G1, one gen0 in ZGC
    assert got == {("default", "gen0"): (2, 7.0), ("default", "gen1"): (2, 12.0), ("zgc", "gen0"): (2, 0.5)}
    doc = export(study_document(v2_study), "text")
    assert "The JVM's collectors" in doc and "default gen1 12 ms" in doc
    from gcbench.report.study import pause_phases

    every = {(r.backend, r.kind): r.max_ms for r in pause_phases(v2_study).itertuples()}  # defaults only
    assert every == {("python@3.12", "gen2"): V2_GEN2_MS[100_000], ("python@3.12", "gen0"): GEN0_MS,
                     ("java", "gen1"): 12.0, ("java", "gen0"): 7.0}


def test_memory_and_what_to_do_come_from_the_measured_cells(v2_study):
    from gcbench.report.study_document import memory_rows, what_to_do_rows

    rows = {(r["backend"], r["gc_mode"]): r for r in memory_rows(v2_study)}
    assert rows[("python@3.12", "disabled")]["rss_vs_default_median"] == pytest.approx(3.0)
    assert rows[("python@3.12", "freeze")]["rss_median_mib"] == pytest.approx(110)
    todo = {r["gc_mode"]: r for r in what_to_do_rows(v2_study)}
    assert set(todo) == {"freeze", "disabled"}  # python only: java is no Python server
    # at the default's worst point (100k): the full collection's 16 ms per 4 chains is what freeze saves
    assert todo["freeze"]["saved_ms"] == pytest.approx(V2_GEN2_MS[100_000] / 4)
    assert todo["freeze"]["rss_mib"] == pytest.approx(10) and todo["disabled"]["rss_mib"] == pytest.approx(200)
    assert todo["disabled"]["saved_ms"] == pytest.approx((V2_GEN2_MS[100_000] + GEN0_MS) / 4)
    md = export(study_document(v2_study), "md")
    for title in ("CPython versions", "The JVM's collectors", "Memory: GC dead time against peak RSS",
                  "What to do: a Python server owner"):
        assert f". {title}\n" in md
    assert "+200 (x3)" in md and "+10 (x1.1)" in md
    assert "three virtual addresses" not in md  # no zgc cell with memory here: no ZGC caveat


def test_a_zgc_cells_rss_comes_with_the_multi_mapping_caveat(v2_study, monkeypatch):
    from gcbench.report import study_document as sd

    rows = [{"backend": "java", "gc_mode": m, "rss_vs_default_median": v} for m, v in (("default", 1.0), ("zgc", 9.0))]
    monkeypatch.setattr(sd, "memory_rows", lambda study: rows)
    monkeypatch.setattr(sd, "memory_table_doc", lambda study: "table")
    items = sd.memory_items(v2_study)
    assert items[0].endswith("java/zgc x9.") and items[1] == sd.ZGC_RSS_NOTE and items[2] == "table"


def test_the_headline_gives_each_runtime_its_worst_dead_time_ci_and_calls_lost(v2_study):
    doc = study_document(v2_study)
    table = next(i for i in doc.sections[0].items if getattr(i, "key", "") == "headline")
    py = next(r for r in table.rows if r[0] == "python@3.12")
    worst = (V2_GEN2_MS[100_000] + GEN0_MS) / 4
    assert py[4].startswith(f"{worst:.3g} [") and "(100k objects)" in py[4]
    # 1 call of the 40 over both points lost >= 10 ms (the 16 ms full collection at 100k), 1 of 20 at that point
    assert py[6] == "2.5% (at most 5%)"
    assert "CPython versions: Where a CPython full collection" in headline_text(v2_study)


# ---------------------------------------------------------------------------------------------- companions

AGENTS = [1, 8]
AGENT_PAUSE_MS = 4


def _chain(calls: int, chains: int, agents: int = 1, think_ms: float = 0.0) -> dict:
    return {"calls": calls, "chains": chains, "agents": agents, "warmup_calls": 0, "seed": 1,
            "think": {"dist": "fixed", "ms": think_ms, "min_ms": 0.0, "max_ms": 0.0, "sigma": 0.5}, "rate_per_s": 0.0}


@pytest.fixture(scope="module")
def agents_dir(tmp_path_factory):
    from tests.synthetic import lockstep_cell, write_frames

    root = tmp_path_factory.mktemp("agents")
    modes = {"python@3.12": ["default", "disabled"]}
    _manifest(root, "agents", {"backends": list(modes), "gc_modes": modes, "heap_objects": [0],
                               "profiles": {"base": {}}, "reps": 1, "agents": AGENTS, "think_ms": [0.0],
                               "base": {"chain": _chain(5, 1)}})
    for k in AGENTS:
        calls, events, t = lockstep_cell("python@3.12", "default", k, 5, 10 * MS, {2: AGENT_PAUSE_MS * MS})
        off, off_ev, _ = lockstep_cell("python@3.12", "disabled", k, 5, 9 * MS, t0=t + 10**9)
        write_frames(root, f"h0-base-a{k}", [({"backend": "python@3.12", "gc_mode": "default"}, calls, events),
                                             ({"backend": "python@3.12", "gc_mode": "disabled"}, off, off_ev)],
                     {"name": "agents", "chain": _chain(5, k, k), "server": {"heap_objects": 0}})
    return root


THINK_GAP_MS = 250
T_LAT_MS, T_PAUSE_MS = 10, 3


@pytest.fixture(scope="module")
def think_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("think")
    modes = {"python@3.12": ["default"], "node": ["default"]}
    _manifest(root, "think", {"backends": list(modes), "gc_modes": modes, "heap_objects": [0],
                              "profiles": {"base": {}}, "reps": 1, "agents": [1], "think_ms": [0.0, 250.0],
                              "base": {"chain": _chain(3, 2)}})
    for think in (0, THINK_GAP_MS):
        gap = think * MS if think else 1_000
        lat = np.full((1, 2, 3), T_LAT_MS * MS, np.int64)
        inside = [Pause(0, 0, 1, 1_000, T_PAUSE_MS * MS)]
        # node's pause: in the gap after call 1 of chain 0 when there is one, else inside the call
        node = [Pause(0, 0, 1, (T_LAT_MS + 100) * MS if think else 1_000, T_PAUSE_MS * MS)]
        cells = [Cell("python@3.12", "default", lat, inside, gap_ns=gap),
                 Cell("node", "default", lat, node, gap_ns=gap, runtime="node")]
        write_run(root, cells, run_id=f"h0-base-t{think}",
                  scenario_extra={"chain": _chain(3, 2, think_ms=float(think)), "server": {"heap_objects": 0}})
    return root


@pytest.fixture(scope="module")
def with_study(v2_study, agents_dir, think_dir):
    from dataclasses import replace

    from gcbench.report.study import build_companion

    return replace(v2_study, companions=[build_companion(agents_dir, n_boot=200),
                                         build_companion(think_dir, n_boot=200)], cache={})


def test_many_agents_section_measures_amplification_and_calls_delayed(with_study):
    from gcbench.report.study import agents_cells
    from gcbench.report.study_document import agents_table

    c = agents_cells(with_study).set_index(["gc_mode", "agents"])
    for k in AGENTS:  # one 4 ms pause in a round of k calls in flight: k calls delayed, dead = k x 4 ms
        r = c.loc[("default", k)]
        assert r["amplification"] == pytest.approx(k) and r["calls_delayed_mean"] == pytest.approx(k)
        assert r["dead_mean_ms"] == pytest.approx(AGENT_PAUSE_MS)  # every agent's chain lost the pause once
        assert r["latency_p99_ms"] == pytest.approx(10)
    assert math.isnan(c.loc[("disabled", 8), "amplification"])  # no GC: no figure, never 0
    rows = {(r[1], r[2]): r for r in agents_table(with_study).rows}
    assert rows[("default", "8")][5] == "x8" and rows[("default", "8")][6] == "8"
    assert rows[("disabled", "8")][5] == "- (no GC)"
    md = export(study_document(with_study), "md")
    assert ". Many agents\n" in md and "At 8 agents: amplification python@3.12/default x8 (8 calls delayed" in md
    assert "Many agents: with 8 agents one server pause" in headline_text(with_study)
    assert "can exceed the agents" not in md  # k delayed by a pause among k agents: nothing to explain


def test_think_time_section_says_where_each_runtime_collected(with_study):
    from gcbench.report.study import think_cells
    from gcbench.report.study_document import think_sentences

    c = think_cells(with_study).set_index(["backend", "think_ms"])
    assert c.loc[("python@3.12", 250.0), "idle_gc_share"] == 0  # its pause fell inside a call
    assert c.loc[("node", 250.0), "idle_gc_share"] == 1  # its pause fell in the gap between two calls
    assert c.loc[("node", 0.0), "idle_gc_share"] == 0
    assert c.loc[("node", 250.0), "dead_mean_ms"] == 0 and c.loc[("node", 0.0), "dead_mean_ms"] == pytest.approx(1.5)
    # the window: 6 calls of 10 ms and 5 gaps of 250 ms; no call in flight for 1250 of its 1310 ms
    assert c.loc[("node", 250.0), "window_idle_share"] == pytest.approx(1250 / 1310)
    text = " ".join(think_sentences(with_study))
    assert "Collect mostly in the idle gaps (>= 50% of their GC time there): node." in text
    assert "Collect mostly inside calls (under 50% of their GC time in the gaps): python@3.12" in text
    md = export(study_document(with_study), "md")
    assert ". Think time\n" in md
    from gcbench.report.study_figures import agents, think

    for draw in (agents, think):  # drawn from the companions' cells (an empty figure has no caption)
        assert draw(with_study).caption


def test_with_refuses_a_folder_that_is_not_a_companion_sweep(sweep_dir, agents_dir, tmp_path):
    import shutil

    from gcbench.report.study import build_companion

    res = run_cli("study", str(sweep_dir), "--with", str(tmp_path), "-o", str(tmp_path / "s.md"), timeout=120)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert f"{tmp_path}: not a sweep folder" in res.stderr and "Traceback" not in res.stderr
    # a main grid (one agent, no think time) given as a companion
    res = run_cli("study", str(sweep_dir), "--with", str(sweep_dir), "-o", str(tmp_path / "s.md"), timeout=120)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "--with takes a companion sweep with several agents or a think time" in res.stderr
    # a companion whose only measured point is its 1-agent one: not yet a companion, and said so
    part = tmp_path / "part"
    shutil.copytree(agents_dir, part)
    shutil.rmtree(part / "h0-base-a8")
    with pytest.raises(GcbenchError, match="no point with several agents or a think time measured yet"):
        build_companion(part)
    res = run_cli("study", str(sweep_dir), "--with", str(agents_dir), "-o", str(tmp_path / "s.md"), timeout=180)
    assert res.returncode == 0, res.stderr
    assert "## 11. Many agents" in (tmp_path / "s.md").read_text()


# ---------------------------------------------------------------------------------------------- the think axis

THINK_SWEEP = """name = "think-test"
[chain]
calls = 3
chains = 2
warmup_calls = 0
[sweep]
backends = ["python"]
heap_objects = [0]
"""


def test_the_think_axis_expands_the_grid_with_a_t_suffix(write_scenario):
    from gcbench.sweep import expand, grid_points, load_sweep

    spec = load_sweep(write_scenario(THINK_SWEEP + "think_ms = [0, 250]\n"))
    points = expand(spec)
    assert [p.id for p in points] == ["h0-base-t0", "h0-base-t250"]
    assert [(p.scenario.chain.think.dist, p.scenario.chain.think.ms, p.think_ms) for p in points] == [
        ("fixed", 0.0, 0.0), ("fixed", 250.0, 250.0)]
    assert spec.to_dict()["think_ms"] == [0.0, 250.0]
    assert list(grid_points(spec.to_dict())) == [p.id for p in points]  # what the study reads back
    agents = load_sweep(write_scenario(THINK_SWEEP + "agents = [1, 8]\nthink_ms = [0, 250.5]\n", "both.toml"))
    assert [p.id for p in expand(agents)] == ["h0-base-a1-t0", "h0-base-a1-t250.5", "h0-base-a8-t0",
                                              "h0-base-a8-t250.5"]


def test_a_think_axis_of_the_base_value_keeps_the_ids_and_the_hash(write_scenario):
    from gcbench.sweep import expand, load_sweep

    plain = load_sweep(write_scenario(THINK_SWEEP, "plain.toml"))
    same = load_sweep(write_scenario(THINK_SWEEP + "think_ms = [0]\n", "same.toml"))
    assert plain.grid_hash() == same.grid_hash() and [p.id for p in expand(same)] == ["h0-base"]
    based = THINK_SWEEP.replace("warmup_calls = 0", "warmup_calls = 0\nthink_ms = 100")
    b1 = load_sweep(write_scenario(based, "b1.toml"))
    b2 = load_sweep(write_scenario(based + "think_ms = [100]\n", "b2.toml"))
    assert b1.grid_hash() == b2.grid_hash() and [p.id for p in expand(b2)] == ["h0-base"]
    other = load_sweep(write_scenario(THINK_SWEEP + "think_ms = [250]\n", "other.toml"))
    assert other.grid_hash() != plain.grid_hash() and [p.id for p in expand(other)] == ["h0-base-t250"]


@pytest.mark.parametrize("extra, field, problem", [
    ("think_ms = []", "sweep.think_ms", "non-empty array"),
    ("think_ms = [-1]", "sweep.think_ms[0]", ""),
    ("think_ms = [0, 0]", "sweep.think_ms[1]", "listed twice"),
    ("think_ms = [\"slow\"]", "sweep.think_ms[0]", ""),
])
def test_a_bad_think_axis_names_the_field(write_scenario, extra, field, problem):
    from gcbench.sweep import load_sweep

    with pytest.raises(GcbenchError, match=re.escape(f"'{field}'") + ".*" + re.escape(problem)):
        load_sweep(write_scenario(THINK_SWEEP + extra + "\n", "bad.toml"))


def test_a_think_axis_over_a_think_distribution_is_refused(write_scenario):
    from gcbench.sweep import load_sweep

    src = THINK_SWEEP.replace("warmup_calls = 0", "warmup_calls = 0\nthink_ms = { dist = \"exponential\", mean = 50 }")
    with pytest.raises(GcbenchError, match=r"'sweep.think_ms'.*exponential distribution"):
        load_sweep(write_scenario(src + "think_ms = [0, 250]\n", "dist.toml"))


def test_a_format_3_manifest_upgrades_to_the_base_chains_think_time():
    from gcbench import formats
    from gcbench.sweep import grid_points

    grid = {"backends": ["python"], "gc_modes": {}, "heap_objects": [0], "profiles": {"base": {}}, "agents": [1],
            "rate_per_s": [0.0], "base": {"chain": _chain(3, 2, think_ms=100.0)}}
    m = formats.upgrade_manifest({"schema_version": 3, "grid": grid}, 3)
    assert m["schema_version"] == 4 and m["grid"]["think_ms"] == [100.0]
    assert list(grid_points(m["grid"])) == ["h0-base"]  # the one value: no -t in the ids of a format 3 grid


def test_the_shipped_companion_sweeps_measure_the_axes_the_study_reads():
    from gcbench.sweep import expand, load_sweep

    agents = load_sweep("claim-check-v2-concurrency")
    assert agents.agents == (1, 8, 32) and agents.think_axis == (0.0,) and agents.base.chain.chains >= 32
    think = load_sweep("claim-check-v2-think")
    assert think.think == (0.0, 250.0) and think.agents_axis == (1,)
    assert [p.id for p in expand(think)] == ["h300000-heavy-t0", "h300000-heavy-t250"]
    for spec in (agents, think):  # every runtime of the issue, one live heap
        assert set(spec.backends) == {"python@3.12", "python-sdk", "node", "go", "java", "rust"}
        assert spec.heap_objects == (300_000,) and spec.base.chain.calls == 50
    # the many-agents file carries each runtime's GC-off or GC-quiet reference beside its default
    assert {b: [str(m) for m in ms] for b, ms in agents.gc_modes.items()}["node"] == ["default", "semi:256"]


def test_covered_ns_counts_the_overlap_with_disjoint_covers():
    from gcbench.analysis.amplification import covered_ns

    got = covered_ns(np.array([0, 5, 12, 30, 1]), np.array([3, 15, 13, 40, 1]), np.array([2, 10]), np.array([6, 14]))
    assert got.tolist() == [1, 1 + 4, 1, 0, 0]
    assert covered_ns(np.array([0]), np.array([9]), np.array([], np.int64), np.array([], np.int64)).tolist() == [0]


def test_a_grid_of_cpython_versions_reads_its_full_collections_from_python_at_a_version(v2_study):
    """claim-check-v2 has python@3.11/3.12/3.13 and no plain `python`: the old code read section 2's full
    collections from `python` only and said none happened."""
    from gcbench.report.study_document import full_gc_sentence

    assert v2_study.full_gc_backend == "python@3.12"
    assert v2_study.crossings["base"].status == "crossed"
    assert v2_study.crossings["base"].heap_objects == pytest.approx(v2_study.crossings_by_backend["python@3.12"][0]
                                                                    .heap_objects)
    text = full_gc_sentence(v2_study)
    assert text.startswith("Where a CPython full collection (python@3.12/default") and "No CPython" not in text
