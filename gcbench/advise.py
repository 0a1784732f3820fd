"""`gcbench advise`: which GC setting to run a server with, decided from a measured run.

The decision rule (`advise`, a pure function of a run's calls and cells) compares every GC mode of a backend
with that backend's `default` cell, in the same run (same runtime, same machine):

- GC dead time per chain (the GC time inside the chain's calls): the mean of each cell, and the cut
  default - mode with its 95% bootstrap interval (chains resampled, and repetitions when there are several:
  gcbench.analysis.bootstrap; the two cells independently), and the cut as a share of default's dead time;
- p99 call latency, peak RSS of the server's process tree (mean over repetitions) and throughput (calls per
  second of the measured window, mean over repetitions), each against default; the throughput change has a
  95% interval from the chains' mean latency (closed loop: calls/s is calls over the chains' time).

A mode is recommended when all of these hold (Rule):
1. the cut's 95% interval lies above zero (the cut is not noise);
2. the cut is practical: at least `min_cut_ms` per chain AND at least `min_cut_share` of default's dead time;
3. its peak RSS is at most `max_rss_increase` above default's (a mode above it is flagged and not recommended;
   a mode whose memory was not measured is not flagged, the output says so);
4. the GC-off mode (`disabled`; `epsilon` for the JVM) only when, besides 1-3, its RSS did not grow by more
   than `max_off_growth` over the measured window: with no collector, garbage in cycles is never freed, so a
   growing RSS means the process would grow until it is killed. Otherwise it is shown as the reference of the
   GC's whole cost ("what GC costs at most"), not as a setting to deploy. Even when it passes, a run is shorter
   than a server's life: the output says so.
Of the modes that pass, the one with the largest cut (ms per chain) is recommended; when none passes: "no
change worth making".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from gcbench.analysis import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, OFF_MODE, OFF_MODES, bootstrap_stat, cell_rng
from gcbench.errors import GcbenchError
from gcbench.format import fmt_ci, fmt_ms, fmt_share, fmt_signed
from gcbench.gcmode import GcMode, parse_gc_mode
from gcbench.report.document import Bullets, Document, Paragraph, Section, Table

DEFAULT_MODE = "default"
MIB = 1024 * 1024

# The modes advise tries per runtime, before each backend drops those it cannot apply (its unsupported_reason).
# Modes with a size are sized for the built-in scenarios' heaps; -g gives others.
CANDIDATE_MODES: dict[str, tuple[str, ...]] = {
    "python": ("default", "freeze", "thresholds:10000,20,20", "oob", "disabled"),
    "go": ("default", "gogc:200", "gogc:400", "disabled"),
    "node": ("default", "semi:16", "semi:64"),
    "java": ("default", "g1", "parallel", "zgc", "shenandoah", "epsilon"),
}

# verdicts of one mode
RECOMMENDED = "recommended"
PASSES = "passes"  # passes the rule but another mode cuts more
NOISE = "within noise"
SMALL = "below the practical threshold"
NO_CUT = "no cut"
MEMORY = "memory over the limit"
OFF_GROWS = "GC off: RSS grows"
OFF_UNKNOWN = "GC off: RSS growth not measured"
BASELINE = "baseline"
NO_CHANGE = "no change worth making"


@dataclass(frozen=True)
class Rule:
    min_cut_ms: float = 0.1  # per chain
    min_cut_share: float = 0.10  # of default's mean dead time per chain
    max_rss_increase: float = 0.50  # peak RSS over default's, as a share
    max_off_growth: float = 0.10  # the GC-off mode's RSS growth over the measured window, as a share
    n_boot: int = BOOTSTRAP_SAMPLES
    seed: int = BOOTSTRAP_SEED


@dataclass
class ModeResult:
    gc_mode: str
    reps: int
    chains: int
    dead_mean_ms: float
    cut_ms: float = 0.0  # default - mode: positive is better
    cut_lo_ms: float = np.nan
    cut_hi_ms: float = np.nan
    cut_share: float = np.nan  # of default's dead time
    cut_share_lo: float = np.nan
    cut_share_hi: float = np.nan
    p99_ms: float = np.nan
    p99_delta_ms: float = np.nan
    peak_rss_mib: float = np.nan
    rss_increase: float = np.nan  # share over default's peak RSS
    rss_growth: float = np.nan  # over the measured window (end / start - 1), mean over repetitions
    calls_per_s: float = np.nan
    throughput_change: float = np.nan  # share vs default
    throughput_lo: float = np.nan  # its 95% interval, from the chains' mean latency (see _advise_backend)
    throughput_hi: float = np.nan
    is_off: bool = False
    memory_flag: bool = False
    verdict: str = ""
    why: str = ""


@dataclass
class BackendAdvice:
    backend: str
    runtime: str
    results: list[ModeResult]
    recommended: str | None  # a gc mode, or None: no change worth making
    command: str = ""  # a user's server: its command line (run.json's backend_runtimes)
    skipped: dict[str, str] = field(default_factory=dict)  # mode -> why it was not measured
    notes: list[str] = field(default_factory=list)

    def result(self, mode: str) -> ModeResult:
        return next(r for r in self.results if r.gc_mode == mode)


@dataclass
class Advice:
    run: str
    rule: Rule
    backends: list[BackendAdvice]
    notes: list[str] = field(default_factory=list)  # e.g. the modes left out of the run, and why

    def to_dict(self) -> dict:
        def clean(d: dict) -> dict:
            return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}

        return {"run": self.run, "rule": asdict(self.rule), "notes": self.notes,
                "backends": [{"backend": b.backend, "runtime": b.runtime, "command": b.command,
                              "recommendation": b.recommended or NO_CHANGE, "skipped": b.skipped, "notes": b.notes,
                              "modes": [clean(asdict(r)) for r in b.results]} for b in self.backends]}


# ---------------------------------------------------------------------------------------------- modes to run


def candidate_modes(backend) -> tuple[list[GcMode], dict[str, str]]:
    """The modes advise runs for a backend (its runtime's candidates it can apply) and why others are left out."""
    names = CANDIDATE_MODES.get(backend.runtime, (DEFAULT_MODE,))
    modes, left_out = [], {}
    for name in names:
        mode = parse_gc_mode(name)
        reason = backend.unsupported_reason(mode)
        if reason:
            left_out[name] = reason
        else:
            modes.append(mode)
    if not modes or modes[0].name != DEFAULT_MODE:
        raise GcbenchError(f"{backend.name}: its default GC mode cannot run, so there is nothing to compare with")
    return modes, left_out


def off_mode(backend: str) -> str:
    return OFF_MODES.get(backend.split("+")[0], OFF_MODE)


# ---------------------------------------------------------------------------------------------- the rule


def _per_chain(calls: pd.DataFrame) -> pd.DataFrame:
    out = calls.groupby(["gc_mode", "rep", "chain"], sort=False, observed=True).agg(
        dead_ns=("gc_overlap_ns", "sum"), t0=("t_send_ns", "min"), t1=("t_recv_ns", "max")).reset_index()
    out["chain_ns"] = out["t1"] - out["t0"]
    return out


def _throughput(calls: pd.DataFrame) -> float:
    """Calls answered per second of the measured window, mean over repetitions."""
    per_rep = calls.groupby("rep", observed=True).agg(n=("ok", "sum"), t0=("t_send_ns", "min"),
                                                      t1=("t_recv_ns", "max"))
    span = (per_rep["t1"] - per_rep["t0"]).where(lambda s: s > 0)
    return float((per_rep["n"] / (span / 1e9)).mean())


def _memory(cells: list[dict], backend: str) -> dict[str, tuple[float, float]]:
    """Per gc mode: (mean peak RSS in bytes, mean RSS growth over the measured window); NaN where not recorded."""
    peak: dict[str, list[float]] = {}
    growth: dict[str, list[float]] = {}
    for c in cells:
        if c.get("backend") != backend or c.get("status") != "ok":
            continue
        mem = c.get("memory") if isinstance(c.get("memory"), dict) else {}
        p = mem.get("peak_rss_bytes")
        peak.setdefault(c["gc_mode"], []).append(float(p) if isinstance(p, int | float) and p > 0 else np.nan)
        s, e = mem.get("rss_measure_start_bytes"), mem.get("rss_measure_end_bytes")
        ok = isinstance(s, int | float) and isinstance(e, int | float) and s > 0
        growth.setdefault(c["gc_mode"], []).append(e / s - 1 if ok else np.nan)
    return {m: (float(np.mean(peak[m])), float(np.mean(growth[m]))) for m in peak}


def advise(calls: pd.DataFrame, cells: list[dict], rule: Rule = Rule(), run: str = "",
           commands: dict[str, str] | None = None) -> Advice:
    """The recommendation for every backend of a run that has a measured `default` cell (see the module doc);
    `commands` names a user's server by its command line (backend -> command)."""
    backends = [b for b in dict.fromkeys(calls["backend"]) if ((calls["backend"] == b)
                                                               & (calls["gc_mode"] == DEFAULT_MODE)).any()]
    if not backends:
        raise GcbenchError("advise: the run has no measured `default` cell to compare the GC modes with")
    out = Advice(run, rule, [_advise_backend(calls[calls["backend"] == b], cells, b, rule) for b in backends])
    for b in out.backends:
        b.command = (commands or {}).get(b.backend, "")
    return out


def _advise_backend(calls: pd.DataFrame, cells: list[dict], backend: str, rule: Rule) -> BackendAdvice:
    chains = _per_chain(calls)
    dead = {m: g["dead_ns"].to_numpy() / 1e6 for m, g in chains.groupby("gc_mode", sort=False, observed=True)}
    chain_ms = {m: g["chain_ns"].to_numpy() / 1e6 for m, g in chains.groupby("gc_mode", sort=False, observed=True)}
    reps = {m: g["rep"].to_numpy() for m, g in chains.groupby("gc_mode", sort=False, observed=True)}
    memory = _memory(cells, backend)
    runtime = next((c.get("runtime", "") for c in cells if c.get("backend") == backend and c.get("runtime")), "")
    skipped = {c["gc_mode"]: c.get("reason", "") for c in cells
               if c.get("backend") == backend and c.get("status") in ("skipped", "failed") and c["gc_mode"] not in dead}
    lat = {m: g["latency_ns"].to_numpy() / 1e6 for m, g in calls.groupby("gc_mode", sort=False, observed=True)}
    tput = {m: _throughput(g) for m, g in calls.groupby("gc_mode", sort=False, observed=True)}
    base = dead[DEFAULT_MODE]
    base_mean = float(base.mean())
    base_boot = bootstrap_stat(base, cell_rng(rule.seed, "advise", backend, DEFAULT_MODE), rule.n_boot,
                               groups=reps[DEFAULT_MODE])
    # throughput's interval: a closed-loop cell's calls/s is chains x calls over the chains' time, so the change
    # is mean chain latency of default / that of the mode - 1, resampled like the dead time
    base_chain_boot = bootstrap_stat(chain_ms[DEFAULT_MODE], cell_rng(rule.seed, "advise-chain", backend, DEFAULT_MODE),
                                     rule.n_boot, groups=reps[DEFAULT_MODE])
    base_rss, _ = memory.get(DEFAULT_MODE, (np.nan, np.nan))
    base_p99 = float(np.percentile(lat[DEFAULT_MODE], 99))
    off = off_mode(backend)
    results = []
    for mode in [DEFAULT_MODE, *(m for m in dead if m != DEFAULT_MODE)]:
        x = dead[mode]
        rss, growth = memory.get(mode, (np.nan, np.nan))
        r = ModeResult(mode, len(set(reps[mode])), len(x), float(x.mean()), is_off=mode == off,
                       p99_ms=float(np.percentile(lat[mode], 99)), peak_rss_mib=rss / MIB, rss_growth=growth,
                       calls_per_s=tput[mode])
        r.p99_delta_ms = r.p99_ms - base_p99
        r.rss_increase = rss / base_rss - 1 if base_rss > 0 else np.nan
        r.throughput_change = r.calls_per_s / tput[DEFAULT_MODE] - 1 if tput[DEFAULT_MODE] > 0 else np.nan
        if mode == DEFAULT_MODE:
            r.cut_lo_ms = r.cut_hi_ms = 0.0
            r.cut_share = r.cut_share_lo = r.cut_share_hi = 0.0
            r.verdict, r.why = BASELINE, "what the others are compared with"
            results.append(r)
            continue
        boot = bootstrap_stat(x, cell_rng(rule.seed, "advise", backend, mode), rule.n_boot, groups=reps[mode])
        cut = base_boot - boot
        chain_boot = bootstrap_stat(chain_ms[mode], cell_rng(rule.seed, "advise-chain", backend, mode), rule.n_boot,
                                    groups=reps[mode])
        r.throughput_lo, r.throughput_hi = (float(v) for v in np.percentile(base_chain_boot / chain_boot - 1,
                                                                             [2.5, 97.5]))
        r.cut_ms = base_mean - r.dead_mean_ms
        r.cut_lo_ms, r.cut_hi_ms = (float(v) for v in np.percentile(cut, [2.5, 97.5]))
        if base_mean > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(base_boot > 0, cut / base_boot, np.nan)
            r.cut_share = r.cut_ms / base_mean
            r.cut_share_lo, r.cut_share_hi = (float(v) for v in np.nanpercentile(share, [2.5, 97.5]))
        r.memory_flag = r.rss_increase > rule.max_rss_increase  # NaN (not measured) is not flagged
        r.verdict, r.why = _verdict(r, rule)
        results.append(r)
    passing = [r for r in results if r.verdict == PASSES]
    best = max(passing, key=lambda r: r.cut_ms, default=None)
    if best is not None:
        best.verdict = RECOMMENDED
        for r in passing:
            if r is not best:
                r.why += f"; {best.gc_mode} cuts more"
    notes = []
    if base_mean == 0:
        notes.append("the default cell's calls met no GC pause: there is no GC dead time to cut")
    if base_rss != base_rss:
        notes.append("peak RSS was not measured for the default cell: memory cost cannot be stated")
    if best is not None and best.is_off:
        notes.append(f"{best.gc_mode} turns the collector off: its RSS stayed flat over this run, but a run is "
                     "shorter than a server's life; watch its memory in production")
    return BackendAdvice(backend, runtime, results, best.gc_mode if best else None, skipped=skipped, notes=notes)


def _verdict(r: ModeResult, rule: Rule) -> tuple[str, str]:
    ci = f"95% CI of the cut {fmt_ci(r.cut_lo_ms, r.cut_hi_ms, fmt_ms)} ms"
    if r.cut_ms <= 0:
        return NO_CUT, f"dead time per chain {'rose' if r.cut_ms < 0 else 'did not fall'} ({ci})"
    if not r.cut_lo_ms > 0:
        return NOISE, f"{ci} includes zero"
    if r.cut_ms < rule.min_cut_ms or not r.cut_share >= rule.min_cut_share:
        return SMALL, (f"cuts {fmt_ms(r.cut_ms)} ms ({fmt_share(r.cut_share)}) per chain; the rule asks for "
                       f"{fmt_ms(rule.min_cut_ms)} ms and {fmt_share(rule.min_cut_share)}")
    if r.memory_flag:
        return MEMORY, (f"peak RSS {fmt_signed(r.rss_increase, fmt_share)} over default, above the "
                        f"+{fmt_share(rule.max_rss_increase)} limit")
    if r.is_off:
        if r.rss_growth != r.rss_growth:
            return OFF_UNKNOWN, ("GC off, and the RSS over the measured window was not recorded: no way to "
                                 "show memory stays bounded; shown as the GC's whole cost")
        if r.rss_growth > rule.max_off_growth:
            return OFF_GROWS, (f"GC off: RSS grew {fmt_share(r.rss_growth)} over the measured window (limit "
                               f"{fmt_share(rule.max_off_growth)}): garbage piles up; shown as the GC's whole cost")
    return PASSES, f"cut is significant and above the practical threshold ({ci})"


# ---------------------------------------------------------------------------------------------- the document

HEADERS = ["GC mode", "chains", "dead/chain ms", "cut ms", "cut 95% CI ms", "cut %", "cut % CI",
           "p99 call ms", "peak RSS MiB", "RSS vs default", "calls/s", "calls/s vs default", "verdict"]


def _row(r: ModeResult) -> list[str]:
    base = r.verdict == BASELINE
    return [r.gc_mode + (" (GC off)" if r.is_off else ""), str(r.chains), fmt_ms(r.dead_mean_ms),
            "" if base else fmt_signed(r.cut_ms), "" if base else fmt_ci(r.cut_lo_ms, r.cut_hi_ms, fmt_ms),
            "" if base else fmt_signed(r.cut_share, fmt_share),
            "" if base else fmt_ci(r.cut_share_lo, r.cut_share_hi, fmt_share),
            fmt_ms(r.p99_ms) + ("" if base else f" ({fmt_signed(r.p99_delta_ms)})"),
            "-" if r.peak_rss_mib != r.peak_rss_mib else f"{r.peak_rss_mib:.1f}",
            "" if base else fmt_signed(r.rss_increase, fmt_share) + (" FLAG" if r.memory_flag else ""),
            "-" if r.calls_per_s != r.calls_per_s else f"{r.calls_per_s:,.0f}",
            "" if base else f"{fmt_signed(r.throughput_change, fmt_share)} "
                            f"{fmt_ci(r.throughput_lo, r.throughput_hi, lambda v: fmt_signed(v, fmt_share))}".strip(),
            r.verdict]


def headline(b: BackendAdvice) -> str:
    if b.recommended is None:
        return f"{b.backend}: {NO_CHANGE} (no GC mode cuts GC dead time per chain beyond noise and the threshold)"
    r = b.result(b.recommended)
    tput = ("" if r.throughput_change != r.throughput_change
            else f", throughput {fmt_signed(r.throughput_change, fmt_share)} (95% CI "
                 f"{fmt_ci(r.throughput_lo, r.throughput_hi, lambda v: fmt_signed(v, fmt_share))})")
    rss = ("peak RSS not measured" if r.rss_increase != r.rss_increase
           else f"peak RSS {fmt_signed(r.rss_increase, fmt_share)} ({r.peak_rss_mib:.1f} MiB)")
    return (f"{b.backend}: use gc mode {r.gc_mode}: it cuts GC dead time per chain by {fmt_ms(r.cut_ms)} ms "
            f"(95% CI {fmt_ci(r.cut_lo_ms, r.cut_hi_ms, fmt_ms)} ms; {fmt_share(r.cut_share)} of default's "
            f"{fmt_ms(b.result(DEFAULT_MODE).dead_mean_ms)} ms), at {rss}{tput}, p99 call latency "
            f"{fmt_signed(r.p99_delta_ms)} ms")


def rule_text(rule: Rule) -> str:
    return (f"Rule: a mode is recommended when the 95% bootstrap CI of its cut in GC dead time per chain (vs the "
            f"same backend's default cell; chains and repetitions resampled) excludes zero, the cut is at least "
            f"{fmt_ms(rule.min_cut_ms)} ms and {fmt_share(rule.min_cut_share)} of default's dead time, and its "
            f"peak RSS is at most +{fmt_share(rule.max_rss_increase)} over default's; GC off only when its RSS "
            f"also grew at most {fmt_share(rule.max_off_growth)} over the measured window. Of those, the largest "
            "cut wins.")


def document(a: Advice) -> Document:
    sections = []
    for b in a.backends:
        items: list = [Paragraph(headline(b), strong=True),
                       Table(f"advise-{b.backend}", "", "", HEADERS, [_row(r) for r in b.results],
                             {1, 2, 3, 5, 7, 8, 10})]
        items.append(Bullets([f"{r.gc_mode}: {r.verdict}: {r.why}" for r in b.results if r.verdict != BASELINE]))
        if b.skipped:
            items.append(Bullets([f"{m}: not measured: {why}" for m, why in b.skipped.items()]))
        if b.notes:
            items.append(Bullets([f"note: {n}" for n in b.notes]))
        if b.command:
            items.insert(0, Paragraph(f"server command: {b.command}"))
        sections.append(Section(f"{b.backend} ({b.runtime})" if b.runtime else b.backend, items))
    tail: list = [Paragraph(rule_text(a.rule))]
    if a.notes:
        tail.append(Bullets([f"note: {n}" for n in a.notes]))
    sections.append(Section("", tail))
    return Document("gcbench advise", sections, footer=f"run folder: {a.run}" if a.run else "", data=a.to_dict(),
                    level=3)



# ---------------------------------------------------------------------------------------------- the modes of a run


def modes_by_backend(backends: list, override: list[GcMode] | None) -> tuple[dict[str, list[GcMode]], list[str]]:
    """Per backend, the modes to run (default first) and what the output should say about those left out."""
    out, notes = {}, []
    for b in backends:
        if override is None:
            modes, left_out = candidate_modes(b)
            notes += [f"{b.name}: {m} left out: {why}" for m, why in left_out.items()]
        else:
            modes = [parse_gc_mode(DEFAULT_MODE), *(m for m in override if m.name != DEFAULT_MODE or m.arg)]
        if len(modes) < 2:
            raise GcbenchError(f"{b.name}: no GC mode besides default applies to a {b.runtime or 'this'} server, "
                               "so there is nothing to advise (give modes with -g)")
        out[b.name] = modes
    return out, notes


def server_commands(meta: dict) -> dict[str, str]:
    """backend -> the command line of a user's server, from run.json (empty for the built-in backends)."""
    runtimes = (meta.get("environment") or {}).get("backend_runtimes") or {}
    return {b: str(r["command"]) for b, r in runtimes.items() if isinstance(r, dict) and r.get("command")}
