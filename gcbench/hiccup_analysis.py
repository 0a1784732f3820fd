"""What the hiccup meter saw, per (backend, gc mode), and where the slowest calls' time went. Vectorised.

- hiccups seen by the server's meter and by the idle control process (count, per second, p99, max lateness);
- the harness's own lateness: t_send - t_intended (when a call went out vs when it was due);
- the slowest 1% of calls split into time overlapping server GC events, server hiccups that are not GC,
  control-process hiccups (the machine) that are neither, and the rest (including ordinary service time);
- the meter's own cost: `X` vs `X+meter` latency from the same run (`gcbench run --meter-overhead`).

Hiccups are never GC: this module reads them beside GC events, analysis.attribute and every GC summary ignore
them (analysis.GC_EVENT_TYPES).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gcbench.analysis import CELL_KEYS, GC_EVENT_TYPES, GROUP_KEYS, merge_intervals, overlap_ns

HICCUP = "hiccup"
TAIL_QUANTILE = 0.99  # "the slowest 1% of calls"
METER_SUFFIX = "+meter"

HICCUP_COLUMNS = [
    "backend", "gc_mode", "window_s",
    "server_hiccups", "server_per_s", "server_p99_ms", "server_max_ms", "server_total_ms",
    "control_hiccups", "control_per_s", "control_p99_ms", "control_max_ms", "control_total_ms",
    "client_lag_p50_ms", "client_lag_p99_ms", "client_lag_max_ms",
]
TAIL_COLUMNS = [
    "backend", "gc_mode", "tail_calls", "tail_threshold_ms", "latency_p50_ms", "tail_mean_ms",
    "tail_gc_ms", "tail_hiccup_ms", "tail_machine_ms", "tail_other_ms",
    "tail_gc_share", "tail_hiccup_share", "tail_machine_share", "tail_other_share",
]
OVERHEAD_COLUMNS = [
    "backend", "gc_mode", "calls_off", "calls_on", "p50_off_ms", "p50_on_ms", "p50_change",
    "p99_off_ms", "p99_on_ms", "p99_change", "mean_off_ms", "mean_on_ms", "mean_change",
]


def has_hiccups(events: pd.DataFrame) -> bool:
    return len(events) > 0 and "type" in events.columns and bool((events["type"] == HICCUP).any())


def hiccup_events(events: pd.DataFrame, source: str, measured_only: bool = True) -> pd.DataFrame:
    """The hiccup rows of one source ("server" or "control"), inside the measurement windows by default."""
    if len(events) == 0 or "type" not in events.columns:
        return events.iloc[0:0]
    keep = (events["type"] == HICCUP) & (events["source"] == source)
    if measured_only and "measured" in events.columns:
        keep &= events["measured"].astype(bool)
    return events[keep]


def _window_s(calls: pd.DataFrame) -> pd.Series:
    """Measured seconds per (backend, gc mode): per cell first send to last receive, summed over repetitions."""
    g = calls.groupby(CELL_KEYS, sort=False, observed=True)
    span = (g["t_recv_ns"].max() - g["t_send_ns"].min()).rename("span_ns").reset_index()
    return span.groupby(GROUP_KEYS, sort=False, observed=True)["span_ns"].sum() / 1e9


def _lateness_stats(ev: pd.DataFrame, prefix: str) -> pd.DataFrame:
    cols = [f"{prefix}_hiccups", f"{prefix}_p99_ms", f"{prefix}_max_ms", f"{prefix}_total_ms"]
    if len(ev) == 0:
        return pd.DataFrame(columns=[*GROUP_KEYS, *cols])
    late_ms = ((ev["end_ns"] - ev["start_ns"]) / 1e6).rename("late")
    g = late_ms.groupby([ev["backend"], ev["gc_mode"]], sort=False, observed=True)
    return pd.DataFrame({
        cols[0]: g.size(), cols[1]: g.quantile(0.99), cols[2]: g.max(), cols[3]: g.sum(),
    }).reset_index()


def hiccup_table(calls: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, gc mode): server and control hiccups (count, per second, p99/max/total lateness in ms)
    inside the measurement windows, and the harness's own lateness t_send - t_intended (p50/p99/max, ms)."""
    if len(calls) == 0:
        return pd.DataFrame(columns=HICCUP_COLUMNS)
    out = calls[GROUP_KEYS].drop_duplicates().reset_index(drop=True)
    out = out.merge(_window_s(calls).rename("window_s").reset_index(), on=GROUP_KEYS, how="left")
    for source in ("server", "control"):
        stats = _lateness_stats(hiccup_events(events, source), source)
        out = out.merge(stats, on=GROUP_KEYS, how="left")
        out[f"{source}_hiccups"] = out[f"{source}_hiccups"].fillna(0).astype(np.int64)
        out[f"{source}_total_ms"] = out[f"{source}_total_ms"].fillna(0.0)
        out[f"{source}_per_s"] = out[f"{source}_hiccups"] / out["window_s"].where(out["window_s"] > 0)
    due = calls["t_intended_ns"].to_numpy() if "t_intended_ns" in calls else np.zeros(len(calls), np.int64)
    has_due = due > 0
    lag_ms = pd.Series((calls["t_send_ns"].to_numpy() - due) / 1e6, index=calls.index)[has_due]
    if len(lag_ms):
        sub = calls[has_due]
        g = lag_ms.groupby([sub["backend"], sub["gc_mode"]], sort=False, observed=True)
        q = g.quantile([0.5, 0.99]).unstack()
        lag = pd.DataFrame({"client_lag_p50_ms": q[0.5], "client_lag_p99_ms": q[0.99],
                            "client_lag_max_ms": g.max()}).reset_index()
        out = out.merge(lag, on=GROUP_KEYS, how="left")
    for c in HICCUP_COLUMNS:
        if c not in out:
            out[c] = np.nan
    return out[HICCUP_COLUMNS]


