"""The study report as a Document: the sections, tables, figures and generated sentences of a Study (study.py)."""

from __future__ import annotations

import math
import shlex
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gcbench.analysis import (
    CLAIM_FIT_SHARE,
    CLAIM_PAUSE_MS,
    CONTROL_BACKEND,
    fmt_ms,
)
from gcbench.format import fmt_duration, fmt_mib
from gcbench.probes.pygc_kinds import FULL_COLLECTION_NOTE
from gcbench.report.document import Bullets, Details, Document, Facts, Figure, Section, Table
from gcbench.report.numbers import signed
from gcbench.report.study import (
    DEFAULT_MODE,
    RERUN_METRICS,
    RERUN_TARGET,
    RERUN_TOLERANCE,
    STABLE_SPREAD,
    THINK_TIMES_S,
    Study,
    fmt_ci,
    fmt_heap,
    fmt_pct,
    fmt_ratio,
    is_cpython,
    rerun_comparison,
    wilson,
)

# ---------------------------------------------------------------------------------------------- tables


def _pivots(study: Study, key: str, title: str, caption: str, groups: list[tuple[str, str]], cell_text) -> list[Table]:
    """One table per profile: rows (backend, gc mode), columns the heap sizes; `cell_text(row)` fills a cell."""
    tables = []
    heads = [f"{fmt_heap(h)} objects" for h in study.heaps]
    for prof in study.profiles:
        rows = []
        for b, m in groups:
            cells = [study.cell(h, prof, b, m) for h in study.heaps]
            if all(c is None for c in cells):
                continue
            rows.append([b, m, *(cell_text(c) if c is not None else "-" for c in cells)])
        t = f"{title} ({prof} profile)" if len(study.profiles) > 1 else title
        tables.append(Table(f"{key}-{prof}", t, caption, ["backend", "gc mode", *heads], rows,
                            set(range(2, 2 + len(heads)))))
    return tables


def headline_rows(study: Study) -> list[dict]:
    """Per runtime (backend) in its default mode, over every grid point: typical and worst GC dead time per
    chain, the worst single chain, the largest pause, and the worst mean against the claim."""
    out = []
    for b, m in study.default_groups():
        c = study.group_cells(b, m)
        worst, big = study.worst_point(b, m), c.loc[c["pause_max_ms"].idxmax()]
        lost, lost_top = _lost_claim(c)
        out.append({
            "worst_lo": worst.get("dead_lo_ms", math.nan), "worst_hi": worst.get("dead_hi_ms", math.nan),
            "lost_claim_share": lost, "lost_claim_top": lost_top,
            "backend": b, "gc_mode": m, "points": len(c), "typical_ms": float(c["dead_mean_ms"].median()),
            "worst_ms": float(worst["dead_mean_ms"]), "worst_point": study.point_label(worst.heap_objects, worst.profile),
            "worst_chain_ms": float(c["dead_max_ms"].max()), "pause_max_ms": float(big["pause_max_ms"]),
            "pause_point": study.point_label(big.heap_objects, big.profile), "gc_events": int(c["gc_events"].sum()),
            "vs_claim": float(worst["dead_mean_ms"]) / study.claim_ms, "cost_ms": worst["gc_cost_ms"],
            "cost_lo": worst["gc_cost_lo_ms"], "cost_hi": worst["gc_cost_hi_ms"], "cost_ref": worst["gc_cost_ref"],
        })
    return out


def machines_sentence(study: Study) -> str:
    """How points from several machines are compared (empty on one machine)."""
    if not study.multi_machine:
        return ""
    return (f"The points were measured on {len(study.machines)} machines (each point whole on one machine: "
            f"{'; '.join(study.machines)}). Across grid points this study compares only same-machine ratios (a "
            f"setting against its runtime's default, both cells of one point, so of one machine); absolute times "
            f"(dead time, pauses, where a full collection reaches {CLAIM_PAUSE_MS:g} ms) are each one machine's "
            f"and name it: compared across points they mix machines.")


def _across_points(study: Study) -> str:
    """Said in the caption of every table that sets absolute times of different points side by side."""
    return (f" Points come from {len(study.machines)} machines: absolute times in different columns may be "
            "different machines' (see the machines in the setup).") if study.multi_machine else ""


def headline_table(study: Study) -> Table:
    rows = []
    for r in headline_rows(study):
        pause = f"{fmt_ms(r['pause_max_ms'])} ({r['pause_point']})" if r["gc_events"] else "no GC pause reported"
        cost = "-"
        if r["cost_ref"] and r["cost_ref"] != f"{r['backend']}/{r['gc_mode']}" and r["cost_ms"] == r["cost_ms"]:
            cost = f"{signed(r['cost_ms'])} {fmt_ci(r['cost_lo'], r['cost_hi'], signed)} vs {r['cost_ref']}"
        ci = fmt_ci(r["worst_lo"], r["worst_hi"], fmt_ms)
        rows.append([r["backend"], r["gc_mode"], str(r["points"]), fmt_ms(r["typical_ms"]),
                     f"{fmt_ms(r['worst_ms'])} {ci} ({r['worst_point']})" if r["worst_ms"] > 0 else "0",
                     fmt_ms(r["worst_chain_ms"]), f"{fmt_pct(r['lost_claim_share'])} (at most "
                     f"{fmt_pct(r['lost_claim_top'])})", pause, fmt_pct(r["vs_claim"]), cost])
    return Table("headline", "Headline: each runtime in its default GC setting",
                 f"GC dead time per {study.calls_per_chain}-call chain (ms): typical = median over the grid points "
                 f"of the mean per chain; worst = the largest mean at one grid point (named); worst chain = the "
                 f"single chain with the most dead time anywhere. 'vs claim' = worst mean / the claim's "
                 f"{fmt_ms(study.claim_ms)} ms. GC cost = mean chain latency minus the GC-off reference at the worst "
                 f"point, 95% bootstrap CI; only against the same runtime (GC off, or a GC-quiet cell), never another runtime. "
                 f"Worst dead/chain with its 95% bootstrap CI (chains and repetitions resampled). Calls lost >= "
                 f"{CLAIM_PAUSE_MS:g} ms: the share of every call of the grid that lost at least that much to GC "
                 f"(and the largest share at one point)."
                 + _across_points(study),
                 ["runtime", "gc mode", "points", "typical dead/chain", "worst dead/chain [95% CI]", "worst chain",
                  f"calls lost >= {CLAIM_PAUSE_MS:g} ms", "largest pause (ms)", "vs claim",
                  "GC cost at worst point (ms)"], rows, {2, 3, 5, 8})


def headline_points(study: Study) -> tuple[str, list[str]]:
    """The generated headline: an opening sentence and the findings, every number from the sweep."""
    claim = study.claim_ms
    n = study.calls_per_chain
    rows = headline_rows(study)
    gc_rows = [r for r in rows if r["gc_events"]]
    intro = (f"The claim: a {CLAIM_PAUSE_MS:g} ms GC pause on each of {n} tool calls adds {fmt_ms(claim)} ms of dead "
             f"time per chain. Measured on {f'{len(study.machines)} machines' if study.multi_machine else 'this machine'} "
             f"over {len(study.metas)} grid points (live heap "
             f"{fmt_heap(study.heaps[0])} to {fmt_heap(study.heaps[-1])} objects; profiles "
             f"{', '.join(study.profiles)}):")
    points = [machines_sentence(study)] if study.multi_machine else []
    if gc_rows:
        w = max(gc_rows, key=lambda r: r["worst_ms"])
        verdict = ("reaches the claim" if w["worst_ms"] >= claim else
                   f"is {fmt_pct(w['vs_claim'])} of the claim ({fmt_ratio(claim / w['worst_ms'])}x less)"
                   if w["worst_ms"] > 0 else "is zero")
        points.append(f"Dead time: the worst mean GC dead time per chain of any runtime in its default setting is "
                      f"{fmt_ms(w['worst_ms'])} ms ({w['backend']} at {w['worst_point']}), which {verdict}; the "
                      f"worst single chain lost {fmt_ms(max(r['worst_chain_ms'] for r in gc_rows))} ms.")
        p = max(gc_rows, key=lambda r: r["pause_max_ms"])
        points.append(f"Pauses: the largest single pause was {fmt_ms(p['pause_max_ms'])} ms ({p['backend']} at "
                      f"{p['pause_point']}). {full_gc_sentence(study)}"
                      if (study.full_gc_backend, DEFAULT_MODE) in study.groups else
                      f"Pauses: the largest single pause was {fmt_ms(p['pause_max_ms'])} ms ({p['backend']} at "
                      f"{p['pause_point']}).")
    cross = crossing_sentence(study)
    if cross:
        points.append(f"CPython versions: {cross}")
    points += [f"Frequency: the claim's arithmetic needs every call to lose {CLAIM_PAUSE_MS:g} ms. {s}"
               for s in hits_sentences(study)]
    points += companion_points(study)
    best = mitigation_bests(study)
    if best:
        points.append("Settings (median ratio of mean chain latency to the runtime's default over the grid; below 1 "
                      "is faster" + ("; each ratio is of two cells of one point, on one machine" if study.multi_machine
                                     else "") + "): " + "; ".join(best) + ".")
    ctl = study.cells[study.cells["backend"] == CONTROL_BACKEND]
    if len(ctl):
        points.append(f"Control: the no-GC server ({CONTROL_BACKEND}) still had calls up to "
                      f"{fmt_ms(ctl['latency_max_ms'].max())} ms (p99.9 up to {fmt_ms(ctl['latency_p999_ms'].max())} "
                      f"ms): latency of that size is not GC.")
    if gc_rows:
        w = max(gc_rows, key=lambda r: r["worst_ms"])
        worst = study.worst_point(w["backend"], w["gc_mode"])
        shares = ", ".join(f"{fmt_pct(worst['dead_mean_ms'] / (worst['chain_mean_ms'] + n * t * 1000))} at {t:g} s"
                           for t in THINK_TIMES_S)
        points.append(f"Context: with an assumed LLM think time per call, that worst case is {shares} of an agent "
                      f"chain's wall time.")
    return intro, points


