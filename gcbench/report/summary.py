"""The summary `gcbench run` prints at its end (and `gcbench report --format text`), as a Document: one row per
(backend, gc mode), the claim next to the measured dead time, GC cost, the harness's own GC, warnings, and
what the hiccup meter saw when it was on (`gcbench run --hiccup-us N`): the meters, where the slowest calls'
time went, the meter's cost.
"""

from __future__ import annotations

import pandas as pd

from gcbench.analysis import CLAIM_PAUSE_MS, NO_REFERENCE, fmt_ms, fmt_share
from gcbench.analysis.amplification import amplification_findings
from gcbench.hiccup_analysis import has_hiccups, hiccup_table, meter_overhead_table, tail_breakdown
from gcbench.report.document import Bullets, Document, Section, Table
from gcbench.report.numbers import signed
from gcbench.store import RunData


def _kinds(d: dict) -> str:
    return " ".join(f"{k}:{n}" for k, n in d.items()) or "none"


def summary_table(summary: pd.DataFrame) -> Table:
    rows = [[r.backend, r.gc_mode, str(r.chains), str(r.calls) + (f" ({r.errors} err)" if r.errors else ""),
             fmt_ms(r.latency_p50_ms), fmt_ms(r.latency_p99_ms), fmt_ms(r.latency_max_ms), _kinds(r.gc_events_by_kind),
             fmt_ms(r.pause_max_ms), fmt_ms(r.dead_p50_ms), fmt_ms(r.dead_p99_ms), fmt_ms(r.dead_max_ms),
             fmt_share(r.dead_p99_vs_claim)] for r in summary.itertuples()]
    headers = ["backend", "gc mode", "chains", "calls", "lat p50", "lat p99", "lat max", "GC pauses seen",
               "max pause", "dead/chain p50", "p99", "max", "p99 vs claim"]
    return Table("summary", "", "", headers, rows, set(range(2, len(headers))) - {7})


def summary_document(summary: pd.DataFrame, calls_per_chain: int, run: RunData | None = None) -> Document:
    """`run` adds what the hiccup meter saw, when it was on."""
    if summary.empty:
        return Document("", [Section("", ["no measured cells"])])
    claim = summary["claim_ms"].iloc[0]
    sections = [Section("", [
        f"Times in ms. 'dead/chain' = server GC pause time overlapping the calls of one chain ({calls_per_chain} calls).",
        summary_table(summary),
        f"The claim: {CLAIM_PAUSE_MS:g} ms x {calls_per_chain} calls = {claim:.0f} ms of GC dead time per chain. "
        "'p99 vs claim' = measured p99 dead time per chain / that figure."])]
    if "verdict" in summary.columns:
        sections.append(Section("Claim check", ["Mean GC dead time per chain vs the claim.",
                                                Bullets([str(v) for v in summary["verdict"]])]))
    if "gc_cost_ms" in summary.columns:
        sections.append(Section("Counterfactual GC cost", [
            "Mean chain latency minus a same-runtime reference with GC off or GC-quiet; 95% bootstrap CI over chains.",
            Bullets(gc_cost_lines(summary))]))
        diff = runtime_diff_lines(summary)
        if diff:
            sections.append(Section("Runtime difference, NOT GC cost", [
                "A runtime without a GC off switch against the no-GC control: it mixes GC with every other difference "
                "between the two servers.", Bullets(diff)]))
    if run is not None:
        from gcbench.report.tools import tools_table

        tables = tools_table(run)  # a trace mixing tools: each tool's latency and dead time
        if tables:
            sections.append(Section("By tool", list(tables)))
    amp = amplification_findings(summary)
    if amp:
        sections.append(Section("GC amplification", [
            "Dead time summed over chains / the server's GC time in the measured window: how many calls one "
            "pause delayed on average (one call at a time: at most 1).", Bullets([str(a) for a in amp])]))
    if "client_gc_events" in summary.columns:
        sections.append(Section("Harness GC", [f"Harness: {harness_text(summary)}."]))
    load = harness_load_lines(summary)
    floor = run.meta.get("environment", {}).get("wakeup_floor") if run is not None else None
    if load or floor is not None:  # a run before format 4 recorded no floor: the run report's facts say so
        items = [Bullets(load)] if load else []
        if floor is not None:
            items.insert(0, f"Wake-up floor: {floor_text(floor)}.")
        sections.append(Section("Harness load", items))
    warned = [f"{r.backend}/{r.gc_mode}: {w}" for r in summary.itertuples() for w in getattr(r, "warnings", [])]
    if warned:
        sections.append(Section("WARNINGS", ["The numbers above may not be stable:", Bullets(warned)]))
    if run is not None:
        sections += hiccup_section(run)
    return Document("", sections)


