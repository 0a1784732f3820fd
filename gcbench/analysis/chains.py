"""Tables of the calls: one row per chain, and per (backend, gc mode) the call latency, chain latency and GC dead
time per chain, and the measured GC events. Numbers only."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gcbench.analysis.attribution import CELL_KEYS, GROUP_KEYS, measured_server_events

LATENCY_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def pct_name(p: float) -> str:
    """50 -> 'p50', 99.9 -> 'p999' (column-name friendly)."""
    return "p" + f"{p:g}".replace(".", "")


def group_order(df: pd.DataFrame) -> pd.DataFrame:
    """The (backend, gc mode) pairs in the order the run measured them."""
    return df[GROUP_KEYS].drop_duplicates().reset_index(drop=True)


def chain_table(calls: pd.DataFrame) -> pd.DataFrame:
    """One row per chain: calls, chain latency (first send to last receive), summed call latency, GC dead time."""
    keys = [*CELL_KEYS, "chain"]
    c = calls.assign(_hit=calls["gc_overlap_ns"] > 0, _err=~calls["ok"].astype(bool))
    out = c.groupby(keys, sort=False, observed=True).agg(
        calls=("call", "size"),
        t_start_ns=("t_send_ns", "min"),
        t_end_ns=("t_recv_ns", "max"),
        busy_ns=("latency_ns", "sum"),
        dead_ns=("gc_overlap_ns", "sum"),
        gc_calls=("_hit", "sum"),
        errors=("_err", "sum"),
    ).reset_index()
    out["gc_calls"] = out["gc_calls"].astype(np.int64)
    out["errors"] = out["errors"].astype(np.int64)
    out["chain_ns"] = out["t_end_ns"] - out["t_start_ns"]
    # from when the chain was due (open loop: its slot in the fixed schedule), wrk2's corrected latency
    if "t_intended_ns" in calls:
        first = c.groupby(keys, sort=False, observed=True)["t_intended_ns"].min().to_numpy()
        out["t_due_ns"] = np.where(first > 0, first, out["t_start_ns"])
    else:
        out["t_due_ns"] = out["t_start_ns"]
    out["chain_corrected_ns"] = out["t_end_ns"] - out["t_due_ns"]
    return out


def latency_table(calls: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, gc mode): calls, errors and call latency p50/p90/p99/p99.9/max in ms."""
    cols = ["backend", "gc_mode", "calls", "errors",
            *(f"latency_{pct_name(p)}_ms" for p in LATENCY_PERCENTILES), "latency_max_ms"]
    if len(calls) == 0:
        return pd.DataFrame(columns=cols)
    lat_ms = (calls["latency_ns"] / 1e6).rename("lat")
    keys = [calls["backend"], calls["gc_mode"]]
    g = lat_ms.groupby(keys, sort=False, observed=True)
    q = g.quantile([p / 100 for p in LATENCY_PERCENTILES]).unstack()
    q.columns = [f"latency_{pct_name(p)}_ms" for p in LATENCY_PERCENTILES]
    out = pd.DataFrame({
        "calls": g.size(),
        "errors": (~calls["ok"].astype(bool)).groupby(keys, sort=False, observed=True).sum().astype(np.int64),
    }).join(q)
    out["latency_max_ms"] = g.max()
    out = out.reset_index()
    return group_order(calls).merge(out, on=GROUP_KEYS, how="left")[cols]


def chain_stats(chains: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, gc mode): chain latency and GC dead time per chain, the share of chain time lost to GC,
    and the probability that a chain has at least one call delayed by GC."""
    cols = ["backend", "gc_mode", "reps", "chains", "chain_mean_ms", "chain_p50_ms", "chain_p99_ms",
            "dead_mean_ms", "dead_p50_ms", "dead_p99_ms", "dead_max_ms", "gc_time_share", "chains_hit_share"]
    if len(chains) == 0:
        return pd.DataFrame(columns=cols)
    c = chains.assign(chain_ms=chains["chain_ns"] / 1e6, dead_ms=chains["dead_ns"] / 1e6,
                      hit=chains["gc_calls"] > 0)
    g = c.groupby(GROUP_KEYS, sort=False, observed=True)
    chain_q = g["chain_ms"].quantile([0.5, 0.99]).unstack()
    dead_q = g["dead_ms"].quantile([0.5, 0.99]).unstack()
    out = pd.DataFrame({
        "reps": g["rep"].nunique(),
        "chains": g.size(),
        "chain_mean_ms": g["chain_ms"].mean(),
        "chain_p50_ms": chain_q[0.5],
        "chain_p99_ms": chain_q[0.99],
        "dead_mean_ms": g["dead_ms"].mean(),
        "dead_p50_ms": dead_q[0.5],
        "dead_p99_ms": dead_q[0.99],
        "dead_max_ms": g["dead_ms"].max(),
        "gc_time_share": g["dead_ns"].sum() / g["chain_ns"].sum().where(lambda s: s > 0),
        "chains_hit_share": g["hit"].mean(),
    }).reset_index()
    return group_order(chains).merge(out, on=GROUP_KEYS, how="left")[cols]


def gc_event_table(events: pd.DataFrame, chains: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (backend, gc mode, event type, kind, generation): measured server GC events and pause percentiles (ms).

    `events_per_chain` divides by the chains measured in that (backend, gc mode), when `chains` is given.
    """
    keys = [*GROUP_KEYS, "type", "kind", "generation"]
    cols = [*keys, "events", "events_per_chain", "pause_p50_ms", "pause_p90_ms", "pause_p99_ms", "pause_max_ms",
            "pause_total_ms"]
    ev = measured_server_events(events)
    if len(ev) == 0:
        return pd.DataFrame(columns=cols)
    ms = (ev["duration_ns"] / 1e6).rename("ms")
    g = ms.groupby([ev[k] for k in keys], sort=False, observed=True)
    q = g.quantile([0.5, 0.9, 0.99]).unstack()
    out = pd.DataFrame({
        "events": g.size(),
        "pause_p50_ms": q[0.5], "pause_p90_ms": q[0.9], "pause_p99_ms": q[0.99],
        "pause_max_ms": g.max(), "pause_total_ms": g.sum(),
    }).reset_index()
    if chains is not None and len(chains):
        n = chains.groupby(GROUP_KEYS, sort=False, observed=True).size().rename("_chains").reset_index()
        out = out.merge(n, on=GROUP_KEYS, how="left")
        out["events_per_chain"] = out["events"] / out["_chains"]
    else:
        out["events_per_chain"] = np.nan
    # (backend, gc mode) in run order, then type, kind and generation
    order = {k: i for i, k in enumerate(map(tuple, group_order(ev).to_numpy().tolist()))}
    out["_o"] = [order[(b, m)] for b, m in zip(out["backend"], out["gc_mode"], strict=True)]
    return out.sort_values(["_o", "type", "kind", "generation"], kind="stable").reset_index(drop=True)[cols]