def companion_points(study: Study) -> list[str]:
    """The headline's findings from the companion sweeps: amplification at the most agents, and which runtimes
    collected in the idle gaps (both measured; none without --with)."""
    from gcbench.report.study import agents_cells, think_cells

    out = []
    a = agents_cells(study)
    if len(a) and a["agents"].max() > 1:
        k = int(a["agents"].max())
        x = a[(a["agents"] == k) & a["amplification"].notna()]
        if len(x):
            out.append(f"Many agents: with {k} agents one server pause delays many calls at once; GC amplification "
                       f"(dead time summed over calls / server GC time): " + "; ".join(
                           f"{r.backend}/{r.gc_mode} x{fmt_ratio(r.amplification)}" for r in x.itertuples()) + ".")
    if len(think_cells(study)):
        s = think_sentences(study)
        if s:
            out.append(f"Think time: {s[0][0].lower()}{s[0][1:]}")
    return out


def headline_text(study: Study) -> str:
    """The headline as one paragraph (for a README or a closing note)."""
    intro, points = headline_points(study)
    return " ".join([intro, *points])


def mitigation_bests(study: Study) -> list[str]:
    """Per runtime: its best non-default setting besides GC off, and GC off, by median chain-latency ratio."""
    from gcbench.analysis import OFF_MODE

    out = []
    r = study.ratios
    for b in study.backends:
        g = r[r["backend"] == b]
        if not len(g):
            continue
        med = g.groupby("gc_mode", sort=False)["chain_ratio"].median().dropna()
        parts = []
        on = med.drop(OFF_MODE, errors="ignore")
        if len(on):
            parts.append(f"{on.idxmin()} x{fmt_ratio(on.min())}")
        if OFF_MODE in med:
            parts.append(f"GC off x{fmt_ratio(med[OFF_MODE])}")
        if parts:
            out.append(f"{b} " + ", ".join(parts))
    return out


def full_gc_sentence(study: Study) -> str:
    """Where a CPython full collection reaches the claim's pause, over all profiles (or the only one)."""
    key = "all" if "all" in study.crossings else next(iter(study.crossings), None)
    c = study.crossings.get(key) if key else None
    what = (f"a CPython full collection ({study.full_gc_backend}/{DEFAULT_MODE}, median full-collection "
            "pause" + (", all profiles)" if key == "all" else ")"))
    if c is None or c.status == "no-data":
        return (f"No CPython full collection ({study.full_gc_backend}/{DEFAULT_MODE}: "
                f"{FULL_COLLECTION_NOTE}) happened inside a measurement window of this sweep, so where it "
                f"reaches {CLAIM_PAUSE_MS:g} ms cannot be said from it.")
    on = (f"on the points' machines ({len(study.machines)} machines: the interpolation may join heap sizes measured "
          "on different machines)") if study.multi_machine else "on this machine"
    out = f"Where {what} reaches {CLAIM_PAUSE_MS:g} ms {on}: {c.text}."
    per_obj = study.full_gc[study.full_gc["profile"] == key]["ns_per_object_p50"].dropna()
    if len(per_obj):
        out += (f" One full collection cost a median {per_obj.median():.3g} ns per tracked object"
                + (f" ({per_obj.min():.3g} to {per_obj.max():.3g} over the heap sizes)" if len(per_obj) > 1 else "")
                + ".")
    return out


def hits_sentences(study: Study) -> list[str]:
    """How the claim's arithmetic (every call loses 10 ms to GC) compares with the measured cells: per call, the
    share that lost >= 10 ms (not the mean over delayed calls, which a few large collections lift)."""
    c = study.cells[study.cells["delayed_calls_per_chain"] > 0]
    if not len(c):
        return ["No call of any chain was delayed by a GC pause."]
    often = c.loc[c["calls_delayed_share"].idxmax()]
    most = c.loc[c["calls_lost_claim_share"].idxmax()]
    fits = c[c["claim_fits"].astype(bool)]
    out = [f"Where calls were delayed most often ({fmt_pct(often['calls_delayed_share'])} of calls, "
           f"{often['backend']}/{often['gc_mode']} at {study.point_label(often.heap_objects, often.profile)}), a "
           f"delayed call lost a median {fmt_ms(often['loss_per_delayed_call_p50_ms'])} ms (p99 "
           f"{fmt_ms(often['loss_per_delayed_call_p99_ms'])}, max {fmt_ms(often['loss_per_delayed_call_max_ms'])} ms), "
           f"and {fmt_pct(often['calls_lost_claim_share'])} of its calls lost >= {CLAIM_PAUSE_MS:g} ms."]
    if most["calls_lost_claim_share"] > 0:
        out.append(f"The largest share of calls that lost >= {CLAIM_PAUSE_MS:g} ms was "
                   f"{fmt_pct(most['calls_lost_claim_share'])} ({most['backend']}/{most['gc_mode']} at "
                   f"{study.point_label(most.heap_objects, most.profile)}).")
    else:
        out.append(f"No call of any cell lost {CLAIM_PAUSE_MS:g} ms or more to GC.")
    rule = f"(at least {fmt_pct(CLAIM_FIT_SHARE)} of its calls lost >= {CLAIM_PAUSE_MS:g} ms)"
    out.append(f"{len(fits)} of {len(study.cells)} cells fit the claim's arithmetic {rule}." if len(fits) else
               f"No cell fits the claim's arithmetic {rule}.")
    return [" ".join(out)]


def dead_tables(study: Study) -> list[Table]:
    claim = study.claim_ms
    dead = _pivots(study, "dead", "Mean GC dead time per chain (ms), share of the claim",
                   f"Server GC pause time overlapping the {study.calls_per_chain} calls of one chain, mean over the "
                   f"chains of the cell; in brackets its share of the claim's {fmt_ms(claim)} ms." + _across_points(study),
                   study.groups,
                   lambda r: f"{fmt_ms(r.dead_mean_ms)} ({fmt_pct(r.dead_mean_ms / claim)})")

    def cost(r) -> str:
        quiet = " (GC-quiet ref.)" if r.gc_cost_ref_kind == "gc-quiet" else ""
        if not r.gc_cost_ref:
            if r.runtime_diff_ref:
                return (f"no GC cost; runtime diff. vs {r.runtime_diff_ref} {signed(r.runtime_diff_ms)} "
                        f"{fmt_ci(r.runtime_diff_lo_ms, r.runtime_diff_hi_ms, signed)}")
            return "no reference"
        if r.gc_cost_ref == f"{r.backend}/{r.gc_mode}":
            return "reference" + quiet
        return f"{signed(r.gc_cost_ms)} {fmt_ci(r.gc_cost_lo_ms, r.gc_cost_hi_ms, signed)}{quiet}"

    costs = _pivots(study, "gc-cost", "Counterfactual GC cost per chain (ms), 95% CI",
                    "Mean chain latency minus that of the same backend with GC disabled at the same point, or else "
                    "of a cell of the same backend whose measured window had no server GC event (GC-quiet, checked "
                    "against the GC events); 95% bootstrap CI resampling chains and repetitions. Another runtime is "
                    f"never a GC-cost reference: for a runtime without an off switch and without a GC-quiet cell, the "
                    f"difference to the no-GC control ({CONTROL_BACKEND}) is shown as a runtime difference, which "
                    "mixes GC with every other difference between the two servers.", study.groups, cost)
    return dead + costs


def detail_table(study: Study) -> Table:
    rows = []
    for r in study.cells.itertuples():
        rows.append([fmt_heap(r.heap_objects), r.profile, r.backend, r.gc_mode, str(r.chains), fmt_ms(r.chain_mean_ms),
                     fmt_ms(r.dead_mean_ms), fmt_ms(r.dead_p50_ms), fmt_ms(r.dead_p99_ms), fmt_ms(r.dead_max_ms),
                     fmt_pct(r.dead_mean_ms / study.claim_ms), str(r.gc_events), fmt_ms(r.pause_max_ms),
                     signed(r.gc_cost_ms), fmt_ci(r.gc_cost_lo_ms, r.gc_cost_hi_ms, signed), r.gc_cost_ref or "-"])
    return Table("cells", "Every cell of the sweep",
                 "One row per grid point and (backend, gc mode); times in ms per chain unless named.",
                 ["heap", "profile", "backend", "gc mode", "chains", "chain mean", "dead mean", "dead p50", "dead p99",
                  "dead max", "vs claim", "GC events", "largest pause", "GC cost", "95% CI", "reference"],
                 rows, set(range(4, 15)))


def pause_tables(study: Study) -> list[Table]:
    def text(r) -> str:
        return "no pause" if not r.gc_events else f"{fmt_ms(r.pause_max_ms)} / {fmt_ms(r.pause_p99_ms)}"

    return _pivots(study, "pauses", "Largest / p99 GC pause (ms)",
                   "Server-reported GC pauses inside the measurement windows, each runtime in its default setting."
                   + _across_points(study),
                   study.default_groups(), text)


