"""The study report's figures (matplotlib Figure objects, Agg, no pyplot state): one panel per allocation
profile (or per backend), one colour per backend, the same in every figure."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from gcbench.analysis import CLAIM_PAUSE_MS, fmt_ms
from gcbench.format import fmt_pct
from gcbench.report.figures import CLAIM_COLOR, FigureSpec, _empty, _plain_log
from gcbench.report.study import (
    DEFAULT_MODE,
    Study,
    fmt_heap,
    wilson,
)

WIDTH_IN = 11.0
PANEL_H_IN = 3.6
MAX_COLS = 3
FULL_GC_COLOR = "0.15"
TITLES = {
    "dead_time": "GC dead time per chain vs live heap",
    "pause_growth": "GC pause size vs live heap (log-log)",
    "mitigations": "What each GC setting does to chain latency",
    "chains_hit": "How often a chain meets a GC pause",
    "latency_vs_load": "Call latency vs offered load (open loop)",
    "agents": "Many agents: GC dead time per chain and amplification vs agents",
    "think": "Think time: the share of server GC time in the idle gaps",
}


def backend_colors(study: Study) -> dict[str, str]:
    return {b: f"C{i % 10}" for i, b in enumerate(study.backends)}


def _grid(n: int, sharey: bool = True) -> tuple[Figure, list]:
    cols = min(n, MAX_COLS)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(WIDTH_IN, PANEL_H_IN * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey).ravel().tolist()
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, axes[:n]


def _legend(fig: Figure, axes: list, extra: list | None = None) -> None:
    """One legend for the figure, below the panels, each label once."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=False):
            seen.setdefault(label, h)
    for h in extra or []:
        seen.setdefault(h.get_label(), h)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(len(seen), 4), fontsize=8)


def _heap_axis(ax, study: Study) -> None:
    ax.set_xticks(range(len(study.heaps)), [fmt_heap(h) for h in study.heaps])
    ax.set_xlim(-0.4, len(study.heaps) - 0.6)
    ax.set_xlabel("live heap (long-lived objects)")


def _panel_title(ax, study: Study, profile: str) -> None:
    if len(study.profiles) > 1:
        ax.set_title(f"profile: {profile}", loc="left", fontsize=10, fontweight="bold")


def _series(study: Study, backend: str, mode: str, profile: str, col: str) -> np.ndarray:
    out = []
    for h in study.heaps:
        c = study.cell(h, profile, backend, mode)
        out.append(getattr(c, col) if c is not None else np.nan)
    return np.asarray(out, float)


# ---------------------------------------------------------------------------------------------- dead time


def dead_time(study: Study) -> FigureSpec:
    title = TITLES["dead_time"]
    colors = backend_colors(study)
    claim = study.claim_ms
    groups = study.default_groups()
    positive = study.cells["dead_max_ms"][study.cells["dead_max_ms"] > 0]
    floor = float(positive.min()) / 4 if len(positive) else 1e-3
    fig, axes = _grid(len(study.profiles))
    x = np.arange(len(study.heaps))
    for ax, prof in zip(axes, study.profiles, strict=True):
        for b, m in groups:
            mean = _series(study, b, m, prof, "dead_mean_ms")
            worst = _series(study, b, m, prof, "dead_max_ms")
            label = b if m == DEFAULT_MODE else f"{b}/{m}"
            ax.plot(x, np.where(mean > 0, mean, np.nan), "o-", color=colors[b], lw=1.8, label=label)
            ax.plot(x, np.where(worst > 0, worst, np.nan), "^:", color=colors[b], lw=1, mfc="none")
            zero = mean == 0
            ax.plot(x[zero], np.full(zero.sum(), floor), "v", color=colors[b], mfc="none", ms=7)
        ax.axhline(claim, color=CLAIM_COLOR, ls="--", lw=1.5)
        ax.text(0.01, claim, f" the claim: {fmt_ms(claim)} ms", color=CLAIM_COLOR, va="bottom", fontsize=8,
                transform=ax.get_yaxis_transform())
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        ax.set_ylim(floor / 1.6, max(claim, float(np.nanmax(study.cells["dead_max_ms"]))) * 2.5)
        _heap_axis(ax, study)
        ax.grid(True, which="both", alpha=0.25)
        _panel_title(ax, study, prof)
    axes[0].set_ylabel("GC dead time per chain (ms, log)")
    keys = [Line2D([], [], color="0.3", marker="o", lw=1.8, label="mean per chain"),
            Line2D([], [], color="0.3", marker="^", ls=":", mfc="none", label="worst chain"),
            Line2D([], [], color="0.3", marker="v", ls="none", mfc="none", label="no dead time (drawn at the bottom)")]
    _legend(fig, axes, keys)
    fig.suptitle(title)
    caption = (f"Each runtime in its default GC setting: mean GC dead time per {study.calls_per_chain}-call chain "
               f"(solid) and the worst single chain (dotted), against the claim's {fmt_ms(claim)} ms (dashed). "
               "Other settings are in section 3.")
    return FigureSpec("dead_time", title, caption, fig)


