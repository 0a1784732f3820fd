"""summarize(): one row per (backend, gc mode) joining every table of the analysis, and the harness's own GC."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gcbench.analysis.amplification import amplification_table
from gcbench.analysis.attribution import GROUP_KEYS, measured_server_events
from gcbench.analysis.bootstrap import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED
from gcbench.analysis.chains import chain_stats, chain_table, group_order, latency_table
from gcbench.analysis.claim import CLAIM_PAUSE_MS, call_loss_table, claim_verdict
from gcbench.analysis.counterfactual import counterfactual
from gcbench.analysis.harness_load import harness_load_table, harness_warnings
from gcbench.analysis.reference import backend_runtimes
from gcbench.analysis.warnings import HarnessGc, instability_warnings

HARNESS_COLUMNS = ["backend", "gc_mode", "client_gc_events", "client_tracked_allocations_max"]


def summarize(calls: pd.DataFrame, events: pd.DataFrame, calls_per_chain: int,
              n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
              cells: list[dict] | None = None) -> pd.DataFrame:
    """One row per (backend, gc mode): latency, pauses, GC dead time per chain and per call, counterfactual GC
    cost, the harness's own GC and load (analysis.harness_load), GC amplification (analysis.amplification), and
    the claim (10 ms x calls per chain) next to what was measured. `cells`
    (run.json's) name each backend's runtime, carry the harness's own counts and the servers' stats records
    (clock steps, pauses that could not be placed become warnings).

    Numbers in every column but three findings, typed, whose str() is the sentence the reports print:
    `verdict` (a ClaimVerdict), `warnings` (a list of CellWarning) and `gc_cost_note` (a Reference or a
    NoReference)."""
    if len(calls) == 0:
        return pd.DataFrame()
    claim_ms = CLAIM_PAUSE_MS * calls_per_chain
    chains = chain_table(calls)
    out = latency_table(calls).merge(chain_stats(chains), on=GROUP_KEYS, how="left")
    out = out.merge(call_loss_table(calls), on=GROUP_KEYS, how="left")

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

    out = out.merge(counterfactual(chains, n_boot, seed, events, backend_runtimes(events, cells)),
                    on=GROUP_KEYS, how="left")
    out = out.merge(harness_gc_table(events, cells, group_order(calls)), on=GROUP_KEYS, how="left")
    out = out.merge(harness_load_table(cells, group_order(calls)), on=GROUP_KEYS, how="left")
    out = out.merge(amplification_table(calls, events, cells), on=GROUP_KEYS, how="left")
    out["claim_ms"] = claim_ms
    out["calls_per_chain"] = calls_per_chain
    out["dead_mean_vs_claim"] = out["dead_mean_ms"] / claim_ms
    out["dead_p99_vs_claim"] = out["dead_p99_ms"] / claim_ms
    out["dead_max_vs_claim"] = out["dead_max_ms"] / claim_ms
    out["pause_max_vs_claim"] = out["pause_max_ms"] / CLAIM_PAUSE_MS
    out["verdict"] = [
        claim_verdict(r.backend, r.gc_mode, calls_per_chain, int(r.chains), r.dead_mean_ms, r.dead_p99_ms,
                      r.dead_max_ms, r.pause_max_ms, r.chains_hit_share, r.calls_lost_claim_share)
        for r in out.itertuples()
    ]
    out["warnings"] = [w + ([HarnessGc(int(r.client_gc_events))] if r.client_gc_events else [])
                       + harness_warnings(cells, r.backend, r.gc_mode)
                       for w, r in zip(instability_warnings(out, chains, ev, cells), out.itertuples(), strict=True)]
    return out


def harness_gc_table(events: pd.DataFrame, cells: list[dict] | None, groups: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, gc mode): the harness's own GC. `client_gc_events`: collections of the harness's process
    inside the measured windows (its GC is disabled while measuring, so only an explicit gc.collect() can
    cause one: a warning when non-zero). `client_tracked_allocations_max`: the largest growth of the harness's
    gc.get_count()[0] over one cell's window (net GC-tracked objects it allocated; NaN when not recorded):
    what its young generation would have had to collect with its GC on."""
    out = groups[GROUP_KEYS].copy()
    n = np.zeros(len(out), np.int64)
    if len(events) and "source" in events.columns:
        client = events[events["source"] == "client"]
        if "measured" in client.columns:
            client = client[client["measured"].astype(bool)]
        counts = client.groupby(GROUP_KEYS, observed=True).size().to_dict()
        n = np.array([counts.get((b, m), 0) for b, m in zip(out["backend"], out["gc_mode"], strict=True)], np.int64)
    out["client_gc_events"] = n
    alloc: dict[tuple[str, str], int] = {}
    for c in cells or []:
        v = c.get("client_tracked_allocations")
        if c.get("status") == "ok" and type(v) is int:
            k = (str(c.get("backend")), str(c.get("gc_mode")))
            alloc[k] = max(alloc.get(k, 0), v)
    out["client_tracked_allocations_max"] = [alloc.get((b, m), np.nan)
                                             for b, m in zip(out["backend"], out["gc_mode"], strict=True)]
    return out[HARNESS_COLUMNS]
