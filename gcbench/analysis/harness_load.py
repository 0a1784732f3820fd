"""The harness's own load: its send lag (t_send - t_intended, when a call went out vs when it was due) and the
CPU share of its process over the measured window, and a warning when either says the harness, not the
server, limited the load. The runner stores harness_figures() in each cell (run.json cell["harness"]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from gcbench.analysis.attribution import GROUP_KEYS
from gcbench.analysis.warnings import CellWarning, WarningKind
from gcbench.format import fmt_ms, fmt_share

# The harness drives every chain from one thread: above this share of one core it is close to saturated.
CPU_SHARE_LIMIT = 0.9
# p99 send lag beyond which the harness, not the scenario, set the pace: above this and above the time the
# scenario leaves between two calls (mean think time; open loop: also the interval between chain starts).
SEND_LAG_LIMIT_NS = 1_000_000
HARNESS_KEYS = ("cpu_s", "window_s", "cpu_share", "send_lag_p50_ns", "send_lag_p99_ns", "send_lag_max_ns",
                "send_lag_calls", "due_gap_ns")
HARNESS_LOAD_COLUMNS = [*GROUP_KEYS, "harness_cells", "harness_cpu_share_max", "send_lag_p50_ms_max",
                   "send_lag_p99_ms_max"]


def harness_figures(t_send_ns: np.ndarray, t_intended_ns: np.ndarray, cpu_s: float, window_ns: int,
                    gap_ns: float) -> dict:
    """cell["harness"]: the process CPU time over the measured window (cpu_s), the window (window_s), their
    ratio (cpu_share, of one core), the send lag p50/p99/max in ns over the calls with a due time, and the
    time the scenario left between two due sends (due_gap_ns, see due_gap_ns()) that the lag is judged by."""
    due = np.asarray(t_intended_ns, np.int64)
    lag = (np.asarray(t_send_ns, np.int64) - due)[due > 0]
    window_s = window_ns / 1e9
    pct = np.percentile(lag, [50, 99]) if len(lag) else (None, None)
    return {"cpu_s": round(float(cpu_s), 6), "window_s": round(window_s, 6),
            "cpu_share": float(cpu_s) / window_s if window_s > 0 else None,
            "send_lag_p50_ns": None if pct[0] is None else int(round(pct[0])),
            "send_lag_p99_ns": None if pct[1] is None else int(round(pct[1])),
            "send_lag_max_ns": int(lag.max()) if len(lag) else None, "send_lag_calls": int(len(lag)),
            "due_gap_ns": int(round(gap_ns))}


def due_gap_ns(think_ns: np.ndarray, rate_per_s: float) -> float:
    """The time a cell's schedule leaves between two due sends of a chain: the mean think time before its
    calls after the first (think_ns: (chains, calls)), and in open loop the interval between chain starts when
    that is shorter."""
    t = np.asarray(think_ns)
    gap = float(t[:, 1:].mean()) if t.ndim == 2 and t.shape[1] > 1 else 0.0
    if rate_per_s > 0:
        gap = min(gap, 1e9 / rate_per_s) if gap > 0 else 1e9 / rate_per_s
    return gap


@dataclass(frozen=True)
class HarnessLimited(CellWarning):
    kind: ClassVar[WarningKind] = WarningKind.HARNESS_LIMITED
    cpu_share: float | None  # of one core over the window, when it passed CPU_SHARE_LIMIT; else None
    send_lag_p99_ms: float | None  # when it passed both SEND_LAG_LIMIT_NS and the due gap; else None
    due_gap_ms: float

    def __str__(self) -> str:
        why = []
        if self.cpu_share is not None:
            why.append(f"its process used {fmt_share(self.cpu_share)} of one core over the measured window "
                       f"(limit {fmt_share(CPU_SHARE_LIMIT)})")
        if self.send_lag_p99_ms is not None:
            why.append(f"its p99 send lag was {fmt_ms(self.send_lag_p99_ms)} ms, more than "
                       f"{fmt_ms(max(SEND_LAG_LIMIT_NS / 1e6, self.due_gap_ms))} ms (the larger of "
                       f"{fmt_ms(SEND_LAG_LIMIT_NS / 1e6)} ms and the {fmt_ms(self.due_gap_ms)} ms the scenario "
                       "leaves between two calls)")
        return "the harness may have limited the load: " + "; ".join(why)


def harness_limits(fig: dict | None) -> list[CellWarning]:
    """A HarnessLimited warning when a cell's harness figures say the harness limited the load; else none."""
    if not isinstance(fig, dict):
        return []
    share, p99 = fig.get("cpu_share"), fig.get("send_lag_p99_ns")
    gap = fig.get("due_gap_ns")
    gap_ns = float(gap) if isinstance(gap, (int, float)) else 0.0
    cpu = share if isinstance(share, (int, float)) and share > CPU_SHARE_LIMIT else None
    lag = p99 / 1e6 if isinstance(p99, (int, float)) and p99 > max(SEND_LAG_LIMIT_NS, gap_ns) else None
    return [HarnessLimited(cpu, lag, gap_ns / 1e6)] if cpu is not None or lag is not None else []


def harness_load_table(cells: list[dict] | None, groups: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, gc mode): how many of its ok cells recorded harness figures, and the largest CPU share and
    send lag p50/p99 (ms) over them (NaN: not recorded, a run before format 4)."""
    out = groups[GROUP_KEYS].copy()
    got: dict[tuple[str, str], list[dict]] = {}
    for c in cells or ():
        if c.get("status") == "ok" and isinstance(c.get("harness"), dict):
            got.setdefault((str(c.get("backend")), str(c.get("gc_mode"))), []).append(c["harness"])

    def most(key: tuple[str, str], field: str, scale: float = 1.0) -> float:
        v = [f[field] for f in got.get(key, ()) if isinstance(f.get(field), (int, float))]
        return max(v) / scale if v else np.nan

    keys = list(zip(out["backend"], out["gc_mode"], strict=True))
    out["harness_cells"] = [len(got.get(k, ())) for k in keys]
    out["harness_cpu_share_max"] = [most(k, "cpu_share") for k in keys]
    out["send_lag_p50_ms_max"] = [most(k, "send_lag_p50_ns", 1e6) for k in keys]
    out["send_lag_p99_ms_max"] = [most(k, "send_lag_p99_ns", 1e6) for k in keys]
    return out[HARNESS_LOAD_COLUMNS]


def harness_warnings(cells: list[dict] | None, backend: str, gc_mode: str) -> list[CellWarning]:
    """The HarnessLimited warnings of one (backend, gc mode)'s ok cells, one per cell that was limited (equal
    ones once)."""
    return list(dict.fromkeys(w for c in cells or () if c.get("backend") == backend and c.get("gc_mode") == gc_mode
                              and c.get("status") == "ok" for w in harness_limits(c.get("harness"))))
