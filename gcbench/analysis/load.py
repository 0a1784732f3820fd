"""Latency under load: per (backend, gc mode, offered rate) the call latency percentiles measured from when each
call was due (coordinated omission corrected, wrk2's lesson) and from its send (raw), the chain latency from its
intended start, the throughput achieved; per (backend, gc mode) the highest offered rate whose corrected p99
holds a target. Numbers only.

A call's intended start is its calls.t_intended_ns: in an open-loop chain the first call is due at the chain's
slot in the fixed schedule (t0 + i / rate) and each later one at the previous reply plus think time. A call
whose t_intended_ns was not recorded (0) is timed from its send.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gcbench.analysis.attribution import GROUP_KEYS
from gcbench.analysis.bootstrap import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, bootstrap_stat, cell_rng
from gcbench.analysis.chains import LATENCY_PERCENTILES, chain_table, pct_name

P99_TARGET_MS = 50.0  # default target of the highest rate holding the p99 (sweep.p99_target_ms, --p99-target-ms)
LOAD_KEYS = [*GROUP_KEYS, "rate_per_s"]
LOAD_COLUMNS = [
    *LOAD_KEYS, "reps", "chains", "calls", "errors", "offered_calls_per_s", "achieved_calls_per_s",
    *(f"corrected_{pct_name(p)}_ms" for p in LATENCY_PERCENTILES),
    *(f"raw_{pct_name(p)}_ms" for p in LATENCY_PERCENTILES),
    "corrected_p99_lo_ms", "corrected_p99_hi_ms", "chain_p50_ms", "chain_p99_ms",
]
HOLD_COLUMNS = [*GROUP_KEYS, "target_ms", "status", "max_rate_per_s", "max_rate_p99_ms", "max_rate_p99_hi_ms",
                "fails_at_per_s",
                "fails_at_p99_ms", "rates"]


def corrected_latency_ns(calls: pd.DataFrame) -> np.ndarray:
    """t_recv - t_intended per call (t_recv - t_send where t_intended was not recorded)."""
    recv = calls["t_recv_ns"].to_numpy(np.int64)
    send = calls["t_send_ns"].to_numpy(np.int64)
    due = calls["t_intended_ns"].to_numpy(np.int64) if "t_intended_ns" in calls else np.zeros(len(calls), np.int64)
    return recv - np.where(due > 0, due, send)


def load_table(calls: pd.DataFrame, calls_per_chain: int, n_boot: int = BOOTSTRAP_SAMPLES,
               seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per (backend, gc mode, rate_per_s) of `calls` (the calls of every point, with a rate_per_s
    column: chains offered per second, 0 for closed loop), in the order first seen, rates ascending.

    offered_calls_per_s is rate x calls per chain; achieved_calls_per_s is the calls answered over the
    measured windows (each repetition from its first due call to its last reply, summed). The 95% bootstrap CI
    of the corrected p99 resamples repetitions, then calls within them; NaN with a single repetition."""
    if len(calls) == 0:
        return pd.DataFrame(columns=LOAD_COLUMNS)
    c = calls.assign(_corr_ms=corrected_latency_ns(calls) / 1e6,
                     _raw_ms=(calls["t_recv_ns"] - calls["t_send_ns"]).to_numpy(np.int64) / 1e6)
    due = c["t_intended_ns"].to_numpy(np.int64) if "t_intended_ns" in c else np.zeros(len(c), np.int64)
    c["_start_ns"] = np.where(due > 0, due, c["t_send_ns"].to_numpy(np.int64))
    rows = []
    order = c[LOAD_KEYS].drop_duplicates()
    groups = list(dict.fromkeys(zip(order["backend"], order["gc_mode"], strict=True)))
    for backend, mode in groups:
        g_all = c[(c["backend"] == backend) & (c["gc_mode"] == mode)]
        for rate in sorted(set(g_all["rate_per_s"].astype(float))):
            g = g_all[g_all["rate_per_s"].astype(float) == rate]
            per_rep = g.groupby("rep", observed=True).agg(n=("call", "size"), t0=("_start_ns", "min"),
                                                           t1=("t_recv_ns", "max"))
            window_s = float((per_rep["t1"] - per_rep["t0"]).sum()) / 1e9
            corr, raw = g["_corr_ms"].to_numpy(), g["_raw_ms"].to_numpy()
            qs = list(LATENCY_PERCENTILES)
            row = {"backend": backend, "gc_mode": mode, "rate_per_s": rate, "reps": len(per_rep),
                   "chains": int(g.groupby(["rep", "chain"], observed=True).ngroups), "calls": len(g),
                   "errors": int((~g["ok"].astype(bool)).sum()),
                   "offered_calls_per_s": rate * calls_per_chain if rate > 0 else math.nan,
                   "achieved_calls_per_s": len(g) / window_s if window_s > 0 else math.nan}
            row.update({f"corrected_{pct_name(p)}_ms": v for p, v in zip(qs, np.percentile(corr, qs), strict=True)})
            row.update({f"raw_{pct_name(p)}_ms": v for p, v in zip(qs, np.percentile(raw, qs), strict=True)})
            lo = hi = math.nan
            if len(per_rep) > 1:
                boot = bootstrap_stat(corr, cell_rng(seed, backend, mode, f"{rate:g}", "p99"), n_boot, q=99.0,
                                      groups=g["rep"].to_numpy())
                lo, hi = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
            row.update({"corrected_p99_lo_ms": lo, "corrected_p99_hi_ms": hi})
            ch = chain_table(g.drop(columns=["_corr_ms", "_raw_ms", "_start_ns"]))
            chain_ms = ch["chain_corrected_ns"].to_numpy() / 1e6
            row.update({"chain_p50_ms": float(np.percentile(chain_ms, 50)),
                        "chain_p99_ms": float(np.percentile(chain_ms, 99))})
            rows.append(row)
    return pd.DataFrame(rows, columns=LOAD_COLUMNS)


