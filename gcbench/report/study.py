"""The study report of a sweep folder: the claim check across runtimes, GC settings, live-heap sizes and
allocation profiles, in text, Markdown or one self-contained HTML page.

This module is the model: `build_study(folder)` computes everything once (a Study); study_document.py turns
it into a Document, which gcbench.report.export renders. Every number in the document, the headline paragraph
included, comes from the sweep's measurements; the only assumptions are the claim itself (10 ms per call) and
the LLM think times of section 6, which are stated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gcbench.analysis import (
    BOOTSTRAP_SAMPLES,
    BOOTSTRAP_SEED,
    CLAIM_PAUSE_MS,
    GROUP_KEYS,
    bootstrap_stat,
    cell_rng,
    chain_table,
    fmt_ms,
    measured_server_events,
    summarize,
)
from gcbench.analysis.load import P99_TARGET_MS, load_table, max_rate_holding
from gcbench.errors import GcbenchError
from gcbench.format import fmt_ci, fmt_count, fmt_heap, fmt_pct, fmt_ratio  # noqa: F401  (study_document uses them from here)
from gcbench.metadata import machine_label, machine_of
from gcbench.probes.pygc_kinds import full_collection_mask

DEFAULT_MODE = "default"
FULL_COLLECTION_BACKEND = "python"  # CPython: a full collection traverses every tracked object
THINK_TIMES_S = (0.5, 2.0, 5.0)  # LLM think time per call assumed in section 6 (stated in the report)
STABLE_SPREAD = 1.2  # max/min of per-repetition means within this counts as reproducible (about 20%)
FORMATS = ("text", "md", "html")


# ---------------------------------------------------------------------------------------------- formatting


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n (sound at 0 and n, unlike the normal approximation)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


# ---------------------------------------------------------------------------------------------- heap crossing


@dataclass(frozen=True)
class Crossing:
    status: str  # crossed | not-reached | already-above | no-data
    heap_objects: float  # the interpolated size (crossed), the largest measured (not-reached) or the first above
    text: str  # in the study: sizes are the tracked objects the probe counted (gc.get_objects()), not the grid's


def heap_crossing(heaps: list[float], pauses_ms: list[float], threshold_ms: float = CLAIM_PAUSE_MS,
                  noun: str = "live objects") -> Crossing:
    """The heap size (`noun`) at which the pause reaches `threshold_ms`, interpolated log-log between the two
    measured heap sizes around the first upward crossing. Heap 0 has no logarithm: it is only compared with the
    threshold. Heap sizes or pauses not measured (NaN) are left out. `text` completes "it reaches X ms at: "."""
    pts = sorted((int(h), float(p)) for h, p in zip(heaps, pauses_ms, strict=True) if h == h and p == p and p > 0)
    if not pts:
        return Crossing("no-data", math.nan, "no pause measured at any heap size")
    thr = f"{threshold_ms:g} ms"
    if pts[0][1] >= threshold_ms:
        h, p = pts[0]
        return Crossing("already-above", h, f"already above {thr} at {fmt_count(h)} objects ({fmt_ms(p)} ms), the "
                                            "smallest heap size measured")
    below_zero = f"; {fmt_ms(pts[0][1])} ms at 0 objects" if pts[0][0] == 0 else ""
    pos = [(h, p) for h, p in pts if h > 0]
    if not pos:
        return Crossing("not-reached", 0, f"not reached at 0 objects ({fmt_ms(pts[0][1])} ms), the only heap size "
                                          "measured")
    if pos[0][1] >= threshold_ms:  # between heap 0 and the smallest positive size: no log-log interpolation
        h, p = pos[0]
        return Crossing("already-above", h, f"already above {thr} at {fmt_count(h)} objects ({fmt_ms(p)} ms), the "
                                            f"smallest positive heap size measured{below_zero}")
    for (h0, p0), (h1, p1) in zip(pos, pos[1:], strict=False):
        if p0 < threshold_ms <= p1:
            frac = (math.log(threshold_ms) - math.log(p0)) / (math.log(p1) - math.log(p0))
            h = math.exp(math.log(h0) + frac * (math.log(h1) - math.log(h0)))
            return Crossing("crossed", h, f"about {fmt_count(h)} {noun} (interpolated log-log between "
                                          f"{fmt_count(h0)} objects: {fmt_ms(p0)} ms and {fmt_count(h1)} objects: "
                                          f"{fmt_ms(p1)} ms)")
    top = max(p for _, p in pos)
    return Crossing("not-reached", pos[-1][0], f"not reached up to {fmt_count(pos[-1][0])} objects (largest: "
                                               f"{fmt_ms(top)} ms)")


# ---------------------------------------------------------------------------------------------- the model


@dataclass
class Study:
    folder: Path
    manifest: dict
    metas: list[dict]  # run.json of every measured point, grid order
    calls_per_chain: int
    heaps: list[int]
    profiles: list[str]
    groups: list[tuple[str, str]]  # (backend, gc mode), grid order, measured ones only
    cells: pd.DataFrame  # one row per (point, backend, gc mode): analysis.summarize columns and more
    chains: pd.DataFrame  # analysis.chain_table rows with point, heap_objects, profile
    pauses: pd.DataFrame  # measured server GC events with point, heap_objects, profile, duration_ms
    ratios: pd.DataFrame  # each mode against its backend's default at the same point
    full_gc: pd.DataFrame  # CPython full-collection pauses per (profile or "all", heap), with tracked objects
    crossings: dict[str, Crossing]  # per profile and "all": tracked objects where a full collection reaches 10 ms
    crossings_max: dict[str, Crossing]  # the same on the largest full collection
    point_machines: dict[str, str] = field(default_factory=dict)  # point -> the machine it was measured on (label)
    rerun: Study | None = None  # the same sweep measured again (gcbench study --rerun): reproducibility
    load: pd.DataFrame = field(default_factory=pd.DataFrame)  # analysis.load.load_table of the open-loop points
    load_hold: pd.DataFrame = field(default_factory=pd.DataFrame)  # analysis.load.max_rate_holding of load
    p99_target_ms: float = P99_TARGET_MS  # --p99-target-ms, else the sweep file's sweep.p99_target_ms
    p99_target_source: str = "default"
    claim_point: str = ""  # a grid of several agents or rates: the one sections 1 to 6 read (e.g. "rate 20 chains/s")
    crossings_by_backend: dict[str, tuple[Crossing, Crossing]] = field(default_factory=dict)  # CPython backend ->
    # where its full collection (median, largest; all profiles) reaches 10 ms, on its tracked objects
    companions: list[Companion] = field(default_factory=list)  # gcbench study --with: many agents, think time
    real: list = field(default_factory=list)  # gcbench study --real: report.study_real.RealServer per server
    full_gc_backend: str = FULL_COLLECTION_BACKEND  # the CPython server whose full collections sections 2 reads
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.folder.name))

    @property
    def claim_ms(self) -> float:
        return CLAIM_PAUSE_MS * self.calls_per_chain

    @property
    def backends(self) -> list[str]:
        return list(dict.fromkeys(b for b, _ in self.groups))

    def default_groups(self) -> list[tuple[str, str]]:
        """One (backend, mode) per backend: its default mode, else the first mode it was measured in."""
        out = []
        for b in self.backends:
            modes = [m for bb, m in self.groups if bb == b]
            out.append((b, DEFAULT_MODE if DEFAULT_MODE in modes else modes[0]))
        return out

    def group_cells(self, backend: str, mode: str) -> pd.DataFrame:
        """The cells of (backend, mode) at every grid point."""
        return self.cells[(self.cells["backend"] == backend) & (self.cells["gc_mode"] == mode)]

    def worst_point(self, backend: str, mode: str) -> pd.Series:
        """The cell of (backend, mode) with the largest mean dead time per chain."""
        c = self.group_cells(backend, mode)
        return c.loc[c["dead_mean_ms"].idxmax()]

    def cell(self, heap: int, profile: str, backend: str, mode: str):
        return self.cache.setdefault("index", {
            (r.heap_objects, r.profile, r.backend, r.gc_mode): r for r in self.cells.itertuples()
        }).get((heap, profile, backend, mode))

    @property
    def machines(self) -> list[str]:
        """The machines the points were measured on (labels, first-seen grid order): more than one when shards
        of a CI matrix were merged."""
        return list(dict.fromkeys(self.point_machines.values()))

    @property
    def multi_machine(self) -> bool:
        return len(self.machines) > 1

    def point_label(self, heap: int, profile: str) -> str:
        label = f"{fmt_heap(heap)} objects, {profile}" if len(self.profiles) > 1 else f"{fmt_heap(heap)} objects"
        if self.multi_machine:  # an absolute time is one machine's: say which
            machine = self.point_machines.get(f"h{int(heap)}-{profile}")
            if machine:
                label += f", on {machine.split(' ', 1)[0]}"
        return label


def build_study(folder: str | Path, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
                p99_target_ms: float | None = None) -> Study:
    from gcbench.report.model import calls_per_chain_of
    from gcbench.sweep import load_sweep_runs, read_manifest

    folder = Path(folder)
    manifest = read_manifest(folder)
    pairs = [(info, run) for info, run in load_sweep_runs(folder) if len(run.calls)]
    if not pairs:
        raise GcbenchError(f"{folder}: no measured point in this sweep folder yet (run `gcbench sweep` first)")
    cells, chains, pauses, loaded = [], [], [], []
    point_machines = {}
    for info, run in pairs:
        where = {"point": info["point"], "heap_objects": int(info["heap_objects"]), "profile": info["profile"],
                 "agents": info.get("agents", 1), "rate_per_s": info.get("rate_per_s", 0.0),
                 "think_ms": info.get("think_ms", 0.0)}
        point_machines[info["point"]] = machine_label(machine_of(run.meta.get("environment") or {}))
        n = calls_per_chain_of(run)
        calls = run.calls
        s = summarize(calls, run.gc_events, n, n_boot, seed, cells=run.meta.get("cells"))
        ch = chain_table(calls).assign(**where)
        s = s.merge(_per_group(ch), on=GROUP_KEYS, how="left")
        s = s.merge(dead_ci(ch, info["point"], n_boot, seed), on=GROUP_KEYS, how="left")
        s = s.merge(_memory(run), on=GROUP_KEYS, how="left")
        tracked = tracked_objects(run.meta)
        s["tracked_objects"] = [_median([v for (b, m, _), v in tracked.items() if (b, m) == (r.backend, r.gc_mode)])
                                for r in s.itertuples()]
        cells.append(s.assign(**where, calls_per_chain=n))
        if info.get("rate_per_s", 0.0) > 0:  # an open-loop point: latency under load
            loaded.append((n, calls.assign(rate_per_s=info["rate_per_s"])))
        chains.append(ch)
        ev = measured_server_events(run.gc_events)
        ev_tracked = [tracked.get((b, m, int(rep)), math.nan)
                      for b, m, rep in zip(ev["backend"], ev["gc_mode"], ev["rep"], strict=True)]
        pauses.append(ev.assign(**where, duration_ms=ev["duration_ns"] / 1e6, tracked_objects=ev_tracked,
                                full=full_collection_mask(ev, run.meta.get("cells"))))
    cells_df = pd.concat(cells, ignore_index=True)
    chains_df = pd.concat(chains, ignore_index=True)
    pauses_df = pd.concat(pauses, ignore_index=True)
    grid = manifest.get("grid", {})
    cells_df, chains_df, pauses_df, claim_point = _claim_points(grid, cells_df, chains_df, pauses_df)
    order = [(b, m) for b in grid.get("backends", []) for m in grid.get("gc_modes", {}).get(b, [DEFAULT_MODE])]
    present = list(dict.fromkeys(zip(cells_df["backend"], cells_df["gc_mode"], strict=True)))
    groups = [g for g in order if g in present] + [g for g in present if g not in order]
    profiles = [p for p in grid.get("profiles", {}) if p in set(cells_df["profile"])]
    profiles += [p for p in dict.fromkeys(cells_df["profile"]) if p not in profiles]
    heaps = sorted(set(cells_df["heap_objects"].astype(int)))
    fgb = full_gc_backend(groups)
    full_gc = _full_gc_table(pauses_df, cells_df, heaps, profiles, backend=fgb)
    crossings, crossings_max = {}, {}
    for prof, g in full_gc.groupby("profile", sort=False):
        crossings[prof] = full_gc_crossing(g, "p50_ms")
        crossings_max[prof] = full_gc_crossing(g, "max_ms")
    target, target_source = _p99_target(manifest, p99_target_ms)
    if loaded:
        n_load = int(pd.Series([n for n, _ in loaded]).mode().iloc[0])
        load = load_table(pd.concat([c for _, c in loaded], ignore_index=True), n_load, n_boot, seed)
    else:
        load = load_table(pd.DataFrame(), 0)
    by_backend = {}
    for b in dict.fromkeys(g[0] for g in groups):
        if is_cpython(b):
            t = _full_gc_table(pauses_df, cells_df, heaps, profiles, backend=b)
            t = t[t["profile"] == ("all" if "all" in set(t["profile"]) else profiles[0])]
            if (t["python_measured"]).any():
                by_backend[b] = (full_gc_crossing(t, "p50_ms"), full_gc_crossing(t, "max_ms"))
    return Study(
        crossings_by_backend=by_backend, full_gc_backend=fgb,
        load=load, load_hold=max_rate_holding(load, target), p99_target_ms=target, p99_target_source=target_source,
        claim_point=claim_point,
        folder=folder, manifest=manifest, metas=[run.meta for _, run in pairs],
        calls_per_chain=int(cells_df["calls_per_chain"].mode().iloc[0]), heaps=heaps, profiles=profiles,
        groups=groups, cells=cells_df, chains=chains_df, pauses=pauses_df,
        ratios=mitigation_ratios(chains_df, n_boot, seed), full_gc=full_gc, crossings=crossings,
        crossings_max=crossings_max, point_machines=point_machines,
    )


def _claim_points(grid: dict, cells: pd.DataFrame, chains: pd.DataFrame, pauses: pd.DataFrame):
    """The claim's sections compare heap sizes, profiles and GC settings at one load: with several (agents,
    rate) values in the grid they read the first one measured in grid order (the latency under load section
    reads every rate). Returns the three tables kept and that load in words ("" when there is only one)."""
    present = list(dict.fromkeys(zip(cells["agents"], cells["rate_per_s"], cells["think_ms"], strict=True)))
    if len(present) < 2:
        return cells, chains, pauses, ""
    order = [(a, float(r), float(t)) for a in grid.get("agents", []) for r in grid.get("rate_per_s", [])
             for t in (grid.get("think_ms") or [present[0][2]])]
    agents, rate, think = next((k for k in order if k in present), present[0])

    def keep(df: pd.DataFrame) -> pd.DataFrame:
        return df[(df["agents"] == agents) & (df["rate_per_s"] == rate)
                  & (df["think_ms"] == think)].reset_index(drop=True) if len(df) else df

    text = (f"{agents} agent(s), " + (f"{rate:g} chains/s offered (open loop)" if rate > 0 else "closed loop")
            + (f", think time {think:g} ms" if think else ""))
    return keep(cells), keep(chains), keep(pauses), text


def _p99_target(manifest: dict, given: float | None) -> tuple[float, str]:
    """The load study's p99 target: the command line's, else the sweep file's, else the default."""
    if given is not None:
        return float(given), "--p99-target-ms"
    stored = manifest.get("p99_target_ms")
    if type(stored) in (int, float) and stored > 0:
        return float(stored), "sweep.p99_target_ms"
    return P99_TARGET_MS, "default"