def phase_table(study: Study) -> Table:
    from gcbench.report.study import pause_phases

    rows = [[r.backend, str(r.kind), str(int(r.count)), fmt_ms(r.p50_ms), fmt_ms(r.max_ms)]
            for r in pause_phases(study).itertuples()]
    return Table("pause-phases", "Largest single pause per runtime and phase",
                 "Each runtime in its default setting, every measured server pause over the grid by its kind (the "
                 "stop-the-world phase or the generation the runtime reports): count, median and largest (ms)."
                 + _across_points(study),
                 ["runtime", "phase", "pauses", "median (ms)", "largest (ms)"], rows, {2, 3, 4})


def full_gc_table(study: Study) -> Table:
    rows = []
    for prof, g in study.full_gc.groupby("profile", sort=False):
        cells = []
        for r in g.itertuples():
            tracked = f"; {fmt_heap(r.tracked_objects)} tracked" if r.tracked_objects == r.tracked_objects else ""
            per_obj = f", {r.ns_per_object_p50:.3g} ns/object" if r.ns_per_object_p50 == r.ns_per_object_p50 else ""
            cells.append("not measured" if not r.python_measured else f"none{tracked}" if not r.count
                         else f"{fmt_ms(r.p50_ms)} / {fmt_ms(r.max_ms)} (n={r.count}){tracked}{per_obj}")
        rows.append([prof, *cells, study.crossings[prof].text, study.crossings_max[prof].text])
    return Table("full-gc", f"CPython full collections ({study.full_gc_backend}/{DEFAULT_MODE}: "
                 f"{FULL_COLLECTION_NOTE})",
                 f"Median / largest full-collection pause (ms) and their number per grid heap size; the GC-tracked "
                 f"objects the probe counted in those cells (gc.get_objects(), the server's own import-time heap "
                 f"included) and the median pause per tracked object; where the median and the largest reach "
                 f"{CLAIM_PAUSE_MS:g} ms, interpolated log-log between the measured tracked-object counts."
                 + _across_points(study),
                 ["profile", *(f"{fmt_heap(h)} objects" for h in study.heaps), f"median reaches {CLAIM_PAUSE_MS:g} ms",
                  f"largest reaches {CLAIM_PAUSE_MS:g} ms"], rows, set(range(1, 1 + len(study.heaps))))


def mitigation_summary(study: Study) -> Table:
    rows = []
    r = study.ratios
    for b, m in study.groups:
        g = r[(r["backend"] == b) & (r["gc_mode"] == m)]
        if not len(g):
            continue
        cells = [b, m, str(len(g))]
        for metric in ("dead", "chain"):
            v = g[f"{metric}_ratio"].dropna()
            cells += [fmt_ratio(v.median()) if len(v) else "-",
                      f"{fmt_ratio(v.min())} .. {fmt_ratio(v.max())}" if len(v) else "-"]
        better = int((g["chain_hi"] < 1).sum())
        worse = int((g["chain_lo"] > 1).sum())
        cells.append(f"{better} faster, {worse} slower, {len(g) - better - worse} no clear change")
        rows.append(cells)
    return Table("mitigations", "What each GC setting buys, over the grid",
                 "Ratios against the same runtime's default at the same grid point, so measured on the same machine "
                 "(below 1: the setting is better); "
                 "median and range over the grid points. 'faster/slower' counts points whose 95% CI of the chain "
                 "latency ratio lies entirely below/above 1.",
                 ["backend", "gc mode", "points", "dead time ratio (median)", "range", "chain latency ratio (median)",
                  "range", "chain latency"], rows, {2, 3, 4, 5, 6})


def mitigation_tables(study: Study) -> list[Table]:
    idx = {(r.heap_objects, r.profile, r.backend, r.gc_mode): r for r in study.ratios.itertuples()}
    groups = [g for g in study.groups if any((k[2], k[3]) == g for k in idx)]
    tables = []
    for metric, what in (("dead", "GC dead time per chain"), ("chain", "mean chain latency")):
        def text(c, metric=metric) -> str:
            r = idx.get((c.heap_objects, c.profile, c.backend, c.gc_mode))
            if r is None:
                return "-"
            v = getattr(r, f"{metric}_ratio")
            if v != v:
                return "default has none"
            return f"{fmt_ratio(v)} {fmt_ci(getattr(r, f'{metric}_lo'), getattr(r, f'{metric}_hi'))}"

        tables += _pivots(study, f"ratio-{metric}", f"Ratio of {what} to the default, 95% CI",
                          f"{what[0].upper()}{what[1:]} in the mode / in the same runtime's default mode at the "
                          "same point.",
                          groups, text)
    return tables


def hits_tables(study: Study) -> list[Table]:
    def text(r) -> str:
        lo, hi = wilson(int(r.chains_hit), int(r.chains))
        return (f"{fmt_pct(r.chains_hit_share)} [{fmt_pct(lo)}, {fmt_pct(hi)}] / "
                f"{fmt_pct(r.calls_delayed_share)} / {fmt_pct(r.calls_lost_claim_share)}")

    return _pivots(study, "hits", f"Chains that met a GC pause [95% CI] / calls delayed / calls that lost >= "
                   f"{CLAIM_PAUSE_MS:g} ms",
                   "Share of chains with at least one call overlapped by a server GC pause (Wilson 95% interval over "
                   f"chains), share of all calls overlapped at all, and share of all calls that lost at least "
                   f"{CLAIM_PAUSE_MS:g} ms to GC. The claim's arithmetic assumes 100% / 100% / 100%.",
                   study.groups, text)


def claim_arithmetic_table(study: Study) -> Table:
    """Per default runtime at its worst point: the claim's decomposition (50 delayed calls x 10 ms) next to the
    measured one (delayed calls per chain x GC loss per delayed call, given as a distribution), and the share of
    calls that lost >= 10 ms."""
    n = study.calls_per_chain
    c10 = f"{CLAIM_PAUSE_MS:g}"
    rows = [["the claim", "-", "-", "100%", "100%", str(n), f"{c10} / {c10} / {c10}", fmt_ms(study.claim_ms)]]
    for b, m in study.default_groups():
        w = study.worst_point(b, m)
        rows.append([f"{b}/{m}", study.point_label(w.heap_objects, w.profile), fmt_pct(w.chains_hit_share),
                     fmt_pct(w.calls_delayed_share), fmt_pct(w.calls_lost_claim_share),
                     f"{w.delayed_calls_per_chain:.3g}",
                     f"{fmt_ms(w.loss_per_delayed_call_p50_ms)} / {fmt_ms(w.loss_per_delayed_call_p99_ms)} / "
                     f"{fmt_ms(w.loss_per_delayed_call_max_ms)}", fmt_ms(w.dead_mean_ms)])
    return Table("arithmetic", "The claim's arithmetic against the measured one",
                 "Dead time per chain = delayed calls per chain x GC loss per delayed call; for each runtime in its "
                 "default setting at its worst grid point (largest mean dead time). 'Delayed' = overlapped by any "
                 f"GC event, however short; 'lost >= {c10} ms' is what the claim needs of every call.",
                 ["cell", "grid point", "chains hit", "calls delayed", f"calls lost >= {c10} ms",
                  "delayed calls / chain", "loss per delayed call p50 / p99 / max (ms)", "dead per chain (ms)"],
                 rows, {2, 3, 4, 5, 6, 7})


def control_table(study: Study) -> Table | None:
    ctl = study.cells[study.cells["backend"] == CONTROL_BACKEND]
    if not len(ctl):
        return None
    dflt = study.cells[study.cells[["backend", "gc_mode"]].apply(tuple, axis=1).isin(study.default_groups())
                       & (study.cells["gc_events"] > 0)]
    rows = []
    for r in ctl.itertuples():
        here = dflt[(dflt["heap_objects"] == r.heap_objects) & (dflt["profile"] == r.profile)]
        big = here.loc[here["pause_max_ms"].idxmax()] if len(here) else None
        rows.append([fmt_heap(r.heap_objects), r.profile, r.gc_mode, str(r.calls), fmt_ms(r.latency_p50_ms),
                     fmt_ms(r.latency_p99_ms), fmt_ms(r.latency_p999_ms), fmt_ms(r.latency_max_ms),
                     fmt_ms(r.chain_mean_ms),
                     f"{fmt_ms(big['pause_max_ms'])} ({big['backend']})" if big is not None else "-"])
    return Table("control", f"The no-GC control ({CONTROL_BACKEND}): call latency tail",
                 "Call latency (ms, client send to response) of a server without any GC, per grid point; the last "
                 "column is the largest GC pause any runtime reported at the same point, for scale.",
                 ["heap", "profile", "gc mode", "calls", "p50", "p99", "p99.9", "max", "chain mean",
                  "largest GC pause here"], rows, set(range(3, 10)))


def context_table(study: Study) -> Table:
    n = study.calls_per_chain
    rows = []
    for b, m in study.groups:
        w = study.worst_point(b, m)
        shares = [fmt_pct(w.dead_mean_ms / (w.chain_mean_ms + n * t * 1000)) for t in THINK_TIMES_S]
        rows.append([b, m, study.point_label(w.heap_objects, w.profile), fmt_ms(w.dead_mean_ms),
                     fmt_ms(w.chain_mean_ms), *shares])
    return Table("context", "GC dead time as a share of an agent chain's wall time",
                 f"At each cell's worst grid point: dead / (measured chain time + {n} x think time). The think "
                 f"times are an assumption (LLM response time per call), not a measurement.",
                 ["backend", "gc mode", "worst grid point", "dead/chain (ms)", "chain time (ms)",
                  *(f"think {t:g} s" for t in THINK_TIMES_S)], rows, set(range(3, 5 + len(THINK_TIMES_S))))


