"""The run report of one run folder as a Document: facts, the claim check, GC cost, latency, chains, GC events,
cells, warnings and hiccups, each table one function of the Report. The text format is the summary `gcbench run`
prints (summary.py); JSON writes every table plus the latency histograms (Document.data).

To add a table: write a function `(report) -> Table` (or a list of them, or None when it does not apply) and
name it in SECTIONS.
"""

from __future__ import annotations

import json

import pandas as pd

from gcbench.analysis import (
    CLAIM_FIT_SHARE,
    CLAIM_PAUSE_MS,
    HDR_HIGHEST_NS,
    HDR_LOWEST_NS,
    HDR_SIGNIFICANT_DIGITS,
    NO_REFERENCE,
    fmt_ms,
    fmt_share,
    merge_histograms,
)
from gcbench.formats import REPORT_FORMAT, REPORT_KIND
from gcbench.report.document import Block, Bullets, Document, Facts, Figure, Section, Table
from gcbench.report.model import Report
from gcbench.report.numbers import signed
from gcbench.report.summary import floor_text, harness_text, hiccup_records, summary_document


def run_facts(report: Report) -> list[tuple[str, str]]:
    """What was measured, where and how: shown at the top of every report."""
    meta = report.run.meta
    env = meta.get("environment", {})
    sc = report.run.scenario
    chain = sc.get("chain", {})
    versions = env.get("backend_versions", {})
    cells = meta.get("cells", [])
    status = {s: sum(1 for c in cells if c.get("status") == s) for s in ("ok", "skipped", "failed")}
    return [
        ("run", f"{report.run_id} ({meta.get('status', '?')})"),
        ("created (UTC)", str(meta.get("created_utc", "?"))),
        ("scenario", f"{report.scenario_name}: {sc.get('description', '')}".rstrip(": ")),
        ("chains", f"{chain.get('chains', '?')} chains x {chain.get('calls', '?')} calls per cell, "
                   f"{chain.get('agents', 1)} agent(s), {chain.get('warmup_calls', '?')} warm-up calls, "
                   f"{meta.get('config', {}).get('reps', '?')} repetition(s)"),
        ("cells", f"{status['ok']} measured, {status['skipped']} skipped, {status['failed']} failed"),
        ("backends", ", ".join(f"{b} ({v})" for b, v in versions.items()) or ", ".join(report.backends)),
        ("machine", f"{env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} CPUs, {env.get('platform', '?')}"),
        ("harness", f"gcbench {env.get('gcbench_version', '?')}, Python {env.get('python_version', '?')}"),
        ("harness GC", harness_text(report.summary) if "client_gc_events" in report.summary.columns else "-"),
        ("wake-up floor", floor_text(env.get("wakeup_floor"))),
        ("the claim", f"a {CLAIM_PAUSE_MS:g} ms GC pause per call adds up to {CLAIM_PAUSE_MS:g} ms x "
                      f"{report.calls_per_chain} calls = {fmt_ms(report.claim_ms)} ms of dead time per chain"),
        *gil_note(meta, chain),
    ]


def gil_note(meta: dict, chain: dict) -> list[tuple[str, str]]:
    """With several agents, CPython servers overlap their calls' waits but not their Python work (the GIL)."""
    python = sorted({c.get("backend", "?") for c in meta.get("cells", []) if c.get("runtime") == "python"})
    if int(chain.get("agents", 1) or 1) <= 1 or not python:
        return []
    return [("concurrency", f"{', '.join(python)}: CPython serves concurrent calls on threads or an event loop, "
                            "so sleeps and I/O overlap, but CPU-bound work and every collection hold the GIL and "
                            "run one at a time: with several agents, calls queue behind each other's Python work")]


