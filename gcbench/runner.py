"""The cell loop: for each (repetition, backend, gc mode) a fresh server, warm-up, measured chains, stop."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gcbench.analysis import attribute
from gcbench.backends.base import Backend, CellContext
from gcbench.chain import CallRecords, run_chains, think_schedule_ns
from gcbench.errors import CellError
from gcbench.gcmode import GcMode
from gcbench.metadata import collect_environment
from gcbench.probes.python_gc import GcProbe
from gcbench.scenario import Scenario
from gcbench.store import RunWriter, new_run_id


class Interrupted(Exception):
    """The user asked the run to stop (SIGINT / SIGTERM); carries the exit code to use."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


@dataclass
class RunConfig:
    scenario: Scenario
    backends: list[Backend]
    gc_modes: list[GcMode]
    out_dir: Path
    reps: int = 1
    transport: str = "stdio"
    call_timeout_s: float = 30.0
    start_timeout_s: float = 60.0
    pin: bool = False  # harness on one core, servers on the others
    modes_by_backend: dict[str, list[GcMode]] | None = None  # per-backend modes (a sweep); else gc_modes for all
    run_id: str | None = None  # the run folder's name (a sweep's point); default: date, time and scenario

    def modes_for(self, backend: Backend) -> list[GcMode]:
        if self.modes_by_backend is not None:
            return self.modes_by_backend.get(backend.name, [])
        return self.gc_modes

    def to_dict(self) -> dict:
        return {
            "backends": [b.name for b in self.backends],
            "gc_modes": [str(m) for m in self.gc_modes],
            "reps": self.reps,
            "transport": self.transport,
            "call_timeout_s": self.call_timeout_s,
            "start_timeout_s": self.start_timeout_s,
            "pin": self.pin,
            "modes_by_backend": {b: [str(m) for m in ms] for b, ms in self.modes_by_backend.items()}
            if self.modes_by_backend is not None else None,
        }


@dataclass
class RunResult:
    path: Path
    meta: dict
    failed: list[dict] = field(default_factory=list)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def execute(config: RunConfig, log: Callable[[str], None] = _log,
            on_cell: Callable[[dict], None] = lambda cell: None) -> RunResult:
    """Measure every cell of the config into a new run folder; `on_cell` sees each cell's entry as it ends."""
    scenario = config.scenario
    env = collect_environment()
    env["backend_versions"] = {b.name: b.availability().version for b in config.backends}
    env["pinning"] = pin_cores(config.pin)
    writer = RunWriter(
        config.out_dir,
        config.run_id or new_run_id(scenario.name),
        {
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": sys.argv,
            "scenario": scenario.to_dict(),
            "scenario_source": scenario.source,
            "config": config.to_dict(),
            "environment": env,
        },
    )
    log(f"gcbench: run folder {writer.path}")
    cells = [(rep, b, m) for rep in range(config.reps) for b in config.backends for m in config.modes_for(b)]
    failed: list[dict] = []
    try:
        for backend in config.backends:
            backend.prepare(log)
        for i, (rep, backend, mode) in enumerate(cells, 1):
            label = f"[{i}/{len(cells)}] {backend.name} gc={mode} rep={rep}"
            reason = backend.unsupported_reason(mode)
            if reason:
                writer.add_cell(_cell_meta(backend, mode, rep, status="skipped", reason=reason))
                log(f"{label}: skipped: {reason}")
                on_cell(writer.meta["cells"][-1])
                continue
            t0 = time.monotonic()
            try:
                cell, calls, events = measure_cell(backend, mode, rep, scenario, config, writer)
            except CellError as e:
                cell = _cell_meta(backend, mode, rep, status="failed", reason=str(e))
                failed.append(cell)
                writer.add_cell(cell)
                log(f"{label}: FAILED: {e}")
                on_cell(cell)
                continue
            writer.add_cell(cell, calls, events)
            errs = int((~calls["ok"]).sum())
            log(
                f"{label}: {len(calls)} calls in {time.monotonic() - t0:.1f} s, "
                f"{int((events['source'] == 'server').sum()) if len(events) else 0} GC events"
                + (f", {errs} call errors" if errs else "")
            )
            on_cell(cell)
    except Interrupted:
        writer.finish("interrupted", load_average_after=list(os.getloadavg()))
        raise
    writer.finish("complete" if not failed else "complete-with-failures", load_average_after=list(os.getloadavg()))
    return RunResult(writer.path, writer.meta, failed)


