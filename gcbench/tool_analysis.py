"""Latency and GC dead time by tool: the breakdown of a run whose chains mix tools (a trace). Vectorised.

GC dead time of a call is its gc_overlap_ns (server GC pause time inside the call, see analysis.attribute).
The confidence interval of a tool's mean dead time per call resamples whole chains (a chain's calls share
the server's heap history), with the report's seed, so the same run always gives the same interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gcbench.analysis import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, GROUP_KEYS, cell_rng

TOOL_KEYS = [*GROUP_KEYS, "tool"]
COLUMNS = ["backend", "gc_mode", "tool", "calls", "errors", "latency_p50_ms", "latency_p99_ms", "latency_max_ms",
           "gc_calls_share", "dead_per_call_ms", "dead_per_call_lo_ms", "dead_per_call_hi_ms", "dead_share"]
BOOT_CHUNK = 200  # bootstrap replicates drawn at once: bounds memory to chunk x chains


def tool_count(calls: pd.DataFrame) -> int:
    """How many different tools the run called (0 without a tool column)."""
    return int(calls["tool"].nunique()) if "tool" in calls and len(calls) else 0


def _dead_ci(dead_ns: np.ndarray, n_calls: np.ndarray, rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
    """95% interval of sum(dead) / sum(calls) over chains resampled with replacement (ms per call)."""
    n = len(dead_ns)
    if n < 2:
        return float("nan"), float("nan")
    reps = []
    for start in range(0, n_boot, BOOT_CHUNK):
        idx = rng.integers(0, n, (min(BOOT_CHUNK, n_boot - start), n))
        reps.append(dead_ns[idx].sum(axis=1) / n_calls[idx].sum(axis=1))
    lo, hi = np.percentile(np.concatenate(reps), [2.5, 97.5])
    return float(lo) / 1e6, float(hi) / 1e6


def tool_table(calls: pd.DataFrame, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per (backend, gc mode, tool), in the order the run measured them: calls, errors, latency
    p50/p99/max (ms), the share of calls that overlapped a GC pause, mean GC dead time per call (ms, 95% CI
    over chains) and GC dead time as a share of the tool's summed latency."""
    if tool_count(calls) == 0:
        return pd.DataFrame(columns=COLUMNS)
    c = calls.assign(tool=calls["tool"].astype(str), _lat_ms=calls["latency_ns"] / 1e6,
                     _hit=calls["gc_overlap_ns"] > 0, _err=~calls["ok"].astype(bool))
    g = c.groupby(TOOL_KEYS, sort=False, observed=True)
    q = g["_lat_ms"].quantile([0.5, 0.99]).unstack()
    out = pd.DataFrame({
        "calls": g.size(),
        "errors": g["_err"].sum().astype(np.int64),
        "latency_p50_ms": q[0.5], "latency_p99_ms": q[0.99], "latency_max_ms": g["_lat_ms"].max(),
        "gc_calls_share": g["_hit"].mean(),
        "dead_per_call_ms": g["gc_overlap_ns"].mean() / 1e6,
        "dead_share": g["gc_overlap_ns"].sum() / g["latency_ns"].sum().clip(lower=1),
    }).reset_index()
    # per chain (and repetition) of each tool: its calls' dead time and count, the units the bootstrap resamples
    per_chain = c.groupby([*TOOL_KEYS, "rep", "chain"], sort=False, observed=True)["gc_overlap_ns"].agg(["sum", "size"])
    lo, hi = [], []
    for key, sub in per_chain.groupby(level=[0, 1, 2], sort=False):
        a, b = _dead_ci(sub["sum"].to_numpy(np.float64), sub["size"].to_numpy(np.float64),
                        cell_rng(seed, "tool", *map(str, key)), n_boot)
        lo.append((*key, a))
        hi.append((*key, b))
    ci = pd.DataFrame(lo, columns=[*TOOL_KEYS, "dead_per_call_lo_ms"])
    ci["dead_per_call_hi_ms"] = [h[-1] for h in hi]
    return out.merge(ci, on=TOOL_KEYS, how="left")[COLUMNS]