# ---------------------------------------------------------------------------------------------- pause growth


def pause_growth(study: Study) -> FigureSpec:
    title = TITLES["pause_growth"]
    colors = backend_colors(study)
    groups = [(b, m) for b, m in study.default_groups() if study.group_cells(b, m)["gc_events"].sum()]
    if not groups:
        return FigureSpec("pause_growth", title, "", _empty(title, "no GC pause measured in this sweep"))
    pos = [h for h in study.heaps if h > 0]
    zero_x = (min(pos) / 10) if pos else 1.0  # heap 0 has no logarithm: drawn a decade left of the smallest size
    xs = np.array([h if h > 0 else zero_x for h in study.heaps], float)
    fig, axes = _grid(len(study.profiles))
    full = study.full_gc
    for ax, prof in zip(axes, study.profiles, strict=True):
        for b, m in groups:
            has = _series(study, b, m, prof, "gc_events") > 0
            for col, style, lw, label in (("pause_max_ms", "o-", 1.8, b), ("pause_p99_ms", "s--", 1.1, None)):
                y = np.where(has, _series(study, b, m, prof, col), np.nan)
                _log_line(ax, xs, y, style, color=colors[b], lw=lw, ms=5 if label else 4, label=label,
                          mfc=None if label else "none")
        f = full[full["profile"] == prof]
        if len(f) and f["count"].sum():
            y = np.array([f.loc[f["heap_objects"] == h, "p50_ms"].iloc[0] for h in study.heaps], float)
            _log_line(ax, xs, y, "D:", color=FULL_GC_COLOR, lw=1.3, ms=5, mfc="none")
            c = study.crossings.get(prof)
            if c is not None and c.status == "crossed":  # on tracked objects, not on this axis' grid sizes
                ax.annotate(f"full GC: {CLAIM_PAUSE_MS:g} ms at ~{fmt_heap(c.heap_objects)} tracked objects",
                            (0.02, 0.97), xycoords="axes fraction", va="top", fontsize=8, color=FULL_GC_COLOR)
        ax.axhline(CLAIM_PAUSE_MS, color=CLAIM_COLOR, ls="--", lw=1.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        ax.xaxis.set_major_locator(FixedLocator(xs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "0" if v == zero_x and 0 in study.heaps
                                                   else fmt_heap(v)))
        ax.xaxis.set_minor_locator(NullLocator())  # no scale between "0" and the smallest positive size
        ax.set_xlim(xs.min() / 2, xs.max() * 2)
        ax.set_xlabel("live heap (long-lived objects, log)")
        ax.grid(True, which="major", alpha=0.3)
        _panel_title(ax, study, prof)
    axes[0].set_ylabel("GC pause (ms, log)")
    keys = [Line2D([], [], color="0.3", marker="o", lw=1.8, label="largest pause"),
            Line2D([], [], color="0.3", marker="s", ls="--", mfc="none", label="p99 pause"),
            Line2D([], [], color=FULL_GC_COLOR, marker="D", ls=":", mfc="none",
                   label=f"{study.full_gc_backend} full collection, median"),
            Line2D([], [], color=CLAIM_COLOR, ls="--", label=f"the claim's {CLAIM_PAUSE_MS:g} ms")]
    _legend(fig, axes, keys)
    fig.suptitle(title)
    missing = [b for b, _ in study.default_groups() if b not in {g[0] for g in groups}]
    caption = ("Largest (solid) and 99th-percentile (dashed) server GC pause per live-heap size, each runtime in its "
               "default GC setting; the dotted black line is CPython's median full collection, and the dash-dot "
               f"vertical line where it reaches {CLAIM_PAUSE_MS:g} ms (interpolated log-log)."
               + (" Heap size 0 has no logarithm: it is drawn a decade left of the smallest positive size and "
                  "labelled 0." if 0 in study.heaps and pos else "")
               + (f" Not drawn (no GC pause reported): {', '.join(missing)}." if missing else ""))
    return FigureSpec("pause_growth", title, caption, fig)


def _log_line(ax, xs: np.ndarray, y: np.ndarray, style: str, **kw) -> None:
    """A line over the positive heap sizes; heap 0 (the first x, off the log scale) as a lone marker joined to
    the next point by a faint dotted segment."""
    if len(xs) > 1 and xs[0] < xs[1] / 5:  # the stand-in position of heap 0
        ax.plot(xs[1:], y[1:], style, **kw)
        kw.pop("label", None)
        ax.plot(xs[:1], y[:1], style[0], **{k: v for k, v in kw.items() if k != "lw"})
        ax.plot(xs[:2], y[:2], ":", color=kw.get("color"), lw=0.8, alpha=0.6)
    else:
        ax.plot(xs, y, style, **kw)


# ---------------------------------------------------------------------------------------------- mitigations


def mitigations(study: Study) -> FigureSpec:
    title = TITLES["mitigations"]
    r = study.ratios
    backends = [b for b in study.backends if (r["backend"] == b).any()] if len(r) else []
    if not backends:
        return FigureSpec("mitigations", title, "", _empty(title, "no runtime measured in a non-default GC setting"))
    points = [(h, p) for h in study.heaps for p in study.profiles
              if ((r["heap_objects"] == h) & (r["profile"] == p)).any()]
    pos = {pt: i for i, pt in enumerate(points)}
    fig, axes = _grid(len(backends), sharey=True)
    lo_all, hi_all = [], []
    for ax, b in zip(axes, backends, strict=True):
        modes = [m for bb, m in study.groups if bb == b and m != DEFAULT_MODE and
                 ((r["backend"] == b) & (r["gc_mode"] == m)).any()]
        width = 0.7 / max(len(modes), 1)
        for i, m in enumerate(modes):
            g = r[(r["backend"] == b) & (r["gc_mode"] == m)]
            x = np.array([pos[(h, p)] for h, p in zip(g["heap_objects"], g["profile"], strict=True)], float)
            x += (i - (len(modes) - 1) / 2) * width
            y = g["chain_ratio"].to_numpy()
            err = np.vstack([y - g["chain_lo"].to_numpy(), g["chain_hi"].to_numpy() - y])
            ax.errorbar(x, y, yerr=np.clip(np.nan_to_num(err), 0, None), fmt="o", color=f"C{i}", ms=5, capsize=2,
                        lw=1.2, label=m)
            lo_all += list(g["chain_lo"].dropna())
            hi_all += list(g["chain_hi"].dropna())
        ax.axhline(1.0, color="0.4", lw=1)
        ax.set_title(f"{b} (vs {b}/{DEFAULT_MODE})", loc="left", fontsize=10, fontweight="bold")
        ax.set_xticks(range(len(points)), [f"{fmt_heap(h)}\n{p}" if len(study.profiles) > 1 else fmt_heap(h)
                                           for h, p in points], fontsize=8)
        ax.set_xlim(-0.6, len(points) - 0.4)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8, title="GC setting", title_fontsize=8, loc="best")
    lo = min([v for v in lo_all if v > 0] + [0.9])
    hi = max([v for v in hi_all if np.isfinite(v)] + [1.1])
    axes[0].set_yscale("log")
    _plain_log(axes[0].yaxis)
    axes[0].set_ylim(lo / 1.2, hi * 1.2)
    axes[0].set_ylabel("mean chain latency / default (log)")
    fig.suptitle(title)
    caption = ("Mean chain latency in each GC setting divided by the same runtime's default at the same grid point "
               "(below 1: faster), with 95% bootstrap confidence intervals (chains and repetitions resampled). "
               "The dead-time ratios are in the tables below.")
    return FigureSpec("mitigations", title, caption, fig)


