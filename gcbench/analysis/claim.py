"""The claim ("a 10 ms GC pause during a chain of 50 tool calls ...") next to what was measured: what GC cost
each call, and per (backend, gc mode) a typed verdict whose str() is the one line the reports print."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

from gcbench.analysis.attribution import GROUP_KEYS
from gcbench.analysis.chains import group_order
from gcbench.format import fmt_ms, fmt_share

CLAIM_PAUSE_MS = 10.0  # the claim: "a 10 ms GC pause during a chain of 50 tool calls ..."
CLAIM_FIT_SHARE = 0.99  # the claim's arithmetic fits a cell when (nearly) every call lost >= 10 ms to GC
CALL_LOSS_COLUMNS = ["backend", "gc_mode", "calls_delayed_share", "calls_lost_claim", "calls_lost_claim_share",
                     "loss_per_delayed_call_mean_ms", "loss_per_delayed_call_p50_ms", "loss_per_delayed_call_p90_ms",
                     "loss_per_delayed_call_p99_ms", "loss_per_delayed_call_max_ms", "claim_fits"]
CLAIM_COLUMNS = ["backend", "gc_mode", "chains", "claim_ms", "dead_mean_ms", "dead_p50_ms", "dead_p99_ms",
                 "dead_max_ms", "dead_mean_vs_claim", "dead_p99_vs_claim", "pause_max_ms", "pause_max_vs_claim",
                 "chains_hit_share", "calls_lost_claim_share", "claim_fits", "verdict"]


def call_loss_table(calls: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, gc mode): what GC cost each call. The share of calls overlapped by any GC event at all, the
    share that lost at least the claim's 10 ms, and the distribution of the loss over the delayed calls (a mean
    alone mixes a thousand 20 us young collections with a few 200 ms full ones). `claim_fits`: at least
    CLAIM_FIT_SHARE of the calls lost >= 10 ms, which is what "a 10 ms pause on every call" needs."""
    if len(calls) == 0:
        return pd.DataFrame(columns=CALL_LOSS_COLUMNS)
    loss_ms = calls["gc_overlap_ns"].to_numpy() / 1e6
    c = pd.DataFrame({"backend": calls["backend"], "gc_mode": calls["gc_mode"], "loss_ms": loss_ms,
                      "delayed": loss_ms > 0, "lost_claim": loss_ms >= CLAIM_PAUSE_MS})
    g = c.groupby(GROUP_KEYS, sort=False, observed=True)
    out = pd.DataFrame({"calls_delayed_share": g["delayed"].mean(),
                        "calls_lost_claim": g["lost_claim"].sum().astype(np.int64),
                        "calls_lost_claim_share": g["lost_claim"].mean()})
    d = c[c["delayed"]].groupby(GROUP_KEYS, sort=False, observed=True)["loss_ms"]
    if len(c[c["delayed"]]):
        q = d.quantile([0.5, 0.9, 0.99]).unstack()
        out = out.join(pd.DataFrame({"loss_per_delayed_call_mean_ms": d.mean(), "loss_per_delayed_call_p50_ms": q[0.5],
                                     "loss_per_delayed_call_p90_ms": q[0.9], "loss_per_delayed_call_p99_ms": q[0.99],
                                     "loss_per_delayed_call_max_ms": d.max()}))
    for col in CALL_LOSS_COLUMNS[5:10]:
        if col not in out:
            out[col] = np.nan
    out["claim_fits"] = out["calls_lost_claim_share"] >= CLAIM_FIT_SHARE
    out = out.reset_index()
    return group_order(calls).merge(out, on=GROUP_KEYS, how="left")[CALL_LOSS_COLUMNS]


class ClaimOutcome(Enum):
    NO_CHAINS = "no-chains"  # nothing measured: nothing to check
    NO_GC_DELAY = "no-gc-delay"  # no call of any chain overlapped a GC pause
    REACHES = "reaches"  # the mean dead time per chain is at least the claim's total
    OVERSTATES = "overstates"  # the claim's total is larger than the mean measured dead time per chain


