"""Compare two runs cell by cell (same backend and GC mode) for CI: is NEW slower than BASE, beyond a threshold
and with statistical significance?

Each metric is a statistic of the chains of one cell. Significance comes from a bootstrap: the chains of each
run are resampled (seeded, vectorised), the change NEW - BASE is computed per replicate, and a row is
"slower" only when the change exceeds the threshold and its 95% interval lies entirely above zero ("faster"
mirrors it). Absolute times drift between machines; `ratio=True` compares, within each run, the mode against
the same run's GC-off reference instead, so two runs from different machines can still be compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from gcbench.analysis import (
    BOOTSTRAP_SAMPLES,
    BOOTSTRAP_SEED,
    GROUP_KEYS,
    NO_REFERENCE,
    bootstrap_stat,
    cell_rng,
    chain_table,
    reference_cell,
)
from gcbench.errors import GcbenchError
from gcbench.format import fmt_ms
from gcbench.metadata import machine_differences
from gcbench.report.document import Bullets, Document, Paragraph, Section, Table
from gcbench.store import RunData

EXIT_NO_CHANGE = 0
EXIT_REGRESSION = 1

# name -> what it measures. "rel": change in % of the BASE value; "share": change in % of the BASE chain time
METRICS: dict[str, str] = {
    "chain-p50": "median chain latency",
    "chain-p99": "99th-percentile chain latency",
    "dead-time": "mean GC dead time per chain",
    "gc-cost": "counterfactual GC cost per chain (mean chain latency minus the GC-off reference)",
}
DEFAULT_THRESHOLD_PCT = 10.0
SLOWER, FASTER, SAME = "slower", "faster", "no change"


@dataclass
class Row:
    backend: str
    gc_mode: str
    metric: str
    unit: str  # ms | ratio | share
    base: float | None = None
    new: float | None = None
    change_pct: float | None = None  # see METRICS: relative, or in % of chain time for the share-like metrics
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    verdict: str = SAME
    note: str = ""

    @property
    def cell(self) -> str:
        return f"{self.backend}/{self.gc_mode}"


@dataclass
class Comparison:
    base_id: str
    new_id: str
    ratio: bool
    threshold_pct: float
    metrics: list[str]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == SLOWER]

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.regressions else EXIT_NO_CHANGE

    def to_dict(self) -> dict:
        return {"base": self.base_id, "new": self.new_id, "ratio": self.ratio, "threshold_pct": self.threshold_pct,
                "metrics": self.metrics, "exit_code": self.exit_code,
                "regressions": [r.cell + " " + r.metric for r in self.regressions], "notes": self.notes,
                "rows": [asdict(r) | {"cell": r.cell} for r in self.rows]}


# ---------------------------------------------------------------------------------------------- checks


def parse_metrics(values: tuple[str, ...] | list[str] | None) -> list[str]:
    names = [n.strip() for v in (values or ()) for n in v.split(",") if n.strip()] or list(METRICS)
    bad = [n for n in names if n not in METRICS]
    if bad:
        raise GcbenchError(f"unknown --metric {bad[0]!r}; valid metrics: {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def _first_difference(a, b, path: str) -> tuple[str, object, object] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(dict.fromkeys([*a, *b])):
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}")
            if d:
                return d
        return None
    return None if a == b else (path, a, b)


def check_comparable(base: RunData, new: RunData, ratio: bool, force: bool = False) -> list[str]:
    """Raise GcbenchError naming the differing field when the runs cannot be compared; else notes.

    Absolute times from different machines are refused unless `ratio` (each run against its own GC-off
    reference) or `force` (the user takes the machine difference into account) is given."""
    d = _first_difference(base.meta.get("scenario", {}), new.meta.get("scenario", {}), "scenario")
    if d:
        raise GcbenchError(f"runs cannot be compared: {d[0]} differs (BASE {d[1]!r}, NEW {d[2]!r})")
    benv, nenv = base.meta.get("environment", {}), new.meta.get("environment", {})
    notes = []
    for f, b, n in machine_differences(benv, nenv):
        if not (ratio or force):
            raise GcbenchError(
                f"runs cannot be compared: environment.{f} differs (BASE {b!r}, NEW {n!r}); "
                "absolute times from different machines are not comparable: use --ratio to compare each mode "
                "against the GC-off reference of its own run, or --force to compare them anyway")
        how = "compared as ratios" if ratio else "compared anyway (--force): absolute times may differ by machine"
        notes.append(f"environment.{f} differs (BASE {b!r}, NEW {n!r}): {how}")
    bv, nv = benv.get("backend_versions", {}) or {}, nenv.get("backend_versions", {}) or {}
    for b in sorted(set(bv) & set(nv)):
        if bv[b] != nv[b]:
            notes.append(f"backend {b} version differs: BASE {bv[b]}, NEW {nv[b]}")
    for label, run in (("BASE", base), ("NEW", new)):
        if run.meta.get("status") != "complete":
            notes.append(f"{label} run status is {run.meta.get('status')!r}")
    return notes


# ---------------------------------------------------------------------------------------------- statistics


@dataclass
class _Cells:
    """Per (backend, gc mode) of one run: chain latency and dead time per chain (ms), and the references."""

    chain_ms: dict[tuple[str, str], np.ndarray]
    dead_ms: dict[tuple[str, str], np.ndarray]
    reps: dict[tuple[str, str], np.ndarray]  # the repetition of each chain: the bootstrap resamples both levels
    runtimes: dict[str, str] = field(default_factory=dict)  # backend -> runtime (a user's JVM: java)

    @classmethod
    def of(cls, run: RunData) -> _Cells:
        ch = chain_table(run.calls) if len(run.calls) else pd.DataFrame(
            columns=[*GROUP_KEYS, "rep", "chain_ns", "dead_ns"])
        chain_ms, dead_ms, reps = {}, {}, {}
        for key, g in ch.groupby(GROUP_KEYS, sort=False, observed=True):
            chain_ms[key] = g["chain_ns"].to_numpy() / 1e6
            dead_ms[key] = g["dead_ns"].to_numpy() / 1e6
            reps[key] = g["rep"].to_numpy()
        runtimes = {c["backend"]: c.get("runtime", "") for c in run.meta.get("cells", [])}
        return cls(chain_ms, dead_ms, reps, runtimes)

    def reference(self, key: tuple[str, str]) -> tuple[str, str] | None:
        return reference_cell(*key, set(self.chain_ms), self.runtimes.get(key[0], ""))


def _stat(x: np.ndarray, metric: str) -> float:
    if metric == "chain-p50":
        return float(np.percentile(x, 50))
    if metric == "chain-p99":
        return float(np.percentile(x, 99))
    return float(np.mean(x))


def _boot(x: np.ndarray, reps: np.ndarray, metric: str, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    q = {"chain-p50": 50.0, "chain-p99": 99.0}.get(metric)
    return bootstrap_stat(x, rng, n_boot, q=q, groups=reps)


def _value_and_boot(cells: _Cells, key, metric: str, ratio: bool, role: str, n_boot: int, seed: int):
    """(value, bootstrap replicates, scale for the change in %, unit) of one metric in one run's cell."""
    x, reps = cells.chain_ms[key], cells.reps[key]
    ref = cells.reference(key)
    rng = cell_rng(seed, role, *key, metric)
    rng_ref = cell_rng(seed, role, *key, metric, "ref")
    if metric in ("chain-p50", "chain-p99"):
        v, b = _stat(x, metric), _boot(x, reps, metric, rng, n_boot)
        if not ratio:
            return v, b, "rel", "ms"
        r = cells.chain_ms[ref]
        return v / _stat(r, metric), b / _boot(r, cells.reps[ref], metric, rng_ref, n_boot), "rel", "ratio"
    if metric == "dead-time":
        d = cells.dead_ms[key]
        v, b = float(d.mean()), _boot(d, reps, metric, rng, n_boot)
        if not ratio:
            return v, b, "chain", "ms"
        r_mean = float(cells.chain_ms[ref].mean())
        return v / r_mean, b / _boot(cells.chain_ms[ref], cells.reps[ref], metric, rng_ref, n_boot), "pp", "share"
    # gc-cost
    r = cells.chain_ms[ref]
    bx, br = _boot(x, reps, metric, rng, n_boot), _boot(r, cells.reps[ref], metric, rng_ref, n_boot)
    if not ratio:
        return float(x.mean() - r.mean()), bx - br, "ref", "ms"
    return float(x.mean() / r.mean() - 1), bx / br - 1, "pp", "share"


