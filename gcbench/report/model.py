"""Everything a report shows, computed once from a run folder; every exporter renders this one object."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gcbench.analysis import (
    BOOTSTRAP_SAMPLES,
    BOOTSTRAP_SEED,
    CLAIM_PAUSE_MS,
    chain_table,
    claim_table,
    gc_event_table,
    latency_histograms,
    latency_table,
    measured_server_events,
    summarize,
)
from gcbench.store import RunData


@dataclass
class Report:
    run: RunData
    calls_per_chain: int
    summary: pd.DataFrame  # one row per (backend, gc mode): see analysis.summarize
    chains: pd.DataFrame  # one row per chain: see analysis.chain_table
    latency: pd.DataFrame
    gc_events: pd.DataFrame  # per (backend, gc mode, type, kind, generation)
    claim: pd.DataFrame
    histograms: pd.DataFrame  # one encoded HdrHistogram per cell
    cache: dict = field(default_factory=dict, repr=False)  # rendered figures, shared by exporters

    @property
    def run_id(self) -> str:
        return str(self.run.meta.get("run_id", self.run.path.name))

    @property
    def scenario_name(self) -> str:
        return str(self.run.scenario.get("name", "?"))

    @property
    def claim_ms(self) -> float:
        return CLAIM_PAUSE_MS * self.calls_per_chain

    @property
    def groups(self) -> list[tuple[str, str]]:
        """(backend, gc mode) in the order the run measured them."""
        return list(zip(self.summary["backend"], self.summary["gc_mode"], strict=False)) if len(self.summary) else []

    @property
    def backends(self) -> list[str]:
        return list(dict.fromkeys(b for b, _ in self.groups))

    @property
    def gc_modes(self) -> list[str]:
        return list(dict.fromkeys(m for _, m in self.groups))

    def server_events(self) -> pd.DataFrame:
        return measured_server_events(self.run.gc_events)


def calls_per_chain_of(run: RunData) -> int:
    """The scenario's chain length; falls back to the most common measured chain length."""
    n = run.scenario.get("chain", {}).get("calls")
    if isinstance(n, int) and n > 0:
        return n
    if len(run.calls):
        sizes = run.calls.groupby(["backend", "gc_mode", "rep", "chain"], observed=True).size()
        return int(sizes.mode().iloc[0])
    return 50


def build_report(run: RunData, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> Report:
    calls = run.calls
    n = calls_per_chain_of(run)
    chains = chain_table(calls) if len(calls) else pd.DataFrame(
        columns=["backend", "gc_mode", "rep", "chain", "calls", "t_start_ns", "t_end_ns", "busy_ns", "dead_ns",
                 "gc_calls", "errors", "chain_ns"]).astype({"dead_ns": np.int64, "chain_ns": np.int64})
    summary = summarize(calls, run.gc_events, n, n_boot=n_boot, seed=seed, cells=run.meta.get("cells"))
    return Report(
        run=run,
        calls_per_chain=n,
        summary=summary,
        chains=chains,
        latency=latency_table(calls),
        gc_events=gc_event_table(run.gc_events, chains),
        claim=claim_table(summary),
        histograms=latency_histograms(calls),
    )