def _per_group(ch: pd.DataFrame) -> pd.DataFrame:
    """Per (backend, gc mode) of one point: delayed calls, and the spread between repetitions (max/min of each
    repetition's mean chain latency and mean dead time; NaN with one repetition or without dead time, inf when
    only some repetitions had dead time)."""
    per_rep = ch.assign(chain_ms=ch["chain_ns"] / 1e6, dead_ms=ch["dead_ns"] / 1e6).groupby(
        [*GROUP_KEYS, "rep"], observed=True)[["chain_ms", "dead_ms"]].mean()
    g = per_rep.groupby(level=GROUP_KEYS, observed=True)

    def spread(col: str) -> pd.Series:
        hi, lo, n = g[col].max(), g[col].min(), g[col].size()
        with np.errstate(divide="ignore", invalid="ignore"):
            out = hi / lo
        return out.where((n > 1) & (hi > 0))  # NaN: one repetition, or nothing to compare (no dead time)

    tot = ch.groupby(GROUP_KEYS, observed=True).agg(delayed_calls=("gc_calls", "sum"), dead_ns=("dead_ns", "sum"),
                                                     chains_hit=("gc_calls", lambda s: int((s > 0).sum())))
    out = pd.DataFrame({
        "chains_hit": tot["chains_hit"].astype(int),
        "delayed_calls_per_chain": tot["delayed_calls"] / ch.groupby(GROUP_KEYS, observed=True).size(),
        "dead_per_delayed_call_ms": (tot["dead_ns"] / 1e6) / tot["delayed_calls"].where(tot["delayed_calls"] > 0),
        "rep_chain_spread": spread("chain_ms"),
        "rep_dead_spread": spread("dead_ms"),
    })
    return out.reset_index()


