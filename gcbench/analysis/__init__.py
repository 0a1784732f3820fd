"""The analysis of a run: numbers and typed findings, no wording of its own beyond each finding's str().

    attribution     which calls each GC pause delayed (interval maths), the measured server GC events
    chains          per-chain table; per (backend, gc mode) call latency, chain latency, dead time, GC events
    bootstrap       seeded bootstrap replicates (two levels with repetitions)
    reference       the same-runtime reference of a cell, or why there is none (Reference, NoReference)
    counterfactual  GC cost against that reference, with bootstrap intervals
    claim           per-call GC loss and the claim check (ClaimVerdict)
    amplification   calls each pause delayed; dead time summed over chains / server GC time (Amplification)
    harness_load    the harness's send lag and CPU share per cell (HarnessLimited when they limited the load)
    warnings        pyperf-style warnings (CellWarning and its kinds)
    summary         summarize(): one row per (backend, gc mode) joining all of the above
    histograms      call latency as HdrHistograms

Every name importers used from the former single module is re-exported here; number formatting lives in
gcbench.format (fmt_ms and fmt_share are re-exported for the modules that still import them from here).
"""

from gcbench.analysis.attribution import (
    CELL_KEYS,
    GC_EVENT_TYPES,
    GROUP_KEYS,
    attribute,
    measured_server_events,
    merge_intervals,
    overlap_ns,
)
from gcbench.analysis.bootstrap import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, bootstrap_stat, cell_rng
from gcbench.analysis.chains import (
    LATENCY_PERCENTILES,
    chain_stats,
    chain_table,
    gc_event_table,
    group_order,
    latency_table,
    pct_name,
)
from gcbench.analysis.claim import (
    CALL_LOSS_COLUMNS,
    CLAIM_COLUMNS,
    CLAIM_FIT_SHARE,
    CLAIM_PAUSE_MS,
    ClaimOutcome,
    ClaimVerdict,
    call_loss_table,
    claim_frame,
    claim_verdict,
)
from gcbench.analysis.counterfactual import COUNTERFACTUAL_COLUMNS, counterfactual
from gcbench.analysis.histograms import (
    HDR_HIGHEST_NS,
    HDR_LOWEST_NS,
    HDR_SIGNIFICANT_DIGITS,
    decode_histogram,
    latency_histogram,
    latency_histograms,
    merge_histograms,
)
from gcbench.analysis.reference import (
    CONTROL_BACKEND,
    NO_GC_RUNTIMES,
    NO_OFF_SWITCH_RUNTIMES,
    NO_REFERENCE,
    OFF_MODE,
    OFF_MODES,
    NoReference,
    NoReferenceReason,
    Reference,
    RefKind,
    backend_runtimes,
    choose_reference,
    gc_quiet_cells,
    reference_cell,
    runtime_reference,
)
from gcbench.analysis.summary import HARNESS_COLUMNS, harness_gc_table, summarize
from gcbench.analysis.warnings import (
    FEW_FULL_COLLECTIONS,
    UNSTABLE_CHAIN_CV,
    UNSTABLE_REP_SPREAD,
    CellWarning,
    WarningKind,
    instability_warnings,
    stats_warnings,
)
from gcbench.format import fmt_ms, fmt_share

# The former name, for gcbench/report/model.py until the report rewrite imports claim_frame: report/tables.py
# has a claim_table of its own (a rendered Table), and two functions of one name were easy to confuse.
claim_table = claim_frame

__all__ = [
    "BOOTSTRAP_SAMPLES", "BOOTSTRAP_SEED", "CALL_LOSS_COLUMNS", "CELL_KEYS", "CLAIM_COLUMNS", "CLAIM_FIT_SHARE",
    "CLAIM_PAUSE_MS", "CONTROL_BACKEND", "COUNTERFACTUAL_COLUMNS", "FEW_FULL_COLLECTIONS", "GC_EVENT_TYPES",
    "GROUP_KEYS", "HARNESS_COLUMNS", "HDR_HIGHEST_NS", "HDR_LOWEST_NS", "HDR_SIGNIFICANT_DIGITS",
    "LATENCY_PERCENTILES", "NO_GC_RUNTIMES", "NO_OFF_SWITCH_RUNTIMES", "NO_REFERENCE", "OFF_MODE", "OFF_MODES",
    "UNSTABLE_CHAIN_CV", "UNSTABLE_REP_SPREAD", "CellWarning", "ClaimOutcome", "ClaimVerdict", "NoReference",
    "NoReferenceReason", "RefKind", "Reference", "WarningKind", "attribute", "backend_runtimes", "bootstrap_stat",
    "call_loss_table", "cell_rng", "chain_stats", "chain_table", "choose_reference", "claim_frame", "claim_table",
    "claim_verdict", "counterfactual", "decode_histogram", "fmt_ms", "fmt_share", "gc_event_table",
    "gc_quiet_cells", "group_order", "harness_gc_table", "instability_warnings", "latency_histogram",
    "latency_histograms", "latency_table", "measured_server_events", "merge_histograms", "merge_intervals",
    "overlap_ns", "pct_name", "reference_cell", "runtime_reference", "stats_warnings", "summarize",
]