def spread_tables(study: Study) -> list[Table]:
    def text(r) -> str:
        d = r.rep_dead_spread
        dead = "-" if d != d else "inf" if math.isinf(d) else f"x{fmt_ratio(d)}"
        return f"x{fmt_ratio(r.rep_chain_spread)} / {dead}"

    return _pivots(study, "spread", "Spread between repetitions: chain latency / dead time",
                   "Max / min over the repetitions of a cell (each a fresh server process) of the mean chain latency "
                   "and of the mean dead time per chain; x1 = identical; 'inf': a repetition without any dead time; '-': "
                   "no dead time at all.",
                   study.groups, text)


def unmeasured_table(study: Study) -> Table:
    rows = []
    for meta in study.metas:
        for c in meta.get("cells", []):
            if c.get("status") != "ok":
                rows.append([meta.get("run_id", "?"), str(c.get("backend")), str(c.get("gc_mode")), str(c.get("rep")),
                             str(c.get("status")), str(c.get("reason", "") or "")])
    return Table("unmeasured", "Cells not measured", "Skipped (a runtime without that setting) or failed cells.",
                 ["point", "backend", "gc mode", "rep", "status", "reason"], rows, {3})


# ---------------------------------------------------------------------------------------------- facts


def _command(meta: dict) -> str:
    argv = meta.get("command") or []
    if not argv:
        return "?"
    prog = "python -m gcbench" if str(argv[0]).endswith("__main__.py") else Path(str(argv[0])).name
    return " ".join([prog, shlex.join(str(a) for a in argv[1:])]).strip()


def _utc(text) -> datetime | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def wall_time(study: Study) -> tuple[float, float, str, str, bool]:
    """(first start to last end, sum of the points' own durations, first start, last end, from file times).

    Points written before run.json recorded `finished_utc` fall back to the file's modification time."""
    starts, spans, ends, approx = [], [], [], False
    for meta in study.metas:
        t0 = _utc(meta.get("created_utc"))
        t1 = _utc(meta.get("finished_utc"))
        if t1 is None:
            p = study.folder / str(meta.get("run_id", "")) / "run.json"
            if p.is_file():
                t1 = datetime.fromtimestamp(int(p.stat().st_mtime), UTC).replace(tzinfo=None)
                approx = True
        if t0 is None or t1 is None:
            continue
        starts.append(t0)
        ends.append(t1)
        spans.append((t1 - t0).total_seconds())
    if not starts:
        return math.nan, math.nan, "?", "?", approx
    span = (max(ends) - min(starts)).total_seconds()
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return span, float(sum(spans)), min(starts).strftime(iso), max(ends).strftime(iso), approx


def facts(study: Study) -> list[tuple[str, str]]:
    m = study.manifest
    grid = m.get("grid", {})
    meta = study.metas[0]
    env = meta.get("environment", {})
    chain = meta.get("scenario", {}).get("chain", {})
    span, summed, first, last, approx = wall_time(study)
    versions: dict[str, str] = {}
    for mt in study.metas:
        versions.update(mt.get("environment", {}).get("backend_versions", {}))
    freq = env.get("cpu_frequency", {}) or {}
    mem = env.get("memory_total_bytes")
    loads = [mt.get("environment", {}).get("load_average_before", [math.nan])[0] for mt in study.metas]
    profiles = grid.get("profiles", {})
    prof_text = "; ".join(f"{p}: " + (", ".join(f"{k}={v}" for k, v in o.items()) or "the base [work]")
                          for p, o in profiles.items())
    work = grid.get("base", {}).get("work", {})
    modes = grid.get("gc_modes", {})
    total_points = (len(grid.get("heap_objects", [])) * len(profiles) * len(grid.get("agents", [1]))
                    * len(grid.get("rate_per_s", [0.0])))
    think = chain.get("think_ms", 0)
    return [
        ("sweep", f"{study.name} in {study.folder} (grid {m.get('grid_hash', '?')}, shard {m.get('shard', '?')})"),
        ("command", "; ".join(dict.fromkeys(_command(mt) for mt in study.metas))),  # more than one: resumed, merged
        ("sweep file", str(m.get("source", "?"))),
        ("date (UTC)", f"sweep created {m.get('created_utc', '?')}; points measured from {first} to {last}"),
        ("wall time", f"{fmt_duration(span)} from the first point's start to the last one's end "
                      f"({fmt_duration(summed)} measuring the points)" + (" (partly from file times)" if approx else "")),
        ("grid", f"{len(study.metas)} of {total_points or '?'} points measured: heap sizes "
                 f"{', '.join(fmt_heap(h) for h in grid.get('heap_objects', study.heaps))} objects x profiles "
                 f"{', '.join(profiles) or ', '.join(study.profiles)}; {grid.get('reps', '?')} repetition(s)"),
        *([("load axes", f"agents {', '.join(str(a) for a in grid.get('agents', []))} x offered rate "
                         f"{', '.join(f'{r:g}' for r in grid.get('rate_per_s', []))} chains/s (0: closed loop)"
                         + (f"; sections 1 to 6 read the points at {study.claim_point}, section 7 every rate"
                            if study.claim_point else ""))]
          if len(grid.get("agents", [])) > 1 or len(grid.get("rate_per_s", [])) > 1 else []),
        ("GC settings", "; ".join(f"{b}: {', '.join(modes.get(b, [DEFAULT_MODE]))}" for b in grid.get("backends", []))),
        ("profiles", prof_text or "-"),
        ("base work", ", ".join(f"{k}={v}" for k, v in work.items()) or "-"),
        ("chains", f"{chain.get('chains', '?')} chains x {chain.get('calls', study.calls_per_chain)} calls per cell, "
                   f"{chain.get('agents', 1)} agent(s), {chain.get('warmup_calls', '?')} warm-up calls, think time "
                   f"{think} ms"),
        ("machine", f"{env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} CPUs"
                    + (f", {mem / 2**30:.1f} GiB RAM" if isinstance(mem, int) else "")) if not study.multi_machine else
        ("machines", f"{len(study.machines)} machines, each grid point measured whole on one: " + "; ".join(
            f"{m}: {', '.join(p for p, mm in study.point_machines.items() if mm == m)}" for m in study.machines)),
        ("system", f"{env.get('platform', '?')}, host {env.get('hostname', '?')}, CPU governor "
                   f"{freq.get('governor', '?')}; load average before each point "
                   f"{min(loads):.2f} .. {max(loads):.2f}"),
        ("runtimes", ", ".join(f"{b} ({v})" for b, v in versions.items()) or "-"),
        ("harness", f"gcbench {env.get('gcbench_version', '?')} (commit {env.get('gcbench_git_commit') or '?'}), "
                    f"Python {env.get('python_version', '?')}"),
        ("the claim", f"a {CLAIM_PAUSE_MS:g} ms GC pause per call adds up to {CLAIM_PAUSE_MS:g} ms x "
                      f"{study.calls_per_chain} calls = {fmt_ms(study.claim_ms)} ms of dead time per chain"),
    ]


# ---------------------------------------------------------------------------------------------- load


def _rate(v: float) -> str:
    return f"{v:g}"


def _calls_per_s(v: float) -> str:
    return "-" if v != v else f"{v:,.0f}"


def load_hold_sentences(study: Study) -> list[str]:
    """Per (backend, gc mode): the highest offered rate whose corrected p99 holds the target, in words."""
    out = []
    target = f"{fmt_ms(study.p99_target_ms)} ms"
    for r in study.load_hold.itertuples():
        who = f"{r.backend}/{r.gc_mode}"
        unsure = (f" The 95% CI of its p99 at {_rate(r.max_rate_per_s)} chains/s reaches "
                  f"{fmt_ms(r.max_rate_p99_hi_ms)} ms: that hold is not certain."
                  if r.max_rate_p99_hi_ms > study.p99_target_ms else "")
        if r.status == "holds-all":
            out.append(f"{who}: p99 within {target} at every rate measured, up to {_rate(r.max_rate_per_s)} "
                       f"chains/s ({fmt_ms(r.max_rate_p99_ms)} ms there): its limit is above this grid." + unsure)
        elif r.status == "holds":
            out.append(f"{who}: holds {target} up to {_rate(r.max_rate_per_s)} chains/s (p99 "
                       f"{fmt_ms(r.max_rate_p99_ms)} ms); at {_rate(r.fails_at_per_s)} chains/s its p99 is "
                       f"{fmt_ms(r.fails_at_p99_ms)} ms." + unsure)
        elif r.status == "fails-lowest":
            out.append(f"{who}: above {target} already at the lowest rate measured, {_rate(r.fails_at_per_s)} "
                       f"chains/s (p99 {fmt_ms(r.fails_at_p99_ms)} ms).")
    return out