def claim_table(report: Report) -> Table:
    rows = [[r.backend, r.gc_mode, str(r.chains), fmt_ms(r.dead_mean_ms), fmt_ms(r.dead_p50_ms), fmt_ms(r.dead_p99_ms),
             fmt_ms(r.dead_max_ms), fmt_share(r.dead_mean_vs_claim), fmt_share(r.dead_p99_vs_claim),
             fmt_ms(r.pause_max_ms), fmt_share(r.pause_max_vs_claim), fmt_share(r.chains_hit_share),
             fmt_share(r.calls_lost_claim_share), "yes" if r.claim_fits else "no"]
            for r in report.claim.itertuples()]
    return Table(
        "claim", "Claim check",
        f"GC dead time per {report.calls_per_chain}-call chain (ms) against the claim's {fmt_ms(report.claim_ms)} ms, "
        f"the largest single pause against the claim's {CLAIM_PAUSE_MS:g} ms, and the share of calls that lost at "
        f"least {CLAIM_PAUSE_MS:g} ms to GC; the claim's arithmetic fits a cell when at least "
        f"{fmt_share(CLAIM_FIT_SHARE)} of its calls did.",
        ["backend", "gc mode", "chains", "dead/chain mean", "p50", "p99", "max", "mean vs claim", "p99 vs claim",
         "largest pause", f"vs {CLAIM_PAUSE_MS:g} ms", "chains hit", f"calls lost >= {CLAIM_PAUSE_MS:g} ms",
         "claim fits"],
        rows, set(range(2, 13)))


def call_loss_table(report: Report) -> Table:
    rows = [[r.backend, r.gc_mode, str(r.calls), fmt_share(r.calls_delayed_share), str(r.calls_lost_claim),
             fmt_share(r.calls_lost_claim_share), fmt_ms(r.loss_per_delayed_call_p50_ms),
             fmt_ms(r.loss_per_delayed_call_p90_ms), fmt_ms(r.loss_per_delayed_call_p99_ms),
             fmt_ms(r.loss_per_delayed_call_max_ms), fmt_ms(r.loss_per_delayed_call_mean_ms)]
            for r in report.summary.itertuples()]
    return Table("call_loss", "GC loss per call",
                 "Server GC time overlapping each call (ms): the share of calls overlapped at all, the calls that "
                 f"lost at least {CLAIM_PAUSE_MS:g} ms, and the distribution of the loss over the delayed calls.",
                 ["backend", "gc mode", "calls", "calls delayed", f"lost >= {CLAIM_PAUSE_MS:g} ms", "share",
                  "loss p50", "p90", "p99", "max", "mean"], rows, set(range(2, 11)))


def latency_table(report: Report) -> Table:
    rows = [[r.backend, r.gc_mode, str(r.calls), str(r.errors), fmt_ms(r.latency_p50_ms), fmt_ms(r.latency_p90_ms),
             fmt_ms(r.latency_p99_ms), fmt_ms(r.latency_p999_ms), fmt_ms(r.latency_max_ms)]
            for r in report.latency.itertuples()]
    return Table("latency", "Call latency", "Per tools/call, client send to response (ms).",
                 ["backend", "gc mode", "calls", "errors", "p50", "p90", "p99", "p99.9", "max"], rows, set(range(2, 9)))


def run_rate_per_s(report: Report) -> float:
    """The run's offered rate (chains/s, open loop); 0 for closed loop or when run.json does not say."""
    chain = report.run.meta.get("scenario", {}).get("chain")
    rate = chain.get("rate_per_s", 0.0) if isinstance(chain, dict) else 0.0
    return float(rate) if type(rate) in (int, float) else 0.0


def load_tables(report: Report) -> list[Table]:
    """Open-loop runs only: latency from the intended start and from the send, and the throughput achieved."""
    rate = run_rate_per_s(report)
    if rate <= 0 or not len(report.run.calls):
        return []
    from gcbench.analysis.load import load_table

    t = report.cache.get("load")
    if t is None:
        t = report.cache["load"] = load_table(report.run.calls.assign(rate_per_s=rate), report.calls_per_chain)
    rows = [[r.backend, r.gc_mode, f"{r.offered_calls_per_s:,.0f}", f"{r.achieved_calls_per_s:,.0f}",
             fmt_ms(r.corrected_p50_ms), fmt_ms(r.corrected_p99_ms), fmt_ms(r.corrected_p999_ms), fmt_ms(r.raw_p50_ms),
             fmt_ms(r.raw_p99_ms), fmt_ms(r.raw_p999_ms), fmt_ms(r.chain_p99_ms)] for r in t.itertuples()]
    return [Table("load", f"Latency at {rate:g} chains/s offered (open loop)",
                  "Corrected: from when each call was due (coordinated omission corrected); raw: from its send (ms). "
                  "Achieved: calls answered per second from the first due call to the last reply. Chain p99: first "
                  "due call to last reply. A rate sweep (sweep.rate_per_s, gcbench study) draws latency against load.",
                  ["backend", "gc mode", "offered calls/s", "achieved calls/s", "p50", "p99", "p99.9", "raw p50",
                   "raw p99", "raw p99.9", "chain p99"], rows, set(range(2, 11)))]


