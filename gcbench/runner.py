"""One cell: a fresh server, warm-up, measured chains, stop (the run around it: gcbench/scheduler.py)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gcbench import procs, trace
from gcbench.analysis import attribute
from gcbench.analysis.harness_load import due_gap_ns, harness_figures, harness_limits
from gcbench.backends.base import FAILED_STOP_GRACE_S, Backend, CellContext
from gcbench.chain import CallRecords, chain_agents, drive_chains, settle_replies, think_schedule_ns
from gcbench.config import RunConfig
from gcbench.gcmode import GcMode
from gcbench.hiccup import ControlProcess, meter_hiccup_us
from gcbench.memory import cell_memory
from gcbench.probes.python_gc import GcProbe
from gcbench.procs import Interrupted
from gcbench.progress import Progress
from gcbench.scenario import Scenario
from gcbench.scheduler import RunResult, Scheduler, _log
from gcbench.scheduler import cell_meta as _cell_meta
from gcbench.side_channel import read_side_channel
from gcbench.store import RunWriter

__all__ = ["Interrupted", "RunConfig", "RunResult", "execute", "measure_cell", "read_side_channel"]


def execute(config: RunConfig, log: Callable[[str], None] = _log,
            on_cell: Callable[[dict], None] = lambda cell: None, progress: Progress | None = None) -> RunResult:
    """Measure every cell of the config into a new run folder; `on_cell` sees each cell's entry as it ends
    (gcbench/scheduler.py: prepare, run_cell -> CellOutcome, record, finish).

    A cell that fails (server crash, hang, protocol violation, memory cap, a backend that cannot be prepared)
    is recorded as failed with its reason and the run goes on; every finished cell is on disk before the next
    starts. On Interrupted the run folder is marked 'interrupted' and the exception goes on to the caller.
    """
    return Scheduler(config, log, on_cell, progress).run()


def cell_id(backend: Backend, mode: GcMode, rep: int) -> str:
    return f"{backend.name}__{str(mode).replace(':', '-').replace(',', '_')}__r{rep}"


def measure_cell(
    backend: Backend, mode: GcMode, rep: int, scenario: Scenario, config: RunConfig, writer: RunWriter,
    control: tuple[Path | None, str] = (None, ""),
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """One cell; `control` is (the control process binary, or None and why not) when the run meters hiccups."""
    cid = cell_id(backend, mode, rep)
    ctx = CellContext(
        events_path=writer.cell_file(cid, ".events.jsonl"),
        stderr_path=writer.cell_file(cid, ".stderr.log"),
        transport=config.transport,
        timeout_s=config.start_timeout_s,
        max_memory_bytes=config.max_server_memory_bytes,
        cpu_affinity=writer.meta["environment"]["pinning"]["server_cores"] if config.pin else None,
        rss_samples_path=writer.cell_file(cid, ".rss.csv"),
        rss_interval_s=config.rss_interval_s,
    )
    arguments = backend.tool_arguments(scenario)
    think_ns = think_schedule_ns(scenario.chain, np.random.default_rng([scenario.chain.seed, rep]))
    plan = call_plan(scenario, backend, arguments, rep, think_ns)
    control_proc = None
    if config.hiccup_us > 0 and control[0] is not None:  # started first, stopped last: it spans the cell
        control_proc = ControlProcess(control[0], writer.cell_file(cid, ".control.jsonl"),
                                      writer.cell_file(cid, ".control.stderr.log"), config.hiccup_us,
                                      config.hiccup_floor_us)
    try:
        with procs.raising():  # waits on the server: a first signal interrupts at once (the server is stopped)
            handle = backend.start(mode, scenario, ctx)
    except BaseException:
        if control_proc is not None:
            control_proc.stop()
        raise
    exit_code = None
    ok = False
    try:
        with procs.raising():
            session = handle.session
            init = session.handshake(plan.tools_used)
            session.timeout_s = config.call_timeout_s
            for params in plan.warmup:
                session.request("tools/call", params)
            session.transport.connect(chain_agents(scenario.chain))  # no connect inside the window
            before = backend.before_measure(handle, mode, ctx)
            session.control("gcbench/measure")
            records, client_events, window, client_allocs, cpu_s = _measure(handle, scenario, backend, arguments,
                                                                             plan, config)
            session.control("gcbench/flush")
        ok = True
    finally:
        # a failed or interrupted cell's data is not kept: no long wait for an unresponsive server
        try:
            exit_code = handle.stop() if ok else handle.stop(FAILED_STOP_GRACE_S)
        finally:
            control_exit = control_proc.stop() if control_proc is not None else None
    server_events, stats, bad_lines = read_side_channel(ctx.events_path)
    server_events, stats = backend.finish_events(server_events, stats, ctx)
    control_events: list[dict] = []
    control_meta: dict | None = None
    if control_proc is not None:
        control_events, control_stats, control_bad = read_side_channel(control_proc.events_path)
        control_meta = {"pid": control_proc.pid, "exit_code": control_exit, "stats": control_stats,
                        "side_channel_bad_lines": control_bad}
    elif config.hiccup_us > 0:
        control_meta = {"status": "unavailable", "reason": control[1]}
    calls = calls_frame(records, backend.name, str(mode), rep, plan.tools)
    events = events_frame(server_events, client_events, backend.name, str(mode), rep, window, control_events)
    calls["gc_overlap_ns"] = attribute(calls, events)
    cell = _cell_meta(
        backend, mode, rep, status="ok",
        server_info=init.get("serverInfo"), pid=handle.pid, exit_code=exit_code,
        t_measure_start_ns=window[0], t_measure_end_ns=window[1],
        client_gc_events_in_window=int(sum(1 for e in client_events if e["end_ns"] >= window[0] and e["start_ns"] <= window[1])),
        client_tracked_allocations=client_allocs,
        stats=stats, side_channel_bad_lines=bad_lines, stderr_dropped_bytes=getattr(handle, "stderr_dropped_bytes", 0),
        hiccup_us=meter_hiccup_us(backend), control=control_meta, **before,
        memory=cell_memory(handle.memory, ctx.rss_samples_path, window, stats, writer.path),
        harness=harness_figures(records.t_send_ns, records.t_intended_ns, cpu_s, window[1] - window[0],
                                due_gap_ns(plan.think_ns, scenario.chain.rate_per_s)),
    )
    warnings = probe_drop_warnings(stats) + [str(w) for w in harness_limits(cell["harness"])]
    if warnings:
        cell["warnings"] = warnings
    return cell, calls, events


@dataclass
class CallPlan:
    """What a cell sends, built before the measured window: see gcbench/trace.py."""

    tools: list[str]  # the tool of each call of a chain
    think_ns: np.ndarray  # (chains, calls)
    requests: list[bytes] | None  # each measured call's request (None: every call the same, built by run_chains)
    warmup: list[dict]  # the params of each warm-up call

    @property
    def tools_used(self) -> list[str]:
        return list(dict.fromkeys(self.tools))


def call_plan(scenario: Scenario, backend: Backend, arguments: dict, rep: int, think_ns: np.ndarray) -> CallPlan:
    """A trace's calls (placeholders expanded), or `calls` calls of the backend's tool with the same arguments."""
    ch = scenario.chain
    tr = scenario.trace
    if tr is None:
        return CallPlan([backend.tool] * ch.calls, think_ns, None,
                        [{"name": backend.tool, "arguments": arguments}] * ch.warmup_calls)
    return CallPlan([s.tool for s in tr.steps], trace.apply_think(think_ns, tr),
                    trace.request_templates(tr, ch.chains, ch.seed, rep),
                    trace.warmup_params(tr, ch.warmup_calls, ch.chains, ch.seed, rep))


def probe_drop_warnings(stats: dict) -> list[str]:
    """What a server's probe saw but could not keep (its buffer was full): the cell's GC record is incomplete."""
    out = []
    for key, what in (("gc_events_dropped", "GC events"), ("hiccup_dropped", "hiccups")):
        n = stats.get(key)
        if type(n) is int and n > 0:
            out.append(f"the server's probe dropped {n} {what} ({key} in its stats record): its buffer was full, "
                       "so the cell's GC figures are incomplete")
    return out


def _measure(handle, scenario, backend, arguments, plan, config) \
        -> tuple[CallRecords, list[dict], tuple[int, int], int | None, float]:
    """Drive the chains with the harness's own GC off (and recorded), unless the backend runs in-process.

    Also returns the growth of the harness's gc.get_count()[0] over the window: None in-process (the
    harness's GC stays on) and None when any collection ran inside the window (both reset the count). With
    the GC disabled that count is the net number of GC-tracked objects allocated (allocations minus frees of
    container objects): measured on CPython 3.11.7, 3.12.1 and 3.13.0, 10,000 kept lists plus 5,000 dicts
    allocated and freed grow it by 10,004. It says how much the harness's young generation would have had to
    collect with its GC on. Last, the harness process's CPU time over the window (every thread, in s): read
    before and after it, never per call.
    """
    own_gc = not backend.in_process
    probe = GcProbe(None, runtime="python").install() if own_gc else None
    was_enabled = gc.isenabled()
    if own_gc:
        gc.collect()
        gc.freeze()  # what the harness has built so far is never traversed again
        gc.disable()
    count0, collections0 = gc.get_count()[0], sum(s["collections"] for s in gc.get_stats())
    cpu0 = time.process_time()
    t_start = time.monotonic_ns()
    try:
        records = drive_chains(handle.session.transport, scenario.chain, backend.tool, arguments, plan.think_ns,
                               config.call_timeout_s, requests=plan.requests)
    finally:
        t_end = time.monotonic_ns()
        cpu_s = time.process_time() - cpu0
        # a collection inside the window (an explicit gc.collect()) resets the count: then it says nothing
        collected = sum(s["collections"] for s in gc.get_stats()) != collections0
        allocs = gc.get_count()[0] - count0 if own_gc and not collected else None
        client = []
        if own_gc:
            if was_enabled:
                gc.enable()
            gc.unfreeze()
            probe.uninstall()
            client = [
                {"generation": g, "kind": probe.kind(g), "start_ns": s, "end_ns": e, "collected": c}
                for g, s, e, c, _ in probe.drain()
            ]
    return settle_replies(records), client, (t_start, t_end), allocs, cpu_s  # responses parsed outside the window


def calls_frame(rec: CallRecords, backend: str, mode: str, rep: int, tools: list[str]) -> pd.DataFrame:
    """One row per call; `tools`: the tool of each call of a chain."""
    n = len(rec)
    rows = np.arange(n)
    chain = rows // rec.calls_per_chain
    error = pd.Series([None] * n, dtype="string")
    if rec.errors:
        idx = np.fromiter(rec.errors.keys(), dtype=np.int64)
        error.iloc[idx] = list(rec.errors.values())
    return pd.DataFrame({
        "backend": backend, "gc_mode": mode, "rep": rep,
        "agent": (chain % rec.agents).astype(np.int32), "chain": chain.astype(np.int32),
        "call": (rows % rec.calls_per_chain).astype(np.int32),
        "tool": pd.Series(np.array(tools, dtype=object)[rows % rec.calls_per_chain], dtype="string"),
        "t_send_ns": rec.t_send_ns, "t_recv_ns": rec.t_recv_ns, "t_intended_ns": rec.t_intended_ns,
        "latency_ns": rec.t_recv_ns - rec.t_send_ns,
        "ok": rec.ok, "error": error, "gc_overlap_ns": np.zeros(n, np.int64),
    })


def events_frame(server: list[dict], client: list[dict], backend: str, mode: str, rep: int,
                 window: tuple[int, int], control: list[dict] = ()) -> pd.DataFrame:
    """One row per event: the server's (gc, stall, hiccup), the harness's own GC, the control process's hiccups."""
    rows = []
    for source, evs in (("server", server), ("control", control)):
        for e in evs:
            rows.append({"source": source, "type": e["type"], "runtime": e.get("runtime", ""),
                         "kind": str(e.get("kind", e["type"])), "generation": int(e.get("generation", -1)),
                         "start_ns": e["start_ns"], "end_ns": e["end_ns"],
                         "collected": int(e.get("collected", -1))})
    for e in client:
        rows.append({"source": "client", "type": "gc", "runtime": "python",
                     "kind": e.get("kind", f"gen{e['generation']}"),
                     "generation": e["generation"], "start_ns": e["start_ns"], "end_ns": e["end_ns"],
                     "collected": e["collected"]})
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows)
    df.insert(0, "rep", rep)
    df.insert(0, "gc_mode", mode)
    df.insert(0, "backend", backend)
    df["duration_ns"] = df["end_ns"] - df["start_ns"]
    df["measured"] = (df["end_ns"] >= window[0]) & (df["start_ns"] <= window[1])
    return df
