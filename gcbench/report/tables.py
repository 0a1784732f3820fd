"""The report's tables as plain strings (headers + rows), shared by the Markdown and HTML exporters."""

from __future__ import annotations

from dataclasses import dataclass, field

from gcbench.analysis import CLAIM_PAUSE_MS, NO_REFERENCE, fmt_ms, fmt_share
from gcbench.report.model import Report


@dataclass
class Table:
    key: str  # id in HTML, stable for tests and links
    title: str
    caption: str
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # right-aligned column indexes


def _signed(v: float, fmt=fmt_ms) -> str:
    if v != v:
        return "-"
    return ("+" if v > 0 else "") + fmt(v)


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
        ("the claim", f"a {CLAIM_PAUSE_MS:g} ms GC pause per call adds up to {CLAIM_PAUSE_MS:g} ms x "
                      f"{report.calls_per_chain} calls = {fmt_ms(report.claim_ms)} ms of dead time per chain"),
    ]


def claim_table(report: Report) -> Table:
    rows = [[r.backend, r.gc_mode, str(r.chains), fmt_ms(r.dead_mean_ms), fmt_ms(r.dead_p50_ms), fmt_ms(r.dead_p99_ms),
             fmt_ms(r.dead_max_ms), fmt_share(r.dead_mean_vs_claim), fmt_share(r.dead_p99_vs_claim),
             fmt_ms(r.pause_max_ms), fmt_share(r.pause_max_vs_claim), fmt_share(r.chains_hit_share)]
            for r in report.claim.itertuples()]
    return Table(
        "claim", "Claim check",
        f"GC dead time per {report.calls_per_chain}-call chain (ms) against the claim's {fmt_ms(report.claim_ms)} ms, "
        f"and the largest single pause against the claim's {CLAIM_PAUSE_MS:g} ms.",
        ["backend", "gc mode", "chains", "dead/chain mean", "p50", "p99", "max", "mean vs claim", "p99 vs claim",
         "largest pause", f"vs {CLAIM_PAUSE_MS:g} ms", "chains hit"],
        rows, set(range(2, 12)))


def latency_table(report: Report) -> Table:
    rows = [[r.backend, r.gc_mode, str(r.calls), str(r.errors), fmt_ms(r.latency_p50_ms), fmt_ms(r.latency_p90_ms),
             fmt_ms(r.latency_p99_ms), fmt_ms(r.latency_p999_ms), fmt_ms(r.latency_max_ms)]
            for r in report.latency.itertuples()]
    return Table("latency", "Call latency", "Per tools/call, client send to response (ms).",
                 ["backend", "gc mode", "calls", "errors", "p50", "p90", "p99", "p99.9", "max"], rows, set(range(2, 9)))


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


def gc_cost_table(report: Report) -> Table:
    rows = []
    for r in report.summary.itertuples():
        name = f"{r.backend}/{r.gc_mode}"
        if not r.gc_cost_ref:
            rows.append([r.backend, r.gc_mode, NO_REFERENCE, "-", "-", "-"])
        elif r.gc_cost_ref == name:
            rows.append([r.backend, r.gc_mode, "(is the reference)", "0", "-", "-"])
        else:
            rows.append([r.backend, r.gc_mode, r.gc_cost_ref, _signed(r.gc_cost_ms),
                         f"{_signed(r.gc_cost_lo_ms)} .. {_signed(r.gc_cost_hi_ms)}", _signed(r.gc_cost_share, fmt_share)])
    return Table("gc_cost", "Counterfactual GC cost",
                 "Mean chain latency in the mode minus the same backend with GC off (or the no-GC control backend "
                 "where a runtime has no off switch), per chain (ms); 95% bootstrap confidence interval resampling "
                 "chains.",
                 ["backend", "gc mode", "reference", "cost per chain", "95% CI", "vs reference"], rows, {3, 4, 5})


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
    from gcbench.report.hiccups import hiccup_records

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
    rows = [[f"{r.backend}/{r.gc_mode}", w] for r in report.summary.itertuples() for w in getattr(r, "warnings", [])]
    if not rows:
        return []
    return [Table("warnings", "Warnings", "Cells whose numbers may not be stable: repetitions that disagree, chains "
                  "too spread out, too few CPython full collections, wall-clock steps, GC pauses that could not be "
                  "placed.",
                  ["cell", "warning"], rows)]


def all_tables(report: Report) -> list[Table]:
    from gcbench.report.tools import tools_tables

    return [claim_table(report), latency_table(report), chain_table(report), gc_cost_table(report),
            gc_events_table(report), cells_table(report), *warnings_tables(report), *hiccup_tables(report),
            *tools_tables(report)]