def _union_overlap(starts: list[np.ndarray], ends: list[np.ndarray], cs: np.ndarray, ce: np.ndarray) -> np.ndarray:
    s = np.concatenate(starts) if starts else np.empty(0, np.int64)
    e = np.concatenate(ends) if ends else np.empty(0, np.int64)
    return overlap_ns(cs, ce, *merge_intervals(s, e))


def tail_breakdown(calls: pd.DataFrame, events: pd.DataFrame, q: float = TAIL_QUANTILE) -> pd.DataFrame:
    """Per (backend, gc mode): the calls at or above the q-th latency quantile, and the mean of their latency
    that overlaps server GC events, server hiccups that are not GC, control hiccups that are neither, and the
    rest. Nested unions (GC, GC + server hiccups, + control hiccups), so no time is counted twice."""
    if len(calls) == 0:
        return pd.DataFrame(columns=TAIL_COLUMNS)
    lat = calls["latency_ns"].to_numpy()
    keys = [calls["backend"], calls["gc_mode"]]
    threshold = calls["latency_ns"].groupby(keys, sort=False, observed=True).transform(lambda s: s.quantile(q))
    tail = calls[lat >= threshold.to_numpy()]
    ev = events if len(events) and "type" in events.columns else None
    parts = np.zeros((3, len(tail)), np.int64)  # overlap with: GC; GC+hiccup; GC+hiccup+machine
    if ev is not None:
        layers = [
            ev[(ev["source"] == "server") & ev["type"].isin(GC_EVENT_TYPES)],
            ev[(ev["source"] == "server") & (ev["type"] == HICCUP)],
            ev[(ev["source"] == "control") & (ev["type"] == HICCUP)],
        ]
        by_cell = [{k: g for k, g in layer.groupby(CELL_KEYS, sort=False, observed=True)} for layer in layers]
        for key, idx in tail.groupby(CELL_KEYS, sort=False, observed=True).indices.items():
            sub = tail.iloc[idx]
            cs, ce = sub["t_send_ns"].to_numpy(), sub["t_recv_ns"].to_numpy()
            starts: list[np.ndarray] = []
            ends: list[np.ndarray] = []
            for level, cells in enumerate(by_cell):
                g = cells.get(key)
                if g is not None:
                    starts.append(g["start_ns"].to_numpy(np.int64))
                    ends.append(g["end_ns"].to_numpy(np.int64))
                parts[level, idx] = _union_overlap(starts, ends, cs, ce)
    t = pd.DataFrame({
        "backend": tail["backend"].to_numpy(), "gc_mode": tail["gc_mode"].to_numpy(),
        "lat": tail["latency_ns"].to_numpy() / 1e6, "gc": parts[0] / 1e6,
        "hiccup": (parts[1] - parts[0]) / 1e6, "machine": (parts[2] - parts[1]) / 1e6,
        "other": (tail["latency_ns"].to_numpy() - parts[2]) / 1e6,
    })
    g = t.groupby(GROUP_KEYS, sort=False, observed=True)
    out = pd.DataFrame({
        "tail_calls": g.size(), "tail_threshold_ms": g["lat"].min(), "tail_mean_ms": g["lat"].mean(),
        "tail_gc_ms": g["gc"].mean(), "tail_hiccup_ms": g["hiccup"].mean(),
        "tail_machine_ms": g["machine"].mean(), "tail_other_ms": g["other"].mean(),
    }).reset_index()
    p50 = (calls["latency_ns"] / 1e6).groupby(keys, sort=False, observed=True).median().rename("latency_p50_ms")
    out = out.merge(p50.reset_index(), on=GROUP_KEYS, how="left")
    for part in ("gc", "hiccup", "machine", "other"):
        out[f"tail_{part}_share"] = out[f"tail_{part}_ms"] / out["tail_mean_ms"].where(out["tail_mean_ms"] > 0)
    order = calls[GROUP_KEYS].drop_duplicates()
    return order.merge(out, on=GROUP_KEYS, how="inner").reset_index(drop=True)[TAIL_COLUMNS]


