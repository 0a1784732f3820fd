"""Counterfactual GC cost: mean chain latency minus that of a same-runtime reference, with bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gcbench.analysis.attribution import GROUP_KEYS
from gcbench.analysis.bootstrap import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, bootstrap_stat, cell_rng
from gcbench.analysis.reference import (
    Reference,
    backend_runtimes,
    cell_name,
    choose_reference,
    gc_quiet_cells,
)

COUNTERFACTUAL_COLUMNS = [
    "backend", "gc_mode", "gc_cost_ref", "gc_cost_ref_kind", "gc_cost_ms", "gc_cost_lo_ms", "gc_cost_hi_ms",
    "gc_cost_share", "gc_cost_note", "runtime_diff_ref", "runtime_diff_ms", "runtime_diff_lo_ms",
    "runtime_diff_hi_ms", "runtime_diff_share"]


def counterfactual(chains: pd.DataFrame, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                   events: pd.DataFrame | None = None, runtimes: dict[str, str] | None = None) -> pd.DataFrame:
    """Per (backend, gc mode): counterfactual GC cost = mean chain latency minus that of a same-runtime reference.

    The reference, in order of preference: the same backend with GC `disabled` (kind gc-off); the backend itself
    when its runtime has no GC (no-gc, the control); a cell of the same backend whose measured window had zero
    server GC events, verified from `events` (gc-quiet, e.g. Node with a young generation big enough that no
    scavenge ran). Without one there is no GC cost (NaN, `gc_cost_ref` ""), and `gc_cost_note` (a Reference or
    NoReference, see reference.py) says why. A runtime without an off switch (Node) and without a GC-quiet cell
    gets the runtime difference against the no-GC control instead, in the runtime_diff_* columns: that is the
    whole difference between two servers, never GC cost. The reference row itself gets cost 0.

    The 95% confidence intervals resample chains (and repetitions, when there are several; see
    bootstrap_stat), independently in both cells.
    """
    if len(chains) == 0:
        return pd.DataFrame(columns=COUNTERFACTUAL_COLUMNS)
    runtimes = runtimes if runtimes is not None else backend_runtimes(events)
    chain_ms, reps = {}, {}
    for k, g in chains.groupby(GROUP_KEYS, sort=False, observed=True):
        chain_ms[k] = g["chain_ns"].to_numpy() / 1e6
        reps[k] = g["rep"].to_numpy()
    cells = list(chain_ms)
    quiet = gc_quiet_cells(events, cells)
    n_reps = {k: len(set(r)) for k, r in reps.items()}

    def diff(key, ref) -> dict:
        x, r = chain_ms[key], chain_ms[ref]
        d = (bootstrap_stat(x, cell_rng(seed, *key), n_boot, groups=reps[key])
             - bootstrap_stat(r, cell_rng(seed, *key, "ref", *ref), n_boot, groups=reps[ref]))
        lo, hi = np.percentile(d, [2.5, 97.5])
        cost = float(x.mean() - r.mean())
        return {"ms": cost, "lo_ms": float(lo), "hi_ms": float(hi),
                "share": cost / float(r.mean()) if r.mean() > 0 else np.nan}

    rows = []
    for key in cells:
        row = {c: np.nan for c in COUNTERFACTUAL_COLUMNS}
        found = choose_reference(key, cells, runtimes.get(key[0], ""), quiet, n_reps)
        row.update(backend=key[0], gc_mode=key[1], gc_cost_ref="", gc_cost_ref_kind="", runtime_diff_ref="",
                   gc_cost_note=found)
        if isinstance(found, Reference):
            row.update(gc_cost_ref=found.label, gc_cost_ref_kind=found.kind.value)
            if found.is_self:
                row.update(gc_cost_ms=0.0, gc_cost_lo_ms=0.0, gc_cost_hi_ms=0.0, gc_cost_share=0.0)
            else:
                row.update({f"gc_cost_{k}": v for k, v in diff(key, found.ref).items()})
        elif found.runtime_ref is not None:
            row["runtime_diff_ref"] = cell_name(found.runtime_ref)
            row.update({f"runtime_diff_{k}": v for k, v in diff(key, found.runtime_ref).items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=COUNTERFACTUAL_COLUMNS)
