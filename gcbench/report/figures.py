"""The report's figures: matplotlib Figure objects (Agg, no pyplot state), one panel per backend or cell so
that every figure grows with the backends and GC modes of the run."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from gcbench.analysis import CLAIM_PAUSE_MS, fmt_ms
from gcbench.report.model import Report

WIDTH_IN = 10.0
DPI = 100
MAX_CDF_POINTS = 2000  # per line: enough to draw, small PNG
CLAIM_COLOR = "#c0392b"
CALL_COLORS = ("#7fa7d9", "#3d6eb4")  # alternate so adjacent calls stay distinguishable
KIND_COLORS = ("#8e44ad", "#16a085", "#e67e22", "#34495e", "#b7950b", "#7f8c8d", "#d35400", "#1abc9c")


@dataclass
class FigureSpec:
    name: str  # file-name friendly
    title: str
    caption: str
    figure: Figure


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def mode_colors(report: Report) -> dict[str, str]:
    """One colour per GC mode, the same in every figure."""
    palette = [f"C{i}" for i in range(10)]
    return {m: palette[i % len(palette)] for i, m in enumerate(report.gc_modes)}


def _panels(n: int, height_each: float, sharex: bool = True) -> tuple[Figure, list]:
    fig = Figure(figsize=(WIDTH_IN, max(2.6, height_each * n + 0.8)), layout="constrained")
    axes = fig.subplots(n, 1, sharex=sharex, squeeze=False)[:, 0]
    return fig, list(axes)


def _plain_log(axis) -> None:
    """Log-scale ticks at 1, 2, 5 x 10^k labelled as plain numbers (0.2, 5, 100) instead of 2x10^-1."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt_ms(v)))
    axis.set_minor_formatter(NullFormatter())


def _empty(title: str, message: str) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, 2.2), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, transform=ax.transAxes)
    return fig


# ---------------------------------------------------------------------------------------------- latency CDF


