"""Analysis on synthetic run folders whose answers are known exactly."""

import numpy as np
import pytest

import gcbench
from gcbench.analysis import (
    NO_REFERENCE,
    ClaimOutcome,
    NoReference,
    NoReferenceReason,
    Reference,
    RefKind,
    WarningKind,
    bootstrap_stat,
    chain_table,
    claim_frame,
    counterfactual,
    decode_histogram,
    gc_event_table,
    latency_histogram,
    latency_histograms,
    latency_table,
    merge_histograms,
    reference_cell,
    runtime_reference,
    summarize,
)
from gcbench.report.summary import render_summary

from .synthetic import Cell, Pause, constant_cell, noisy_cell, write_run

MS = 1_000_000


@pytest.fixture
def known_run(tmp_path):
    """python/default: 2 chains x 4 calls of 1 ms; chain 0 loses exactly 0.8 ms to GC, chain 1 none.
    python/disabled: the same chains with 0.9 ms calls and no pauses."""
    pauses = [
        Pause(0, 0, 1, offset_ns=100_000, duration_ns=300_000),  # inside call 1: 0.3 ms
        Pause(0, 0, 1, offset_ns=500_000, duration_ns=400_000, generation=2),  # inside call 1: 0.4 ms
        Pause(0, 0, 3, offset_ns=900_000, duration_ns=100_500),  # runs into the gap after call 3: 0.1 ms
        Pause(0, 1, 2, offset_ns=500_000, duration_ns=0),  # zero length: no dead time, still an event
        Pause(0, 1, 3, offset_ns=2 * MS, duration_ns=5 * MS, measured=False),  # after the window: ignored
    ]
    cells = [constant_cell("python", "default", MS, chains=2, calls=4, pauses=pauses),
             constant_cell("python", "disabled", 900_000, chains=2, calls=4)]
    return gcbench.load(write_run(tmp_path, cells))


def test_chain_dead_time_is_exact(known_run):
    ch = chain_table(known_run.calls)
    d = ch[ch["gc_mode"] == "default"].sort_values("chain")
    assert d["dead_ns"].tolist() == [800_000, 0]
    assert d["gc_calls"].tolist() == [2, 0]
    assert d["chain_ns"].tolist() == [4 * MS + 3 * 1_000] * 2
    assert d["calls"].tolist() == [4, 4]


def test_summary_per_chain_statistics(known_run):
    s = summarize(known_run.calls, known_run.gc_events, 4).set_index("gc_mode")
    d = s.loc["default"]
    assert d["dead_mean_ms"] == pytest.approx(0.4)
    assert d["dead_p50_ms"] == pytest.approx(0.4)
    assert d["dead_p99_ms"] == pytest.approx(0.792)  # linear between 0 and 0.8
    assert d["dead_max_ms"] == pytest.approx(0.8)
    assert d["chains_hit_share"] == pytest.approx(0.5)
    assert d["gc_time_share"] == pytest.approx(800_000 / (2 * 4_003_000))
    # measured server events only: three young (one of zero length) and one gen2; the late one is excluded
    assert d["gc_events"] == 4
    assert d["gc_events_by_kind"] == {"gen0": 3, "gen2": 1}
    assert d["pause_max_ms"] == pytest.approx(0.4)
    assert d["pause_total_ms"] == pytest.approx(0.8005)
    assert s.loc["disabled", "dead_max_ms"] == 0 and s.loc["disabled", "gc_events"] == 0


def test_summary_keeps_the_columns_the_run_command_prints(known_run):
    s = summarize(known_run.calls, known_run.gc_events, 4)
    old = ["backend", "gc_mode", "reps", "chains", "calls", "errors", "latency_p50_ms", "latency_p99_ms",
           "latency_max_ms", "gc_events", "gc_events_by_kind", "pause_max_ms", "pause_total_ms", "dead_p50_ms",
           "dead_p99_ms", "dead_max_ms", "chains_hit_share", "claim_ms", "dead_p99_vs_claim", "dead_max_vs_claim"]
    assert set(old) <= set(s.columns)
    text = render_summary(s, 4)
    assert "python   default" in text and "Claim check" in text