def tracked_objects(meta: dict) -> dict[tuple[str, str, int], float]:
    """(backend, gc mode, rep) -> GC-tracked objects of the server, from its probe's last stats record
    (`tracked_objects`, len(gc.get_objects()) at the cell's last flush: the objects a full collection traverses,
    the server's import-time heap included, frozen objects not). Only CPython probes record it."""
    out = {}
    for c in meta.get("cells", []):
        v = (c.get("stats") or {}).get("tracked_objects") if isinstance(c.get("stats"), dict) else None
        if c.get("status") == "ok" and type(v) is int and v >= 0:
            out[(str(c["backend"]), str(c["gc_mode"]), int(c.get("rep", 0)))] = float(v)
    return out


def _median(values: list[float]) -> float:
    return float(np.median(values)) if len(values) else math.nan


def full_gc_crossing(rows: pd.DataFrame, col: str) -> Crossing:
    """Where the full collection (`col`: its median or largest pause) reaches 10 ms, on the measured tracked
    objects; says so when pauses were measured but the probe counted no objects."""
    if rows["count"].sum() and not rows["tracked_objects"].notna().any():
        return Crossing("no-data", math.nan, "not known: the probe recorded no tracked-object count (stats."
                                             "tracked_objects) in these runs")
    return heap_crossing(list(rows["tracked_objects"]), list(rows[col]), noun="tracked objects")