def load_hold_table(study: Study) -> Table:
    rows = []
    for r in study.load_hold.itertuples():
        rows.append([r.backend, r.gc_mode, r.status,
                     _rate(r.max_rate_per_s) if r.max_rate_per_s == r.max_rate_per_s else "-",
                     fmt_ms(r.max_rate_p99_ms),
                     _rate(r.fails_at_per_s) if r.fails_at_per_s == r.fails_at_per_s else "-",
                     fmt_ms(r.fails_at_p99_ms)])
    return Table("load-hold", f"Highest offered rate holding p99 <= {fmt_ms(study.p99_target_ms)} ms",
                 f"Corrected p99 call latency (from the intended start). The highest rate counted is the last one of "
                 f"the rates measured in ascending order before the first that fails (a higher rate that passes "
                 f"again is not counted). Target from {study.p99_target_source}.",
                 ["backend", "gc mode", "status", "holds up to (chains/s)", "p99 there (ms)", "fails at (chains/s)",
                  "p99 there (ms)"], rows, {3, 4, 5, 6})


def load_table_doc(study: Study) -> Table:
    rows = []
    for r in study.load.itertuples():
        rows.append([r.backend, r.gc_mode, _rate(r.rate_per_s), _calls_per_s(r.offered_calls_per_s),
                     _calls_per_s(r.achieved_calls_per_s), fmt_ms(r.corrected_p50_ms), fmt_ms(r.corrected_p90_ms),
                     f"{fmt_ms(r.corrected_p99_ms)} {fmt_ci(r.corrected_p99_lo_ms, r.corrected_p99_hi_ms, fmt_ms)}",
                     fmt_ms(r.corrected_p999_ms), fmt_ms(r.raw_p50_ms), fmt_ms(r.raw_p99_ms), fmt_ms(r.raw_p999_ms),
                     fmt_ms(r.chain_p50_ms), fmt_ms(r.chain_p99_ms), str(r.errors)])
    return Table("load", "Call and chain latency by offered rate (ms)",
                 "Corrected: from when each call was due (a chain's first call: its slot t0 + i / rate; a later one: "
                 "the previous reply plus think time); raw: from its send. Chain: first due call to last reply. "
                 "Achieved: calls answered per second over each repetition's window (first due call to last reply), "
                 "which an unsaturated server puts slightly above the offered rate (the window is (chains - 1) / rate "
                 "plus one chain). p99 with its 95% bootstrap CI (repetitions, then calls, resampled; none with one "
                 "repetition).",
                 ["backend", "gc mode", "rate (chains/s)", "offered calls/s", "achieved calls/s", "p50", "p90",
                  "p99 (95% CI)", "p99.9", "raw p50", "raw p99", "raw p99.9", "chain p50", "chain p99", "errors"],
                 rows, set(range(2, 15)))


def load_items(study: Study) -> list:
    return [
        "Open loop, wrk2 style: at each offered rate a new chain is due every 1/rate s whatever the server does, "
        "so a slow server makes chains queue instead of lowering the load. Latency is measured from when each "
        "call was due (corrected for coordinated omission) and, for comparison, from when it was sent (raw).",
        Bullets(load_hold_sentences(study)), figure(study, "latency_vs_load"), load_hold_table(study),
        load_table_doc(study)]


# ---------------------------------------------------------------------------------------------- sections


def figure(study: Study, name: str) -> Figure:
    from gcbench.report.study_figures import TITLES

    return Figure.of(study, "gcbench.report.study_figures", name, TITLES[name])


def sections(study: Study) -> list[Section]:
    """The document's sections in reading order."""
    claim = study.claim_ms
    n = study.calls_per_chain
    intro, points = headline_points(study)
    out = [Section("Headline", [intro, Bullets(points, style="headline"), headline_table(study)], "headline")]

    out.append(Section(number="1", key="dead-time", title=f"GC dead time per {n}-call chain against the claim's "
                       f"{fmt_ms(claim)} ms", items=[
        f"GC dead time is the part of a chain's calls that the server spent inside a GC pause (each nanosecond "
        f"counted once). The claim puts it at {CLAIM_PAUSE_MS:g} ms x {n} calls = {fmt_ms(claim)} ms. The "
        f"counterfactual GC cost is what the chain would have saved with the GC off: a different measurement of "
        f"the same thing, which also counts the GC's indirect costs (allocation slow paths, caches).",
        figure(study, "dead_time"), *dead_tables(study), Details(detail_table(study))]))

    cross_text = full_gc_sentence(study)
    out.append(Section(number="2", key="pause-growth", title="How pause size grows with the live heap", items=[
        "Each runtime in its default setting: the largest and the 99th-percentile GC pause at each live-heap size."
        + _across_points(study),
        cross_text, figure(study, "pause_growth"), *pause_tables(study), phase_table(study), full_gc_table(study)]))

    items: list = []
    if len(study.ratios):
        items = ["Each setting against the same runtime's default at the same grid point. A ratio below 1 is a "
                 "gain. The dead-time ratio says how much GC pause time the setting removes from the chains; the "
                 "chain-latency ratio says what the user of the chain sees, GC's indirect costs included.",
                 mitigation_summary(study), figure(study, "mitigations"), *mitigation_tables(study)]
    else:
        items = ["No runtime was measured in a setting besides its default: nothing to compare."]
    out.append(Section(number="3", key="mitigations", title="What each mitigation buys", items=items))

    out.append(Section(number="4", key="hits", title="How often a chain meets a pause", items=[
        f"The claim's arithmetic assumes every one of the {n} calls meets a {CLAIM_PAUSE_MS:g} ms pause. In a "
        f"runtime, pauses come when the allocation since the last collection crosses a threshold, not per call: "
        f"the tables give how many chains and calls actually met one.",
        *hits_sentences(study), figure(study, "chains_hit"), claim_arithmetic_table(study), *hits_tables(study)]))

    ctl = control_table(study)
    if ctl is not None:
        c = study.cells[study.cells["backend"] == CONTROL_BACKEND]
        items = [f"{CONTROL_BACKEND} has no garbage collector: its latency tail is the transport, the harness and "
                 f"the machine. Its worst call took {fmt_ms(c['latency_max_ms'].max())} ms and its p99.9 was at "
                 f"most {fmt_ms(c['latency_p999_ms'].max())} ms over the grid; latency of that size in a GC runtime "
                 f"is not evidence of GC.", ctl]
    else:
        items = [f"The sweep has no no-GC control backend ({CONTROL_BACKEND}): GC cannot be separated from the "
                 f"rest of the latency tail here."]
    out.append(Section(number="5", key="control", title="The no-GC control", items=items))

    out.append(Section(number="6", key="context", title="GC in an agent's wall time", items=[
        f"An agent waits for its LLM between tool calls. Assumed think time per call: "
        f"{', '.join(f'{t:g} s' for t in THINK_TIMES_S)} (an assumption: a short completion to a long reasoning "
        f"step). Share of wall time = measured dead time / (measured chain time + {n} x think time).",
        context_table(study)]))

    if len(study.load):
        out.append(Section(number="7", key="load", title="Latency under load", items=load_items(study)))
    n = 8 if len(study.load) else 7
    for key, title, items in (("cpython", "CPython versions", cpython_items(study)),
                              ("jvm", "The JVM's collectors", jvm_items(study)),
                              ("memory", "Memory: GC dead time against peak RSS", memory_items(study)),
                              ("what-to-do", "What to do: a Python server owner", what_to_do_items(study))):
        out.append(Section(number=str(n), key=key, title=title, items=items))
        n += 1
    companions = companion_sections(study, n)
    out += companions
    if study.real:
        from gcbench.report.study_real import section as real_section

        out.append(real_section(study.real, str(n + len(companions))))

    out.append(Section(key="variation", title="What varies between repetitions", items=[*_variation_text(study),
                                                                          *spread_tables(study)]))
    if study.rerun is not None:
        text, table = reproducibility(study, study.rerun)
        out.append(Section("Reproducibility: the same command run again", [text, table], "reproducibility"))
    items = [unmeasured_table(study)] if unmeasured_table(study).rows else []
    out.append(Section(key="setup", title="Machine, command and grid", items=[Facts(facts(study)), *items]))
    return out


def study_document(study: Study) -> Document:
    return Document(f"gcbench study: {study.name}", sections(study), toc=True,
                    footer=f"Made by gcbench from sweep folder {study.folder}. Times are CLOCK_MONOTONIC measurements; "
                           "GC dead time counts each nanosecond of server GC pause inside a call once.")


def _variation_text(study: Study) -> list[str]:
    c = study.cells
    chain = c["rep_chain_spread"].dropna()
    if not len(chain):
        return ["Every cell was measured once (reps = 1): the spread between repetitions is unknown. Run the "
                "sweep with reps >= 2 to see which ratios are stable."]
    dead = c["rep_dead_spread"].dropna()
    dead = dead[c.loc[dead.index, "dead_mean_ms"] > 0]
    worst = c.loc[chain.idxmax()]
    text = (f"Mean chain latency differs between repetitions of a cell by x{fmt_ratio(chain.median())} "
            f"(median over cells), at most x{fmt_ratio(chain.max())} ({worst['backend']}/{worst['gc_mode']} at "
            f"{study.point_label(worst.heap_objects, worst.profile)}); "
            f"{int((chain > STABLE_SPREAD).sum())} of {len(chain)} cells vary by more than "
            f"{(STABLE_SPREAD - 1) * 100:.0f}%.")
    out = [text]
    if len(dead):
        finite = dead[np.isfinite(dead)]
        zero = int((~np.isfinite(dead)).sum())
        out.append(f"Mean dead time per chain varies more: median x{fmt_ratio(finite.median()) if len(finite) else '-'}"
                   f", {int((dead > STABLE_SPREAD).sum())} of {len(dead)} cells with dead time beyond "
                   f"{(STABLE_SPREAD - 1) * 100:.0f}%" + (f", {zero} with a repetition that had none" if zero else "")
                   + ". Dead time is made of few pauses per chain, so a cell's total moves with whether one large "
                   "collection falls inside the measured chains; ratios built on it are less stable than "
                   "chain-latency ratios.")
    return out