def chain_table(report: Report) -> Table:
    rows = [[r.backend, r.gc_mode, str(r.chains), fmt_ms(r.chain_mean_ms), fmt_ms(r.chain_p50_ms),
             fmt_ms(r.chain_p99_ms), fmt_ms(r.dead_mean_ms), fmt_ms(r.dead_p99_ms), fmt_share(r.gc_time_share),
             fmt_share(r.chains_hit_share)]
            for r in report.summary.itertuples()]
    return Table("chains", "Chains and GC dead time",
                 "Chain latency = first send to last response (ms); dead time = server GC pause time overlapping the "
                 "chain's calls; 'share lost to GC' = total dead time / total chain time; 'chains hit' = chains with "
                 "at least one call delayed by GC.",
                 ["backend", "gc mode", "chains", "chain mean", "chain p50", "chain p99", "dead mean", "dead p99",
                  "share lost to GC", "chains hit"], rows, set(range(2, 10)))


def tools_in_report(report: Report) -> list[Table]:
    from gcbench.report.tools import tools_table

    return tools_table(report.run)


def live_heap_table(report: Report) -> list[Table]:
    """The live heap each cell measured, as its runtime counts it, and what a CPython full collection cost per
    tracked object (gcbench.heap): the figure "N objects" needs its shape and its runtime's count beside it."""
    from gcbench.heap import heap_table

    h = heap_table(report.run.meta.get("cells", []), report.run.gc_events, report.run.scenario)
    if h.empty or h["live_heap"].isna().all():
        return []

    def num(v) -> str:
        return "-" if v is None or v != v else f"{int(v):,}"

    def ms(v) -> str:
        return "-" if v is None or v != v else fmt_ms(v / 1e6)

    rows = [[r.backend, r.gc_mode, str(r.rep), str(r.heap_shape or "-"), num(r.heap_objects),
             f"{num(r.live_heap)} {r.live_heap_unit or ''}".strip(), num(r.full_collections),
             ms(r.full_collection_p50_ns), "-" if r.ns_per_tracked_object is None or r.ns_per_tracked_object != r.ns_per_tracked_object
             else f"{r.ns_per_tracked_object:.0f}"]
            for r in h.itertuples()]
    return [Table("live-heap", "Live heap",
                  "Per cell: the start-up heap the scenario asked for (shape and objects), the live heap as the runtime "
                  "counts it at the end of the cell (CPython: objects its collector tracks; V8, Go, JVM: heap bytes in "
                  "use, garbage not yet swept included; Rust: RSS), and for CPython the full collections in the "
                  "measured window, their median pause (ms) and ns per tracked object.",
                  ["backend", "gc mode", "rep", "heap shape", "heap objects", "live heap", "full GCs",
                   "full GC p50", "ns / tracked object"], rows, {2, 4, 6, 7, 8})]


def memory_table(report: Report) -> list[Table]:
    """GC dead time next to what the server's memory cost (gcbench.memory): the other half of each setting."""
    import math

    from gcbench.memory import memory_table as frame

    m = frame(report.run)
    if m.empty or m["peak_rss_mib"].isna().all():
        return []

    def mib(v) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1f}"

    def ratio(v) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"x{v:.2f}"

    rows = [[r.backend, r.gc_mode, fmt_ms(r.dead_mean_ms), mib(r.peak_rss_mib),
             f"{mib(r.peak_rss_min_mib)}-{mib(r.peak_rss_max_mib)}", ratio(r.peak_rss_vs_default),
             ratio(r.dead_mean_vs_default), mib(r.heap_used_mib)]
            for r in m.itertuples()]
    return [Table("memory", "Pauses against memory",
                  "Peak RSS of the server's process tree (sampled every 10 ms by the memory watcher, about 1% of one "
                  "core, off the measured path) next to GC dead time per chain; ratios against the same backend's "
                  "default cell; heap used as the runtime counts it.",
                  ["backend", "gc mode", "dead mean (ms)", "peak RSS (MiB)", "min-max over reps", "RSS vs default",
                   "dead vs default", "heap used (MiB)"], rows, set(range(2, 8)))]