def latency_cdf(report: Report) -> FigureSpec:
    title = "Call latency CDF per backend and GC mode"
    calls = report.run.calls
    if not len(calls):
        return FigureSpec("latency_cdf", title, "", _empty(title, "no measured calls"))
    colors = mode_colors(report)
    fig, axes = _panels(len(report.backends), 2.6)
    probs = np.linspace(0, 1, MAX_CDF_POINTS)
    for ax, backend in zip(axes, report.backends, strict=False):
        sub = calls[calls["backend"] == backend]
        for mode, g in sub.groupby("gc_mode", sort=False, observed=True):
            ms = g["latency_ns"].to_numpy() / 1e6
            x = np.sort(ms) if len(ms) <= MAX_CDF_POINTS else np.quantile(ms, probs)
            y = np.arange(1, len(x) + 1) / len(x) if len(ms) <= MAX_CDF_POINTS else probs
            ax.step(x, y * 100, where="post", color=colors[mode], lw=1.6,
                    label=f"{mode}: p50 {fmt_ms(np.median(ms))}, p99 {fmt_ms(np.percentile(ms, 99))}, "
                          f"max {fmt_ms(ms.max())} ms")
        ax.axhline(99, color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
        ax.set_ylim(0, 100.5)
        ax.set_ylabel("calls at or below (%)")
        ax.set_title(f"{backend}", loc="left", fontsize=10, fontweight="bold")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(loc="lower right", fontsize=8, title="GC mode", title_fontsize=8)
    axes[-1].set_xlabel("call latency (ms, log scale)")
    fig.suptitle(title)
    caption = ("Cumulative distribution of every measured tools/call latency (client send to response), one panel "
               "per backend, one line per GC mode; the dotted line marks the 99th percentile.")
    return FigureSpec("latency_cdf", title, caption, fig)


# ---------------------------------------------------------------------------------------------- timeline


def representative_chains(report: Report) -> pd.DataFrame:
    """Per (backend, gc mode) with any GC dead time: the chain with the median dead time among chains with any."""
    ch = report.chains[report.chains["dead_ns"] > 0]
    if not len(ch):
        return ch
    ch = ch.sort_values(["backend", "gc_mode", "dead_ns", "rep", "chain"], kind="stable")
    g = ch.groupby(["backend", "gc_mode"], sort=False, observed=True)
    pick = ch[g.cumcount() == (g["dead_ns"].transform("size") - 1) // 2]
    order = {k: i for i, k in enumerate(report.groups)}
    return pick.assign(_o=[order.get((b, m), 0) for b, m in zip(pick["backend"], pick["gc_mode"], strict=False)]
                       ).sort_values("_o").drop(columns="_o").reset_index(drop=True)


def gc_timeline(report: Report) -> FigureSpec:
    title = "GC pause timeline of one representative chain"
    picks = representative_chains(report)
    if not len(picks):
        return FigureSpec("gc_timeline", title, "", _empty(title, "no call was delayed by a GC pause in this run"))
    calls = report.run.calls
    events = report.server_events()
    kinds = sorted(events["kind"].astype(str).unique()) if len(events) else []
    kind_color = {k: KIND_COLORS[i % len(KIND_COLORS)] for i, k in enumerate(kinds)}
    fig, axes = _panels(len(picks), 1.55, sharex=False)
    for ax, p in zip(axes, picks.itertuples(), strict=False):
        cell = (calls["backend"] == p.backend) & (calls["gc_mode"] == p.gc_mode) & (calls["rep"] == p.rep)
        c = calls[cell & (calls["chain"] == p.chain)].sort_values("call")
        t0 = int(p.t_start_ns)
        s_ms = (c["t_send_ns"].to_numpy() - t0) / 1e6
        w_ms = (c["t_recv_ns"].to_numpy() - c["t_send_ns"].to_numpy()) / 1e6
        for j in range(2):
            ax.broken_barh(list(zip(s_ms[j::2], w_ms[j::2], strict=False)), (1.1, 0.8), facecolors=CALL_COLORS[j],
                           edgecolors=CALL_COLORS[j], linewidth=0.4)
        ev = events[(events["backend"] == p.backend) & (events["gc_mode"] == p.gc_mode) & (events["rep"] == p.rep)
                    & (events["end_ns"] >= p.t_start_ns) & (events["start_ns"] <= p.t_end_ns)]
        for kind, g in ev.groupby(ev["kind"].astype(str), sort=True):
            bars = list(zip((g["start_ns"].to_numpy() - t0) / 1e6, g["duration_ns"].to_numpy() / 1e6, strict=False))
            # a thin edge keeps sub-pixel pauses visible
            ax.broken_barh(bars, (0.1, 0.8), facecolors=kind_color[kind], edgecolors=kind_color[kind], linewidth=0.8)
        # the part of each call that a pause delayed, on the call row
        if len(ev):
            over = _overlaps(c["t_send_ns"].to_numpy(), c["t_recv_ns"].to_numpy(), ev["start_ns"].to_numpy(),
                             ev["end_ns"].to_numpy())
            if over:
                # lower half of the call row only, so the call boundaries above stay visible
                ax.broken_barh([((s - t0) / 1e6, (e - s) / 1e6) for s, e in over], (1.1, 0.38),
                               facecolors=CLAIM_COLOR, edgecolors=CLAIM_COLOR, linewidth=0.8)
        ax.set_yticks([0.5, 1.5], ["GC pauses", "calls"])
        ax.set_ylim(0, 2)
        ax.set_xlim(0, max((p.t_end_ns - p.t_start_ns) / 1e6, 1e-3))
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_title(f"{p.backend}/{p.gc_mode}: chain {p.chain} (rep {p.rep}), {int(p.calls)} calls in "
                     f"{fmt_ms(p.chain_ns / 1e6)} ms, {fmt_ms(p.dead_ns / 1e6)} ms GC dead time in "
                     f"{int(p.gc_calls)} delayed calls", loc="left", fontsize=9)
        ax.set_xlabel("time since the chain's first call (ms)", fontsize=8)
    handles = [Patch(color=CALL_COLORS[1], label="call (send to response)"),
               Patch(color=CLAIM_COLOR, label="part of a call inside a GC pause"),
               *(Patch(color=kind_color[k], label=f"GC pause: {k}") for k in kinds)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8)
    fig.suptitle(title)
    caption = ("For each backend and GC mode with any GC dead time: the chain whose dead time is the median among "
               "chains that had any. Calls and the server's GC pauses share one time axis; red marks the part of a "
               "call that a pause overlapped.")
    return FigureSpec("gc_timeline", title, caption, fig)


def _overlaps(cs: np.ndarray, ce: np.ndarray, gs: np.ndarray, ge: np.ndarray) -> list[tuple[int, int]]:
    """Intersections of call and pause intervals (a chain has few of each: the broadcast stays small)."""
    lo = np.maximum(cs[:, None], gs[None, :])
    hi = np.minimum(ce[:, None], ge[None, :])
    keep = hi > lo
    return list(zip(lo[keep].tolist(), hi[keep].tolist(), strict=False))


# ---------------------------------------------------------------------------------------------- dead time


def dead_time_hist(report: Report) -> FigureSpec:
    title = "GC dead time per chain, with the claim marked"
    ch = report.chains
    claim = report.claim_ms
    if not len(ch):
        return FigureSpec("dead_time_hist", title, "", _empty(title, "no measured chains"))
    colors = mode_colors(report)
    dead_ms = ch["dead_ns"].to_numpy() / 1e6
    positive = dead_ms[dead_ms > 0]
    lo = max(float(positive.min()) / 1.5, 1e-3) if len(positive) else 0.01
    hi = max(claim, float(dead_ms.max())) * 1.6
    bins = np.geomspace(lo, hi, 60)
    fig, axes = _panels(len(report.backends), 2.3)
    for ax, backend in zip(axes, report.backends, strict=False):
        sub = ch[ch["backend"] == backend]
        for mode, g in sub.groupby("gc_mode", sort=False, observed=True):
            d = g["dead_ns"].to_numpy() / 1e6
            zeros = int((d == 0).sum())
            label = f"{mode}: {len(d)} chains, mean {fmt_ms(d.mean())} ms"
            if zeros:
                label += f" ({zeros} at 0 ms, not drawn)" if zeros < len(d) else " (all 0 ms)"
            if zeros == len(d):  # nothing to draw: keep the mode in the legend only
                ax.plot([], [], color=colors[mode], lw=1.6, label=label)
            else:
                ax.hist(d[d > 0], bins=bins, histtype="step", lw=1.6, color=colors[mode], label=label)
        if not (sub["dead_ns"] > 0).any():
            ax.set_ylim(0, 1)
            ax.text(0.5, 0.5, "no GC dead time in any chain", transform=ax.transAxes, ha="center", va="center",
                    color="0.4")
        ax.axvline(claim, color=CLAIM_COLOR, ls="--", lw=1.6,
                   label=f"claim: {CLAIM_PAUSE_MS:g} ms x {report.calls_per_chain} calls = {fmt_ms(claim)} ms")
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
        ax.set_xlim(lo, hi)
        ax.set_ylabel("chains")
        ax.set_title(backend, loc="left", fontsize=10, fontweight="bold")
        ax.grid(True, which="major", alpha=0.25)
        ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("GC dead time per chain (ms, log scale)")
    fig.suptitle(title)
    caption = (f"Server GC pause time overlapping the calls of each {report.calls_per_chain}-call chain; the dashed "
               f"line is the claim ({CLAIM_PAUSE_MS:g} ms per call).")
    return FigureSpec("dead_time_hist", title, caption, fig)


# ---------------------------------------------------------------------------------------------- pause sizes


def pause_sizes(report: Report) -> FigureSpec:
    title = "GC pause size by generation/kind"
    ev = report.server_events()
    if not len(ev):
        return FigureSpec("pause_sizes", title, "", _empty(title, "no GC pauses measured in this run"))
    colors = mode_colors(report)
    order = {k: i for i, k in enumerate(report.groups)}
    cats = []
    for (b, m, kind), g in ev.groupby(["backend", "gc_mode", ev["kind"].astype(str)], observed=True):
        cats.append((order.get((b, m), 99), b, m, kind, g["duration_ns"].to_numpy() / 1e6))
    cats.sort(key=lambda c: (c[0], c[3]))
    fig = Figure(figsize=(WIDTH_IN, 1.4 + 0.42 * len(cats)), layout="constrained")
    ax = fig.subplots()
    data = [c[4] for c in cats]
    ypos = np.arange(len(cats))[::-1]
    bp = ax.boxplot(data, positions=ypos, orientation="horizontal", widths=0.6, whis=(1, 99),
                    showfliers=True, flierprops={"markersize": 2.5, "alpha": 0.5}, patch_artist=True)
    for patch, c in zip(bp["boxes"], cats, strict=False):
        patch.set_facecolor(colors[c[2]])
        patch.set_alpha(0.55)
    for y, c in zip(ypos, cats, strict=False):
        ax.plot(c[4].max(), y, marker="|", color="k", markersize=10)
    ax.set_yticks(ypos, [f"{b}/{m} {k} (n={len(d)}, max {fmt_ms(d.max())} ms)" for _, b, m, k, d in cats],
                  fontsize=8)
    ax.axvline(CLAIM_PAUSE_MS, color=CLAIM_COLOR, ls="--", lw=1.4)
    ax.set_xscale("log")
    _plain_log(ax.xaxis)
    ax.set_xlabel("pause duration (ms, log scale)")
    ax.grid(True, axis="x", which="major", alpha=0.3)
    handles = [Patch(facecolor=colors[m], alpha=0.55, label=f"GC mode {m}") for m in report.gc_modes
               if any(c[2] == m for c in cats)]
    handles += [Line2D([], [], color=CLAIM_COLOR, ls="--", label=f"the claim's pause: {CLAIM_PAUSE_MS:g} ms"),
                Line2D([], [], color="k", marker="|", ls="", markersize=10, label="largest pause")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8)
    ax.set_title(title)
    caption = ("Every server GC pause in the measurement windows, by backend, GC mode and the runtime's "
               "generation/kind; boxes span the quartiles, whiskers the 1st to 99th percentile.")
    return FigureSpec("pause_sizes", title, caption, fig)


# ---------------------------------------------------------------------------------------------- claim check


def claim_check(report: Report) -> FigureSpec:
    title = "Measured GC dead time per chain vs the claim"
    s = report.summary
    if not len(s):
        return FigureSpec("claim_check", title, "", _empty(title, "no measured cells"))
    claim = report.claim_ms
    fig = Figure(figsize=(WIDTH_IN, 1.5 + 0.55 * len(s)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(s))[::-1]
    colors = mode_colors(report)
    ax.barh(y + 0.18, s["dead_mean_ms"], height=0.34, color=[colors[m] for m in s["gc_mode"]], label="mean")
    ax.barh(y - 0.18, s["dead_p99_ms"], height=0.34, color=[colors[m] for m in s["gc_mode"]], alpha=0.45,
            hatch="//", label="p99")
    for yi, r in zip(y, s.itertuples(), strict=False):
        ax.text(max(r.dead_p99_ms, r.dead_mean_ms) + claim * 0.01, yi,
                f"mean {fmt_ms(r.dead_mean_ms)} ms, p99 {fmt_ms(r.dead_p99_ms)} ms = "
                f"{r.dead_mean_vs_claim * 100:.2g}% / {r.dead_p99_vs_claim * 100:.2g}% of the claim",
                va="center", fontsize=8)
    ax.axvline(claim, color=CLAIM_COLOR, ls="--", lw=1.6)
    ax.text(claim, y.max() + 0.55, f" claim {fmt_ms(claim)} ms", color=CLAIM_COLOR, va="bottom", ha="right",
            fontsize=9)
    ax.set_yticks(y, [f"{b}/{m}" for b, m in zip(s["backend"], s["gc_mode"], strict=False)])
    ax.set_xlim(0, claim * 1.08 if s["dead_p99_ms"].max() < claim else s["dead_p99_ms"].max() * 1.3)
    ax.set_ylim(y.min() - 0.6, y.max() + 1.0)
    ax.set_xlabel(f"GC dead time per {report.calls_per_chain}-call chain (ms)")
    ax.legend(handles=[Patch(facecolor="0.4", label="mean"), Patch(facecolor="0.4", alpha=0.45, hatch="//",
                                                                      label="p99")],
              loc="lower right", fontsize=8)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title)
    caption = (f"Mean and 99th-percentile GC dead time per chain for each backend and GC mode, on a linear axis "
               f"that ends at the claim ({fmt_ms(claim)} ms).")
    return FigureSpec("claim_check", title, caption, fig)


FIGURES = (claim_check, latency_cdf, gc_timeline, dead_time_hist, pause_sizes)


def all_figures(report: Report) -> list[FigureSpec]:
    return [make(report) for make in FIGURES]


def rendered_figures(report: Report) -> list[tuple[FigureSpec, bytes]]:
    """Every figure with its PNG, drawn once per report (HTML and Markdown of one report share them)."""
    if "figures" not in report.cache:
        report.cache["figures"] = [(spec, png_bytes(spec.figure)) for spec in all_figures(report)]
    return report.cache["figures"]