def render_summary(summary: pd.DataFrame, calls_per_chain: int) -> str:
    """The summary as text, without the hiccup section (that needs the run)."""
    from gcbench.report.render import render

    return render(summary_document(summary, calls_per_chain), "text")


def gc_cost_lines(summary: pd.DataFrame) -> list[str]:
    """One line per (backend, gc mode): the counterfactual GC cost with its CI and reference, or why there is none."""
    out = []
    for r in summary.itertuples():
        name = f"{r.backend}/{r.gc_mode}"
        note = getattr(r, "gc_cost_note", "") or NO_REFERENCE
        if not r.gc_cost_ref:
            out.append(f"{name}: no GC cost: {note}")
        elif r.gc_cost_ref == name:
            out.append(f"{name}: {note}")
        else:
            out.append(f"{name}: {signed(r.gc_cost_ms)} ms per chain (95% CI {signed(r.gc_cost_lo_ms)} .. "
                       f"{signed(r.gc_cost_hi_ms)}, {signed(r.gc_cost_share, fmt_share)}) {note}")
    return out


def runtime_diff_lines(summary: pd.DataFrame) -> list[str]:
    """One line per (backend, gc mode) that has only another runtime to be set against."""
    if "runtime_diff_ref" not in summary.columns:
        return []
    return [f"{r.backend}/{r.gc_mode}: {signed(r.runtime_diff_ms)} ms per chain (95% CI "
            f"{signed(r.runtime_diff_lo_ms)} .. {signed(r.runtime_diff_hi_ms)}, "
            f"{signed(r.runtime_diff_share, fmt_share)}) vs {r.runtime_diff_ref}"
            for r in summary.itertuples() if r.runtime_diff_ref]


def harness_load_lines(summary: pd.DataFrame) -> list[str]:
    """Per (backend, gc mode): the harness's send lag and CPU share (the largest over its cells)."""
    if "harness_cells" not in summary.columns:
        return []
    out = []
    for r in summary.itertuples():
        name = f"{r.backend}/{r.gc_mode}"
        if not r.harness_cells:
            out.append(f"{name}: harness send lag and CPU share not recorded (a run before format 4)")
            continue
        worst = " (the largest over its cells)" if r.harness_cells > 1 else ""
        out.append(f"{name}: send lag p50 {fmt_ms(r.send_lag_p50_ms_max)} ms, p99 {fmt_ms(r.send_lag_p99_ms_max)} "
                   f"ms; harness CPU {fmt_share(r.harness_cpu_share_max)} of one core{worst}")
    return out


def floor_text(floor: dict | None) -> str:
    """The floor as the reports print it, or why there is none."""
    if not isinstance(floor, dict):
        return "not recorded (a run before format 4)"
    if "error" in floor:
        return f"not measured: {floor['error']}"
    busy, idle = floor.get("busy", {}), floor.get("idle", {})

    def ms(v) -> str:
        return fmt_ms(v / 1e6) if isinstance(v, (int, float)) else "-"

    return (f"round trip between two processes idle {ms(idle.get('p50_ns'))} ms p50 / {ms(idle.get('p99_ns'))} ms "
            f"p99 (after a {floor.get('idle_gap_us', '?')} us sleep), busy {ms(busy.get('p50_ns'))} / "
            f"{ms(busy.get('p99_ns'))} ms: call latency near it is the machine's, not the server's")


def harness_text(summary: pd.DataFrame) -> str:
    """What the harness's own GC did while it measured (its GC is disabled then: collections are a fault)."""
    n = int(summary["client_gc_events"].sum())
    alloc = summary["client_tracked_allocations_max"].dropna() if "client_tracked_allocations_max" in summary else []
    what = (f"; it allocated up to {int(alloc.max()):,} net GC-tracked objects in one cell's window "
            "(growth of its gc.get_count()[0])" if len(alloc) else "")
    return (f"its own GC was disabled while measuring; {n} collection(s) of it inside the measured "
            f"windows{' (see WARNINGS)' if n else ''}{what}")


# ---------------------------------------------------------------------------------------------- hiccups


def metered(run: RunData) -> bool:
    """Whether the run had the hiccup meter on (even if it recorded nothing)."""
    config = run.meta.get("config", {}) or {}
    return bool(config.get("hiccup_us")) or has_hiccups(run.gc_events)