# ---------------------------------------------------------------------------------------------- chains hit


def chains_hit(study: Study) -> FigureSpec:
    title = TITLES["chains_hit"]
    colors = backend_colors(study)
    groups = [(b, m) for b, m in study.default_groups() if study.group_cells(b, m)["gc_events"].sum()]
    if not groups:
        return FigureSpec("chains_hit", title, "", _empty(title, "no GC pause measured in this sweep"))
    fig, axes = _grid(len(study.profiles))
    for ax, prof in zip(axes, study.profiles, strict=True):
        for i, (b, m) in enumerate(groups):
            x = np.arange(len(study.heaps)) + (i - (len(groups) - 1) / 2) * 0.05  # dodge: bars at 0/100% overlap
            share = _series(study, b, m, prof, "chains_hit_share") * 100
            hit = _series(study, b, m, prof, "chains_hit")
            n = _series(study, b, m, prof, "chains")
            ci = np.array([wilson(int(k), int(t)) if t == t else (np.nan, np.nan) for k, t in zip(hit, n, strict=True)])
            err = np.clip(np.nan_to_num(np.vstack([share - ci[:, 0] * 100, ci[:, 1] * 100 - share])), 0, None)
            ax.errorbar(x, share, yerr=err, fmt="o-", color=colors[b], lw=1.8, ms=5, capsize=2, elinewidth=0.9,
                        label=b if m == DEFAULT_MODE else f"{b}/{m}")
            calls = _series(study, b, m, prof, "calls_delayed_share") * 100
            ax.plot(x, calls, "s--", color=colors[b], lw=1, ms=4, mfc="none")
        ax.axhline(100, color=CLAIM_COLOR, ls="--", lw=1.5)
        ax.set_ylim(-3, 108)
        _heap_axis(ax, study)
        ax.grid(True, alpha=0.25)
        _panel_title(ax, study, prof)
    axes[0].set_ylabel("share (%)")
    keys = [Line2D([], [], color="0.3", marker="o", lw=1.8, label="chains with >= 1 delayed call (95% CI)"),
            Line2D([], [], color="0.3", marker="s", ls="--", mfc="none", label="calls delayed"),
            Line2D([], [], color=CLAIM_COLOR, ls="--", label="the claim's arithmetic: every call")]
    _legend(fig, axes, keys)
    fig.suptitle(title)
    missing = [b for b, _ in study.default_groups() if b not in {g[0] for g in groups}]
    caption = ("Each runtime in its default GC setting: the share of chains in which at least one call overlapped a "
               "server GC pause (solid, Wilson 95% interval) and the share of all calls that did (dashed). The "
               f"claim's arithmetic needs every one of the {study.calls_per_chain} calls to meet a pause."
               + (f" Not drawn (no GC pause reported): {', '.join(missing)}." if missing else ""))
    return FigureSpec("chains_hit", title, caption, fig)