def gc_cost_table(report: Report) -> Table:
    rows = []
    for r in report.summary.itertuples():
        name = f"{r.backend}/{r.gc_mode}"
        note = str(getattr(r, "gc_cost_note", "") or NO_REFERENCE)
        if not r.gc_cost_ref:
            rows.append([r.backend, r.gc_mode, "-", note, "-", "-", "-"])
        elif r.gc_cost_ref == name:
            rows.append([r.backend, r.gc_mode, "(is the reference)", note, "0", "-", "-"])
        else:
            rows.append([r.backend, r.gc_mode, r.gc_cost_ref, note, signed(r.gc_cost_ms),
                         f"{signed(r.gc_cost_lo_ms)} .. {signed(r.gc_cost_hi_ms)}", signed(r.gc_cost_share, fmt_share)])
    return Table("gc_cost", "Counterfactual GC cost",
                 "Mean chain latency in the mode minus that of a reference of the same runtime, per chain (ms): "
                 "the same backend with GC off, else a cell of it whose measured window had no server GC event "
                 "(GC-quiet, checked against the GC events); 95% bootstrap confidence interval resampling chains. "
                 "Another runtime is never a GC-cost reference (see the runtime difference).",
                 ["backend", "gc mode", "reference", "what the reference is", "cost per chain", "95% CI",
                  "vs reference"], rows, {4, 5, 6})


def runtime_diff_tables(report: Report) -> list[Table]:
    """Present only when a runtime without a GC off switch had no same-runtime reference in the run."""
    s = report.summary
    if "runtime_diff_ref" not in s.columns or not (s["runtime_diff_ref"] != "").any():
        return []
    rows = [[r.backend, r.gc_mode, r.runtime_diff_ref, signed(r.runtime_diff_ms),
             f"{signed(r.runtime_diff_lo_ms)} .. {signed(r.runtime_diff_hi_ms)}",
             signed(r.runtime_diff_share, fmt_share)] for r in s.itertuples() if r.runtime_diff_ref]
    return [Table("runtime_diff", "Runtime difference (not GC cost)",
                  "Mean chain latency minus that of the no-GC control, for a runtime without a GC off switch and "
                  "without a GC-quiet cell in this run: it mixes GC with every other difference between the two "
                  "servers (language, protocol code, allocator), and is not a GC cost.",
                  ["backend", "gc mode", "vs", "difference per chain", "95% CI", "vs reference"], rows, {3, 4, 5})]


def gc_events_table(report: Report) -> Table:
    rows = [[r.backend, r.gc_mode, str(r.type), str(r.kind), str(r.generation) if r.generation >= 0 else "-",
             str(r.events),
             f"{r.events_per_chain:.3g}" if r.events_per_chain == r.events_per_chain else "-",
             fmt_ms(r.pause_p50_ms), fmt_ms(r.pause_p90_ms), fmt_ms(r.pause_p99_ms), fmt_ms(r.pause_max_ms),
             fmt_ms(r.pause_total_ms)]
            for r in report.gc_events.itertuples()]
    return Table("gc_events", "GC events by generation/kind",
                 "Server GC events inside the measurement windows; pause durations in ms; generation '-' where the "
                 "runtime reports none.",
                 ["backend", "gc mode", "type", "kind", "generation", "events", "per chain", "pause p50", "p90", "p99",
                  "max", "total"], rows, set(range(4, 12)))


def cells_table(report: Report) -> Table:
    rows = [[str(c.get("backend")), str(c.get("gc_mode")), str(c.get("rep")), str(c.get("status")),
             str(c.get("reason", "") or "")] for c in report.run.meta.get("cells", [])]
    return Table("cells", "Cells", "Every (backend, gc mode, repetition) of the run; each ran in a fresh server process.",
                 ["backend", "gc mode", "rep", "status", "reason"], rows, {2})


def cell_amplification_frame(report: Report) -> pd.DataFrame:
    """analysis.amplification.cell_amplification of the run, computed once per report."""
    from gcbench.analysis.amplification import cell_amplification

    if "amplification" not in report.cache:
        report.cache["amplification"] = cell_amplification(report.run.calls, report.run.gc_events,
                                                           report.run.meta.get("cells"))
    return report.cache["amplification"]