def rerun_verdict(c) -> str:
    """One sentence: the share of ratios that agree between two runs (study.rerun_comparison) against the target."""
    share = float(c["agree"].mean())
    return (f"{int(c['agree'].sum())} of {len(c)} ratios of a setting to its runtime's default at the same point "
            f"({fmt_pct(share)}) agree within {(RERUN_TOLERANCE - 1) * 100:.0f}% between the two runs (the larger at "
            f"most x{fmt_ratio(RERUN_TOLERANCE)} the smaller, or both zero): this "
            f"{'meets' if share >= RERUN_TARGET else 'does not meet'} the target of {fmt_pct(RERUN_TARGET)}")


def reproducibility(a: Study, b: Study) -> tuple[str, Table]:
    """The setting-vs-default ratios of two runs of the same sweep: the share that agree within 20% against the
    85% target, and every one that did not, with why (study.rerun_comparison)."""
    c = rerun_comparison(a, b)
    tol = f"{(RERUN_TOLERANCE - 1) * 100:.0f}%"
    only_one = len(set(zip(a.ratios["point"], a.ratios["backend"], a.ratios["gc_mode"], strict=True))
                   ^ set(zip(b.ratios["point"], b.ratios["backend"], b.ratios["gc_mode"], strict=True)))
    if not len(c):
        return (f"{b.folder}: no setting-vs-default ratio in common with this sweep.",
                Table("reproducibility", "Ratios that did not agree between the two runs", "", [], []))
    per_metric = []
    for metric, label in RERUN_METRICS:
        m = c[c["metric"] == metric]
        if len(m):
            moved = m["change"][np.isfinite(m["change"]) & (m["change"] > 0)]
            med = (f", median change x{fmt_ratio(float(np.exp(np.abs(np.log(moved))).median()))}" if len(moved) else "")
            per_metric.append(f"{int(m['agree'].sum())} of {len(m)} {label} ratios ({fmt_pct(float(m['agree'].mean()))}"
                              f"{med})")
    bad = c[~c["agree"]]
    reasons = bad["reason"].str.split(":").str[0].value_counts()
    why = ("; ".join(f"{n} {r}" for r, n in reasons.items()))
    text = (f"{b.folder} measured the same grid again. {rerun_verdict(c)}. By metric: " + "; ".join(per_metric) + "."
            + (f" The {len(bad)} that did not agree: {why}; the table lists each with its reason." if len(bad) else
               " Every ratio agreed.")
            + (f" {only_one} ratio(s) exist in one run only (a point or cell not measured in both) and are not "
               "counted." if only_one else "")
            + " Dead-time ratios rest on a few pauses per chain (one full collection more or less inside the "
            "measured chains moves them), so they vary more than chain-latency ratios.")
    # defined in one run only first, then the largest change; a change from 0 (no log) last
    size = np.abs(np.log(bad["change"].where(bad["change"] > 0))).fillna(-1.0)
    size[bad["first"].isna() | bad["second"].isna()] = math.inf
    order = bad.assign(size=size).sort_values("size", ascending=False, kind="stable")
    rows = [[r.label, a.point_label(r.heap_objects, r.profile), f"{r.backend}/{r.gc_mode}",
             f"{fmt_ratio(r.first)} {fmt_ci(r.first_lo, r.first_hi)}" if r.first == r.first else "-",
             f"{fmt_ratio(r.second)} {fmt_ci(r.second_lo, r.second_hi)}" if r.second == r.second else "-",
             f"x{fmt_ratio(r.change)}" if r.change == r.change else "-", r.reason] for r in order.itertuples()]
    table = Table("reproducibility", "Ratios that did not agree between the two runs",
                  f"Ratio of a setting to its runtime's default at the same grid point in each run, with its 95% "
                  f"bootstrap CI; change = re-run / first run. Agreeing = within {tol}; target: "
                  f"{fmt_pct(RERUN_TARGET)} of all ratios.",
                  ["ratio of", "point", "setting", "first run", "re-run", "change", "why"], rows, {3, 4, 5})
    return text, table


# ---------------------------------------------------------------------------------------------- second edition


def _dead(r) -> str:
    """Mean GC dead time per chain with its 95% CI, of a cell row (namedtuple or Series)."""
    if r.dead_mean_ms == 0 and r.dead_hi_ms == 0:
        return "0"  # no dead time in any chain: no interval to give
    ci = fmt_ci(r.dead_lo_ms, r.dead_hi_ms, fmt_ms)
    return f"{fmt_ms(r.dead_mean_ms)} {ci}".strip()


def _lost_claim(c) -> tuple[float, float]:
    """Share of all calls (of the cells c) that lost >= 10 ms to GC, and the largest share at one cell."""
    calls = c["calls"].astype(float)
    lost = (c["calls_lost_claim_share"] * calls).sum()
    return (float(lost / calls.sum()) if calls.sum() else math.nan,
            float(c["calls_lost_claim_share"].max()) if len(c) else math.nan)


def cpython_backends(study: Study) -> list[str]:
    return [b for b in study.backends if is_cpython(b)]


def crossing_sentence(study: Study) -> str:
    """Per CPython backend (version): where a full collection's median pause reaches 10 ms."""
    parts = [f"{b}: {c.text}" for b, (c, _) in study.crossings_by_backend.items()]
    if not parts:
        return ""
    return (f"Where a CPython full collection (median pause) reaches {CLAIM_PAUSE_MS:g} ms, on the tracked objects "
            f"the probe counted: " + "; ".join(parts) + ".")


def cpython_table(study: Study) -> Table:
    rows = []
    for b in cpython_backends(study):
        c = study.group_cells(b, DEFAULT_MODE)
        if not len(c):
            continue
        w = study.worst_point(b, DEFAULT_MODE)
        big = c.loc[c["pause_max_ms"].idxmax()]
        share, top = _lost_claim(c)
        cross = study.crossings_by_backend.get(b)
        rows.append([b, str(len(c)), fmt_ms(float(c["dead_mean_ms"].median())),
                     f"{_dead(w)} ({study.point_label(w.heap_objects, w.profile)})" if w.dead_mean_ms > 0 else "0",
                     fmt_pct(share), fmt_pct(top),
                     f"{fmt_ms(big['pause_max_ms'])} ({study.point_label(big.heap_objects, big.profile)})",
                     cross[0].text if cross else "-", cross[1].text if cross else "-"])
    return Table("cpython-versions", "CPython versions in their default GC setting",
                 f"GC dead time per {study.calls_per_chain}-call chain (ms): typical = median over the grid points "
                 f"of the mean per chain; worst = the largest mean at one point, with its 95% bootstrap CI (chains and "
                 f"repetitions resampled). Calls lost >= {CLAIM_PAUSE_MS:g} ms: over every call of the grid, and the "
                 f"largest share at one point. The last two columns: the tracked objects (gc.get_objects(), the "
                 f"server's own heap included) at which a full collection's median and largest pause reach "
                 f"{CLAIM_PAUSE_MS:g} ms, interpolated log-log between measured points." + _across_points(study),
                 ["backend", "points", "typical dead/chain", "worst dead/chain [95% CI]",
                  f"calls lost >= {CLAIM_PAUSE_MS:g} ms", "largest share at a point", "largest pause (ms)",
                  f"median full collection reaches {CLAIM_PAUSE_MS:g} ms", f"largest reaches {CLAIM_PAUSE_MS:g} ms"],
                 rows, {1, 2, 3, 4, 5, 6})


def cpython_items(study: Study) -> list:
    bs = cpython_backends(study)
    if not bs:
        return ["No CPython server was measured in this sweep."]
    rows = [(b, study.worst_point(b, DEFAULT_MODE)) for b in bs if len(study.group_cells(b, DEFAULT_MODE))]
    text = ("Each CPython server in its default setting over the grid. Worst mean dead time per chain: "
            + "; ".join(f"{b} {_dead(w)} ms at {study.point_label(w.heap_objects, w.profile)}" for b, w in rows)
            + ".") if rows else "No CPython server was measured in its default setting."
    cross = crossing_sentence(study)
    return [text, *([cross] if cross else []), cpython_table(study)]


