"""The report's per-tool section: latency and GC dead time of each tool, for runs whose chains mix tools.

Shown in the text, Markdown and HTML reports only when the run called more than one tool (a single-tool run
has the same numbers in the latency table); the JSON report always has it, under "tools".
"""

from __future__ import annotations

import pandas as pd

from gcbench.analysis import fmt_ms, fmt_share
from gcbench.report.document import Table
from gcbench.store import RunData
from gcbench.tool_analysis import tool_count, tool_table

TITLE = "Latency and GC dead time by tool"
CAPTION = ("Each tool's calls in each (backend, gc mode), all repetitions; times in ms. 'dead/call' = mean server GC "
           "pause time inside one call of the tool (95% CI resampling chains); 'GC share' = that dead time over "
           "the tool's summed latency; 'GC calls' = share of its calls that overlapped a pause. A tool's "
           "arguments decide its allocations: compare GC settings within a tool, not tools with each other.")
HEADERS = ["backend", "gc mode", "tool", "calls", "lat p50", "lat p99", "lat max", "GC calls", "dead/call",
           "95% CI", "GC share"]


def tool_rows(table: pd.DataFrame) -> list[list[str]]:
    return [[r.backend, r.gc_mode, r.tool, str(r.calls) + (f" ({r.errors} err)" if r.errors else ""),
             fmt_ms(r.latency_p50_ms), fmt_ms(r.latency_p99_ms), fmt_ms(r.latency_max_ms),
             fmt_share(r.gc_calls_share), fmt_ms(r.dead_per_call_ms),
             f"{fmt_ms(r.dead_per_call_lo_ms)} .. {fmt_ms(r.dead_per_call_hi_ms)}", fmt_share(r.dead_share)]
            for r in table.itertuples()]


def tools_table(run: RunData) -> list[Table]:
    """The per-tool table, in every format's document (none when the run called one tool)."""
    if tool_count(run.calls) < 2:
        return []
    return [Table("tools", TITLE, CAPTION, HEADERS, tool_rows(tool_table(run.calls)), set(range(3, 11)))]


def tools_records(run: RunData) -> list[dict]:
    t = tool_table(run.calls)
    return t.astype(object).where(pd.notna(t), None).to_dict(orient="records")