def test_counterfactual_is_the_exact_difference_with_a_degenerate_ci(known_run):
    s = summarize(known_run.calls, known_run.gc_events, 4).set_index("gc_mode")
    d = s.loc["default"]
    assert d["gc_cost_ref"] == "python/disabled"
    # every chain: 4 x (1.0 - 0.9) ms; constant chains, so every bootstrap replicate agrees
    assert d["gc_cost_ms"] == pytest.approx(0.4)
    assert d["gc_cost_lo_ms"] == pytest.approx(0.4) and d["gc_cost_hi_ms"] == pytest.approx(0.4)
    assert d["gc_cost_share"] == pytest.approx(400_000 / 3_603_000)
    assert s.loc["disabled", "gc_cost_ms"] == 0 and s.loc["disabled", "gc_cost_ref"] == "python/disabled"


def test_claim_check_states_the_numbers(known_run):
    s = summarize(known_run.calls, known_run.gc_events, 4)
    c = claim_frame(s).set_index("gc_mode")
    assert c.loc["default", "claim_ms"] == 40.0  # 10 ms x 4 calls
    assert c.loc["default", "dead_mean_vs_claim"] == pytest.approx(0.01)
    assert c.loc["default", "pause_max_vs_claim"] == pytest.approx(0.04)
    v = str(c.loc["default", "verdict"])
    assert v.startswith("python/default: 0.4 ms GC dead time per 4-call chain (p99 0.792, max 0.8 ms)")
    assert "1% of the claimed 40 ms" in v and "largest pause 0.4 ms vs 10 ms" in v and "the claim overstates the per-chain total 100x" in v
    assert "50% of chains hit" in v
    assert str(c.loc["disabled", "verdict"]) == (
        "python/disabled: 0 ms GC dead time per 4-call chain, 0% of the claimed 40 ms; no call delayed by GC in 2 chains")


def test_latency_percentiles_are_known(tmp_path):
    lat = (np.arange(1, 101) * MS).reshape(1, 1, 100)
    run = gcbench.load(write_run(tmp_path, [Cell("python", "default", lat)]))
    t = latency_table(run.calls).iloc[0]
    assert t["calls"] == 100 and t["errors"] == 0
    assert t["latency_p50_ms"] == pytest.approx(50.5)
    assert t["latency_p90_ms"] == pytest.approx(90.1)
    assert t["latency_p99_ms"] == pytest.approx(99.01)
    assert t["latency_p999_ms"] == pytest.approx(99.901)
    assert t["latency_max_ms"] == pytest.approx(100.0)


def test_gc_event_table_per_generation(known_run):
    chains = chain_table(known_run.calls)
    t = gc_event_table(known_run.gc_events, chains).set_index("kind")
    assert t.loc["gen0", "events"] == 3 and t.loc["gen2", "events"] == 1
    assert t.loc["gen0", "events_per_chain"] == pytest.approx(1.5)
    assert t.loc["gen0", "pause_p50_ms"] == pytest.approx(0.1005)
    assert t.loc["gen0", "pause_max_ms"] == pytest.approx(0.3)
    assert t.loc["gen0", "pause_total_ms"] == pytest.approx(0.4005)
    assert t.loc["gen2", "pause_p99_ms"] == pytest.approx(0.4)


def test_reference_selection():
    present = {("python", "default"), ("python", "disabled"), ("node", "default"), ("rust", "default")}
    assert reference_cell("python", "default", present) == ("python", "disabled")
    assert reference_cell("rust", "default", present) == ("rust", "default")  # no GC: its own reference
    # another runtime is never a GC-off reference: not for node, not for python without its disabled cell
    assert reference_cell("node", "default", present, "node") is None
    assert reference_cell("python", "default", {("python", "default"), ("rust", "default")}, "python") is None
    # only a runtime without an off switch is set against the control, and then as a runtime difference
    assert runtime_reference("node", "node", present) == ("rust", "default")
    assert runtime_reference("python", "python", present) is None
    assert runtime_reference("node", "node", {("node", "default"), ("go", "default")}) is None


def _runtime(cell: Cell, runtime: str) -> Cell:
    cell.runtime = runtime
    return cell


