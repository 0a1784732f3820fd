"""Synthetic run folders with exactly known timings, written through the real RunWriter and attribution.

A cell is described by per-call latencies and pauses placed inside given calls; calls of a chain follow each
other with a fixed gap. The clock starts at an odd offset so that nothing can rely on time starting at zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gcbench.analysis import attribute
from gcbench.store import RunWriter

CLOCK_START_NS = 7_123_456_789_013


@dataclass
class Pause:
    rep: int
    chain: int
    call: int
    offset_ns: int  # from the call's send time; may be negative or run past the call's end
    duration_ns: int
    generation: int = 0
    measured: bool = True


@dataclass
class Cell:
    backend: str
    gc_mode: str
    latency_ns: np.ndarray  # shape (reps, chains, calls)
    pauses: list[Pause] = field(default_factory=list)
    gap_ns: int = 1_000  # between a response and the next send
    runtime: str = "python"
    client_pauses: list[Pause] = field(default_factory=list)  # collections of the harness's own GC
    info: dict = field(default_factory=dict)  # more run.json cell fields (stats, client counts), every rep


def constant_cell(backend: str, gc_mode: str, latency_ns: int, reps: int = 1, chains: int = 4, calls: int = 5,
                  pauses: list[Pause] | None = None) -> Cell:
    return Cell(backend, gc_mode, np.full((reps, chains, calls), latency_ns, np.int64), pauses or [])


def noisy_cell(backend: str, gc_mode: str, mean_ns: float, seed: int, reps: int = 1, chains: int = 30,
               calls: int = 10, sigma: float = 0.2, scale: float = 1.0) -> Cell:
    rng = np.random.default_rng(seed)
    lat = (rng.lognormal(np.log(mean_ns), sigma, (reps, chains, calls)) * scale).astype(np.int64)
    return Cell(backend, gc_mode, lat)


def _cell_frames(cell: Cell, t0: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    reps, chains, calls = cell.latency_ns.shape
    calls_rows, event_rows = [], []
    t = t0
    for rep in range(reps):
        for chain in range(chains):
            for call in range(calls):
                lat = int(cell.latency_ns[rep, chain, call])
                calls_rows.append({"backend": cell.backend, "gc_mode": cell.gc_mode, "rep": rep, "agent": 0,
                                   "chain": chain, "call": call, "t_send_ns": t, "t_recv_ns": t + lat, "t_intended_ns": 0,
                                   "latency_ns": lat, "ok": True, "error": None, "gc_overlap_ns": 0})
                for source, p in [*(("server", p) for p in cell.pauses), *(("client", p) for p in cell.client_pauses)]:
                    if (p.rep, p.chain, p.call) == (rep, chain, call):
                        s = t + p.offset_ns
                        event_rows.append({"backend": cell.backend, "gc_mode": cell.gc_mode, "rep": rep,
                                           "source": source, "type": "gc",
                                           "runtime": cell.runtime if source == "server" else "python",
                                           "kind": f"gen{p.generation}", "generation": p.generation,
                                           "start_ns": s, "end_ns": s + p.duration_ns, "duration_ns": p.duration_ns,
                                           "collected": 0, "measured": p.measured})
                t += lat + cell.gap_ns
    calls_df = pd.DataFrame(calls_rows)
    events_df = pd.DataFrame(event_rows)
    calls_df["gc_overlap_ns"] = attribute(calls_df, events_df)
    return calls_df, events_df, t


def write_run(out_dir: Path, cells: list[Cell], scenario_name: str = "synthetic", hostname: str = "host-a",
              run_id: str = "synthetic", scenario_extra: dict | None = None) -> Path:
    reps, chains, calls = cells[0].latency_ns.shape
    scenario = {"name": scenario_name, "description": "synthetic timings",
                "chain": {"calls": calls, "chains": chains, "agents": 1, "warmup_calls": 0, "seed": 1},
                **(scenario_extra or {})}
    meta = {
        "created_utc": "2026-01-01T00:00:00Z", "command": ["synthetic"], "scenario": scenario,
        "scenario_source": "<synthetic>",
        "config": {"backends": list(dict.fromkeys(c.backend for c in cells)),
                   "gc_modes": list(dict.fromkeys(c.gc_mode for c in cells)), "reps": reps},
        "environment": {"hostname": hostname, "cpu_model": "Test CPU", "cpu_count": 2, "machine": "x86_64",
                        "platform": "Linux-test", "python_version": "3.11.7", "gcbench_version": "test",
                        "backend_versions": {c.backend: "test 1.0" for c in cells}},
    }
    writer = RunWriter(Path(out_dir), run_id, meta)
    t = CLOCK_START_NS
    for cell in cells:
        calls_df, events_df, t = _cell_frames(cell, t)
        for rep in range(cell.latency_ns.shape[0]):
            info = {"backend": cell.backend, "runtime": cell.runtime, "gc_mode": cell.gc_mode, "rep": rep,
                    "in_process": False, "status": "ok", **cell.info}
            c = calls_df[calls_df["rep"] == rep]
            e = events_df[events_df["rep"] == rep] if len(events_df) else events_df
            writer.add_cell(info, c, e)
        t += 10**9
    writer.finish("complete")
    return writer.path


def lockstep_cell(backend: str, gc_mode: str, agents: int, calls: int, latency_ns: int,
                  pause_rounds: dict[int, int] | None = None, runtime: str = "python", gap_ns: int = 1_000,
                  t0: int = CLOCK_START_NS) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """`agents` agents in lockstep, one chain each: in round i every agent sends call i at the same time and is
    answered latency_ns later. `pause_rounds` {round: pause ns}: a server pause starting 1 us into that round,
    which delays every agent's call (amplification = agents). Returns (calls, events, the clock after)."""
    calls_rows, event_rows = [], []
    t = t0
    for i in range(calls):
        for a in range(agents):
            calls_rows.append({"backend": backend, "gc_mode": gc_mode, "rep": 0, "agent": a, "chain": a, "call": i,
                               "t_send_ns": t, "t_recv_ns": t + latency_ns, "t_intended_ns": 0,
                               "latency_ns": latency_ns, "ok": True, "error": None, "gc_overlap_ns": 0})
        d = (pause_rounds or {}).get(i)
        if d:
            s = t + 1_000
            event_rows.append({"backend": backend, "gc_mode": gc_mode, "rep": 0, "source": "server", "type": "gc",
                               "runtime": runtime, "kind": "gen0", "generation": 0, "start_ns": s, "end_ns": s + d,
                               "duration_ns": d, "collected": 0, "measured": True})
        t += latency_ns + gap_ns
    calls_df = pd.DataFrame(calls_rows)
    events_df = pd.DataFrame(event_rows)
    calls_df["gc_overlap_ns"] = attribute(calls_df, events_df)
    return calls_df, events_df, t


def write_frames(out_dir: Path, run_id: str, cells: list[tuple[dict, pd.DataFrame, pd.DataFrame]],
                 scenario: dict) -> Path:
    """A run folder of ready-made frames: each (run.json cell fields, calls, events) is one cell (rep 0)."""
    meta = {
        "created_utc": "2026-01-01T00:00:00Z", "command": ["synthetic"], "scenario": scenario,
        "scenario_source": "<synthetic>",
        "config": {"backends": list(dict.fromkeys(i["backend"] for i, _, _ in cells)),
                   "gc_modes": list(dict.fromkeys(i["gc_mode"] for i, _, _ in cells)), "reps": 1},
        "environment": {"hostname": "host-a", "cpu_model": "Test CPU", "cpu_count": 2, "machine": "x86_64",
                        "platform": "Linux-test", "python_version": "3.11.7", "gcbench_version": "test",
                        "backend_versions": {i["backend"]: "test 1.0" for i, _, _ in cells}},
    }
    writer = RunWriter(Path(out_dir), run_id, meta)
    for info, calls_df, events_df in cells:
        writer.add_cell({"runtime": "python", "rep": 0, "in_process": False, "status": "ok", **info}, calls_df,
                        events_df)
    writer.finish("complete")
    return writer.path
