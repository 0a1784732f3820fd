"""Ground truth: stalls of known length injected by the GC-free `stall` server, recovered from the client side.

The statement users quote: of the stalls injected, how many gcbench found from call latency alone, how far
the recovered durations are from the stalls the server really made (its side channel records them), and
how many stall-free calls looked like stalls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gcbench.backends.stall import StallBackend
from gcbench.gcmode import GcMode
from gcbench.runner import RunConfig, execute
from gcbench.scenario import Chain, Scenario, Work
from gcbench.store import load_run

DEFAULT_STALLS_MS = (1.0, 5.0, 10.0)


@dataclass
class CalibrationResult:
    run_path: Path
    per_stall: pd.DataFrame  # one row per injected stall
    summary: pd.DataFrame  # one row per planned duration
    false_stalls: int
    stall_free_calls: int
    threshold_ms: float
    baseline_ms: float


def stall_plan(total_calls: int, stalls_ms: tuple[float, ...], per_duration: int, seed: int = 7) -> dict[int, int]:
    """Call index -> stall µs: `per_duration` stalls of each length at random call positions, never adjacent,
    never the first call (so every stall has a clean neighbour on each side)."""
    rng = np.random.default_rng(seed)
    need = per_duration * len(stalls_ms)
    candidates = np.arange(1, total_calls - 1, 3)  # spaced: a stall's neighbours stay stall-free
    if need > len(candidates):
        raise ValueError(f"{need} stalls do not fit in {total_calls} calls")
    picks = np.sort(rng.choice(candidates, size=need, replace=False))
    durations = np.repeat(np.array(stalls_ms), per_duration)
    rng.shuffle(durations)
    return {int(i): int(round(d * 1000)) for i, d in zip(picks, durations, strict=True)}


def calibrate(out_dir: Path, *, chains: int = 10, calls: int = 50, stalls_ms: tuple[float, ...] = DEFAULT_STALLS_MS,
              per_duration: int = 10, mode: str = "busy", threshold_ms: float | None = None,
              transport: str = "stdio", log=print) -> CalibrationResult:
    total = chains * calls
    plan = stall_plan(total, stalls_ms, per_duration) if per_duration else {}
    backend = StallBackend(stalls=plan, mode=mode)
    scenario = Scenario(
        name=f"calibrate-{mode}",
        description="ground truth: known stalls injected by the GC-free stall server",
        chain=Chain(calls=calls, chains=chains, agents=1, warmup_calls=50),
        work=Work(payload_bytes=64),
    )
    result = execute(RunConfig(scenario=scenario, backends=[backend], gc_modes=[GcMode("default")],
                               out_dir=out_dir, transport=transport), log=log)
    run = load_run(result.path)
    if threshold_ms is None:
        threshold_ms = min(stalls_ms) / 2  # also for a stall-free run: the threshold the stalls would get
    return analyse(run.path, run.calls, run.gc_events, plan, threshold_ms)


def analyse(path: Path, calls: pd.DataFrame, events: pd.DataFrame, plan: dict[int, int],
            threshold_ms: float) -> CalibrationResult:
    """Recover stalls from client latency alone; compare with the plan and with the server's own record."""
    calls = calls.sort_values(["chain", "call"]).reset_index(drop=True)
    index = np.arange(len(calls))  # the server counts tools/call from gcbench/measure, in send order
    latency_ms = calls["latency_ns"].to_numpy() / 1e6
    stalled = np.isin(index, list(plan))
    baseline_ms = float(np.median(latency_ms[~stalled])) if (~stalled).any() else 0.0
    excess_ms = latency_ms - baseline_ms
    found = excess_ms >= threshold_ms

    stall_events = events[(events["type"] == "stall")].sort_values("start_ns")
    rows = []
    for i, planned_us in sorted(plan.items()):
        t_send, t_recv = calls.loc[i, "t_send_ns"], calls.loc[i, "t_recv_ns"]
        inside = stall_events[(stall_events["start_ns"] >= t_send) & (stall_events["end_ns"] <= t_recv)]
        actual_ms = float(inside["duration_ns"].sum() / 1e6) if len(inside) else float("nan")
        rows.append({
            "call_index": i, "planned_ms": planned_us / 1000, "server_recorded_ms": actual_ms,
            "client_excess_ms": float(excess_ms[i]), "found": bool(found[i]),
            "error_ms": float(excess_ms[i] - actual_ms), "attributed_ms": float(calls.loc[i, "gc_overlap_ns"] / 1e6),
        })
    per_stall = pd.DataFrame(rows, columns=["call_index", "planned_ms", "server_recorded_ms", "client_excess_ms",
                                            "found", "error_ms", "attributed_ms"])
    summary = []
    for planned, g in per_stall.groupby("planned_ms"):
        err = np.abs(g["error_ms"].to_numpy())
        summary.append({
            "stall_ms": planned, "injected": len(g), "found": int(g["found"].sum()),
            "error_p50_ms": float(np.percentile(err, 50)), "error_p99_ms": float(np.percentile(err, 99)),
            "error_max_ms": float(err.max()),
            "overrun_max_ms": float((g["server_recorded_ms"] - g["planned_ms"]).max()),
        })
    false_stalls = int((found & ~stalled).sum())
    return CalibrationResult(path, per_stall, pd.DataFrame(summary), false_stalls, int((~stalled).sum()),
                             threshold_ms, baseline_ms)


def render(res: CalibrationResult) -> str:
    lines = [
        f"Calibration against the GC-free stall server ({res.run_path})",
        f"A call counts as stalled when its latency exceeds the median stall-free latency "
        f"({res.baseline_ms:.3f} ms) by >= {res.threshold_ms:g} ms.",
        "",
        f"{'stall':>8}  {'found/injected':>14}  {'|error| p50':>11}  {'p99':>8}  {'max':>8}  {'server overrun max':>18}",
    ]
    for r in res.summary.itertuples():
        lines.append(f"{r.stall_ms:>6g}ms  {f'{r.found}/{r.injected}':>14}  {r.error_p50_ms:>9.3f}ms  "
                     f"{r.error_p99_ms:>6.3f}ms  {r.error_max_ms:>6.3f}ms  {r.overrun_max_ms:>16.3f}ms")
    lines += [
        "",
        "error = (call latency - stall-free median) - the stall the server recorded itself.",
        f"False stalls: {res.false_stalls} of {res.stall_free_calls} stall-free calls looked like stalls.",
    ]
    return "\n".join(lines) + "\n"