def _full_gc_table(pauses: pd.DataFrame, cells: pd.DataFrame, heaps: list[int], profiles: list[str],
                   backend: str = FULL_COLLECTION_BACKEND) -> pd.DataFrame:
    """CPython full-collection pauses (the `full` column: what is full depends on the interpreter, see
    pygc_kinds) of the python backend in its default mode: count, median and max per heap size, per profile
    and over all profiles ("all"); the tracked objects the probe counted there (median over the cells) and the
    median cost per tracked object of one full collection (each pause / its cell's count). `python_measured`
    says whether that cell exists at all."""
    key = (backend, DEFAULT_MODE)
    sel = pauses[(pauses["backend"] == key[0]) & (pauses["gc_mode"] == key[1])
                 & pauses["full"].astype(bool)] if len(pauses) else pauses
    c = cells[(cells["backend"] == key[0]) & (cells["gc_mode"] == key[1])]
    measured = set(zip(c["profile"], c["heap_objects"], strict=True))
    rows = []
    for prof in [*profiles, "all"]:
        for h in heaps:
            d = sel[(sel["heap_objects"] == h) & ((sel["profile"] == prof) if prof != "all" else True)] \
                if len(sel) else sel
            ms = d["duration_ms"].to_numpy() if len(d) else np.empty(0)
            per_obj = (d["duration_ms"] * 1e6 / d["tracked_objects"]).dropna().to_numpy() if len(d) else np.empty(0)
            here = c[(c["heap_objects"] == h) & ((c["profile"] == prof) if prof != "all" else True)]
            rows.append({"profile": prof, "heap_objects": h, "count": len(ms),
                         "p50_ms": float(np.median(ms)) if len(ms) else math.nan,
                         "max_ms": float(ms.max()) if len(ms) else math.nan,
                         "tracked_objects": _median(list(here["tracked_objects"].dropna())),
                         "ns_per_object_p50": float(np.median(per_obj)) if len(per_obj) else math.nan,
                         "python_measured": any((pp, h) in measured for pp in (profiles if prof == "all" else [prof]))})
    out = pd.DataFrame(rows)
    if len(profiles) == 1:  # "all" would repeat the one profile
        out = out[out["profile"] != "all"]
    return out


