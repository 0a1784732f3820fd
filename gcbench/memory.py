"""Memory, the other half of the GC trade: each cell's RSS (sampled by the memory watcher, gcbench/memwatch.py)
and the runtime's own heap figures, and the pause-vs-memory table.

Per cell, run.json's entry gets a `memory` record (cell_memory):
- peak RSS of the server's process tree over the server's whole life (start-up, warm-up, measured window and
  shutdown: the memory a deployment must provision) and over the measured window alone;
- an RSS timeline of at most TIMELINE_POINTS points (the largest sample of each time bucket, so no peak is
  lost), with t_ms relative to the start of the measured window; the raw samples stay in
  cells/<cell>.rss.csv (t_ns, rss_bytes), written by the watcher when it ends, never during the cell;
- the watcher's interval and its own CPU time;
- runtime_heap: the runtime's own heap figures from the server's last stats record, written at its flush
  after the measured window or at its exit (CPython tracked and frozen objects, gc.get_stats; V8 heap used and
  total; Go HeapAlloc, HeapSys, NumGC, GCCPUFraction; JVM heap used and committed), and the kernel's peak RSS
  of the server's main process (max_rss_bytes: getrusage / VmHWM, exact, where the sampled peak can miss a
  spike shorter than the interval).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from gcbench.analysis import GROUP_KEYS, chain_stats, chain_table
from gcbench.analysis.reference import off_mode

TIMELINE_POINTS = 200  # at most this many (t, rss) points per cell in run.json
MIB = 1024 * 1024

# stats-record fields that are runtime heap figures, copied as they are into runtime_heap (where present)
HEAP_FIELDS = (
    # CPython: tracked_objects leaves out the frozen ones (freeze_count); collections/collected per generation
    "tracked_objects", "freeze_count", "gc_counts", "gc_thresholds", "collections", "gc_collected",
    "gc_uncollectable",
    # V8
    "heap_used_bytes", "heap_total_bytes", "heap_size_limit_bytes", "malloced_bytes", "external_bytes",
    "new_space_size_bytes", "new_space_used_bytes", "old_space_size_bytes", "old_space_used_bytes",
    "gc_minor", "gc_major",
    # Go
    "heap_alloc_bytes", "heap_sys_bytes", "sys_bytes", "next_gc_bytes", "heap_live_bytes", "num_gc",
    "num_gc_measured", "gc_cpu_fraction", "gc_cpu_seconds", "gogc_percent", "gomemlimit_bytes",
    # JVM (heap_used_bytes above too)
    "heap_committed_bytes", "heap_max_bytes",
    # objects the server holds (Java, Rust: the start-up heap and the retained cache)
    "heap_objects", "retained_objects",
    # the process itself, as the runtime reports it at that moment and at its peak
    "rss_bytes", "max_rss_bytes",
)


def runtime_heap(stats: dict) -> dict:
    """The heap figures of a server's stats record (empty when it wrote none)."""
    out = {k: stats[k] for k in HEAP_FIELDS if _is_figure(stats.get(k))}
    if "tracked_objects" in out and type(out.get("freeze_count")) is int:
        out["python_objects"] = out["tracked_objects"] + out["freeze_count"]  # the whole tracked heap
    return out


def _is_figure(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float):
        return v == v
    return isinstance(v, list) and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)


def read_samples(path: str | os.PathLike) -> pd.DataFrame:
    """A cell's raw RSS samples (t_ns, rss_bytes), empty when there are none."""
    try:
        df = pd.read_csv(path, dtype={"t_ns": "int64", "rss_bytes": "int64"})
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return pd.DataFrame({"t_ns": pd.Series(dtype="int64"), "rss_bytes": pd.Series(dtype="int64")})
    return df[["t_ns", "rss_bytes"]]