def compare_runs(base: RunData, new: RunData, metrics: list[str] | None = None,
                 threshold_pct: float = DEFAULT_THRESHOLD_PCT, ratio: bool = False,
                 n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED, force: bool = False) -> Comparison:
    if not threshold_pct >= 0:
        raise GcbenchError(f"--threshold must be a percentage >= 0, got {threshold_pct}")
    metrics = parse_metrics(metrics)
    notes = check_comparable(base, new, ratio, force)
    bc, nc = _Cells.of(base), _Cells.of(new)
    common = [k for k in bc.chain_ms if k in nc.chain_ms]
    if not common:
        raise GcbenchError("runs cannot be compared: no (backend, gc mode) cell was measured in both "
                           f"(BASE: {_names(bc.chain_ms)}; NEW: {_names(nc.chain_ms)})")
    for label, cells, other in (("BASE", bc, nc), ("NEW", nc, bc)):
        only = [k for k in cells.chain_ms if k not in other.chain_ms]
        if only:
            notes.append(f"only in {label}, not compared: {_names(only)}")
    out = Comparison(base.meta.get("run_id", str(base.path)), new.meta.get("run_id", str(new.path)), ratio,
                     threshold_pct, metrics, notes=notes)
    for key in common:
        for metric in metrics:
            out.rows.append(_compare_cell(bc, nc, key, metric, ratio, threshold_pct, n_boot, seed))
    return out