def pin_cores(pin: bool) -> dict:
    """--pin: the harness keeps the first allowed core, servers get the rest (when there are at least two)."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin:
        return {"pinned": False, "harness_cores": cores, "server_cores": cores}
    if len(cores) < 2:
        return {"pinned": False, "reason": f"only {len(cores)} core allowed", "harness_cores": cores,
                "server_cores": cores}
    os.sched_setaffinity(0, cores[:1])
    return {"pinned": True, "harness_cores": cores[:1], "server_cores": cores[1:]}


def _cell_meta(backend: Backend, mode: GcMode, rep: int, **kw) -> dict:
    return {"backend": backend.name, "runtime": backend.runtime, "gc_mode": str(mode), "rep": rep,
            "in_process": backend.in_process, **kw}


def cell_id(backend: Backend, mode: GcMode, rep: int) -> str:
    return f"{backend.name}__{str(mode).replace(':', '-').replace(',', '_')}__r{rep}"


def measure_cell(
    backend: Backend, mode: GcMode, rep: int, scenario: Scenario, config: RunConfig, writer: RunWriter
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    cid = cell_id(backend, mode, rep)
    ctx = CellContext(
        events_path=writer.cell_file(cid, ".events.jsonl"),
        stderr_path=writer.cell_file(cid, ".stderr.log"),
        transport=config.transport,
        timeout_s=config.start_timeout_s,
        cpu_affinity=writer.meta["environment"]["pinning"]["server_cores"] if config.pin else None,
    )
    arguments = backend.tool_arguments(scenario)
    think_ns = think_schedule_ns(scenario.chain, np.random.default_rng([scenario.chain.seed, rep]))
    handle = backend.start(mode, scenario, ctx)
    exit_code = None
    try:
        session = handle.session
        init = session.handshake(backend.tool)
        session.timeout_s = config.call_timeout_s
        for _ in range(scenario.chain.warmup_calls):
            session.request("tools/call", {"name": backend.tool, "arguments": arguments})
        session.control("gcbench/measure")
        records, client_events, window = _measure(handle, scenario, backend, arguments, think_ns, config)
        session.control("gcbench/flush")
    finally:
        exit_code = handle.stop()
    server_events, stats, bad_lines = read_side_channel(ctx.events_path)
    calls = calls_frame(records, backend.name, str(mode), rep)
    events = events_frame(server_events, client_events, backend.name, str(mode), rep, window)
    calls["gc_overlap_ns"] = attribute(calls, events)
    cell = _cell_meta(
        backend, mode, rep, status="ok",
        server_info=init.get("serverInfo"), pid=handle.pid, exit_code=exit_code,
        t_measure_start_ns=window[0], t_measure_end_ns=window[1],
        client_gc_events_in_window=int(sum(1 for e in client_events if e["end_ns"] >= window[0] and e["start_ns"] <= window[1])),
        stats=stats, side_channel_bad_lines=bad_lines,
    )
    return cell, calls, events


def _measure(handle, scenario, backend, arguments, think_ns, config) -> tuple[CallRecords, list[dict], tuple[int, int]]:
    """Drive the chains with the harness's own GC off (and recorded), unless the backend runs in-process."""
    own_gc = not backend.in_process
    probe = GcProbe(None, runtime="python").install() if own_gc else None
    was_enabled = gc.isenabled()
    if own_gc:
        gc.collect()
        gc.freeze()  # what the harness has built so far is never traversed again
        gc.disable()
    t_start = time.monotonic_ns()
    try:
        records = run_chains(handle.session.transport, scenario.chain, backend.tool, arguments, think_ns,
                             config.call_timeout_s)
    finally:
        t_end = time.monotonic_ns()
        client = []
        if own_gc:
            if was_enabled:
                gc.enable()
            gc.unfreeze()
            probe.uninstall()
            client = [
                {"generation": g, "start_ns": s, "end_ns": e, "collected": c}
                for g, s, e, c, _ in probe.drain()
            ]
    return records, client, (t_start, t_end)


def read_side_channel(path: Path) -> tuple[list[dict], dict, int]:
    """Events (type gc/stall), the last stats record, and how many lines could not be read."""
    events: list[dict] = []
    stats: dict = {}
    bad = 0
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return events, stats, 0
    with f:
        for line in f:
            try:
                rec = json.loads(line)
                kind = rec.get("type")
            except (ValueError, AttributeError):
                bad += 1
                continue
            if kind in ("gc", "stall"):
                if not isinstance(rec.get("start_ns"), int) or not isinstance(rec.get("end_ns"), int):
                    bad += 1
                    continue
                events.append(rec)
            elif kind == "stats":
                stats = rec
    return events, stats, bad


def calls_frame(rec: CallRecords, backend: str, mode: str, rep: int) -> pd.DataFrame:
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
        "t_send_ns": rec.t_send_ns, "t_recv_ns": rec.t_recv_ns, "t_intended_ns": rec.t_intended_ns,
        "latency_ns": rec.t_recv_ns - rec.t_send_ns,
        "ok": rec.ok, "error": error, "gc_overlap_ns": np.zeros(n, np.int64),
    })


def events_frame(server: list[dict], client: list[dict], backend: str, mode: str, rep: int,
                 window: tuple[int, int]) -> pd.DataFrame:
    rows = []
    for e in server:
        rows.append({"source": "server", "type": e["type"], "runtime": e.get("runtime", ""),
                     "kind": str(e.get("kind", e["type"])), "generation": int(e.get("generation", -1)),
                     "start_ns": e["start_ns"], "end_ns": e["end_ns"], "collected": int(e.get("collected", -1))})
    for e in client:
        rows.append({"source": "client", "type": "gc", "runtime": "python", "kind": f"gen{e['generation']}",
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
