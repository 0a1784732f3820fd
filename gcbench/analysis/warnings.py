"""pyperf-style warnings per (backend, gc mode), as typed findings (hyperfine's src/output/warnings.rs: a kind
plus the numbers, and a str() that is the sentence the reports print)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import pandas as pd

from gcbench.format import fmt_ms
from gcbench.probes.pygc_kinds import duration_check_warnings, full_collection_mask, full_collection_warnings

UNSTABLE_REP_SPREAD = 1.2  # fastest vs slowest repetition's mean chain latency
UNSTABLE_CHAIN_CV = 0.25  # std / mean of chain latency
FEW_FULL_COLLECTIONS = 5


class WarningKind(Enum):
    REPS_DISAGREE = "reps-disagree"
    CHAINS_SPREAD = "chains-spread"
    FEW_FULL_COLLECTIONS = "few-full-collections"
    CLOCK_STEPPED = "clock-stepped"
    UNPLACED_PHASES = "unplaced-phases"
    HARNESS_GC = "harness-gc"
    PROBE_CLOCK_DISAGREES = "probe-clock-disagrees"
    BACKEND_NOTE = "backend-note"
    HARNESS_LIMITED = "harness-limited"  # gcbench.analysis.harness_load


class CellWarning:
    """Base of the warnings: `kind` says which, the subclass's fields hold its numbers."""

    kind: ClassVar[WarningKind]


@dataclass(frozen=True)
class RepsDisagree(CellWarning):
    kind: ClassVar[WarningKind] = WarningKind.REPS_DISAGREE
    spread: float  # slowest / fastest repetition's mean chain latency
    reps: int

    def __str__(self) -> str:
        return (f"repetitions disagree: mean chain latency x{self.spread:.2f} between the slowest and the fastest "
                f"of {self.reps}")


@dataclass(frozen=True)
class ChainsSpread(CellWarning):
    kind: ClassVar[WarningKind] = WarningKind.CHAINS_SPREAD
    cv: float  # std / mean of chain latency
    max_vs_mean: float  # the slowest chain / the mean

    def __str__(self) -> str:
        return (f"chain latency std is {self.cv:.0%} of its mean (max {self.max_vs_mean:.1f}x the mean): use more "
                "chains or reps before trusting it")


@dataclass(frozen=True)
class FewFullCollections(CellWarning):
    kind: ClassVar[WarningKind] = WarningKind.FEW_FULL_COLLECTIONS
    full: int  # CPython full collections seen (what counts as one depends on the interpreter: pygc_kinds)
    text: str = ""  # the interpreter-aware sentence (pygc_kinds.few_full_collections_warning)

    def __str__(self) -> str:
        return self.text or (f"only {self.full} CPython full collection(s) seen: too few to say anything about "
                             "their cost (longer runs or a bigger live heap, see CPython's 25% pending rule)")


@dataclass(frozen=True)
class BackendNote(CellWarning):
    kind: ClassVar[WarningKind] = WarningKind.BACKEND_NOTE
    text: str  # what a backend wrote into its stats record's "warnings" (e.g. a user's Go server read from outside)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ProbeClockDisagrees(CellWarning):
    kind: ClassVar[WarningKind] = WarningKind.PROBE_CLOCK_DISAGREES
    text: str  # pygc_kinds.duration_check_warnings: CPython 3.15's own "duration" against the probe's interval

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ClockStepped(CellWarning):
    kind: ClassVar[WarningKind] = WarningKind.CLOCK_STEPPED
    steps: int
    step_max_ms: float

    def __str__(self) -> str:
        return (f"the wall clock stepped {self.steps} time(s) (largest {fmt_ms(self.step_max_ms)} ms): GC pause "
                "times converted from it use the offset read nearest each pause, and one near a step may be off by "
                "up to the step")