def _names(keys) -> str:
    return ", ".join(f"{b}/{m}" for b, m in keys) or "none"


def _compare_cell(bc: _Cells, nc: _Cells, key, metric, ratio, threshold_pct, n_boot, seed) -> Row:
    row = Row(key[0], key[1], metric, "ratio" if ratio else "ms")
    needs_ref = ratio or metric == "gc-cost"
    if needs_ref:
        rb, rn = bc.reference(key), nc.reference(key)
        if rb is None or rn is None:
            row.note = str(NO_REFERENCE)  # Row is plain data: JSON as it stands
            return row
        if rb == key:
            row.note = "is the GC-off reference"
            return row
        if rb != rn:
            row.note = f"references differ (BASE {rb[0]}/{rb[1]}, NEW {rn[0]}/{rn[1]})"
            return row
    vb, bb, scale_kind, row.unit = _value_and_boot(bc, key, metric, ratio, "base", n_boot, seed)
    vn, bn, _, _ = _value_and_boot(nc, key, metric, ratio, "new", n_boot, seed)
    if scale_kind == "rel":
        scale, row.note = vb, ""
    elif scale_kind == "chain":
        scale, row.note = float(bc.chain_ms[key].mean()), "change in % of BASE mean chain latency"
    elif scale_kind == "ref":
        scale, row.note = float(bc.chain_ms[bc.reference(key)].mean()), "change in % of BASE GC-off chain latency"
    else:  # values are already fractions of chain time: change in percentage points
        scale, row.note = 1.0, "change in percentage points of GC-off chain latency"
    row.base, row.new = vb, vn
    if not scale > 0:
        row.note = "BASE value is 0: no relative change"
        return row
    change = (bn - bb) / scale * 100
    row.change_pct = (vn - vb) / scale * 100
    lo, hi = np.nanpercentile(change, [2.5, 97.5])
    row.ci_low_pct, row.ci_high_pct = float(lo), float(hi)
    if row.change_pct > threshold_pct and lo > 0:
        row.verdict = SLOWER
    elif row.change_pct < -threshold_pct and hi < 0:
        row.verdict = FASTER
    return row


# ---------------------------------------------------------------------------------------------- the document


def _value(v: float | None, unit: str) -> str:
    if v is None or v != v:
        return "-"
    if unit == "ratio":
        return f"x{v:.3g}"
    if unit == "share":
        return f"{v * 100:+.3g}%" if v else "0%"
    return f"{fmt_ms(v)} ms"


def _pct(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:+.1f}%"


def _table_rows(c: Comparison) -> list[list[str]]:
    rows = []
    for r in c.rows:
        ci = "-" if r.ci_low_pct is None else f"{_pct(r.ci_low_pct)} .. {_pct(r.ci_high_pct)}"
        mark = r.verdict if r.change_pct is not None else f"not compared: {r.note}"
        rows.append([r.cell, r.metric, _value(r.base, r.unit), _value(r.new, r.unit), _pct(r.change_pct), ci, mark])
    return rows


HEADERS = ["cell", "metric", "base", "new", "change", "95% CI", "verdict"]


def _headline(c: Comparison) -> str:
    if c.regressions:
        return "REGRESSION: " + "; ".join(
            f"{r.cell} {r.metric} {_pct(r.change_pct)} (95% CI {_pct(r.ci_low_pct)} .. {_pct(r.ci_high_pct)})"
            for r in c.regressions)
    faster = [r for r in c.rows if r.verdict == FASTER]
    return ("no regression; faster: " + ", ".join(f"{r.cell} {r.metric}" for r in faster)) if faster else \
        "no change beyond the threshold"


def _explain(c: Comparison) -> str:
    mode = ("ratios of each mode to the GC-off reference of the same run" if c.ratio else "absolute times")
    return (f"Compared {mode}; threshold {c.threshold_pct:g}%; a row is slower/faster only when the change "
            f"passes the threshold and its 95% bootstrap interval (repetitions and chains resampled) excludes zero.")


def document(c: Comparison) -> Document:
    """The comparison as a Document (text for a terminal, md for a CI step summary, JSON: Comparison.to_dict)."""
    items = [f"BASE {c.base_id} vs NEW {c.new_id}. {_explain(c)}",
             Table("compare", "", "", HEADERS, _table_rows(c), {2, 3, 4, 5})]
    if c.notes:
        items.append(Bullets([f"note: {n}" for n in c.notes]))
    items.append(Paragraph(_headline(c), strong=True))
    return Document(f"gcbench compare: {'regression' if c.regressions else 'no regression'}", [Section("", items)],
                    data=c.to_dict(), level=3)  # level 3: a part of a CI step summary