FIGURES = (dead_time, pause_growth, mitigations, chains_hit)


# ---------------------------------------------------------------------------------------------- latency under load


def latency_vs_load(study: Study) -> FigureSpec:
    """p50 and p99 call latency against the offered rate, one line per (backend, gc mode): from the intended
    start (corrected) solid, from the send (raw) dashed; the p99 target as a horizontal line."""
    title = TITLES["latency_vs_load"]
    t = study.load[study.load["rate_per_s"] > 0] if len(study.load) else study.load
    if not len(t):
        return FigureSpec("latency_vs_load", title, "", _empty(title, "no open-loop point (sweep.rate_per_s) measured"))
    fig, axes = _grid(2, sharey=True)
    groups = list(dict.fromkeys(zip(t["backend"], t["gc_mode"], strict=True)))
    several_modes = len({m for _, m in groups}) > 1
    for ax, pct in zip(axes, ("p50", "p99"), strict=True):
        for i, (b, m) in enumerate(groups):
            g = t[(t["backend"] == b) & (t["gc_mode"] == m)].sort_values("rate_per_s")
            label = f"{b}/{m}" if several_modes else b
            kw = {"color": f"C{i % 10}", "lw": 1.6, "ms": 4}
            ax.plot(g["rate_per_s"], g[f"corrected_{pct}_ms"], "o-", label=label, **kw)
            ax.plot(g["rate_per_s"], g[f"raw_{pct}_ms"], "o--", alpha=0.6, **{**kw, "lw": 1.0, "ms": 2.5})
        if pct == "p99":
            ax.axhline(study.p99_target_ms, color=CLAIM_COLOR, lw=1, ls=":")
            ax.text(0.01, study.p99_target_ms, f" target {fmt_ms(study.p99_target_ms)} ms", color=CLAIM_COLOR,
                    fontsize=8, va="bottom", transform=ax.get_yaxis_transform())
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        rates = sorted(set(t["rate_per_s"].astype(float)))
        ax.xaxis.set_major_locator(FixedLocator(rates))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("offered load (chains started per second)")
        ax.set_title(f"{pct} call latency", loc="left", fontsize=10, fontweight="bold")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("call latency (ms, log)")
    style = [Line2D([], [], color="0.3", lw=1.6, label="from the intended start (corrected)"),
             Line2D([], [], color="0.3", lw=1.0, ls="--", label="from the send (raw)")]
    _legend(fig, axes, style)
    fig.suptitle(title)
    calls = int(t["calls"].median()) if len(t) else 0
    caption = (f"Each point: the calls of one offered rate ({calls} per point, over "
               f"{int(t['reps'].max())} repetition(s)); a new chain is due every 1/rate s whatever the server does. "
               f"Solid: latency from when the call was due (coordinated omission corrected); dashed: from when it "
               f"was sent. The dotted line is the p99 target ({fmt_ms(study.p99_target_ms)} ms).")
    return FigureSpec("latency_vs_load", title, caption, fig)