def test_python_without_its_gc_off_cell_gets_no_gc_cost_against_rust(tmp_path):
    """`gcbench run -b python,rust -g default`: the difference to rust is the runtime, not GC."""
    py = constant_cell("python", "default", 3 * MS, pauses=[Pause(0, 0, 1, 1_000, 200_000)])
    run = gcbench.load(write_run(tmp_path, [py, _runtime(constant_cell("rust", "default", MS), "rust")]))
    s = summarize(run.calls, run.gc_events, 5, cells=run.meta["cells"]).set_index("backend")
    p = s.loc["python"]
    assert p["gc_cost_ref"] == "" and np.isnan(p["gc_cost_ms"]) and np.isnan(p["gc_cost_lo_ms"])
    assert p["runtime_diff_ref"] == "" and np.isnan(p["runtime_diff_ms"])  # python has an off switch: no rust
    assert str(p["gc_cost_note"]) == "no GC-off cell of python in this run (measure --gc-mode disabled too)"
    assert s.loc["rust", "gc_cost_ref_kind"] == "no-gc" and s.loc["rust", "gc_cost_ms"] == 0.0
    text = render_summary(s.reset_index(), 5)
    assert "python/default: no GC cost: no GC-off cell of python" in text
    assert "rust" not in text.split("python/default: no GC cost")[1].splitlines()[0]
    assert "Runtime difference" not in text


def test_node_uses_a_gc_quiet_cell_verified_from_its_events_else_only_a_runtime_difference(tmp_path):
    scavenges = [Pause(0, c, 2, 1_000, 50_000) for c in range(4)]
    warmup = [Pause(0, 0, 0, -500_000, 10_000, measured=False)]  # before the window: not inside it
    node = _runtime(constant_cell("node", "default", 2 * MS, pauses=scavenges), "node")
    quiet = _runtime(constant_cell("node", "semi:1024", int(1.5 * MS), pauses=warmup), "node")
    rust = _runtime(constant_cell("rust", "default", MS), "rust")
    run = gcbench.load(write_run(tmp_path / "quiet", [node, quiet, rust]))
    s = summarize(run.calls, run.gc_events, 5, cells=run.meta["cells"]).set_index(["backend", "gc_mode"])
    d = s.loc[("node", "default")]
    assert d["gc_cost_ref"] == "node/semi:1024" and d["gc_cost_ref_kind"] == "gc-quiet"
    assert d["gc_cost_ms"] == 2.5 and d["gc_cost_lo_ms"] == 2.5 and d["gc_cost_hi_ms"] == 2.5  # 5 x 0.5 ms
    assert str(d["gc_cost_note"]) == ("vs node/semi:1024 (GC-quiet: 0 server GC events in its measured window (1 rep(s)), "
                                 "while its probe reported 5 elsewhere in the run)")
    assert d["runtime_diff_ref"] == ""  # a same-runtime reference exists: no runtime difference
    q = s.loc[("node", "semi:1024")]
    assert q["gc_cost_ms"] == 0.0 and q["gc_cost_ref_kind"] == "gc-quiet"

    # without the quiet cell: no GC cost, the runtime difference against the control, named as such
    alone = gcbench.load(write_run(tmp_path / "alone", [node, rust]))
    a = summarize(alone.calls, alone.gc_events, 5, cells=alone.meta["cells"]).set_index("backend").loc["node"]
    assert a["gc_cost_ref"] == "" and np.isnan(a["gc_cost_ms"])
    assert a["runtime_diff_ref"] == "rust/default" and a["runtime_diff_ms"] == 5.0  # 5 calls x 1 ms
    assert str(a["gc_cost_note"]) == ("node has no GC off switch and no node cell of this run was GC-quiet; "
                                 "runtime difference vs rust/default instead (not GC cost)")

    # a cell without events is not GC-quiet when its backend's probe reported nothing anywhere in the run
    mute = [_runtime(constant_cell("node", m, MS), "node") for m in ("default", "semi:1024")]
    m = summarize(*(lambda r: (r.calls, r.gc_events))(gcbench.load(write_run(tmp_path / "mute", mute))), 5,
                  cells=[{"backend": "node", "runtime": "node"}])
    assert (m["gc_cost_ref"] == "").all()


def test_counterfactual_without_runtimes_takes_them_from_the_events(tmp_path):
    node = _runtime(constant_cell("node", "default", 2 * MS, pauses=[Pause(0, 0, 0, 1_000, 1_000)]), "node")
    run = gcbench.load(write_run(tmp_path, [node, _runtime(constant_cell("rust", "default", MS), "rust")]))
    cf = counterfactual(chain_table(run.calls), events=run.gc_events).set_index("backend")
    assert cf.loc["node", "runtime_diff_ref"] == "rust/default" and cf.loc["node", "gc_cost_ref"] == ""


def test_a_run_without_any_reference_says_so(tmp_path):
    alone = gcbench.load(write_run(tmp_path, [constant_cell("go", "default", 2 * MS)]))
    s = summarize(alone.calls, alone.gc_events, 5)
    assert s.loc[0, "gc_cost_ref"] == "" and np.isnan(s.loc[0, "gc_cost_ms"])
    assert "go/default: no GC cost: no GC-off cell of go in this run" in render_summary(s, 5)


