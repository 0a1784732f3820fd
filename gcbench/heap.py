"""The live heap of each cell as its runtime counts it, and what a CPython full collection costs per object.

Inputs are what a run already holds: each cell's server stats record (run.json) and its gc_events table.
Nothing here is estimated: a figure the runtime did not report is left out (None), never filled in.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

import pandas as pd

# runtime -> (stats field, unit): the runtime's own count of its live heap, read by the server at flush time
# (outside the measurement window), so it includes the retained cache at the end of the cell.
#   python: gc.get_objects() length, the objects the cyclic collector tracks (frozen ones excluded: measured
#           on 3.11.7, 111,163 before gc.freeze() and 0 after), which is what a full collection traverses;
#   node:   v8.getHeapStatistics().used_heap_size (live objects and not yet collected garbage);
#   go:     MemStats.HeapAlloc (the same: allocated heap objects, garbage until swept included);
#   java:   MemoryMXBean heap usage (the same);
#   rust:   no heap count (no runtime): the resident set, which is not a heap figure.
LIVE_HEAP_FIELDS: dict[str, tuple[str, str]] = {
    "python": ("tracked_objects", "objects"),
    "node": ("heap_used_bytes", "bytes"),
    "go": ("heap_alloc_bytes", "bytes"),
    "java": ("heap_used_bytes", "bytes"),
    "rust": ("rss_bytes", "bytes (RSS)"),
}


def live_heap(runtime: str, stats: Mapping) -> tuple[str, str, int] | None:
    """(stats field, unit, value) of the runtime's live-heap figure, or None when the record lacks it."""
    field = LIVE_HEAP_FIELDS.get(runtime)
    if field is None:
        return None
    value = stats.get(field[0])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return field[0], field[1], int(value)


def ns_per_tracked_object(full_collection_ns: Iterable[int], tracked_objects: int | None) -> float | None:
    """The median full collection's duration divided by the objects it traversed (CPython: tracked objects).

    The count comes from the stats record at the end of the cell: the figure is right when the live heap was
    steady over the cell (a start-up heap, a cache at its cap), and overstates the cost when it grew.
    """
    durations = [int(d) for d in full_collection_ns]
    if not durations or not tracked_objects or tracked_objects <= 0:
        return None
    return statistics.median(durations) / tracked_objects


def full_collections_ns(gc_events: pd.DataFrame, backend: str, gc_mode: str, rep: int) -> list[int]:
    """One cell's CPython full collections (gen2) inside its measurement window, in nanoseconds.

    A `freeze` cell's own gc.collect() at gcbench/measure is outside the window, so it is not counted.
    """
    if gc_events.empty:
        return []
    e = gc_events
    sel = ((e["backend"] == backend) & (e["gc_mode"] == gc_mode) & (e["rep"] == rep) & (e["source"] == "server")
           & (e["type"] == "gc") & (e["runtime"] == "python") & (e["generation"] == 2) & e["measured"].astype(bool))
    return [int(d) for d in e.loc[sel, "duration_ns"]]


def heap_table(cells: Iterable[Mapping], gc_events: pd.DataFrame, scenario: Mapping | None = None) -> pd.DataFrame:
    """One row per measured cell: its start-up heap (count and shape, from the scenario), the runtime's live-heap
    figure, and for CPython the full collections seen and their cost per tracked object."""
    server = (scenario or {}).get("server") or {}
    rows = []
    for c in cells:
        if c.get("status") != "ok":
            continue
        stats = c.get("stats") or {}
        runtime = c.get("runtime") or stats.get("runtime") or ""
        heap = live_heap(runtime, stats)
        row = {
            "backend": c.get("backend"), "gc_mode": c.get("gc_mode"), "rep": c.get("rep"), "runtime": runtime,
            "heap_objects": server.get("heap_objects"), "heap_shape": server.get("heap_shape"),
            "live_heap_field": heap[0] if heap else None, "live_heap_unit": heap[1] if heap else None,
            "live_heap": heap[2] if heap else None,
            "full_collections": None, "full_collection_p50_ns": None, "full_collection_max_ns": None,
            "ns_per_tracked_object": None,
        }
        if runtime == "python":
            full = full_collections_ns(gc_events, c.get("backend"), c.get("gc_mode"), c.get("rep"))
            row["full_collections"] = len(full)
            if full:
                row["full_collection_p50_ns"] = int(statistics.median(full))
                row["full_collection_max_ns"] = max(full)
                row["ns_per_tracked_object"] = ns_per_tracked_object(full, stats.get("tracked_objects"))
        rows.append(row)
    return pd.DataFrame(rows)