def max_rate_holding(table: pd.DataFrame, target_ms: float = P99_TARGET_MS) -> pd.DataFrame:
    """Per (backend, gc mode): the highest offered rate whose corrected p99 holds `target_ms`, every lower rate
    measured holding it too (a rate above the first failing one that happens to pass is not counted: it is noise
    or a different regime, not headroom). status: holds-all (every rate measured held: the limit is above the
    grid), holds (max_rate_per_s held, fails_at_per_s did not), fails-lowest (even the lowest rate failed), or
    closed-loop (no rate > 0 measured). max_rate_p99_hi_ms: the upper bound of that p99's 95% CI (NaN without
    one): above the target, the hold is not certain."""
    rows = []
    for (backend, mode), g in table.groupby(GROUP_KEYS, sort=False, observed=True):
        g = g[g["rate_per_s"] > 0].sort_values("rate_per_s")
        row = {"backend": backend, "gc_mode": mode, "target_ms": target_ms, "max_rate_per_s": math.nan,
               "max_rate_p99_ms": math.nan, "max_rate_p99_hi_ms": math.nan, "fails_at_per_s": math.nan, "fails_at_p99_ms": math.nan,
               "rates": len(g)}
        if not len(g):
            rows.append({**row, "status": "closed-loop"})
            continue
        status = "holds-all"
        for r in g.itertuples():
            if not r.corrected_p99_ms <= target_ms:  # NaN fails too
                row.update(fails_at_per_s=r.rate_per_s, fails_at_p99_ms=r.corrected_p99_ms)
                status = "holds" if row["max_rate_per_s"] == row["max_rate_per_s"] else "fails-lowest"
                break
            row.update(max_rate_per_s=r.rate_per_s, max_rate_p99_ms=r.corrected_p99_ms,
                       max_rate_p99_hi_ms=getattr(r, "corrected_p99_hi_ms", math.nan))
        rows.append({**row, "status": status})
    return pd.DataFrame(rows, columns=HOLD_COLUMNS)
