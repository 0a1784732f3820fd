"""GC amplification: one server pause delays every call in flight during it, so under concurrency the dead time
summed over chains is larger than the server's own GC time. Vectorised with sorted intervals.

    calls_delayed (per pause)  calls whose [t_send, t_recv] overlaps the pause by more than 0 ns
    gc_ns (per cell)           the server's GC time inside the measured window: the union of its GC pauses
                               (overlapping pauses counted once), clipped to the window
    dead_ns (per cell)         the sum of gc_overlap_ns over the cell's calls (dead time summed over chains)
    amplification              dead_ns / gc_ns: how many calls one nanosecond of GC delays on average. No figure
                               (NaN, shown '-') when gc_ns is 0: there was no GC to amplify; never 0 or inf.

With one call at a time (one agent, no pipelining) amplification is at most 1 (1 when every pause falls inside
a call); with k agents whose calls all wait on a serial server it approaches k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gcbench.analysis.attribution import CELL_KEYS, GC_EVENT_TYPES, GROUP_KEYS, merge_intervals
from gcbench.format import fmt_ms, fmt_ratio

PAUSE_COLUMNS = [*CELL_KEYS, "start_ns", "end_ns", "duration_ns", "calls_delayed"]
CELL_COLUMNS = [*CELL_KEYS, "pauses", "gc_ns", "dead_ns", "amplification", "calls_delayed_mean",
                "calls_delayed_max", "pauses_by_calls_delayed"]
GROUP_COLUMNS = [*GROUP_KEYS, "amp_pauses", "amp_gc_ms", "amp_dead_ms", "amplification", "calls_delayed_mean",
                 "calls_delayed_max"]


def calls_delayed(call_start: np.ndarray, call_end: np.ndarray, gc_start: np.ndarray,
                  gc_end: np.ndarray) -> np.ndarray:
    """For each pause [gc_start, gc_end], how many calls [call_start, call_end] overlap it by more than 0 ns.

    A call overlaps the pause when call_start < gc_end and call_end > gc_start. The calls with
    call_end <= gc_start all started before gc_end too (call_start <= call_end), so the count is
    #(call_start < gc_end) - #(call_end <= gc_start): two binary searches per pause on the sorted ends.
    A pause of 0 ns delays nothing.
    """
    ps = np.asarray(gc_start, np.int64)
    pe = np.asarray(gc_end, np.int64)
    s = np.sort(np.asarray(call_start, np.int64))
    e = np.sort(np.asarray(call_end, np.int64))
    n = np.searchsorted(s, pe, side="left") - np.searchsorted(e, ps, side="right")
    return np.where(pe > ps, n, 0).astype(np.int64)


def _server_gc(events: pd.DataFrame) -> pd.DataFrame:
    """The server's GC pauses (the events attribution joins to calls), inside the measured windows."""
    if len(events) == 0 or "source" not in events.columns:
        return pd.DataFrame(columns=[*CELL_KEYS, "start_ns", "end_ns"])
    keep = (events["source"] == "server") & events["type"].isin(GC_EVENT_TYPES)
    if "measured" in events.columns:
        keep &= events["measured"].astype(bool)
    return events[keep]


def _windows(calls: pd.DataFrame, cells: list[dict] | None) -> dict[tuple, tuple[int, int]]:
    """Each cell's measured window: run.json's t_measure_start/end_ns, else its first send to its last reply."""
    out = {}
    for key, g in calls.groupby(CELL_KEYS, sort=False, observed=True):
        out[key] = (int(g["t_send_ns"].min()), int(g["t_recv_ns"].max()))
    for c in cells or ():
        key = (c.get("backend"), c.get("gc_mode"), c.get("rep"))
        s, e = c.get("t_measure_start_ns"), c.get("t_measure_end_ns")
        if key in out and type(s) is int and type(e) is int and e >= s:
            out[key] = (s, e)
    return out


def pause_table(calls: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """One row per measured server GC pause: its cell, start, end, duration and calls_delayed."""
    ev = _server_gc(events)
    if len(calls) == 0 or len(ev) == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c.endswith("_ns") or c == "calls_delayed" else object)
                             for c in PAUSE_COLUMNS})
    groups = calls.groupby(CELL_KEYS, sort=False, observed=True).indices
    parts = []
    for key, g in ev.groupby(CELL_KEYS, sort=False, observed=True):
        idx = groups.get(key)
        start = g["start_ns"].to_numpy(np.int64)
        end = g["end_ns"].to_numpy(np.int64)
        if idx is None:
            n = np.zeros(len(g), np.int64)
        else:
            sub = calls.iloc[idx]
            n = calls_delayed(sub["t_send_ns"].to_numpy(), sub["t_recv_ns"].to_numpy(), start, end)
        parts.append(pd.DataFrame({"backend": key[0], "gc_mode": key[1], "rep": key[2], "start_ns": start,
                                   "end_ns": end, "duration_ns": end - start, "calls_delayed": n}))
    return pd.concat(parts, ignore_index=True)[PAUSE_COLUMNS]