def mitigation_ratios(chains: pd.DataFrame, n_boot: int = BOOTSTRAP_SAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Every non-default mode against its backend's default mode at the same grid point: the ratio of mean GC
    dead time per chain and of mean chain latency, each with a 95% bootstrap CI (chains and repetitions
    resampled in both cells independently, see analysis.bootstrap_stat). A dead-time ratio against a default
    without dead time is NaN."""
    cols = ["point", "heap_objects", "profile", "backend", "gc_mode", "dead_ratio", "dead_lo", "dead_hi",
            "chain_ratio", "chain_lo", "chain_hi"]
    rows = []
    for (point, backend), g in chains.groupby(["point", "backend"], sort=False, observed=True):
        by_mode = {m: gm for m, gm in g.groupby("gc_mode", sort=False, observed=True)}
        if DEFAULT_MODE not in by_mode:
            continue
        ref = by_mode[DEFAULT_MODE]
        for mode, x in by_mode.items():
            if mode == DEFAULT_MODE:
                continue
            row = {"point": point, "heap_objects": int(x["heap_objects"].iloc[0]), "profile": x["profile"].iloc[0],
                   "backend": backend, "gc_mode": mode}
            for metric, col in (("dead", "dead_ns"), ("chain", "chain_ns")):
                a, b = x[col].to_numpy() / 1e6, ref[col].to_numpy() / 1e6
                if b.mean() <= 0:
                    row.update({f"{metric}_ratio": math.nan, f"{metric}_lo": math.nan, f"{metric}_hi": math.nan})
                    continue
                ba = bootstrap_stat(a, cell_rng(seed, point, backend, mode, metric), n_boot, groups=x["rep"].to_numpy())
                bb = bootstrap_stat(b, cell_rng(seed, point, backend, DEFAULT_MODE, metric, "ref"), n_boot,
                                    groups=ref["rep"].to_numpy())
                with np.errstate(divide="ignore", invalid="ignore"):
                    q = ba / bb
                q = q[~np.isnan(q)]  # 0/0: a resample without dead time on both sides
                # x/0 (a resample whose reference had no dead time) is inf: no interpolation across it
                lo, hi = np.percentile(q, [2.5, 97.5], method="nearest") if len(q) else (math.nan, math.nan)
                row.update({f"{metric}_ratio": float(a.mean() / b.mean()), f"{metric}_lo": float(lo),
                            f"{metric}_hi": float(hi)})
            rows.append(row)
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------------------------- re-run

RERUN_TOLERANCE = STABLE_SPREAD  # two runs' ratios agree when the larger is at most 1.2x the smaller (within 20%)
RERUN_TARGET = 0.85  # the share of setting-vs-default ratios that must agree for the study to count as reproduced
NEAR_ZERO_RATIO = 0.05  # a ratio below this is "near zero": a setting that removed >= 95% of what the default had
RERUN_METRICS = (("chain", "mean chain latency"), ("dead", "GC dead time"))


def _load_before(study: Study, point: str) -> float:
    for meta in study.metas:
        if meta.get("run_id") == point:
            la = (meta.get("environment") or {}).get("load_average_before")
            if isinstance(la, list) and la and isinstance(la[0], int | float):
                return float(la[0])
    return math.nan


def _overlap(lo_a: float, hi_a: float, lo_b: float, hi_b: float) -> bool | None:
    if any(v != v for v in (lo_a, hi_a, lo_b, hi_b)):
        return None
    return lo_a <= hi_b and lo_b <= hi_a


def rerun_comparison(a: Study, b: Study) -> pd.DataFrame:
    """Every setting-vs-default ratio (both metrics) of two runs of one sweep, matched by point and setting:
    whether the two agree within 20% and, when not, why. One row per ratio defined in at least one run of a
    point measured in both.

    Agree: both defined and the larger at most RERUN_TOLERANCE x the smaller, or both exactly 0 (GC off: no dead
    time at all). Not agreeing, the reason, first that applies: defined in one run only (its default had no GC
    dead time in the other); both near zero (below NEAR_ZERO_RATIO: a small absolute difference is a large
    relative one); the 95% CIs overlap (within the runs' noise); else the CIs do not overlap (the runs differ
    beyond their noise; the load average before each run's point is given)."""
    keys = ["point", "heap_objects", "profile", "backend", "gc_mode"]
    j = a.ratios.merge(b.ratios, on=keys, suffixes=("_a", "_b"))
    rows = []
    for metric, label in RERUN_METRICS:
        for r in j.itertuples():
            x, y = getattr(r, f"{metric}_ratio_a"), getattr(r, f"{metric}_ratio_b")
            if x != x and y != y:
                continue  # undefined in both runs: nothing was measured to compare
            lo_a, hi_a = getattr(r, f"{metric}_lo_a"), getattr(r, f"{metric}_hi_a")
            lo_b, hi_b = getattr(r, f"{metric}_lo_b"), getattr(r, f"{metric}_hi_b")
            change = y / x if x == x and y == y and x > 0 else (1.0 if x == 0 and y == 0 else math.nan)
            agree, reason = False, ""
            if x != x or y != y:
                reason = "defined in one run only: its default had no GC dead time in the other"
            elif x == 0 and y == 0:
                agree, reason = True, "both zero"
            elif x > 0 and y > 0 and max(x, y) / min(x, y) <= RERUN_TOLERANCE:
                agree = True
            elif max(x, y) < NEAR_ZERO_RATIO:
                reason = f"both near zero (below {NEAR_ZERO_RATIO:g}): a small difference is a large relative one"
            elif _overlap(lo_a, hi_a, lo_b, hi_b):
                reason = "noise: the two 95% CIs overlap"
            else:
                la, lb = _load_before(a, r.point), _load_before(b, r.point)
                load = (f"; load average before the point {la:.2f} vs {lb:.2f}" if la == la and lb == lb else "")
                reason = ("the 95% CIs do not overlap: the runs differ beyond their noise" + load
                          if _overlap(lo_a, hi_a, lo_b, hi_b) is False else "no CI to compare: a change beyond 20%")
            rows.append({**{k: getattr(r, k) for k in keys}, "metric": metric, "label": label, "first": x,
                         "first_lo": lo_a, "first_hi": hi_a, "second": y, "second_lo": lo_b, "second_hi": hi_b,
                         "change": change, "agree": agree, "reason": reason})
    cols = [*keys, "metric", "label", "first", "first_lo", "first_hi", "second", "second_lo", "second_hi", "change",
            "agree", "reason"]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------------------------- second edition

CI_LEVEL = (2.5, 97.5)


def full_gc_backend(groups: list[tuple[str, str]]) -> str:
    """The stdlib CPython server whose full collections the pause-growth section reads: `python` when measured in
    its default mode, else the first `python@<version>` of the grid (a grid of several versions, claim-check-v2,
    has no plain `python`; the CPython versions section gives each)."""
    if (FULL_COLLECTION_BACKEND, DEFAULT_MODE) in groups:
        return FULL_COLLECTION_BACKEND
    return next((b for b, m in groups if b.startswith("python@") and m == DEFAULT_MODE), FULL_COLLECTION_BACKEND)


def is_cpython(backend: str) -> bool:
    """A server on CPython: the stdlib server (`python`, `python@3.12`) or the official SDK's (`python-sdk`)."""
    return backend == "python" or backend.startswith(("python@", "python-sdk"))


def dead_ci(ch: pd.DataFrame, point: str, n_boot: int = BOOTSTRAP_SAMPLES,
            seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Per (backend, gc mode) of one point: the 95% bootstrap CI of the mean GC dead time per chain (chains,
    and repetitions when there are several, resampled: analysis.bootstrap_stat)."""
    rows = []
    for (b, m), g in ch.groupby(GROUP_KEYS, sort=False, observed=True):
        x = g["dead_ns"].to_numpy() / 1e6
        boot = bootstrap_stat(x, cell_rng(seed, point, b, m, "dead-ci"), n_boot, groups=g["rep"].to_numpy())
        lo, hi = np.percentile(boot, CI_LEVEL) if len(x) else (math.nan, math.nan)
        rows.append({"backend": b, "gc_mode": m, "dead_lo_ms": float(lo), "dead_hi_ms": float(hi)})
    return pd.DataFrame(rows, columns=[*GROUP_KEYS, "dead_lo_ms", "dead_hi_ms"])


def _memory(run) -> pd.DataFrame:
    """Per (backend, gc mode) of one point: the peak RSS of the server's process tree (MiB, mean over
    repetitions; NaN where not recorded) and its ratio to the same backend's default (gcbench.memory)."""
    from gcbench.memory import memory_table

    cols = [*GROUP_KEYS, "peak_rss_mib", "peak_rss_vs_default"]
    t = memory_table(run)
    return t[cols] if len(t) else pd.DataFrame(columns=cols)


def pause_phases(study: Study) -> pd.DataFrame:
    """Every runtime in its default setting: count, median and largest measured pause per kind of pause (the
    stop-the-world phase or generation the runtime names), over every grid point."""
    cols = ["backend", "kind", "count", "p50_ms", "max_ms"]
    p = study.pauses
    if not len(p):
        return pd.DataFrame(columns=cols)
    keep = pd.Series(list(zip(p["backend"], p["gc_mode"], strict=True)), index=p.index).isin(study.default_groups())
    g = p[keep].groupby(["backend", "kind"], sort=False, observed=True)["duration_ms"]
    out = pd.DataFrame({"count": g.size(), "p50_ms": g.median(), "max_ms": g.max()}).reset_index()
    order = {b: i for i, b in enumerate(study.backends)}
    out["o"] = out["backend"].map(order)
    return out.sort_values(["o", "max_ms"], ascending=[True, False]).drop(columns="o")[cols].reset_index(drop=True)


def jvm_phases(study: Study, backend: str = "java") -> pd.DataFrame:
    """The JVM's measured pauses per collector (gc mode) and stop-the-world phase (the event's kind): count,
    median and largest pause (ms), over every grid point."""
    cols = ["gc_mode", "kind", "count", "p50_ms", "max_ms"]
    p = study.pauses[study.pauses["backend"] == backend] if len(study.pauses) else study.pauses
    if not len(p):
        return pd.DataFrame(columns=cols)
    g = p.groupby(["gc_mode", "kind"], sort=False, observed=True)["duration_ms"]
    out = pd.DataFrame({"count": g.size(), "p50_ms": g.median(), "max_ms": g.max()}).reset_index()
    order = {m: i for i, (b, m) in enumerate(study.groups) if b == backend}
    out["o"] = out["gc_mode"].map(order).fillna(len(order))
    return out.sort_values(["o", "max_ms"], ascending=[True, False]).drop(columns="o")[cols].reset_index(drop=True)


@dataclass
class Companion:
    """A companion sweep of the study (gcbench study --with): points with several agents or a think time,
    one row per point and (backend, gc mode)."""

    folder: Path
    name: str
    calls_per_chain: int
    cells: pd.DataFrame  # summarize columns, dead CI, idle gaps (analysis.amplification.idle_gap_table), axes

    @property
    def varies_agents(self) -> bool:
        return self.cells["agents"].nunique() > 1

    @property
    def varies_think(self) -> bool:
        return self.cells["think_ms"].nunique() > 1


def build_companion(folder: str | Path, n_boot: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> Companion:
    """A companion sweep folder as a Companion; one line (GcbenchError) for a folder that is not a sweep, holds
    no measured point, or measured only one agent without think time (that is a main grid)."""
    from gcbench.analysis.amplification import idle_gap_table
    from gcbench.report.model import calls_per_chain_of
    from gcbench.sweep import load_sweep_runs, read_manifest

    folder = Path(folder)
    manifest = read_manifest(folder)  # "not a sweep folder" and every damaged manifest: one line
    pairs = [(info, run) for info, run in load_sweep_runs(folder) if len(run.calls)]
    if not pairs:
        raise GcbenchError(f"{folder}: --with: no measured point in this sweep folder yet (run `gcbench sweep` first)")
    if not any(info["agents"] > 1 or info["think_ms"] > 0 for info, _ in pairs):
        grid = manifest["grid"]
        if any(type(a) is int and a > 1 for a in grid.get("agents") or []) or any(
                type(t) in (int, float) and t > 0 for t in grid.get("think_ms") or []):
            raise GcbenchError(f"{folder}: --with: no point with several agents or a think time measured yet (run "
                               f"`gcbench sweep` into it to the end)")
        raise GcbenchError(f"{folder}: --with takes a companion sweep with several agents or a think time; every "
                           f"point of this one has 1 agent and no think time (a main grid: give it as SWEEP_DIR)")
    rows = []
    for info, run in pairs:
        n = calls_per_chain_of(run)
        cells = run.meta.get("cells")
        s = summarize(run.calls, run.gc_events, n, n_boot, seed, cells=cells)
        ch = chain_table(run.calls)
        s = s.merge(dead_ci(ch, info["point"], n_boot, seed), on=GROUP_KEYS, how="left")
        s = s.merge(idle_gap_table(run.calls, run.gc_events, cells), on=GROUP_KEYS, how="left")
        rows.append(s.assign(point=info["point"], heap_objects=int(info["heap_objects"]), profile=info["profile"],
                             agents=int(info["agents"]), think_ms=float(info["think_ms"]), calls_per_chain=n))
    cells_df = pd.concat(rows, ignore_index=True)
    return Companion(folder, str(manifest.get("name", folder.name)),
                     int(cells_df["calls_per_chain"].mode().iloc[0]), cells_df)


def agents_cells(study: Study) -> pd.DataFrame:
    """The cells of the companions with an agents axis, at their smallest think time (the "Many agents" rows)."""
    parts = [c.cells[c.cells["think_ms"] == c.cells["think_ms"].min()] for c in study.companions if c.varies_agents]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def think_cells(study: Study) -> pd.DataFrame:
    """The cells of the companions with a think-time axis, at their fewest agents (the "Think time" rows)."""
    parts = [c.cells[c.cells["agents"] == c.cells["agents"].min()] for c in study.companions if c.varies_think]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
