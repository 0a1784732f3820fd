"""The terminal summary: one row per (backend, gc mode), and the claim next to the measured dead time."""

from __future__ import annotations

import pandas as pd


def _ms(v: float) -> str:
    if v != v:  # NaN
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _pct(v: float) -> str:
    if v != v:
        return "-"
    return f"{v * 100:.2g}%" if v < 0.1 else f"{v * 100:.0f}%"


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
            _ms(r.latency_p50_ms), _ms(r.latency_p99_ms), _ms(r.latency_max_ms), _kinds(r.gc_events_by_kind),
            _ms(r.pause_max_ms), _ms(r.dead_p50_ms), _ms(r.dead_p99_ms), _ms(r.dead_max_ms), _pct(r.dead_p99_vs_claim),
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    right = set(range(2, len(headers))) - {7}
    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
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
    return "\n".join(lines) + "\n"