def jvm_items(study: Study) -> list:
    from gcbench.report.study import jvm_phases

    modes = [m for b, m in study.groups if b == "java"]
    if not modes:
        return ["No JVM server (java) was measured in this sweep."]
    rows = []
    for m in modes:
        c = study.group_cells("java", m)
        w = study.worst_point("java", m)
        rows.append([m, str(len(c)), fmt_ms(float(c["dead_mean_ms"].median())),
                     f"{_dead(w)} ({study.point_label(w.heap_objects, w.profile)})" if w.dead_mean_ms > 0 else "0",
                     fmt_ms(float(c["pause_max_ms"].max())) if c["gc_events"].sum() else "no pause",
                     str(int(c["gc_events"].sum()))])
    summary = Table("jvm-collectors", "The JVM's collectors: GC dead time per chain",
                    f"Per collector (gc mode; default = G1, the JVM's ergonomic choice here), over the grid points: "
                    f"typical = median of the mean dead time per {study.calls_per_chain}-call chain, worst = the "
                    f"largest mean at one point with its 95% bootstrap CI." + _across_points(study),
                    ["collector", "points", "typical dead/chain (ms)", "worst dead/chain [95% CI]",
                     "largest pause (ms)", "pauses"], rows, {1, 2, 3, 4, 5})
    ph = jvm_phases(study)
    phase_rows = [[r.gc_mode, str(r.kind), str(int(r.count)), fmt_ms(r.p50_ms), fmt_ms(r.max_ms)]
                  for r in ph.itertuples()]
    phases = Table("jvm-phases", "The JVM's pauses per stop-the-world phase",
                   "Every measured pause of the java server over the grid, by collector and phase (the event's kind "
                   "as the JVM's log names it; ZGC's stalls are allocation or relocation stalls of the application, "
                   "reported by the JVM): count, median and largest (ms).",
                   ["collector", "phase", "pauses", "median (ms)", "largest (ms)"], phase_rows, {2, 3, 4})
    text = "The JVM's collectors over the grid: " + "; ".join(
        f"{r[0]}: worst mean dead time per chain (ms) {r[3]}, " + (f"largest pause {r[4]} ms" if r[5] != "0" else "no pause")
        for r in rows) + "."
    if len(ph):
        top = ph.loc[ph.groupby("gc_mode", sort=False)["max_ms"].idxmax()]
        text += " Largest pause per collector by phase: " + "; ".join(
            f"{r.gc_mode} {r.kind} {fmt_ms(r.max_ms)} ms" for r in top.itertuples()) + "."
    return [text, summary, phases]


def memory_rows(study: Study) -> list[dict]:
    """Per (backend, gc mode): dead time per chain and peak RSS, median over the grid points, and at the point
    where the backend's default lost the most (its worst point), with the ratios to the default there."""
    out = []
    for b, m in study.groups:
        c = study.group_cells(b, m)
        if not len(c) or "peak_rss_mib" not in c or c["peak_rss_mib"].isna().all():
            continue
        d = study.group_cells(b, DEFAULT_MODE)
        w = study.worst_point(b, DEFAULT_MODE) if len(d) else None
        here = study.cell(w.heap_objects, w.profile, b, m) if w is not None else None
        out.append({"backend": b, "gc_mode": m, "dead_median_ms": float(c["dead_mean_ms"].median()),
                    "rss_median_mib": float(c["peak_rss_mib"].median()),
                    "rss_vs_default_median": float(c["peak_rss_vs_default"].median()),
                    "point": study.point_label(w.heap_objects, w.profile) if w is not None else "-",
                    "here": here, "default": (study.cell(w.heap_objects, w.profile, b, DEFAULT_MODE)
                                              if w is not None else None)})
    return out


def memory_table_doc(study: Study) -> Table:
    rows = []
    for r in memory_rows(study):
        h, d = r["here"], r["default"]
        rows.append([r["backend"], r["gc_mode"], fmt_ms(r["dead_median_ms"]), fmt_mib(r["rss_median_mib"]),
                     f"x{fmt_ratio(r['rss_vs_default_median'])}", r["point"],
                     _dead(h) if h is not None else "-", fmt_mib(h.peak_rss_mib) if h is not None else "-",
                     f"x{fmt_ratio(h.peak_rss_vs_default)}" if h is not None else "-",
                     f"x{fmt_ratio(h.dead_mean_ms / d.dead_mean_ms)}" if h is not None and d is not None
                     and d.dead_mean_ms > 0 else "-"])
    return Table("memory", "Pauses against memory: GC dead time per chain and peak RSS per setting",
                 "Peak RSS: the server's process tree over its whole life (start-up, warm-up, measured window, "
                 "shutdown: what a deployment provisions), mean over repetitions (gcbench.memory). Medians over the "
                 "grid points, then at the point where the runtime's default lost the most GC dead time per chain "
                 "(its worst point): dead time with its 95% CI, peak RSS, and both against the same runtime's "
                 "default at that point." + _across_points(study),
                 ["backend", "gc mode", "dead/chain median (ms)", "peak RSS median (MiB)", "RSS vs default (median)",
                  "default's worst point", "dead/chain there [95% CI]", "peak RSS there (MiB)", "RSS vs default",
                  "dead vs default"], rows, {2, 3, 4, 6, 7, 8, 9})


def memory_items(study: Study) -> list:
    rows = memory_rows(study)
    if not rows:
        return ["No cell of this sweep recorded its memory (peak RSS): the pause-vs-memory trade-off cannot be "
                "read from it."]
    costly = [r for r in rows if r["gc_mode"] != DEFAULT_MODE and r["rss_vs_default_median"] == r["rss_vs_default_median"]]
    costly.sort(key=lambda r: -r["rss_vs_default_median"])
    text = ("What a setting saves in GC dead time it may pay in memory. Peak RSS against the same runtime's "
            "default (median over the grid points): " + "; ".join(
                f"{r['backend']}/{r['gc_mode']} x{fmt_ratio(r['rss_vs_default_median'])}" for r in costly) + ".")
    items = [text]
    if any(r["backend"].split("@")[0] == "java" and r["gc_mode"] == "zgc" for r in rows):
        items.append(ZGC_RSS_NOTE)
    return [*items, memory_table_doc(study)]


# measured once on this machine (OpenJDK 17, a 1 GiB heap pre-touched with -XX:+AlwaysPreTouch, 400 MiB live):
# ZGC Rss 1,523,456 kB (Pss 520,287 kB), G1 Rss 1,132,276 kB (Pss 1,129,395 kB), from /proc/PID/smaps_rollup
ZGC_RSS_NOTE = ("java/zgc's peak RSS overstates its footprint: JDK 17's ZGC maps its heap at three virtual "
                "addresses (its coloured pointers) and RSS counts a page once for each view it was touched "
                "through. Measured once here on the same 1 GiB pre-touched heap: RSS 1.45 GiB under ZGC against "
                "1.08 GiB under G1 (PSS, which divides shared pages by their mappings, 0.50 GiB under ZGC). Read "
                "its RSS ratio as an upper bound, up to 3x the real cost.")


def what_to_do_rows(study: Study) -> list[dict]:
    """Per CPython backend and non-default setting, measured cells only: at the default's worst point, the dead
    time per chain the setting leaves (95% CI) against the default's, the mean chain-latency ratio to the default
    (95% CI), and the peak RSS it costs (MiB and the ratio); the median dead-time ratio over the grid."""
    out = []
    r = study.ratios
    for b in cpython_backends(study):
        if not len(study.group_cells(b, DEFAULT_MODE)):
            continue
        w = study.worst_point(b, DEFAULT_MODE)
        d = study.cell(w.heap_objects, w.profile, b, DEFAULT_MODE)
        for bb, m in study.groups:
            if bb != b or m == DEFAULT_MODE:
                continue
            x = study.cell(w.heap_objects, w.profile, b, m)
            if x is None:
                continue
            g = r[(r["backend"] == b) & (r["gc_mode"] == m)]
            at = g[g["point"] == w.point]
            out.append({"backend": b, "gc_mode": m, "point": study.point_label(w.heap_objects, w.profile),
                        "default": d, "cell": x, "saved_ms": d.dead_mean_ms - x.dead_mean_ms,
                        "chain_ratio": at["chain_ratio"].iloc[0] if len(at) else math.nan,
                        "chain_lo": at["chain_lo"].iloc[0] if len(at) else math.nan,
                        "chain_hi": at["chain_hi"].iloc[0] if len(at) else math.nan,
                        "dead_ratio_median": float(g["dead_ratio"].median()) if len(g) else math.nan,
                        "rss_mib": x.peak_rss_mib - d.peak_rss_mib, "rss_ratio": x.peak_rss_vs_default})
    return out


def what_to_do_table(study: Study) -> Table:
    rows = []
    for r in what_to_do_rows(study):
        d, x = r["default"], r["cell"]
        rows.append([r["backend"], r["gc_mode"], r["point"], f"{_dead(d)} -> {_dead(x)}", fmt_ms(r["saved_ms"]),
                     f"x{fmt_ratio(r['dead_ratio_median'])}",
                     f"x{fmt_ratio(r['chain_ratio'])} {fmt_ci(r['chain_lo'], r['chain_hi'])}".strip(),
                     f"{fmt_mib(d.peak_rss_mib)} -> {fmt_mib(x.peak_rss_mib)}",
                     f"{signed(r['rss_mib'], fmt_mib)} (x{fmt_ratio(r['rss_ratio'])})"])
    return Table("what-to-do", "What to do: a Python server owner's settings, what they buy and what they cost",
                 f"Measured cells only, each setting against the same server's default at the point where the "
                 f"default lost the most GC dead time per {study.calls_per_chain}-call chain: the dead time per "
                 f"chain (default -> setting, ms, 95% bootstrap CIs) and the saving; the median dead-time ratio over "
                 f"every grid point; the mean chain-latency ratio there (95% CI: what the user sees, GC's indirect "
                 f"costs included); and the peak RSS of the server's process tree (MiB) it costs.",
                 ["server", "setting", "at", "dead/chain (ms)", "saved (ms)", "dead ratio (median)",
                  "chain latency ratio", "peak RSS (MiB)", "RSS cost (MiB)"], rows, {3, 4, 5, 6, 7, 8})