def downsample_max(t_ns: np.ndarray, rss: np.ndarray, points: int = TIMELINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `points` samples: the largest of each of `points` equal time buckets (at its own time)."""
    n = len(t_ns)
    if n <= points:
        return t_ns, rss
    edges = np.linspace(t_ns[0], t_ns[-1], points + 1)
    bucket = np.clip(np.searchsorted(edges, t_ns, side="right") - 1, 0, points - 1)
    # per bucket, the index of its largest sample: sort by (bucket, -rss), take each bucket's first
    order = np.lexsort((-rss, bucket))
    first = np.r_[True, bucket[order][1:] != bucket[order][:-1]]
    idx = np.sort(order[first])
    return t_ns[idx], rss[idx]


def window_peak(t_ns: np.ndarray, rss: np.ndarray, start_ns: int, end_ns: int) -> int | None:
    """The largest RSS from start to end: the samples inside, and the last one before start (RSS is a level
    that holds until the next sample). None when no sample is at or before end."""
    inside = (t_ns >= start_ns) & (t_ns <= end_ns)
    before = np.flatnonzero(t_ns < start_ns)
    vals = rss[inside]
    if len(before):
        vals = np.r_[vals, rss[before[-1]]]
    return int(vals.max()) if len(vals) else None


def cell_memory(summary: dict | None, samples_path: Path | None, window: tuple[int, int], stats: dict,
                run_path: Path | None = None) -> dict:
    """The `memory` record of one cell's run.json entry (built after the server stopped)."""
    rec: dict = {}
    if summary is None:
        rec.update(status="not measured", reason="no memory watcher ran for this server (an in-process backend: "
                                                 "the server is the harness itself)")
    else:
        interval_s = float(summary.get("interval_s", 0.0))
        wall_ns = int(summary.get("wall_ns", 0))
        rec.update(
            status="ok",
            rss_interval_ms=round(interval_s * 1e3, 3),
            rss_samples=int(summary.get("samples", 0)),
            rss_samples_kept=int(summary.get("kept", 0)),
            rss_samples_stride=int(summary.get("stride", 1)),
            peak_rss_bytes=int(summary.get("peak_rss_bytes", 0)),
            peak_rss_t_ms=_rel_ms(int(summary.get("peak_t_ns", 0)), window[0]) if summary.get("peak_t_ns") else None,
            watcher_cpu_ms=round(int(summary.get("cpu_ns", 0)) / 1e6, 3),
            watcher_wall_ms=round(wall_ns / 1e6, 3),
            # over a short life the two clocks' reads weigh more than the sampling: no share below 0.1 s
            watcher_cpu_share=round(int(summary.get("cpu_ns", 0)) / wall_ns, 5) if wall_ns >= 100_000_000 else None,
        )
        samples = read_samples(samples_path) if samples_path is not None and summary.get("samples_file") else None
        if samples is not None and len(samples):
            t, r = samples["t_ns"].to_numpy(), samples["rss_bytes"].to_numpy()
            rec["rss_samples_file"] = (os.path.relpath(samples_path, run_path) if run_path is not None
                                       else str(samples_path))
            rec["peak_rss_measured_bytes"] = window_peak(t, r, *window)
            before = np.flatnonzero(t <= window[0])
            rec["rss_measure_start_bytes"] = int(r[before[-1]]) if len(before) else None
            upto = np.flatnonzero(t <= window[1])
            rec["rss_measure_end_bytes"] = int(r[upto[-1]]) if len(upto) else None
            td, rd = downsample_max(t, r)
            rec["rss_timeline"] = {"t_ms": [_rel_ms(int(x), window[0]) for x in td], "rss_bytes": [int(x) for x in rd],
                                   "reduce": "max per time bucket", "t_origin": "t_measure_start_ns"}
        else:
            rec["peak_rss_measured_bytes"] = None
    rec["runtime_heap"] = runtime_heap(stats)
    return rec


def _rel_ms(t_ns: int, origin_ns: int) -> float:
    return round((t_ns - origin_ns) / 1e6, 1)


def rss_timeline(run, cell: dict) -> pd.DataFrame:
    """One cell's RSS over time (t_ms from its measured window's start, rss_bytes): the raw samples when its
    file is there, else run.json's downsampled timeline; empty when neither."""
    mem = cell.get("memory") or {}
    path = mem.get("rss_samples_file")
    if path:
        df = read_samples(Path(run.path) / path)
        if len(df):
            return pd.DataFrame({"t_ms": (df["t_ns"] - int(cell.get("t_measure_start_ns", 0))) / 1e6,
                                 "rss_bytes": df["rss_bytes"]})
    tl = mem.get("rss_timeline") or {}
    return pd.DataFrame({"t_ms": pd.Series(tl.get("t_ms", []), dtype="float64"),
                         "rss_bytes": pd.Series(tl.get("rss_bytes", []), dtype="int64")})


# ---------------------------------------------------------------------------------------------- the table

MEMORY_COLUMNS = [
    "backend", "runtime", "gc_mode", "reps", "chains", "dead_mean_ms", "dead_p99_ms", "gc_time_share",
    "peak_rss_mib", "peak_rss_min_mib", "peak_rss_max_mib", "peak_rss_measured_mib", "peak_rss_vs_default",
    "peak_rss_vs_off", "dead_mean_vs_default", "server_max_rss_mib", "heap_used_mib", "heap_total_mib",
    "python_objects", "gc_cpu_fraction", "watcher_cpu_share",
]

# per runtime: which stats fields are "heap in use" and "heap the runtime holds" (bytes)
_HEAP_USED = ("heap_alloc_bytes", "heap_used_bytes")  # Go HeapAlloc; V8 / JVM heap used
_HEAP_TOTAL = ("heap_sys_bytes", "heap_committed_bytes", "heap_total_bytes")  # Go HeapSys; JVM committed; V8 total


def _first(heap: dict, keys: tuple[str, ...]) -> float:
    for k in keys:
        v = heap.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return np.nan


def memory_cells(meta: dict) -> pd.DataFrame:
    """One row per measured cell: its memory figures (NaN where not recorded, e.g. a run made before them)."""
    rows = []
    for c in meta.get("cells", []):
        if c.get("status") != "ok":
            continue
        mem = c.get("memory") if isinstance(c.get("memory"), dict) else {}
        heap = mem.get("runtime_heap") if isinstance(mem.get("runtime_heap"), dict) else {}
        rows.append({
            "backend": c["backend"], "runtime": c.get("runtime", ""), "gc_mode": c["gc_mode"], "rep": c.get("rep", 0),
            "peak_rss_bytes": _num(mem.get("peak_rss_bytes"), zero_is_missing=True),  # 0: no sample was taken
            "peak_rss_measured_bytes": _num(mem.get("peak_rss_measured_bytes"), zero_is_missing=True),
            "server_max_rss_bytes": _num(heap.get("max_rss_bytes"), zero_is_missing=True),
            "heap_used_bytes": _first(heap, _HEAP_USED),
            "heap_total_bytes": _first(heap, _HEAP_TOTAL),
            "python_objects": _num(heap.get("python_objects")),
            "gc_cpu_fraction": _num(heap.get("gc_cpu_fraction")),
            "watcher_cpu_share": _num(mem.get("watcher_cpu_share")),
        })
    return pd.DataFrame(rows)


def _num(v, zero_is_missing: bool = False) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool) or (zero_is_missing and v == 0):
        return np.nan
    return float(v)