def test_per_call_loss_counts_calls_that_lost_10_ms_not_a_mean(tmp_path):
    """Every call meets a 20 us young collection and 20 of 200 calls a 200 ms full one: every call is
    'delayed' and a delayed call loses 20 ms on average, yet only 10% of the calls lost >= 10 ms."""
    lat = np.full((1, 20, 10), MS, np.int64)
    lat[0, :, 3] = 250 * MS
    young = [Pause(0, ch, c, 100_000, 20_000) for ch in range(20) for c in range(10)]
    full = [Pause(0, ch, 3, 200_000, 200 * MS, generation=2) for ch in range(20)]
    run = gcbench.load(write_run(tmp_path, [Cell("python", "default", lat, young + full)]))
    r = summarize(run.calls, run.gc_events, 10).iloc[0]
    assert r["calls_delayed_share"] == 1.0
    assert r["loss_per_delayed_call_mean_ms"] == pytest.approx(20.02)  # the old metric: >= 10 ms, 100% delayed
    assert r["calls_lost_claim"] == 20 and r["calls_lost_claim_share"] == 0.1
    assert not r["claim_fits"]
    assert r["loss_per_delayed_call_p50_ms"] == pytest.approx(0.02)
    assert r["loss_per_delayed_call_p90_ms"] == pytest.approx(0.02 + 0.1 * 200.0, rel=1e-9)  # linear at the edge
    assert r["loss_per_delayed_call_max_ms"] == pytest.approx(200.02)
    assert "10% of calls lost >= 10 ms to GC (the claim: every call)" in str(r["verdict"])
    # every call losing 10 ms or more: the claim's arithmetic fits
    big = [Pause(0, ch, c, 100_000, 10 * MS) for ch in range(4) for c in range(5)]
    fit = gcbench.load(write_run(tmp_path / "fit", [constant_cell("python", "default", 11 * MS, pauses=big)]))
    f = summarize(fit.calls, fit.gc_events, 5).iloc[0]
    assert f["calls_lost_claim_share"] == 1.0 and f["claim_fits"]


def test_harness_gc_is_counted_and_warned_about(tmp_path):
    quiet = constant_cell("python", "default", MS)
    quiet.info = {"client_gc_events_in_window": 0, "client_tracked_allocations": 1234}
    noisy = constant_cell("python", "disabled", MS)
    noisy.client_pauses = [Pause(0, 1, 2, 1_000, 30_000), Pause(0, 2, 4, 2 * MS, 30_000, measured=False)]
    noisy.info = {"client_gc_events_in_window": 1, "client_tracked_allocations": 98_765}
    run = gcbench.load(write_run(tmp_path, [quiet, noisy]))
    s = summarize(run.calls, run.gc_events, 5, cells=run.meta["cells"]).set_index("gc_mode")
    assert s.loc["default", "client_gc_events"] == 0 and s.loc["disabled", "client_gc_events"] == 1
    assert s.loc["default", "client_tracked_allocations_max"] == 1234
    assert s.loc["disabled", "client_tracked_allocations_max"] == 98_765
    assert s.loc["default", "warnings"] == []
    assert list(map(str, s.loc["disabled", "warnings"])) == ["1 collection(s) of the harness's own GC inside the measured window: "
                                             "its pauses are inside these call latencies"]
    assert s.loc["disabled", "dead_max_ms"] == 0  # the harness's collection is not server dead time
    text = render_summary(s.reset_index(), 5)
    assert ("Harness: its own GC was disabled while measuring; 1 collection(s) of it inside the measured windows "
            "(see WARNINGS); it allocated up to 98,765 net GC-tracked objects in one cell's window") in text


def test_bootstrap_is_seeded_and_covers_the_difference(tmp_path):
    run = gcbench.load(write_run(tmp_path, [noisy_cell("python", "default", 1.2 * MS, seed=1),
                                            noisy_cell("python", "disabled", MS, seed=2)]))
    a = summarize(run.calls, run.gc_events, 10)
    b = summarize(run.calls, run.gc_events, 10)
    assert a["gc_cost_lo_ms"].tolist() == b["gc_cost_lo_ms"].tolist()  # same seed, same interval
    d = a.set_index("gc_mode").loc["default"]
    assert d["gc_cost_lo_ms"] < d["gc_cost_ms"] < d["gc_cost_hi_ms"]
    assert d["gc_cost_lo_ms"] > 0  # a 20% slower mode over 30 chains is clearly slower