@dataclass(frozen=True)
class ClaimVerdict:
    """The claim check of one (backend, gc mode): the measured numbers beside the claim's (the summary's
    `verdict`). str() is the one line the reports print."""

    backend: str
    gc_mode: str
    calls_per_chain: int
    chains: int
    dead_mean_ms: float
    dead_p99_ms: float
    dead_max_ms: float
    pause_max_ms: float
    hit_share: float
    lost_claim_share: float = float("nan")  # NaN: not known (no per-call loss given)

    @property
    def claim_ms(self) -> float:
        return CLAIM_PAUSE_MS * self.calls_per_chain

    @property
    def overstated_x(self) -> float:
        """The claim's total over the mean measured dead time per chain (inf when none was measured)."""
        return self.claim_ms / self.dead_mean_ms if self.dead_mean_ms > 0 else float("inf")

    @property
    def outcome(self) -> ClaimOutcome:
        if self.chains == 0 or self.dead_mean_ms != self.dead_mean_ms:
            return ClaimOutcome.NO_CHAINS
        if self.dead_max_ms == 0:
            return ClaimOutcome.NO_GC_DELAY
        return ClaimOutcome.REACHES if self.overstated_x <= 1 else ClaimOutcome.OVERSTATES

    def __str__(self) -> str:
        name = f"{self.backend}/{self.gc_mode}"
        outcome = self.outcome
        if outcome is ClaimOutcome.NO_CHAINS:
            return f"{name}: no measured chains, nothing to check"
        head = f"{name}: {fmt_ms(self.dead_mean_ms)} ms GC dead time per {self.calls_per_chain}-call chain"
        claim = f"{fmt_share(self.dead_mean_ms / self.claim_ms)} of the claimed {fmt_ms(self.claim_ms)} ms"
        if outcome is ClaimOutcome.NO_GC_DELAY:
            return f"{head}, {claim}; no call delayed by GC in {self.chains} chains"
        ratio = self.overstated_x
        judged = ("the measured total reaches the claim" if outcome is ClaimOutcome.REACHES else
                  f"the claim overstates the per-chain total {ratio:.0f}x" if ratio >= 10 else
                  f"the claim overstates the per-chain total {ratio:.1f}x")
        lost = self.lost_claim_share
        per_call = (f"; {fmt_share(lost)} of calls lost >= {CLAIM_PAUSE_MS:g} ms to GC (the claim: every call)"
                    if lost == lost else "")
        return (f"{head} (p99 {fmt_ms(self.dead_p99_ms)}, max {fmt_ms(self.dead_max_ms)} ms), {claim}; "
                f"largest pause {fmt_ms(self.pause_max_ms)} ms vs 10 ms; {fmt_share(self.hit_share)} of chains "
                f"hit{per_call}; {judged}")


def claim_verdict(backend: str, gc_mode: str, calls_per_chain: int, chains: int, dead_mean_ms: float,
                  dead_p99_ms: float, dead_max_ms: float, pause_max_ms: float, hit_share: float,
                  lost_claim_share: float = float("nan")) -> ClaimVerdict:
    """The measured numbers next to the claim's (str() of it: one line)."""
    return ClaimVerdict(backend, gc_mode, int(calls_per_chain), int(chains), float(dead_mean_ms), float(dead_p99_ms),
                        float(dead_max_ms), float(pause_max_ms), float(hit_share), float(lost_claim_share))


def claim_frame(summary: pd.DataFrame) -> pd.DataFrame:
    """The claim check as a DataFrame: measured dead time per chain vs 10 ms x calls, largest pause vs 10 ms, the
    share of calls that lost >= 10 ms, and the verdict (a ClaimVerdict)."""
    return summary[CLAIM_COLUMNS].copy() if len(summary) else pd.DataFrame(columns=CLAIM_COLUMNS)