def gc_time_ns(start_ns: np.ndarray, end_ns: np.ndarray, window: tuple[int, int]) -> int:
    """The union of the pauses [start, end] clipped to the window, in ns."""
    ms, me = merge_intervals(np.asarray(start_ns), np.asarray(end_ns))
    if len(ms) == 0:
        return 0
    return int(np.clip(np.minimum(me, window[1]) - np.maximum(ms, window[0]), 0, None).sum())


def cell_amplification(calls: pd.DataFrame, events: pd.DataFrame, cells: list[dict] | None = None) -> pd.DataFrame:
    """One row per measured cell: pauses, gc_ns, dead_ns, amplification (NaN when gc_ns is 0), the mean and
    largest calls_delayed over its pauses (NaN without a pause), and every pause's count as a distribution
    (pauses_by_calls_delayed: {calls delayed: pauses})."""
    if len(calls) == 0:
        return pd.DataFrame(columns=CELL_COLUMNS)
    pauses = pause_table(calls, events)
    windows = _windows(calls, cells)
    by_cell = {k: g for k, g in pauses.groupby(CELL_KEYS, sort=False)} if len(pauses) else {}
    dead = calls.groupby(CELL_KEYS, sort=False, observed=True)["gc_overlap_ns"].sum()
    rows = []
    for key, d in dead.items():
        p = by_cell.get(key)
        gc_ns = gc_time_ns(p["start_ns"].to_numpy(), p["end_ns"].to_numpy(), windows[key]) if p is not None else 0
        n = p["calls_delayed"] if p is not None else pd.Series(dtype="int64")
        rows.append({"backend": key[0], "gc_mode": key[1], "rep": key[2], "pauses": len(n), "gc_ns": gc_ns,
                     "dead_ns": int(d), "amplification": d / gc_ns if gc_ns > 0 else np.nan,
                     "calls_delayed_mean": float(n.mean()) if len(n) else np.nan,
                     "calls_delayed_max": float(n.max()) if len(n) else np.nan,
                     "pauses_by_calls_delayed": {int(k): int(v) for k, v in n.value_counts().sort_index().items()}})
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def amplification_table(calls: pd.DataFrame, events: pd.DataFrame, cells: list[dict] | None = None) -> pd.DataFrame:
    """Per (backend, gc mode) over its repetitions: amp_gc_ms and amp_dead_ms summed over the cells,
    amplification = their ratio (NaN when the GC time is 0), calls_delayed mean and max over every pause."""
    if len(calls) == 0:
        return pd.DataFrame(columns=GROUP_COLUMNS)
    c = cell_amplification(calls, events, cells)
    pauses = pause_table(calls, events)
    per_pause = pauses.groupby(GROUP_KEYS, sort=False)["calls_delayed"] if len(pauses) else None
    g = c.groupby(GROUP_KEYS, sort=False)
    out = pd.DataFrame({"amp_pauses": g["pauses"].sum(), "amp_gc_ms": g["gc_ns"].sum() / 1e6,
                        "amp_dead_ms": g["dead_ns"].sum() / 1e6}).reset_index()
    out["amplification"] = out["amp_dead_ms"] / out["amp_gc_ms"].where(out["amp_gc_ms"] > 0)
    if per_pause is not None:
        stats = pd.DataFrame({"calls_delayed_mean": per_pause.mean().astype(float),
                              "calls_delayed_max": per_pause.max().astype(float)}).reset_index()
        out = out.merge(stats, on=GROUP_KEYS, how="left")
    else:
        out["calls_delayed_mean"] = np.nan
        out["calls_delayed_max"] = np.nan
    return out[GROUP_COLUMNS]


@dataclass(frozen=True)
class Amplification:
    """One (backend, gc mode)'s amplification as the sentence the reports print."""

    name: str  # backend/gc mode
    pauses: int
    gc_ms: float
    dead_ms: float
    amplification: float  # NaN: no server GC time in the measured window
    calls_delayed_mean: float

    def __str__(self) -> str:
        if self.amplification != self.amplification:
            return f"{self.name}: no figure: no server GC time in the measured window"
        return (f"{self.name}: {self.pauses} pause(s), {fmt_ms(self.gc_ms)} ms of server GC delayed the calls by "
                f"{fmt_ms(self.dead_ms)} ms summed over chains: amplification x{fmt_ratio(self.amplification)}, "
                f"{fmt_ratio(self.calls_delayed_mean)} call(s) in flight per pause on average")


