"""The terminal summary: one row per (backend, gc mode), and the claim next to the measured dead time.

`render_summary(summarize(...), calls_per_chain)` is what `gcbench run` prints at its end; `gcbench report
--format text` prints the same (TextExporter).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gcbench.analysis import NO_REFERENCE, fmt_ms, fmt_share
from gcbench.report.base import Exporter


def _kinds(d: dict) -> str:
    return " ".join(f"{k}:{n}" for k, n in d.items()) or "none"


def render_summary(summary: pd.DataFrame, calls_per_chain: int) -> str:
    if summary.empty:
        return "no measured cells\n"
    headers = ["backend", "gc mode", "chains", "calls", "lat p50", "lat p99", "lat max", "GC pauses seen",
               "max pause", "dead/chain p50", "p99", "max", "p99 vs claim"]
    rows = []
    for r in summary.itertuples():
        rows.append([
            r.backend, r.gc_mode, str(r.chains), str(r.calls) + (f" ({r.errors} err)" if r.errors else ""),
            fmt_ms(r.latency_p50_ms), fmt_ms(r.latency_p99_ms), fmt_ms(r.latency_max_ms), _kinds(r.gc_events_by_kind),
            fmt_ms(r.pause_max_ms), fmt_ms(r.dead_p50_ms), fmt_ms(r.dead_p99_ms), fmt_ms(r.dead_max_ms), fmt_share(r.dead_p99_vs_claim),
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    right = set(range(2, len(headers))) - {7}
    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False))).rstrip()
    claim = summary["claim_ms"].iloc[0]
    lines = [
        "Times in ms. 'dead/chain' = server GC pause time overlapping the calls of one chain "
        f"({calls_per_chain} calls).",
        fmt(headers),
        fmt(["-" * w for w in widths]),
        *(fmt(r) for r in rows),
        "",
        f"The claim: 10 ms x {calls_per_chain} calls = {claim:.0f} ms of GC dead time per chain. "
        "'p99 vs claim' = measured p99 dead time per chain / that figure.",
    ]
    if "verdict" in summary.columns:
        lines += ["", "Claim check (mean GC dead time per chain vs the claim):",
                  *(f"  {v}" for v in summary["verdict"])]
    if "gc_cost_ms" in summary.columns:
        lines += ["", "Counterfactual GC cost (mean chain latency minus the GC-off reference; 95% bootstrap CI "
                      "over chains):", *(f"  {line}" for line in gc_cost_lines(summary))]
    warned = [(f"{r.backend}/{r.gc_mode}", w) for r in summary.itertuples() for w in getattr(r, "warnings", [])]
    if warned:
        lines += ["", "WARNINGS (the numbers above may not be stable):", *(f"  {g}: {w}" for g, w in warned)]
    return "\n".join(lines) + "\n"


def gc_cost_lines(summary: pd.DataFrame) -> list[str]:
    """One line per (backend, gc mode): the counterfactual GC cost with its CI, or why there is none."""
    out = []
    for r in summary.itertuples():
        name = f"{r.backend}/{r.gc_mode}"
        if not r.gc_cost_ref:
            out.append(f"{name}: {NO_REFERENCE}")
        elif r.gc_cost_ref == name:
            out.append(f"{name}: the GC-off reference")
        else:
            out.append(f"{name}: {_signed_ms(r.gc_cost_ms)} ms per chain (95% CI {_signed_ms(r.gc_cost_lo_ms)} .. "
                       f"{_signed_ms(r.gc_cost_hi_ms)}) vs {r.gc_cost_ref} "
                       f"({_signed_share(r.gc_cost_share)})")
    return out


def _signed_ms(v: float) -> str:
    return ("+" if v > 0 else "") + fmt_ms(v)


def _signed_share(v: float) -> str:
    return ("+" if v > 0 else "") + fmt_share(v)


class TextExporter(Exporter):
    """The `text` report format: exactly the summary `gcbench run` prints."""

    name = "text"
    suffix = ".txt"

    def render(self, report, out: Path | None = None) -> str:
        from gcbench.report.hiccups import render_hiccups
        from gcbench.report.tools import render_tools

        return (render_summary(report.summary, report.calls_per_chain) + render_tools(report.run)
                + render_hiccups(report.run))