def amplification_tables(report: Report) -> list:
    """Per cell: the server's GC time in the measured window, the dead time summed over its chains, their ratio
    (the amplification) and how many calls each pause delayed; per (backend, gc mode): the sentence."""
    from gcbench.analysis.amplification import amplification_findings
    from gcbench.format import fmt_ratio

    a = cell_amplification_frame(report)
    if a.empty:
        return []
    rows = [[r.backend, r.gc_mode, str(r.rep), str(r.pauses), fmt_ms(r.gc_ns / 1e6), fmt_ms(r.dead_ns / 1e6),
             fmt_ratio(r.amplification), fmt_ratio(r.calls_delayed_mean), fmt_ratio(r.calls_delayed_max)]
            for r in a.itertuples()]
    return [Bullets([str(f) for f in amplification_findings(report.summary)], key="amplification-findings"),
            Table("amplification", "GC amplification per cell",
                  "One server pause delays every call in flight during it. 'GC time' = the union of the server's GC "
                  "pauses inside the measured window (ms); 'dead time' = GC time inside each call, summed over every "
                  "call of every chain (ms); amplification = dead time / GC time ('-': no server GC time, no figure); "
                  "'calls delayed' = calls whose [send, reply] overlaps a pause, mean and max per pause.",
                  ["backend", "gc mode", "rep", "pauses", "GC time", "dead time", "amplification",
                   "calls delayed mean", "max"], rows, set(range(2, 9)))]


def harness_load_table(report: Report) -> Table:
    """Per cell: the harness's send lag and CPU share over the measured window ("not recorded" before format 4)."""
    def ms(v) -> str:
        return fmt_ms(v / 1e6) if isinstance(v, (int, float)) else "-"

    rows = []
    for c in report.run.meta.get("cells", []):
        if c.get("status") != "ok":
            continue
        h = c.get("harness")
        name = [str(c.get("backend")), str(c.get("gc_mode")), str(c.get("rep"))]
        if not isinstance(h, dict):
            rows.append([*name, "not recorded", "-", "-", "-", "-"])
            continue
        share = h.get("cpu_share")
        rows.append([*name, ms(h.get("send_lag_p50_ns")), ms(h.get("send_lag_p99_ns")), ms(h.get("send_lag_max_ns")),
                     ms(h.get("due_gap_ns")), fmt_share(share) if isinstance(share, (int, float)) else "-"])
    return Table("harness_load", "Harness load",
                 "The harness's own lateness and effort per cell: send lag = when a call went out minus when it was "
                 "due (ms); 'gap' = the mean time the schedule leaves between two due sends; CPU = the harness "
                 "process's CPU time over the measured window / the window, of one core. A warning says when they "
                 "limited the load.",
                 ["backend", "gc mode", "rep", "send lag p50", "p99", "max", "gap", "CPU"], rows, set(range(2, 8)))