def meter_overhead_table(calls: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, gc mode) measured both as `X` and `X+meter`: latency p50/p99/mean without and with the
    meter, and the relative change (with - without) / without."""
    names = set(calls["backend"].unique()) if len(calls) else set()
    pairs = sorted(n[: -len(METER_SUFFIX)] for n in names if n.endswith(METER_SUFFIX) and n[: -len(METER_SUFFIX)] in names)
    if not pairs:
        return pd.DataFrame(columns=OVERHEAD_COLUMNS)
    c = calls[calls["backend"].isin([*pairs, *(p + METER_SUFFIX for p in pairs)])]
    lat_ms = (c["latency_ns"] / 1e6).rename("lat")
    g = lat_ms.groupby([c["backend"], c["gc_mode"]], sort=False, observed=True)
    q = g.quantile([0.5, 0.99]).unstack()
    st = pd.DataFrame({"calls": g.size(), "p50": q[0.5], "p99": q[0.99], "mean": g.mean()}).reset_index()
    st["base"] = st["backend"].str.removesuffix(METER_SUFFIX)
    st["on"] = st["backend"].str.endswith(METER_SUFFIX)
    off = st[~st["on"]].drop(columns=["backend", "on"])
    on = st[st["on"]].drop(columns=["backend", "on"])
    m = off.merge(on, on=["base", "gc_mode"], suffixes=("_off", "_on"))
    out = pd.DataFrame({"backend": m["base"], "gc_mode": m["gc_mode"], "calls_off": m["calls_off"],
                        "calls_on": m["calls_on"]})
    for stat in ("p50", "p99", "mean"):
        out[f"{stat}_off_ms"] = m[f"{stat}_off"]
        out[f"{stat}_on_ms"] = m[f"{stat}_on"]
        out[f"{stat}_change"] = (m[f"{stat}_on"] - m[f"{stat}_off"]) / m[f"{stat}_off"].where(m[f"{stat}_off"] > 0)
    return out[OVERHEAD_COLUMNS].reset_index(drop=True)
