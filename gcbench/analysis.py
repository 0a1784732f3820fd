"""Attribution of GC pauses to calls and the per-(backend, gc mode) summary. Vectorised: no per-call loops."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

CLAIM_PAUSE_MS = 10.0  # the claim: "a 10 ms GC pause during a chain of 50 tool calls ..."
CELL_KEYS = ["backend", "gc_mode", "rep"]
GROUP_KEYS = ["backend", "gc_mode"]
LATENCY_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
OFF_MODE = "disabled"  # the GC-off cell of a backend, the counterfactual's first choice
OFF_MODES = {"java": "epsilon"}  # backends whose GC-off mode has another name (the JVM's no-op collector)
CONTROL_BACKEND = "rust"  # no GC at all: the reference for a runtime that has no off switch (Node)
NO_REFERENCE = "no GC-off reference in this run"
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 20240601
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


# ---------------------------------------------------------------------------------------------- formatting


def fmt_ms(v: float) -> str:
    """A duration in ms with about three significant digits ('-' for NaN)."""
    if v != v:
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 0.001:
        return f"{v:.3g}"
    return f"{v:.2g}"


def fmt_share(frac: float) -> str:
    """A fraction as a percentage with two significant digits ('-' for NaN)."""
    if frac != frac:
        return "-"
    pct = frac * 100
    if pct == 0:
        return "0%"
    return f"{pct:.0f}%" if abs(pct) >= 100 else f"{pct:.2g}%"


def pct_name(p: float) -> str:
    """50 -> 'p50', 99.9 -> 'p999' (column-name friendly)."""
    return "p" + f"{p:g}".replace(".", "")


# ---------------------------------------------------------------------------------------------- tables


def _group_order(df: pd.DataFrame) -> pd.DataFrame:
    """The (backend, gc mode) pairs in the order the run measured them."""
    return df[GROUP_KEYS].drop_duplicates().reset_index(drop=True)


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
    return _group_order(calls).merge(out, on=GROUP_KEYS, how="left")[cols]


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
    return _group_order(chains).merge(out, on=GROUP_KEYS, how="left")[cols]


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
    order = {k: i for i, k in enumerate(map(tuple, _group_order(ev).to_numpy().tolist()))}
    out["_o"] = [order[(b, m)] for b, m in zip(out["backend"], out["gc_mode"], strict=True)]
    return out.sort_values(["_o", "type", "kind", "generation"], kind="stable").reset_index(drop=True)[cols]


# ---------------------------------------------------------------------------------------------- bootstrap


def bootstrap_stat(x: np.ndarray, rng: np.random.Generator, n_boot: int = BOOTSTRAP_SAMPLES,
                   q: float | None = None, groups: np.ndarray | None = None) -> np.ndarray:
    """n_boot bootstrap replicates of mean(x) (q=None) or of the q-th percentile of x, vectorised in chunks.

    With `groups` (the repetition of each chain) holding two or more values, the bootstrap has two levels:
    repetitions are resampled, then chains within each drawn repetition, so that the spread between server
    processes counts too (each drawn repetition contributes as many chains as the largest one has).
    """
    x = np.asarray(x, np.float64)
    n = len(x)
    if n == 0:
        return np.full(n_boot, np.nan)
    out = np.empty(n_boot)
    levels = None
    if groups is not None:
        order = np.argsort(groups, kind="stable")
        x = x[order]
        _, start, size = np.unique(np.asarray(groups)[order], return_index=True, return_counts=True)
        levels = (start, size) if len(size) > 1 else None
    width = n if levels is None else len(levels[1]) * int(levels[1].max())
    chunk = max(1, min(n_boot, 4_000_000 // width))  # bounded memory: chunk x width draws at a time
    for lo in range(0, n_boot, chunk):
        hi = min(n_boot, lo + chunk)
        if levels is None:
            idx = rng.integers(0, n, size=(hi - lo, n))
        else:
            start, size = levels
            reps = rng.integers(0, len(size), size=(hi - lo, len(size)))
            within = rng.random((hi - lo, len(size), int(size.max())))
            idx = (start[reps][..., None] + (within * size[reps][..., None]).astype(np.int64)).reshape(hi - lo, -1)
        sample = x[idx]
        out[lo:hi] = sample.mean(axis=1) if q is None else np.percentile(sample, q, axis=1)
    return out


def cell_rng(seed: int, *parts: str) -> np.random.Generator:
    """A generator seeded by the run-independent name of what is resampled: results never depend on order."""
    return np.random.default_rng([seed, zlib.crc32("/".join(parts).encode())])


def reference_cell(backend: str, gc_mode: str, present: set[tuple[str, str]]) -> tuple[str, str] | None:
    """The GC-off cell that (backend, gc mode) is compared with, or None when the run has none.

    First choice: the same backend with GC disabled (`epsilon` for java, OFF_MODES). A runtime without an off
    switch (Node) is compared with the no-GC control backend (`rust`), preferring its `disabled`, then
    `default` cell.
    """
    off = OFF_MODES.get(backend.split("+")[0], OFF_MODE)  # java+meter too
    if (backend, off) in present:
        return (backend, off)
    for mode in (OFF_MODE, "default"):
        if (CONTROL_BACKEND, mode) in present:
            return (CONTROL_BACKEND, mode)
    control = sorted(m for b, m in present if b == CONTROL_BACKEND)
    return (CONTROL_BACKEND, control[0]) if control else None


def counterfactual(chains: pd.DataFrame, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Per (backend, gc mode): counterfactual GC cost = mean chain latency minus that of the GC-off reference.

    The 95% confidence interval resamples chains (and repetitions, when there are several; see bootstrap_stat),
    independently in both cells. The
    reference row itself gets cost 0; a row with no reference gets NaN and `gc_cost_ref` = "".
    """
    cols = ["backend", "gc_mode", "gc_cost_ref", "gc_cost_ms", "gc_cost_lo_ms", "gc_cost_hi_ms", "gc_cost_share"]
    if len(chains) == 0:
        return pd.DataFrame(columns=cols)
    chain_ms, reps = {}, {}
    for k, g in chains.groupby(GROUP_KEYS, sort=False, observed=True):
        chain_ms[k] = g["chain_ns"].to_numpy() / 1e6
        reps[k] = g["rep"].to_numpy()
    present = set(chain_ms)
    rows = []
    for key, x in chain_ms.items():
        ref = reference_cell(*key, present)
        row = {"backend": key[0], "gc_mode": key[1], "gc_cost_ref": "", "gc_cost_ms": np.nan,
               "gc_cost_lo_ms": np.nan, "gc_cost_hi_ms": np.nan, "gc_cost_share": np.nan}
        if ref is not None:
            row["gc_cost_ref"] = f"{ref[0]}/{ref[1]}"
            if ref == key:
                row.update(gc_cost_ms=0.0, gc_cost_lo_ms=0.0, gc_cost_hi_ms=0.0, gc_cost_share=0.0)
            else:
                r = chain_ms[ref]
                diff = (bootstrap_stat(x, cell_rng(seed, *key), n_boot, groups=reps[key])
                        - bootstrap_stat(r, cell_rng(seed, *key, "ref", *ref), n_boot, groups=reps[ref]))
                cost = float(x.mean() - r.mean())
                lo, hi = np.percentile(diff, [2.5, 97.5])
                row.update(gc_cost_ms=cost, gc_cost_lo_ms=float(lo), gc_cost_hi_ms=float(hi),
                           gc_cost_share=cost / float(r.mean()) if r.mean() > 0 else np.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------------------------- the claim


def claim_verdict(backend: str, gc_mode: str, calls_per_chain: int, chains: int, dead_mean_ms: float,
                  dead_p99_ms: float, dead_max_ms: float, pause_max_ms: float, hit_share: float) -> str:
    """One line that states the measured numbers next to the claim's."""
    claim_ms = CLAIM_PAUSE_MS * calls_per_chain
    name = f"{backend}/{gc_mode}"
    if chains == 0 or dead_mean_ms != dead_mean_ms:
        return f"{name}: no measured chains, nothing to check"
    head = f"{name}: {fmt_ms(dead_mean_ms)} ms GC dead time per {calls_per_chain}-call chain"
    claim = f"{fmt_share(dead_mean_ms / claim_ms)} of the claimed {fmt_ms(claim_ms)} ms"
    if dead_max_ms == 0:
        return f"{head}, {claim}; no call delayed by GC in {chains} chains"
    ratio = claim_ms / dead_mean_ms if dead_mean_ms > 0 else float("inf")
    judged = ("the measured total reaches the claim" if ratio <= 1 else
              f"the claim overstates the per-chain total {ratio:.0f}x" if ratio >= 10 else
              f"the claim overstates the per-chain total {ratio:.1f}x")
    return (f"{head} (p99 {fmt_ms(dead_p99_ms)}, max {fmt_ms(dead_max_ms)} ms), {claim}; "
            f"largest pause {fmt_ms(pause_max_ms)} ms vs 10 ms; {fmt_share(hit_share)} of chains hit; {judged}")


def claim_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The claim check: measured dead time per chain vs 10 ms x calls, largest pause vs 10 ms, and a verdict."""
    cols = ["backend", "gc_mode", "chains", "claim_ms", "dead_mean_ms", "dead_p50_ms", "dead_p99_ms",
            "dead_max_ms", "dead_mean_vs_claim", "dead_p99_vs_claim", "pause_max_ms", "pause_max_vs_claim",
            "chains_hit_share", "verdict"]
    return summary[cols].copy() if len(summary) else pd.DataFrame(columns=cols)


# ---------------------------------------------------------------------------------------------- summary


def summarize(calls: pd.DataFrame, events: pd.DataFrame, calls_per_chain: int,
              n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
              cells: list[dict] | None = None) -> pd.DataFrame:
    """One row per (backend, gc mode): latency, pauses, GC dead time per chain, counterfactual GC cost, and the
    claim (10 ms x calls per chain) next to what was measured, with a one-line verdict.

    `cells` (run.json's cells) adds the warnings that come from a server's stats record (clock steps, pauses
    that could not be placed)."""
    if len(calls) == 0:
        return pd.DataFrame()
    claim_ms = CLAIM_PAUSE_MS * calls_per_chain
    chains = chain_table(calls)
    out = latency_table(calls).merge(chain_stats(chains), on=GROUP_KEYS, how="left")

    ev = measured_server_events(events)
    ev_cols = {"gc_events": 0, "pause_max_ms": 0.0, "pause_total_ms": 0.0, "pause_p50_ms": np.nan,
               "pause_p99_ms": np.nan}
    if len(ev):
        pause_ms = ev["duration_ns"] / 1e6
        g = pause_ms.groupby([ev["backend"], ev["gc_mode"]], sort=False, observed=True)
        q = g.quantile([0.5, 0.99]).unstack()
        evs = pd.DataFrame({"gc_events": g.size(), "pause_max_ms": g.max(), "pause_total_ms": g.sum(),
                            "pause_p50_ms": q[0.5], "pause_p99_ms": q[0.99]}).reset_index()
        kinds = (ev.groupby([*GROUP_KEYS, "kind"], observed=True).size().rename("n").reset_index()
                 .sort_values([*GROUP_KEYS, "kind"]))
        by_kind = {k: dict(zip(g["kind"], g["n"].astype(int), strict=False)) for k, g in kinds.groupby(GROUP_KEYS, sort=False)}
        out = out.merge(evs, on=GROUP_KEYS, how="left")
    else:
        by_kind = {}
        for c in ev_cols:
            out[c] = np.nan
    for c, fill in ev_cols.items():
        if fill == fill:
            out[c] = out[c].fillna(fill)
    out["gc_events"] = out["gc_events"].astype(np.int64)
    out["gc_events_by_kind"] = [by_kind.get((b, m), {}) for b, m in zip(out["backend"], out["gc_mode"], strict=False)]

    out = out.merge(counterfactual(chains, n_boot, seed), on=GROUP_KEYS, how="left")
    out["claim_ms"] = claim_ms
    out["calls_per_chain"] = calls_per_chain
    out["dead_mean_vs_claim"] = out["dead_mean_ms"] / claim_ms
    out["dead_p99_vs_claim"] = out["dead_p99_ms"] / claim_ms
    out["dead_max_vs_claim"] = out["dead_max_ms"] / claim_ms
    out["pause_max_vs_claim"] = out["pause_max_ms"] / CLAIM_PAUSE_MS
    out["verdict"] = [
        claim_verdict(r.backend, r.gc_mode, calls_per_chain, int(r.chains), r.dead_mean_ms, r.dead_p99_ms,
                      r.dead_max_ms, r.pause_max_ms, r.chains_hit_share)
        for r in out.itertuples()
    ]
    out["warnings"] = instability_warnings(out, chains, ev, cells)
    return out


UNSTABLE_REP_SPREAD = 1.2  # fastest vs slowest repetition's mean chain latency
UNSTABLE_CHAIN_CV = 0.25  # std / mean of chain latency
FEW_FULL_COLLECTIONS = 5


def instability_warnings(summary: pd.DataFrame, chains: pd.DataFrame, events: pd.DataFrame,
                         cells: list[dict] | None = None) -> list[list[str]]:
    """pyperf-style warnings per (backend, gc mode): repetitions that disagree, chains too spread out to
    trust a mean, too few CPython full collections to say anything about them, and (from the cells' stats
    records) wall-clock steps and GC pauses that could not be placed."""
    out = []
    for r in summary.itertuples():
        ch = chains[(chains["backend"] == r.backend) & (chains["gc_mode"] == r.gc_mode)]
        chain_ms = ch["chain_ns"].to_numpy() / 1e6
        w = []
        per_rep = ch.groupby("rep", observed=True)["chain_ns"].mean()
        if len(per_rep) >= 2 and per_rep.min() > 0 and per_rep.max() / per_rep.min() > UNSTABLE_REP_SPREAD:
            w.append(f"repetitions disagree: mean chain latency x{per_rep.max() / per_rep.min():.2f} between the "
                     f"slowest and the fastest of {len(per_rep)}")
        if len(chain_ms) >= 2 and chain_ms.mean() > 0 and chain_ms.std() / chain_ms.mean() > UNSTABLE_CHAIN_CV:
            w.append(f"chain latency std is {chain_ms.std() / chain_ms.mean():.0%} of its mean (max "
                     f"{chain_ms.max() / chain_ms.mean():.1f}x the mean): use more chains or reps before trusting it")
        mine = events[(events["backend"] == r.backend) & (events["gc_mode"] == r.gc_mode)] if len(events) else events
        is_cpython = len(mine) and (mine["runtime"] == "python").any()
        if is_cpython:
            full = int((mine["generation"] == 2).sum())
            if full < FEW_FULL_COLLECTIONS:
                w.append(f"only {full} CPython full collection(s) seen: too few to say anything about their cost "
                         "(longer runs or a bigger live heap, see CPython's 25% pending rule)")
        w += stats_warnings([c.get("stats") or {} for c in cells or ()
                             if c.get("backend") == r.backend and c.get("gc_mode") == r.gc_mode
                             and c.get("status") == "ok"])
        out.append(w)
    return out


def stats_warnings(stats: list[dict]) -> list[str]:
    """Warnings from the stats records of one (backend, gc mode)'s cells."""
    w = []
    steps = sum(int(s.get("clock_steps") or 0) for s in stats)
    if steps:
        step_ms = max(int(s.get("clock_step_max_ns") or 0) for s in stats) / 1e6
        w.append(f"the wall clock stepped {steps} time(s) (largest {fmt_ms(step_ms)} ms): GC pause times converted "
                 "from it use the offset read nearest each pause, and one near a step may be off by up to the step")
    w += list(dict.fromkeys(str(x) for s in stats for x in (s.get("warnings") or ())))  # a backend's own
    phases = [s["stw_phases"] for s in stats if isinstance(s.get("stw_phases"), dict)]
    unplaced = sum(int(p.get("unplaced_no_line", 0)) + int(p.get("unplaced_mismatch", 0)) for p in phases)
    if unplaced:
        pause_ms = sum(int(p.get("unplaced_pause_ns", 0)) for p in phases) / 1e6
        w.append(f"{unplaced} GC cycle(s) could not be split into their stop-the-world phases (no matching "
                 f"gctrace line): their {fmt_ms(pause_ms)} ms of pause is left out of attribution and pause tables")
    return w


# ---------------------------------------------------------------------------------------------- histograms

HDR_LOWEST_NS = 1
HDR_HIGHEST_NS = 3_600 * 10**9  # one hour: no call latency exceeds this
HDR_SIGNIFICANT_DIGITS = 3


def latency_histogram(values_ns: np.ndarray):
    """An HdrHistogram (ns, 3 significant digits) of `values_ns`, filled in one vectorised step.

    Equivalent to record_value() per value (the bucket arithmetic is HdrHistogram's), without a Python loop.
    """
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(HDR_LOWEST_NS, HDR_HIGHEST_NS, HDR_SIGNIFICANT_DIGITS)
    v = np.clip(np.asarray(values_ns, np.int64), 0, HDR_HIGHEST_NS)
    if len(v) == 0:
        return h
    # bit length of (v | mask): frexp's exponent is exact below 2**53
    pow2ceiling = np.frexp((v | h.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = pow2ceiling - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    sub = v >> (bucket + h.unit_magnitude)
    idx = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub - h.sub_bucket_half_count
    counts = np.ctypeslib.as_array(h.counts)
    counts += np.bincount(idx, minlength=h.counts_len)[: h.counts_len].astype(counts.dtype)
    h.total_count += len(v)
    h.min_value = min(h.min_value, int(v.min()))
    h.max_value = max(h.max_value, int(v.max()))
    return h


def decode_histogram(encoded: str | bytes):
    """An HdrHistogram from its standard base64 (compressed V2) encoding."""
    from hdrh.histogram import HdrHistogram

    return HdrHistogram.decode(encoded.encode() if isinstance(encoded, str) else encoded)


def merge_histograms(encoded: list[str | bytes]):
    """One histogram holding every count of the encoded histograms (repetitions, runs)."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(HDR_LOWEST_NS, HDR_HIGHEST_NS, HDR_SIGNIFICANT_DIGITS)
    for e in encoded:
        h.add(decode_histogram(e))
    return h


def latency_histograms(calls: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (backend, gc mode, rep): call count and the latency histogram, base64-encoded (ns)."""
    rows = []
    for key, g in calls.groupby(CELL_KEYS, sort=False, observed=True):
        h = latency_histogram(g["latency_ns"].to_numpy())
        rows.append({"backend": key[0], "gc_mode": key[1], "rep": int(key[2]), "calls": len(g),
                     "unit": "ns", "hdr_histogram": h.encode().decode("ascii")})
    return pd.DataFrame(rows, columns=[*CELL_KEYS, "calls", "unit", "hdr_histogram"])
