"""The summary `gcbench run` prints at its end (and `gcbench report --format text`), as a Document: one row per
(backend, gc mode), the claim next to the measured dead time, GC cost, the harness's own GC, warnings, and
what the hiccup meter saw when it was on.
"""

from __future__ import annotations

import pandas as pd

from gcbench.analysis import CLAIM_PAUSE_MS, NO_REFERENCE, fmt_ms, fmt_share
from gcbench.report.document import Bullets, Document, Paragraph, Section, Table
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
        return Document("", [Section("", [Paragraph("no measured cells")])])
    claim = summary["claim_ms"].iloc[0]
    sections = [Section("", [
        Paragraph("Times in ms. 'dead/chain' = server GC pause time overlapping the calls of one chain "
                  f"({calls_per_chain} calls)."),
        summary_table(summary),
        Paragraph(f"The claim: {CLAIM_PAUSE_MS:g} ms x {calls_per_chain} calls = {claim:.0f} ms of GC dead time per "
                  "chain. 'p99 vs claim' = measured p99 dead time per chain / that figure.")])]
    if "verdict" in summary.columns:
        sections.append(Section("Claim check", [Paragraph("Mean GC dead time per chain vs the claim."),
                                                Bullets(list(summary["verdict"]))]))
    if "gc_cost_ms" in summary.columns:
        sections.append(Section("Counterfactual GC cost", [
            Paragraph("Mean chain latency minus a same-runtime reference with GC off or GC-quiet; 95% bootstrap CI "
                      "over chains."), Bullets(gc_cost_lines(summary))]))
        diff = runtime_diff_lines(summary)
        if diff:
            sections.append(Section("Runtime difference, NOT GC cost", [
                Paragraph("A runtime without a GC off switch against the no-GC control: it mixes GC with every other "
                          "difference between the two servers."), Bullets(diff)]))
    if "client_gc_events" in summary.columns:
        sections.append(Section("Harness GC", [Paragraph(f"Harness: {harness_text(summary)}.")]))
    warned = [f"{r.backend}/{r.gc_mode}: {w}" for r in summary.itertuples() for w in getattr(r, "warnings", [])]
    if warned:
        sections.append(Section("WARNINGS", [Paragraph("The numbers above may not be stable:"), Bullets(warned)]))
    if run is not None:
        from gcbench.report.hiccups import hiccup_section

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


def harness_text(summary: pd.DataFrame) -> str:
    """What the harness's own GC did while it measured (its GC is disabled then: collections are a fault)."""
    n = int(summary["client_gc_events"].sum())
    alloc = summary["client_tracked_allocations_max"].dropna() if "client_tracked_allocations_max" in summary else []
    what = (f"; it allocated up to {int(alloc.max()):,} net GC-tracked objects in one cell's window "
            "(growth of its gc.get_count()[0])" if len(alloc) else "")
    return (f"its own GC was disabled while measuring; {n} collection(s) of it inside the measured "
            f"windows{' (see WARNINGS)' if n else ''}{what}")