@dataclass(frozen=True)
class UnplacedPhases(CellWarning):
    kind: ClassVar[WarningKind] = WarningKind.UNPLACED_PHASES
    cycles: int  # GC cycles whose stop-the-world phases could not be placed
    pause_ms: float  # their pause time, left out

    def __str__(self) -> str:
        return (f"{self.cycles} GC cycle(s) could not be split into their stop-the-world phases (no matching "
                f"gctrace line): their {fmt_ms(self.pause_ms)} ms of pause is left out of attribution and pause "
                "tables")


@dataclass(frozen=True)
class HarnessGc(CellWarning):
    kind: ClassVar[WarningKind] = WarningKind.HARNESS_GC
    collections: int  # of the harness's own GC inside the measured window

    def __str__(self) -> str:
        return (f"{self.collections} collection(s) of the harness's own GC inside the measured window: its pauses "
                "are inside these call latencies")


def instability_warnings(summary: pd.DataFrame, chains: pd.DataFrame, events: pd.DataFrame,
                         cells: list[dict] | None = None) -> list[list[CellWarning]]:
    """pyperf-style warnings per (backend, gc mode): repetitions that disagree, chains too spread out to
    trust a mean, too few CPython full collections to say anything about them, and (from the cells' stats
    records) wall-clock steps and GC pauses that could not be placed."""
    out = []
    for r in summary.itertuples():
        ch = chains[(chains["backend"] == r.backend) & (chains["gc_mode"] == r.gc_mode)]
        chain_ms = ch["chain_ns"].to_numpy() / 1e6
        w: list[CellWarning] = []
        per_rep = ch.groupby("rep", observed=True)["chain_ns"].mean()
        if len(per_rep) >= 2 and per_rep.min() > 0 and per_rep.max() / per_rep.min() > UNSTABLE_REP_SPREAD:
            w.append(RepsDisagree(float(per_rep.max() / per_rep.min()), len(per_rep)))
        if len(chain_ms) >= 2 and chain_ms.mean() > 0 and chain_ms.std() / chain_ms.mean() > UNSTABLE_CHAIN_CV:
            w.append(ChainsSpread(float(chain_ms.std() / chain_ms.mean()), float(chain_ms.max() / chain_ms.mean())))
        mine = events[(events["backend"] == r.backend) & (events["gc_mode"] == r.gc_mode)] if len(events) else events
        is_cpython = len(mine) and (mine["runtime"] == "python").any()
        if is_cpython:  # what a full collection is depends on the interpreter (incremental, free-threaded)
            full = int(sum(full_collection_mask(mine, cells)))
            w += [FewFullCollections(full, text)
                  for text in full_collection_warnings(mine, cells, r.backend, r.gc_mode, FEW_FULL_COLLECTIONS)]
        w += stats_warnings([c.get("stats") or {} for c in cells or ()
                             if c.get("backend") == r.backend and c.get("gc_mode") == r.gc_mode
                             and c.get("status") == "ok"])
        out.append(w)
    return out


def stats_warnings(stats: list[dict]) -> list[CellWarning]:
    """Warnings from the stats records of one (backend, gc mode)'s cells."""
    w: list[CellWarning] = [ProbeClockDisagrees(text) for text in duration_check_warnings(stats)]
    w += [BackendNote(x) for x in dict.fromkeys(str(x) for s in stats for x in (s.get("warnings") or ()))]
    steps = sum(int(s.get("clock_steps") or 0) for s in stats)
    if steps:
        w.append(ClockStepped(steps, max(int(s.get("clock_step_max_ns") or 0) for s in stats) / 1e6))
    phases = [s["stw_phases"] for s in stats if isinstance(s.get("stw_phases"), dict)]
    unplaced = sum(int(p.get("unplaced_no_line", 0)) + int(p.get("unplaced_mismatch", 0)) for p in phases)
    if unplaced:
        w.append(UnplacedPhases(unplaced, sum(int(p.get("unplaced_pause_ns", 0)) for p in phases) / 1e6))
    return w