def memory_table(run) -> pd.DataFrame:
    """The pause-vs-memory table: one row per (backend, gc mode), in run order.

    GC dead time per chain (mean and p99, from the calls) beside the peak RSS of the server's process tree
    (mean over repetitions, with min and max; whole server life, and the measured window alone), the peak RSS
    and mean dead time as ratios to the same backend's `default` cell and its GC-off cell (what a mitigation
    costs in memory, against the same runtime only), and the runtime's own heap figures (mean over reps).
    `run` is a RunData (gcbench.store.load_run).
    """
    cells = memory_cells(run.meta)
    if len(cells) == 0:
        return pd.DataFrame(columns=MEMORY_COLUMNS)
    g = cells.groupby(GROUP_KEYS, sort=False)
    out = pd.DataFrame({
        "runtime": g["runtime"].first(),
        "reps": g["rep"].nunique(),
        "peak_rss_mib": g["peak_rss_bytes"].mean() / MIB,
        "peak_rss_min_mib": g["peak_rss_bytes"].min() / MIB,
        "peak_rss_max_mib": g["peak_rss_bytes"].max() / MIB,
        "peak_rss_measured_mib": g["peak_rss_measured_bytes"].mean() / MIB,
        "server_max_rss_mib": g["server_max_rss_bytes"].mean() / MIB,
        "heap_used_mib": g["heap_used_bytes"].mean() / MIB,
        "heap_total_mib": g["heap_total_bytes"].mean() / MIB,
        "python_objects": g["python_objects"].mean(),
        "gc_cpu_fraction": g["gc_cpu_fraction"].mean(),
        "watcher_cpu_share": g["watcher_cpu_share"].mean(),
    }).reset_index()
    calls = run.calls
    if len(calls):
        dead = chain_stats(chain_table(calls))[[*GROUP_KEYS, "chains", "dead_mean_ms", "dead_p99_ms", "gc_time_share"]]
        out = out.merge(dead, on=GROUP_KEYS, how="left")
    else:
        for col in ("chains", "dead_mean_ms", "dead_p99_ms", "gc_time_share"):
            out[col] = np.nan
    by_key = {(r.backend, r.gc_mode): r for r in out.itertuples()}

    def ratio(col: str, ref_mode) -> list[float]:
        vals = []
        for r in out.itertuples():
            ref = by_key.get((r.backend, ref_mode(r)))
            num, den = getattr(r, col), getattr(ref, col) if ref is not None else np.nan
            vals.append(num / den if den == den and den > 0 else np.nan)
        return vals

    out["peak_rss_vs_default"] = ratio("peak_rss_mib", lambda r: "default")
    out["peak_rss_vs_off"] = ratio("peak_rss_mib", lambda r: off_mode(r.backend, r.runtime))
    out["dead_mean_vs_default"] = ratio("dead_mean_ms", lambda r: "default")
    return out[MEMORY_COLUMNS]