def amplification_findings(summary: pd.DataFrame) -> list[Amplification]:
    """The findings of summarize()'s amplification columns, one per (backend, gc mode)."""
    if "amplification" not in summary.columns:
        return []
    return [Amplification(f"{r.backend}/{r.gc_mode}", int(r.amp_pauses), float(r.amp_gc_ms), float(r.amp_dead_ms),
                          float(r.amplification), float(r.calls_delayed_mean)) for r in summary.itertuples()]


# ---------------------------------------------------------------------------------------------- idle gaps

IDLE_COLUMNS = [*GROUP_KEYS, "idle_gc_ms", "busy_gc_ms", "idle_gc_share", "window_ms", "window_idle_share"]


def covered_ns(starts: np.ndarray, ends: np.ndarray, cover_s: np.ndarray, cover_e: np.ndarray) -> np.ndarray:
    """For each interval [starts, ends], how many ns of it the disjoint sorted intervals [cover_s, cover_e]
    (merge_intervals' output) cover: C(end) - C(start), C(t) the covered length up to t, from cumulative sums."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    if len(cover_s) == 0:
        return np.zeros(len(starts), np.int64)
    cum = np.concatenate([[0], np.cumsum(cover_e - cover_s)])

    def upto(t: np.ndarray) -> np.ndarray:
        i = np.searchsorted(cover_s, t, side="right") - 1  # the last cover starting at or before t
        inside = np.where(i >= 0, np.clip(t - cover_s[np.maximum(i, 0)], 0,
                                          (cover_e - cover_s)[np.maximum(i, 0)]), 0)
        return np.where(i >= 0, cum[np.maximum(i, 0)] + inside, 0)

    return upto(ends) - upto(starts)


def idle_gap_table(calls: pd.DataFrame, events: pd.DataFrame, cells: list[dict] | None = None) -> pd.DataFrame:
    """Where the server's GC time fell, per (backend, gc mode) over its repetitions: inside a call (some call of
    the cell in flight: busy_gc_ms) or between calls (no call in flight: idle_gc_ms), each the union of the
    measured pauses clipped to the measured window; idle_gc_share = idle / (idle + busy), NaN without GC time.
    window_idle_share: the share of the measured windows with no call in flight (a collector timed without
    regard to the calls would put about that share of its time in the gaps)."""
    if len(calls) == 0:
        return pd.DataFrame(columns=IDLE_COLUMNS)
    ev = _server_gc(events)
    windows = _windows(calls, cells)
    by_cell = {k: g for k, g in ev.groupby(CELL_KEYS, sort=False, observed=True)} if len(ev) else {}
    rows = []
    for key, g in calls.groupby(CELL_KEYS, sort=False, observed=True):
        w0, w1 = windows[key]
        cs, ce = merge_intervals(np.clip(g["t_send_ns"].to_numpy(np.int64), w0, w1),
                                 np.clip(g["t_recv_ns"].to_numpy(np.int64), w0, w1))
        busy_window = int((ce - cs).sum())
        p = by_cell.get(key)
        gc = busy = 0
        if p is not None:
            ps, pe = merge_intervals(p["start_ns"].to_numpy(np.int64), p["end_ns"].to_numpy(np.int64))
            ps, pe = np.clip(ps, w0, w1), np.clip(pe, w0, w1)
            gc = int((pe - ps).sum())
            busy = int(covered_ns(ps, pe, cs, ce).sum())
        rows.append({"backend": key[0], "gc_mode": key[1], "gc_ns": gc, "busy_ns": busy,
                     "window_ns": w1 - w0, "idle_window_ns": (w1 - w0) - busy_window})
    c = pd.DataFrame(rows).groupby(GROUP_KEYS, sort=False)[["gc_ns", "busy_ns", "window_ns", "idle_window_ns"]].sum()
    out = pd.DataFrame({"busy_gc_ms": c["busy_ns"] / 1e6, "idle_gc_ms": (c["gc_ns"] - c["busy_ns"]) / 1e6,
                        "window_ms": c["window_ns"] / 1e6}).reset_index()
    gc_ms = out["busy_gc_ms"] + out["idle_gc_ms"]
    out["idle_gc_share"] = out["idle_gc_ms"] / gc_ms.where(gc_ms > 0)
    out["window_idle_share"] = (c["idle_window_ns"].to_numpy() / c["window_ns"].where(c["window_ns"] > 0).to_numpy())
    return out[IDLE_COLUMNS]