def test_two_level_bootstrap_counts_the_spread_between_repetitions():
    x = np.repeat([10.0, 20.0, 30.0], 20)
    reps = np.repeat([0, 1, 2], 20)
    flat = bootstrap_stat(x, np.random.default_rng(0), 2000)
    nested = bootstrap_stat(x, np.random.default_rng(0), 2000, groups=reps)
    assert np.ptp(np.percentile(nested, [2.5, 97.5])) > 3 * np.ptp(np.percentile(flat, [2.5, 97.5]))
    assert bootstrap_stat(np.full(7, 3.0), np.random.default_rng(0), 50, q=99).tolist() == [3.0] * 50


def test_vectorised_hdr_histogram_matches_record_value():
    from hdrh.histogram import HdrHistogram

    v = np.random.default_rng(3).integers(0, 10**11, 3000)
    v[:4] = [0, 1, 2047, 2048]
    fast = latency_histogram(v)
    slow = HdrHistogram(1, 3600 * 10**9, 3)
    for x in v:
        slow.record_value(int(x))
    assert fast.equals(slow)
    assert fast.get_total_count() == 3000 and fast.get_max_value() == slow.get_max_value()
    assert fast.encode() == slow.encode()


def test_histograms_are_encoded_per_cell_and_merge(tmp_path):
    run = gcbench.load(write_run(tmp_path, [constant_cell("python", "default", 3 * MS, reps=2)]))
    h = latency_histograms(run.calls)
    assert h["rep"].tolist() == [0, 1] and (h["calls"] == 20).all()
    one = decode_histogram(h.loc[0, "hdr_histogram"])
    assert one.get_total_count() == 20
    assert one.get_value_at_percentile(50) == pytest.approx(3 * MS, rel=1e-3)
    merged = merge_histograms(list(h["hdr_histogram"]))
    assert merged.get_total_count() == 40


def test_instability_warnings_name_what_is_unstable(tmp_path):
    from gcbench.analysis import summarize

    # rep 1 is 1.5x slower than rep 0; chains within a rep are identical; two full collections only
    lat = np.full((2, 4, 5), MS, np.int64)
    lat[1] = int(1.5 * MS)
    pauses = [Pause(rep=0, chain=0, call=1, offset_ns=10, duration_ns=100, generation=2),
              Pause(rep=1, chain=2, call=3, offset_ns=10, duration_ns=100, generation=2)]
    steady = constant_cell("python", "freeze", MS, reps=2, pauses=[
        Pause(rep=r, chain=c, call=0, offset_ns=10, duration_ns=100, generation=2) for r in (0, 1) for c in range(4)])
    run = gcbench.load(write_run(tmp_path, [Cell("python", "default", lat, pauses), steady]))
    s = summarize(run.calls, run.gc_events, 5).set_index("gc_mode")
    w = list(map(str, s.loc["default", "warnings"]))
    assert any("repetitions disagree: mean chain latency x1.50" in x for x in w)
    assert any("only 2 CPython full collection(s) seen" in x for x in w)
    assert s.loc["freeze", "warnings"] == []  # same latency in both reps, 8 full collections


# ---------------------------------------------------------------------------------------------- typed findings


def test_the_verdict_and_the_gc_cost_note_are_typed_findings_that_read_as_sentences(known_run):
    s = summarize(known_run.calls, known_run.gc_events, 4).set_index("gc_mode")
    v = s.loc["default", "verdict"]
    assert v.outcome is ClaimOutcome.OVERSTATES and v.claim_ms == 40.0 and v.overstated_x == pytest.approx(100)
    assert v.dead_mean_ms == pytest.approx(0.4) and v.chains == 2
    assert s.loc["disabled", "verdict"].outcome is ClaimOutcome.NO_GC_DELAY
    note = s.loc["default", "gc_cost_note"]
    assert note == Reference(("python", "default"), ("python", "disabled"), RefKind.GC_OFF) and not note.is_self
    assert str(note) == "vs python/disabled (GC off, same backend)"
    ref = s.loc["disabled", "gc_cost_note"]
    assert ref.is_self and str(ref) == "the reference (GC off, same backend)"
    assert s.loc["default", "gc_cost_ref_kind"] == RefKind.GC_OFF.value == "gc-off"  # the label column stays text