def _plain(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


HICCUP_TITLES = {
    "hiccups": ("Hiccups (meter wake-up lateness)", "Server meter, idle control process and the harness's own send lag."),
    "tail": ("What the slowest 1% of calls spent", "Overlap of the slowest calls with GC events, with non-GC server "
             "hiccups, and the rest (service time and unexplained)."),
    "meter_overhead": ("Meter overhead", "The same backend with and without the hiccup meter, in the same run."),
}


def hiccup_tables(report: Report) -> list[Table]:
    """Present only when the run had the hiccup meter on (gcbench run --hiccup-us / --meter-overhead)."""
    out = []
    for key, records in hiccup_records(report.run).items():
        if not records:
            continue
        headers = list(records[0])
        rows = [[_plain(r[h]) for h in headers] for r in records]
        numeric = {i for i, h in enumerate(headers) if not isinstance(records[0][h], str)}
        title, caption = HICCUP_TITLES.get(key, (key, ""))
        out.append(Table(f"hiccup_{key}", title, caption, headers, rows, numeric))
    return out


def warnings_tables(report: Report) -> list[Table]:
    """Present only when a cell looks unstable (see analysis.instability_warnings)."""
    rows = [[f"{r.backend}/{r.gc_mode}", str(w)] for r in report.summary.itertuples() for w in getattr(r, "warnings", [])]
    if not rows:
        return []
    return [Table("warnings", "Warnings", "Cells whose numbers may not be stable: repetitions that disagree, chains "
                  "too spread out, too few CPython full collections, wall-clock steps, GC pauses that could not be "
                  "placed, collections of the harness's own GC inside the measured window.",
                  ["cell", "warning"], rows)]


def verdicts(report: Report) -> Bullets:
    return Bullets([str(v) for v in report.summary.get("verdict", [])] or ["no measured cells"], key="verdicts",
                   style="verdicts")


def figure(name: str):
    """The figure that function `name` of gcbench.report.figures draws, when a format shows it."""
    return lambda report: Figure.of(report, "gcbench.report.figures", name)


# Section title -> the functions that make its blocks; a section whose functions give nothing is left out.
SECTIONS = [
    ("Claim check", [verdicts, claim_table, call_loss_table, figure("claim_check"), figure("dead_time_hist")]),
    ("Counterfactual GC cost", [gc_cost_table, runtime_diff_tables]),
    ("Call latency", [latency_table, tools_in_report, figure("latency_cdf")]),
    ("Chains and GC dead time", [chain_table, figure("gc_timeline")]),
    ("Latency under load", [load_tables]),
    ("GC events", [gc_events_table, figure("pause_sizes")]),
    ("GC amplification", [amplification_tables]),
    ("Memory", [memory_table, live_heap_table]),
    ("Harness load", [harness_load_table]),
    ("Cells", [cells_table]),
    ("Warnings", [warnings_tables]),
    ("Hiccups", [hiccup_tables]),
]


def _records(df: pd.DataFrame) -> list[dict]:
    # to_json turns NaN into null, numpy scalars into plain numbers and a typed finding into its sentence
    return json.loads(df.to_json(orient="records", default_handler=str)) if len(df) else []


def report_dict(report: Report) -> dict:
    """The JSON report: every table of the report plus one HdrHistogram of call latency per cell (standard
    base64 encoding, ns), and one per (backend, gc mode) merged over repetitions."""
    from gcbench.report.tools import tools_records

    h = report.histograms
    merged = []
    for (b, m), g in h.groupby(["backend", "gc_mode"], sort=False):
        merged.append({"backend": b, "gc_mode": m, "reps": len(g), "calls": int(g["calls"].sum()),
                       "hdr_histogram": merge_histograms(list(g["hdr_histogram"])).encode().decode("ascii")})
    env = report.run.meta.get("environment", {})
    return {
        "kind": REPORT_KIND,
        "schema_version": REPORT_FORMAT,  # formats.py has the history
        "run_schema_version": report.run.meta.get("schema_version"),
        "run_id": report.run_id,
        "scenario": report.run.scenario,
        "environment": {k: env.get(k) for k in ("hostname", "cpu_model", "cpu_count", "platform", "python_version",
                                                "gcbench_version", "backend_versions", "wakeup_floor")},
        "calls_per_chain": report.calls_per_chain,
        "claim_ms": report.claim_ms,
        "verdicts": [str(v) for v in report.summary.get("verdict", [])],
        "tools": tools_records(report.run),  # latency and GC dead time by tool (report/tools.py)
        "summary": _records(report.summary),
        "claim": _records(report.claim),
        "latency": _records(report.latency),
        "gc_events": _records(report.gc_events),
        "amplification": _records(cell_amplification_frame(report)),  # per cell (analysis/amplification.py)
        "harness": [{k: c.get(k) for k in ("backend", "gc_mode", "rep", "harness")}
                    for c in report.run.meta.get("cells", []) if c.get("status") == "ok"],
        "latency_histograms": {
            "unit": "ns", "lowest_trackable": HDR_LOWEST_NS, "highest_trackable": HDR_HIGHEST_NS,
            "significant_digits": HDR_SIGNIFICANT_DIGITS, "encoding": "HdrHistogram V2 compressed, base64",
            "cells": _records(h), "merged": merged,
        },
    }


def _blocks(made) -> list[Block]:
    return [] if made is None else list(made) if isinstance(made, list) else [made]


def document(report: Report, fmt: str = "html") -> Document:
    """The run report; for `fmt` text, the summary `gcbench run` prints."""
    if fmt == "text":
        from gcbench.store import incomplete_note

        doc = summary_document(report.summary, report.calls_per_chain, report.run)
        note = incomplete_note(report.run.meta)  # Markdown and HTML show the run's status in their facts
        if note:
            doc.sections.insert(0, Section("", [note]))
        return doc
    sections = [Section("", [Facts(run_facts(report))])]
    for title, parts in SECTIONS:
        items = [b for part in parts for b in _blocks(part(report))]
        if items:
            sections.append(Section(title, items, key=title.lower().replace(" ", "-")))
    footer = (f"Made by gcbench from run folder {report.run.path.name}. Times are CLOCK_MONOTONIC measurements; GC "
              "dead time counts each nanosecond of server GC pause inside a call once.")
    return Document(f"gcbench report: {report.run_id}", sections, footer=footer, data=report_dict(report))
