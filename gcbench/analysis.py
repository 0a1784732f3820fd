"""Attribution of GC pauses to calls and the per-(backend, gc mode) summary. Vectorised: no per-call loops."""

from __future__ import annotations

import numpy as np
import pandas as pd

CLAIM_PAUSE_MS = 10.0  # the claim: "a 10 ms GC pause during a chain of 50 tool calls ..."
CELL_KEYS = ["backend", "gc_mode", "rep"]
GROUP_KEYS = ["backend", "gc_mode"]


def merge_intervals(start_ns: np.ndarray, end_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of [start, end] intervals as sorted, disjoint intervals."""
    if len(start_ns) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(start_ns, kind="stable")
    s = np.asarray(start_ns, np.int64)[order]
    e = np.asarray(end_ns, np.int64)[order]
    run_end = np.maximum.accumulate(e)
    new_group = np.ones(len(s), bool)
    new_group[1:] = s[1:] > run_end[:-1]
    group_id = np.cumsum(new_group) - 1
    starts = s[new_group]
    ends = np.zeros(len(starts), np.int64)
    np.maximum.at(ends, group_id, e)
    return starts, ends


def overlap_ns(call_start: np.ndarray, call_end: np.ndarray, gc_start: np.ndarray, gc_end: np.ndarray) -> np.ndarray:
    """For each call [call_start, call_end], the total GC time inside it (overlapping pauses counted once).

    With disjoint sorted pauses, F(t) = GC time before t is piecewise linear, and a call's overlap is
    F(end) - F(start): two binary searches per call, exact to the nanosecond.
    """
    ms, me = merge_intervals(np.asarray(gc_start), np.asarray(gc_end))
    cs = np.asarray(call_start, np.int64)
    ce = np.asarray(call_end, np.int64)
    if len(ms) == 0:
        return np.zeros(len(cs), np.int64)
    dur = me - ms
    cum_before = np.concatenate(([0], np.cumsum(dur)[:-1]))

    def gc_time_before(t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(ms, t, side="right") - 1
        kk = np.maximum(k, 0)
        inside = np.clip(t - ms[kk], 0, dur[kk])
        return np.where(k >= 0, cum_before[kk] + inside, 0)

    return gc_time_before(ce) - gc_time_before(cs)


def attribute(calls: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """gc_overlap_ns for every row of `calls`, using the server-side events of the same cell."""
    out = np.zeros(len(calls), np.int64)
    if len(calls) == 0 or len(events) == 0:
        return out
    server = events[events["source"] == "server"]
    ev_groups = {k: g for k, g in server.groupby(CELL_KEYS, sort=False)}
    for key, idx in calls.groupby(CELL_KEYS, sort=False).indices.items():
        g = ev_groups.get(key)
        if g is None:
            continue
        sub = calls.iloc[idx]
        out[idx] = overlap_ns(sub["t_send_ns"].to_numpy(), sub["t_recv_ns"].to_numpy(),
                              g["start_ns"].to_numpy(), g["end_ns"].to_numpy())
    return out


def chain_table(calls: pd.DataFrame) -> pd.DataFrame:
    """One row per chain: calls, chain latency (first send to last receive), summed call latency, GC dead time."""
    keys = [*CELL_KEYS, "chain"]
    g = calls.groupby(keys, sort=False, observed=True)
    out = g.agg(
        calls=("call", "size"),
        t_start_ns=("t_send_ns", "min"),
        t_end_ns=("t_recv_ns", "max"),
        busy_ns=("latency_ns", "sum"),
        dead_ns=("gc_overlap_ns", "sum"),
        gc_calls=("gc_overlap_ns", lambda s: int((s > 0).sum())),
        errors=("ok", lambda s: int((~s).sum())),
    ).reset_index()
    out["chain_ns"] = out["t_end_ns"] - out["t_start_ns"]
    return out


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def summarize(calls: pd.DataFrame, events: pd.DataFrame, calls_per_chain: int) -> pd.DataFrame:
    """One row per (backend, gc mode): latency, pauses, GC dead time per chain, and the claim's ratio."""
    claim_ms = CLAIM_PAUSE_MS * calls_per_chain
    chains = chain_table(calls) if len(calls) else None
    measured = events[(events["source"] == "server") & events.get("measured", True)] if len(events) else events
    rows = []
    for key, c in calls.groupby(GROUP_KEYS, sort=False):
        lat_ms = c["latency_ns"].to_numpy() / 1e6
        ch = chains[(chains["backend"] == key[0]) & (chains["gc_mode"] == key[1])]
        dead_ms = ch["dead_ns"].to_numpy() / 1e6
        ev = measured[(measured["backend"] == key[0]) & (measured["gc_mode"] == key[1])] if len(measured) else measured
        pauses_ms = ev["duration_ns"].to_numpy() / 1e6 if len(ev) else np.empty(0)
        kinds = ev["kind"].value_counts().sort_index().to_dict() if len(ev) else {}
        rows.append(
            {
                "backend": key[0],
                "gc_mode": key[1],
                "reps": c["rep"].nunique(),
                "chains": len(ch),
                "calls": len(c),
                "errors": int((~c["ok"]).sum()),
                "latency_p50_ms": _pct(lat_ms, 50),
                "latency_p99_ms": _pct(lat_ms, 99),
                "latency_max_ms": float(lat_ms.max()) if len(lat_ms) else float("nan"),
                "gc_events": int(len(ev)),
                "gc_events_by_kind": kinds,
                "pause_max_ms": float(pauses_ms.max()) if len(pauses_ms) else 0.0,
                "pause_total_ms": float(pauses_ms.sum()),
                "dead_p50_ms": _pct(dead_ms, 50),
                "dead_p99_ms": _pct(dead_ms, 99),
                "dead_max_ms": float(dead_ms.max()) if len(dead_ms) else float("nan"),
                "chains_hit_share": float((ch["gc_calls"] > 0).mean()) if len(ch) else float("nan"),
                "claim_ms": claim_ms,
                "dead_p99_vs_claim": _pct(dead_ms, 99) / claim_ms,
                "dead_max_vs_claim": (float(dead_ms.max()) / claim_ms) if len(dead_ms) else float("nan"),
            }
        )
    return pd.DataFrame(rows)
