"""The summary's hiccup section: what the meters saw, where the slowest calls' time went, the meter's cost.

Empty for a run without the hiccup meter (`gcbench run --hiccup-us N`).
"""

from __future__ import annotations

import pandas as pd

from gcbench.analysis import fmt_ms, fmt_share
from gcbench.hiccup_analysis import has_hiccups, hiccup_table, meter_overhead_table, tail_breakdown
from gcbench.report.document import Bullets, Paragraph, Section, Table
from gcbench.report.numbers import signed
from gcbench.store import RunData


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
        Paragraph(f"The meter wakes every {config.get('hiccup_us', '?')} us and records wake-ups later than "
                  f"{config.get('hiccup_floor_us', '?')} us; times in ms, measured windows only."),
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
    return [Section("Hiccups", items)]


def _table(key: str, title: str, headers: list[str], rows: list[list[str]]) -> Table:
    return Table(key, title, "", headers, rows, set(range(2, len(headers))))


def hiccup_records(run: RunData) -> dict[str, list[dict]]:
    """The hiccup tables as JSON-ready records (empty when the run had no meter)."""
    if not metered(run) or len(run.calls) == 0:
        return {}
    tables = {"hiccups": hiccup_table(run.calls, run.gc_events), "tail": tail_breakdown(run.calls, run.gc_events),
              "meter_overhead": meter_overhead_table(run.calls)}
    return {k: v.astype(object).where(pd.notna(v), None).to_dict(orient="records") for k, v in tables.items()}
