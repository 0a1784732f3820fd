"""Which calls each GC pause delayed: interval unions and the exact GC time inside each call. Vectorised."""

from __future__ import annotations

import numpy as np
import pandas as pd

CELL_KEYS = ["backend", "gc_mode", "rep"]  # one server process
GROUP_KEYS = ["backend", "gc_mode"]  # one configuration, over its repetitions
# Event types that are GC (or stand in for it: calibration stalls). A `hiccup` row (the hiccup meter, server or
# control process) is lateness seen by a sleeping thread, never GC dead time: every GC selection uses this.
GC_EVENT_TYPES = ("gc", "stall")
# Pause tables also show the pauses whose time is too uncertain to join to a call (`gc_unplaced`: attribution
# leaves them out), except a Go cycle's unsplit `stw_cycle`, which is the sum of two pauses, not one.
UNPLACED_TYPE = "gc_unplaced"
UNSPLIT_KIND = "stw_cycle"


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
    server = events[(events["source"] == "server") & events["type"].isin(GC_EVENT_TYPES)]
    ev_groups = {k: g for k, g in server.groupby(CELL_KEYS, sort=False)}
    for key, idx in calls.groupby(CELL_KEYS, sort=False).indices.items():
        g = ev_groups.get(key)
        if g is None:
            continue
        sub = calls.iloc[idx]
        out[idx] = overlap_ns(sub["t_send_ns"].to_numpy(), sub["t_recv_ns"].to_numpy(),
                              g["start_ns"].to_numpy(), g["end_ns"].to_numpy())
    return out


def measured_server_events(events: pd.DataFrame) -> pd.DataFrame:
    """Server-side GC events inside the cells' measurement windows (warm-up and shutdown excluded)."""
    if len(events) == 0 or "source" not in events.columns:
        return pd.DataFrame(columns=["backend", "gc_mode", "rep", "type", "kind", "generation",
                                     "start_ns", "end_ns", "duration_ns"])
    keep = events["source"] == "server"
    if "type" in events.columns:
        keep &= events["type"].isin(GC_EVENT_TYPES) | ((events["type"] == UNPLACED_TYPE)
                                                       & (events["kind"] != UNSPLIT_KIND))
    if "measured" in events.columns:
        keep &= events["measured"].astype(bool)
    out = events[keep]
    if "duration_ns" not in out.columns:
        out = out.assign(duration_ns=out["end_ns"] - out["start_ns"])
    return out