# ---------------------------------------------------------------------------------------------- companions


def agents(study: Study) -> FigureSpec:
    """Two panels against the number of agents (log): mean GC dead time per chain with its 95% CI, and GC
    amplification; one line per (backend, gc mode) that had GC time, with the y = agents line for scale."""
    from gcbench.report.study import agents_cells

    title = TITLES["agents"]
    c = agents_cells(study)
    c = c[c["gc_events"] > 0] if len(c) else c
    if not len(c):
        return FigureSpec("agents", title, "", _empty(title, "no companion sweep with an agents axis (--with)"))
    fig, axes = _grid(2, sharey=False)
    groups = list(dict.fromkeys(zip(c["backend"], c["gc_mode"], strict=True)))
    ks = sorted(set(c["agents"].astype(int)))
    for i, (b, m) in enumerate(groups):
        g = c[(c["backend"] == b) & (c["gc_mode"] == m)].sort_values("agents")
        kw = {"color": f"C{i % 10}", "lw": 1.6, "ms": 4, "label": f"{b}/{m}"}
        x = g["agents"].to_numpy(float)
        y = g["dead_mean_ms"].to_numpy(float)
        err = np.vstack([np.clip(y - g["dead_lo_ms"].to_numpy(float), 0, None),
                         np.clip(g["dead_hi_ms"].to_numpy(float) - y, 0, None)])
        axes[0].errorbar(x, np.where(y > 0, y, np.nan), yerr=np.nan_to_num(err), fmt="o-", capsize=2, **kw)
        axes[1].plot(x, g["amplification"].to_numpy(float), "o-", **kw)
    axes[1].plot(ks, ks, ":", color="0.5", lw=1, label="amplification = agents")
    for ax, ylab, t in ((axes[0], "GC dead time per chain (ms, log)", "dead time per chain (95% CI)"),
                        (axes[1], "amplification (log)", "GC amplification")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        ax.xaxis.set_major_locator(FixedLocator(ks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("agents calling the server at once")
        ax.set_ylabel(ylab)
        ax.set_title(t, loc="left", fontsize=10, fontweight="bold")
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes)
    fig.suptitle(title)
    caption = ("Each point: one cell of the companion sweep (think time 0). Left: mean GC dead time per chain, 95% "
               "bootstrap CI. Right: GC amplification = dead time summed over every call / the server's GC time; "
               "the dotted line is amplification = agents (every agent's call in flight during every pause).")
    return FigureSpec("agents", title, caption, fig)


def think(study: Study) -> FigureSpec:
    """Bars per (backend, gc mode): the share of its GC time that fell in the idle gaps, one bar per think time."""
    from gcbench.report.study import think_cells

    title = TITLES["think"]
    c = think_cells(study)
    c = c[c["gc_events"] > 0] if len(c) else c
    if not len(c):
        return FigureSpec("think", title, "", _empty(title, "no companion sweep with a think-time axis (--with)"))
    fig, axes = _grid(1)
    ax = axes[0]
    groups = list(dict.fromkeys(zip(c["backend"], c["gc_mode"], strict=True)))
    thinks = sorted(set(c["think_ms"].astype(float)))
    w = 0.8 / len(thinks)
    for j, t in enumerate(thinks):
        ys = []
        for b, m in groups:
            r = c[(c["backend"] == b) & (c["gc_mode"] == m) & (c["think_ms"] == t)]
            ys.append(float(r["idle_gc_share"].iloc[0]) * 100 if len(r) else np.nan)
        xs = np.arange(len(groups)) + (j - (len(thinks) - 1) / 2) * w
        ax.bar(xs, ys, w, color=f"C{j}", label=f"think {t:g} ms")
        for x, y in zip(xs, ys, strict=True):  # 0% and "no pause" look alike as bars: say which
            ax.text(x, (y if y == y else 0) + 1, "no GC" if y != y else fmt_pct(y / 100), ha="center", va="bottom",
                    fontsize=7)
    ax.set_xticks(np.arange(len(groups)), [f"{b}\n{m}" for b, m in groups], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("server GC time in idle gaps (%)")
    ax.grid(True, axis="y", alpha=0.3)
    _legend(fig, axes)
    fig.suptitle(title)
    caption = ("The share of each server's GC time (the union of its pauses in the measured window) that fell "
               "while no call was in flight, at each think time; 1 agent. Runtimes with no pause are left out.")
    return FigureSpec("think", title, caption, fig)