def test_no_reference_is_a_typed_value_not_an_english_string(tmp_path):
    """NO_REFERENCE was the sentence itself, imported and compared as text by three modules."""
    assert not isinstance(NO_REFERENCE, str)
    assert NO_REFERENCE.reason is NoReferenceReason.NOT_IN_RUN and str(NO_REFERENCE) == "no GC-off reference in this run"
    alone = gcbench.load(write_run(tmp_path, [constant_cell("go", "default", 2 * MS)]))
    note = summarize(alone.calls, alone.gc_events, 5).loc[0, "gc_cost_note"]
    assert note == NoReference(NoReferenceReason.NO_OFF_CELL, "go", "") and note.runtime_ref is None


def test_warnings_are_typed_with_their_numbers(tmp_path):
    lat = np.full((2, 4, 5), MS, np.int64)
    lat[1] = int(1.5 * MS)
    pauses = [Pause(rep=0, chain=0, call=1, offset_ns=10, duration_ns=100, generation=2)]
    run = gcbench.load(write_run(tmp_path, [Cell("python", "default", lat, pauses)]))
    w = summarize(run.calls, run.gc_events, 5).loc[0, "warnings"]
    assert [x.kind for x in w] == [WarningKind.REPS_DISAGREE, WarningKind.FEW_FULL_COLLECTIONS]
    assert w[0].spread == pytest.approx(1.5, rel=1e-3) and w[0].reps == 2 and w[1].full == 1


def test_the_json_report_keeps_the_sentences(known_run):
    from gcbench.report.model import build_report
    from gcbench.report.run_document import report_dict

    report = build_report(known_run, n_boot=10)
    doc = report_dict(report)
    assert doc["verdicts"] == [str(v) for v in report.summary["verdict"]]
    row = doc["summary"][0]
    assert row["verdict"] == doc["verdicts"][0] and row["gc_cost_note"] == "vs python/disabled (GC off, same backend)"
    assert row["warnings"] == [str(w) for w in report.summary.loc[0, "warnings"]] and doc["claim"][0]["verdict"] == row["verdict"]


def test_every_name_of_the_former_module_is_still_importable():
    """gcbench/analysis.py became a package: importers did not have to change."""
    import gcbench.analysis as analysis

    former = ["BOOTSTRAP_SAMPLES", "BOOTSTRAP_SEED", "CALL_LOSS_COLUMNS", "CELL_KEYS", "CLAIM_FIT_SHARE",
              "CLAIM_PAUSE_MS", "CONTROL_BACKEND", "COUNTERFACTUAL_COLUMNS", "FEW_FULL_COLLECTIONS", "GC_EVENT_TYPES",
              "GROUP_KEYS", "HARNESS_COLUMNS", "HDR_HIGHEST_NS", "HDR_LOWEST_NS", "HDR_SIGNIFICANT_DIGITS",
              "LATENCY_PERCENTILES", "NO_GC_RUNTIMES", "NO_OFF_SWITCH_RUNTIMES", "NO_REFERENCE", "OFF_MODE",
              "OFF_MODES", "UNSTABLE_CHAIN_CV", "UNSTABLE_REP_SPREAD", "attribute", "backend_runtimes",
              "bootstrap_stat", "call_loss_table", "cell_rng", "chain_stats", "chain_table", "claim_table",
              "claim_verdict", "counterfactual", "decode_histogram", "fmt_ms", "fmt_share", "gc_event_table",
              "gc_quiet_cells", "harness_gc_table", "instability_warnings", "latency_histogram",
              "latency_histograms", "latency_table", "measured_server_events", "merge_histograms",
              "merge_intervals", "overlap_ns", "pct_name", "reference_cell", "runtime_reference", "stats_warnings",
              "summarize"]
    assert [n for n in former if not hasattr(analysis, n)] == []


def test_a_users_jvm_server_is_set_against_its_own_epsilon_cell():
    """The GC-off mode is the runtime's: a user's JVM server (a custom backend of runtime java) has its GC
    cost against its own `epsilon` cell. Keyed by backend name, the old code found no reference for it."""
    from gcbench.analysis.reference import RefKind, choose_reference, reference_cell

    present = {("my-jvm", "g1"), ("my-jvm", "epsilon")}
    assert reference_cell("my-jvm", "g1", present, "java") == ("my-jvm", "epsilon")
    ref = choose_reference(("my-jvm", "g1"), sorted(present), "java", {}, {})
    assert ref.ref == ("my-jvm", "epsilon") and ref.kind is RefKind.GC_OFF
    assert reference_cell("my-py", "default", {("my-py", "default"), ("my-py", "epsilon")}, "python") is None