def _rate(v: float) -> str:
    return "-" if v != v else f"{v:.3g}"


def hiccup_section(run: RunData) -> list[Section]:
    """The summary's hiccup section; none for a run without the meter."""
    if not metered(run) or len(run.calls) == 0:
        return []
    config = run.meta.get("config", {}) or {}
    calls, events = run.calls, run.gc_events
    h = hiccup_table(calls, events)
    metered_backends = {c.get("backend") for c in run.meta.get("cells", []) if c.get("hiccup_us")}
    rows = []
    for r in h.itertuples():
        on = r.backend in metered_backends or r.server_hiccups > 0
        rows.append([
            r.backend, r.gc_mode,
            str(r.server_hiccups) if on else "off", _rate(r.server_per_s) if on else "-",
            fmt_ms(r.server_p99_ms), fmt_ms(r.server_max_ms),
            str(r.control_hiccups), _rate(r.control_per_s), fmt_ms(r.control_p99_ms), fmt_ms(r.control_max_ms),
            fmt_ms(r.client_lag_p99_ms), fmt_ms(r.client_lag_max_ms),
        ])
    items = [
        f"The meter records wake-ups later than {config.get('hiccup_floor_us', '?')} us; times in ms, measured "
        "windows only.",
        _table("hiccups", "", ["backend", "gc mode", "server n", "/s", "p99", "max", "control n", "/s", "p99", "max",
                               "client lag p99", "max"], rows),
        Bullets(["server: the server's own meter. In python (GIL) and node (event loop) it shares the thread that "
                 "serves calls, so its hiccups include the calls' own work, not only GC; go's and rust's run apart "
                 "from it.",
                 "control: an idle meter-only process beside each cell (no GC): the machine's own noise.",
                 "client lag: when the harness sent a call minus when it was due (its own lateness)."]),
    ]
    t = tail_breakdown(calls, events)
    if len(t):
        rows = [[r.backend, r.gc_mode, str(r.tail_calls), fmt_ms(r.tail_mean_ms),
                 f"{fmt_ms(r.tail_gc_ms)} ({fmt_share(r.tail_gc_share)})",
                 f"{fmt_ms(r.tail_hiccup_ms)} ({fmt_share(r.tail_hiccup_share)})",
                 f"{fmt_ms(r.tail_machine_ms)} ({fmt_share(r.tail_machine_share)})",
                 f"{fmt_ms(r.tail_other_ms)} ({fmt_share(r.tail_other_share)})", fmt_ms(r.latency_p50_ms)]
                for r in t.itertuples()]
        items.append(_table("tail", "Slowest 1% of calls, mean per call (ms): overlapping server GC, server hiccups "
                                    "that are not GC, control hiccups (machine) that are neither, and the rest; 'rest' "
                                    "includes the ordinary service time (compare with p50 of all calls)",
                            ["backend", "gc mode", "calls", "latency", "GC", "hiccup", "machine", "rest",
                             "p50 all calls"], rows))
    o = meter_overhead_table(calls)
    if len(o):
        rows = [[r.backend, r.gc_mode, fmt_ms(r.p50_off_ms), fmt_ms(r.p50_on_ms), signed(r.p50_change, fmt_share),
                 fmt_ms(r.p99_off_ms), fmt_ms(r.p99_on_ms), signed(r.p99_change, fmt_share),
                 fmt_ms(r.mean_off_ms), fmt_ms(r.mean_on_ms), signed(r.mean_change, fmt_share)] for r in o.itertuples()]
        items.append(_table("meter_overhead", "Meter overhead (same run, each backend without and with the meter; "
                                              "latency in ms)",
                            ["backend", "gc mode", "p50 off", "on", "change", "p99 off", "on", "change", "mean off",
                             "on", "change"], rows))
    return [Section(f"Hiccups (meter wakes every {config.get('hiccup_us', '?')} us)", items)]


def _table(key: str, title: str, headers: list[str], rows: list[list[str]]) -> Table:
    return Table(key, title, "", headers, rows, set(range(2, len(headers))))


def hiccup_records(run: RunData) -> dict[str, list[dict]]:
    """The hiccup tables as JSON-ready records (empty when the run had no meter)."""
    if not metered(run) or len(run.calls) == 0:
        return {}
    tables = {"hiccups": hiccup_table(run.calls, run.gc_events), "tail": tail_breakdown(run.calls, run.gc_events),
              "meter_overhead": meter_overhead_table(run.calls)}
    return {k: v.astype(object).where(pd.notna(v), None).to_dict(orient="records") for k, v in tables.items()}