def what_to_do_items(study: Study) -> list:
    rows = what_to_do_rows(study)
    if not rows:
        return ["No CPython server was measured in a setting besides its default: nothing to recommend from "
                "measurements."]
    out = []
    for b in dict.fromkeys(r["backend"] for r in rows):
        mine = [r for r in rows if r["backend"] == b]
        best = max(mine, key=lambda r: r["saved_ms"])
        on = [r for r in mine if r["gc_mode"] != "disabled"]
        cheap = max(on, key=lambda r: r["saved_ms"]) if on else None
        s = (f"{b} (at {best['point']}): {best['gc_mode']} saves the most, {fmt_ms(best['saved_ms'])} ms of "
             f"{fmt_ms(best['default'].dead_mean_ms)} ms dead time per chain, for "
             f"{signed(best['rss_mib'], fmt_mib)} MiB of peak RSS (x{fmt_ratio(best['rss_ratio'])})")
        if cheap is not None and cheap is not best:
            s += (f"; with the GC kept on, {cheap['gc_mode']} saves {fmt_ms(cheap['saved_ms'])} ms for "
                  f"{signed(cheap['rss_mib'], fmt_mib)} MiB (x{fmt_ratio(cheap['rss_ratio'])})")
        out.append(s + ".")
    return [Bullets(out), what_to_do_table(study)]


# ---------------------------------------------------------------------------------------------- companions


def _companion_groups(c) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(c["backend"], c["gc_mode"], strict=True)))


def agents_table(study: Study) -> Table:
    from gcbench.report.study import agents_cells

    c = agents_cells(study)
    rows = []
    for b, m in _companion_groups(c):
        for r in c[(c["backend"] == b) & (c["gc_mode"] == m)].sort_values("agents").itertuples():
            amp = f"x{fmt_ratio(r.amplification)}" if r.amplification == r.amplification else "- (no GC)"
            rows.append([b, m, str(r.agents), _dead(r), fmt_ms(r.latency_p99_ms), amp,
                         fmt_ratio(r.calls_delayed_mean) if r.calls_delayed_mean == r.calls_delayed_mean else "-",
                         str(int(r.gc_events)), fmt_ms(r.pause_max_ms) if r.gc_events else "-"])
    return Table("agents", "Many agents: GC dead time, tail latency and amplification per agents count",
                 "Per runtime and setting and the number of agents calling the server at once (think time 0): mean "
                 "GC dead time per chain with its 95% bootstrap CI; p99 call latency; GC amplification = dead time "
                 "summed over every call / the server's own GC time in the measured window (analysis.amplification: "
                 "how many calls one nanosecond of GC delays; at most 1 with one agent, up to k with k); calls "
                 "delayed per pause (mean); pauses and the largest.",
                 ["backend", "gc mode", "agents", "dead/chain (ms) [95% CI]", "p99 call (ms)", "amplification",
                  "calls delayed per pause", "pauses", "largest pause (ms)"], rows, {2, 3, 4, 5, 6, 7, 8})


def agents_sentences(study: Study) -> list[str]:
    from gcbench.report.study import agents_cells

    c = agents_cells(study)
    out = []
    for k in sorted(set(c["agents"])):
        if k == 1:
            continue
        x = c[(c["agents"] == k) & c["amplification"].notna()]
        if len(x):
            out.append(f"At {k} agents: amplification " + "; ".join(
                f"{r.backend}/{r.gc_mode} x{fmt_ratio(r.amplification)} ({fmt_ratio(r.calls_delayed_mean)} calls "
                f"delayed per pause)" for r in x.itertuples()) + ".")
    one = c[(c["agents"] == 1) & c["amplification"].notna()]
    if len(one):
        out.append("At 1 agent (the main grid's load): amplification " + "; ".join(
            f"{r.backend}/{r.gc_mode} x{fmt_ratio(r.amplification)}" for r in one.itertuples()) + ".")
    over = c[c["calls_delayed_mean"] > c["agents"]]
    if len(over):
        out.append("Calls delayed per pause can exceed the agents (" + "; ".join(
            f"{r.backend}/{r.gc_mode} {fmt_ratio(r.calls_delayed_mean)} at {int(r.agents)} agents"
            for r in over.itertuples()) + "): an agent whose answer the server wrote just before the pause reads it "
            "and sends its next call, which the same pause delays too, so up to two calls per agent overlap one "
            "pause.")
    return out


def think_rows(study: Study) -> list[dict]:
    from gcbench.report.study import think_cells

    c = think_cells(study)
    out = []
    for b, m in _companion_groups(c):
        g = c[(c["backend"] == b) & (c["gc_mode"] == m)].sort_values("think_ms")
        out.extend({"backend": b, "gc_mode": m, "row": r} for r in g.itertuples())
    return out


IDLE_MOSTLY = 0.5  # a runtime "collects in the idle gaps" when at least this share of its GC time fell there


def think_table(study: Study) -> Table:
    rows = []
    for x in think_rows(study):
        r = x["row"]
        gc = r.idle_gc_ms + r.busy_gc_ms
        rows.append([x["backend"], x["gc_mode"], f"{r.think_ms:g}", _dead(r), str(int(r.gc_events)), fmt_ms(gc),
                     fmt_ms(r.busy_gc_ms), fmt_ms(r.idle_gc_ms),
                     fmt_pct(r.idle_gc_share) if r.idle_gc_share == r.idle_gc_share else "- (no GC)",
                     fmt_pct(r.window_idle_share)])
    return Table("think", "Think time: where the server's GC time fell, inside calls or in the idle gaps",
                 "Per runtime at 1 agent, back-to-back calls (think 0) and with a fixed think time between calls: "
                 "mean GC dead time per chain (95% bootstrap CI); the server's GC time in the measured window (the "
                 "union of its pauses), split into the part during a call and the part between calls (no call in "
                 "flight: the idle gaps); and, for scale, the share of the window with no call in flight (a collector "
                 "timed without regard to the calls would put about that share of its time in the gaps).",
                 ["backend", "gc mode", "think (ms)", "dead/chain (ms) [95% CI]", "pauses", "GC time (ms)",
                  "inside calls (ms)", "in idle gaps (ms)", "share in idle gaps", "window idle"],
                 rows, {2, 3, 4, 5, 6, 7, 8, 9})


def think_sentences(study: Study) -> list[str]:
    rows = think_rows(study)
    if not rows:
        return []
    top = max(x["row"].think_ms for x in rows)
    at_top = [x for x in rows if x["row"].think_ms == top]
    idle = [x for x in at_top if x["row"].idle_gc_share == x["row"].idle_gc_share
            and x["row"].idle_gc_share >= IDLE_MOSTLY]
    busy = [x for x in at_top if x["row"].idle_gc_share == x["row"].idle_gc_share
            and x["row"].idle_gc_share < IDLE_MOSTLY]
    none = [x for x in at_top if x["row"].idle_gc_share != x["row"].idle_gc_share]

    def name(x) -> str:
        return f"{x['backend']}/{x['gc_mode']} {fmt_pct(x['row'].idle_gc_share)}"

    out = [f"With {top:g} ms of think time between calls, the share of each server's GC time that fell in the idle "
           f"gaps (measured): " + "; ".join(name(x) for x in at_top if x not in none) + "."]
    if idle:
        out.append(f"Collect mostly in the idle gaps (>= {fmt_pct(IDLE_MOSTLY)} of their GC time there): "
                   + ", ".join(x["backend"] for x in idle) + ".")
    if busy:
        out.append(f"Collect mostly inside calls (under {fmt_pct(IDLE_MOSTLY)} of their GC time in the gaps): "
                   + ", ".join(x["backend"] for x in busy) + ".")
    if none:
        out.append("No GC pause in the measured window at this think time: " + ", ".join(
            f"{x['backend']}/{x['gc_mode']}" for x in none) + ".")
    by = {}
    for x in rows:
        by.setdefault((x["backend"], x["gc_mode"]), {})[x["row"].think_ms] = x["row"]
    base = min(x["row"].think_ms for x in rows)
    moved = [f"{b}/{m} {_dead(v[base])} -> {_dead(v[top])} ms" for (b, m), v in by.items() if base in v and top in v]
    if moved:
        out.append(f"GC dead time per chain, think {base:g} -> {top:g} ms: " + "; ".join(moved) + ".")
    return out


def companion_sections(study: Study, first: int) -> list[Section]:
    """The "Many agents" and "Think time" sections from the companion sweeps (gcbench study --with)."""
    from gcbench.report.study import agents_cells, think_cells

    out = []
    n = first
    if len(agents_cells(study)):
        src = ", ".join(str(c.folder) for c in study.companions if c.varies_agents)
        out.append(Section(number=str(n), key="agents", title="Many agents", items=[
            f"Several agents call one server at once (companion sweep {src}): one server pause then delays every "
            f"call in flight, so the dead time summed over the agents' chains grows with the agents while the "
            f"server's GC time need not.", Bullets(agents_sentences(study)), figure(study, "agents"),
            agents_table(study)]))
        n += 1
    if len(think_cells(study)):
        out.append(Section(number=str(n), key="think", title="Think time", items=[
            f"An agent thinks between tool calls (companion sweep "
            f"{', '.join(str(c.folder) for c in study.companions if c.varies_think)}). With idle gaps a runtime may "
            "collect there, where no call waits; this is measured from where each server pause fell, not assumed.", Bullets(think_sentences(study)),
            figure(study, "think"), think_table(study)]))
    return out
