"""GC events of an unmodified Go server, from outside: its GODEBUG=gctrace=1 lines and its own pause buffer.

Two sources, both written by the Go runtime itself:

1. The gctrace line of every cycle on stderr (gcbench/probes/go_gctrace.py): cycle number, `@T.TTTs` (the
   sweep termination's start, counted from runtimeInitTime and truncated to whole ms), the three phase durations
   (two significant digits), CPU times and heap sizes. Alone it places a cycle only to within 1 ms.
2. The runtime's circular buffer of its last 256 cycles (go_memstats.py), read from /proc/<pid>/mem once the
   measured calls are over: for each cycle the exact summed pause (PauseNs) and the wall clock at its exact end
   (PauseEnd), plus the runtime's own (wall, monotonic) pair for its last cycle. These are exactly what the
   built-in Go server reads with debug.ReadGCStats, so each cycle becomes the same `stw_cycle` event and is split
   into its two stop-the-world phases by the same code (go_gctrace.place_cycles): mark termination ends at the
   exact end; sweep termination is placed back from it with the printed mark duration (its position error is in
   the stats record).

A cycle in the gctrace log but no longer in the buffer (more than 256 cycles since it) is placed from its `@`
field: runtimeInitTime (read from memory with the symbol table, else fitted from the cycles the buffer has)
+ T + half a ms. Its phases are then known to +- 0.5 ms plus the fit's error, far more than a Go pause (tens of
us): an event whose placement error exceeds its duration is typed `gc_unplaced`, kept in the event and pause
tables but left out of attribution, because it could belong to the call before or after just as well.

Measured (go1.27.3, this 2-core box, tests/fixtures/go_mcp_server, 300 calls of 20k nodes): the buffer read took
16 ms after the calls (mostly parsing the ELF symbol table once); the runtime's wall-monotonic pair and the
harness's differed by 3.4 us; 157 of 160 cycles split into their phases, 3 not (their printed sweep termination
includes the wait for sched.lock before the world stops, which PauseNs leaves out: they stay one `stw_cycle`
`gc_unplaced`, as in the built-in backend); the exact ends were 11-1590 us after runtimeInitTime + T + the
printed durations, the 1 ms truncation of `@` plus the truncation of the durations.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gcbench.backends.custom.go_memstats import GoMemError, PauseBuffer, read_pause_buffer
from gcbench.detect import go_build_version
from gcbench.probes.go_gctrace import GcTraceCycle, parse_log, place_cycles

AT_WIDTH_NS = 1_000_000  # `@T.TTTs` is truncated to whole ms


@dataclass
class GoCell:
    """What the harness learns about one cell's Go process besides its stderr."""

    t_launch_ns: int  # 0: gcbench did not start the process (--server-url)
    t_measure_ns: int = 0  # when the measured calls began (end of warm-up)
    t_stop_ns: int = 0  # when the buffer was read (the measured calls are over)
    go_pid: int | None = None
    buffer: PauseBuffer | None = None
    read_error: str = ""
    notes: list[str] = field(default_factory=list)


def find_go_process(pid: int) -> tuple[int | None, str]:
    """The Go process of a server: the server itself, else the deepest Go program it started (not `go` itself)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error as e:
        return None, f"the server process {pid} is gone ({e.__class__.__name__})"
    found = None
    for p in procs:
        try:
            exe = f"/proc/{p.pid}/exe"
            if go_build_version(exe) is not None and os.path.basename(os.path.realpath(exe)) != "go":
                found = p.pid
        except OSError:
            continue
    return (found, "") if found else (None, "no process of the server is a Go program")


def read_before_stop(cell: GoCell, pid: int, stderr_path: Path, clock=None) -> None:
    """Read the Go process's pause buffer (called once the measured calls are over, before the stop)."""
    import time

    cell.t_stop_ns = (clock or time.monotonic_ns)()
    go_pid, why = find_go_process(pid)
    if go_pid is None:
        cell.read_error = why
        return
    cell.go_pid = go_pid
    lines, _ = parse_log(stderr_path)
    if not lines:
        cell.read_error = "no GC cycle ran (no gctrace line): nothing to read"
        return
    try:
        cell.buffer = read_pause_buffer(go_pid, min_numgc=max(lines, default=1))
    except GoMemError as e:
        cell.read_error = str(e)


def fit_init_ns(buffer: PauseBuffer, lines: dict[int, GcTraceCycle], offset_ns: int) -> tuple[int, int] | None:
    """runtimeInitTime (monotonic ns) and its +- error from the cycles with an exact end and a gctrace line:
    end = init + T + f + (tEnd - tSweepTerm) with f in [0, 1 ms) and each printed duration truncated."""
    lo, hi = None, None
    for c, (_, end_unix) in buffer.cycles().items():
        ln = lines.get(c)
        if ln is None or not end_unix:
            continue
        end = end_unix - offset_ns
        durs = (ln.sweep_termination, ln.mark, ln.mark_termination)
        c_hi = end - ln.start_ns.lo_ns - sum(d.lo_ns for d in durs)
        c_lo = end - ln.start_ns.lo_ns - AT_WIDTH_NS - sum(d.hi_ns for d in durs)
        lo = c_lo if lo is None else max(lo, c_lo)
        hi = c_hi if hi is None else min(hi, c_hi)
    if lo is None or hi < lo:
        return None
    return (lo + hi) // 2, (hi - lo) // 2 + 1


def _at_placed(line: GcTraceCycle, init_ns: int, init_err_ns: int) -> list[dict]:
    """A cycle's two phases placed from its `@` field alone; typed by whether the error exceeds the pause."""
    st, mark, mt = line.sweep_termination, line.mark, line.mark_termination
    start = init_ns + line.start_ns.lo_ns + AT_WIDTH_NS // 2
    err = AT_WIDTH_NS // 2 + init_err_ns
    out = []
    for kind, t0, dur, extra_err in (
        ("sweep_termination", start, st.mid_ns, 0),
        ("mark_termination", start + st.mid_ns + mark.mid_ns, mt.mid_ns, st.width_ns + mark.width_ns),
    ):
        e = err + extra_err
        out.append({"type": "gc" if dur > e else "gc_unplaced", "runtime": "go", "kind": kind, "generation": -1,
                     "start_ns": t0, "end_ns": t0 + dur, "pause_ns": dur, "cycle": line.cycle,
                     "placement_error_ns": e, "timing": "gctrace @ field"})
    return out


def go_events(events: list[dict], stats: dict, stderr_path: Path, cell: GoCell | None) -> tuple[list[dict], dict]:
    """The cell's GC events (added to what the side channel had: nothing, for an unmodified server) and the
    stats record, with how every cycle was timed."""
    lines, damaged = parse_log(stderr_path)
    info: dict = {"source": "GODEBUG=gctrace=1 on stderr" + (" + the runtime's pause buffer (/proc/<pid>/mem)"
                                                              if cell and cell.buffer else ""),
                  "gctrace_cycles": len(lines), "gctrace_damaged_lines": damaged,
                  "at_field_precision_ns": AT_WIDTH_NS}
    buffer = cell.buffer if cell else None
    stw: list[dict] = []
    init_ns, init_err_ns, init_how = 0, 0, ""
    if buffer is not None:
        offset, how = buffer.unix_to_mono_offset_ns()
        info.update({"go_pid": cell.go_pid, "pause_buffer": buffer.found_by, "pause_buffer_numgc": buffer.numgc,
                     "wall_to_monotonic": how,
                     "wall_offset_runtime_minus_harness_ns": offset - (buffer.read_unix_ns - buffer.read_mono_ns)})
        for c, (pause, end_unix) in sorted(buffer.cycles().items()):
            if not end_unix:
                continue
            end = end_unix - offset
            stw.append({"type": "gc", "runtime": "go", "kind": "stw_cycle", "generation": -1, "start_ns": end - pause,
                        "end_ns": end, "pause_ns": pause, "cycle": c})
        if buffer.runtime_init_mono_ns:
            init_ns, init_how = buffer.runtime_init_mono_ns, "runtime.runtimeInitTime read from memory (exact)"
        elif (fit := fit_init_ns(buffer, lines, offset)) is not None:
            (init_ns, init_err_ns), init_how = fit, "fitted from the cycles in the pause buffer"
    elif cell is not None:
        info["pause_buffer_missing"] = cell.read_error or "not read"
    placed, summary = place_cycles(stw, lines)
    in_buffer = {e["cycle"] for e in stw}
    only_trace = [ln for c, ln in sorted(lines.items()) if c not in in_buffer]
    at_events: list[dict] = []
    if only_trace:
        if init_how:
            for ln in only_trace:
                at_events += _at_placed(ln, init_ns, init_err_ns)
        else:
            # no runtimeInitTime at all: the @ field cannot be put on the harness's clock; kept, unplaced, at
            # the launch (so they are outside every measured window rather than in an arbitrary call)
            for ln in only_trace:
                for kind, d in (("sweep_termination", ln.sweep_termination), ("mark_termination", ln.mark_termination)):
                    t0 = cell.t_launch_ns if cell else 0
                    at_events.append({"type": "gc_unplaced", "runtime": "go", "kind": kind, "generation": -1,
                                      "start_ns": t0, "end_ns": t0 + d.mid_ns, "pause_ns": d.mid_ns,
                                      "cycle": ln.cycle, "timing": "no clock for the @ field"})
    info.update({
        "runtime_init": init_how or "unknown",
        "runtime_init_error_ns": init_err_ns if init_how else None,
        "runtime_init_after_launch_ns": init_ns - cell.t_launch_ns if (init_how and cell and cell.t_launch_ns)
        else None,
        "cycles_exact": len(in_buffer),
        "cycles_from_at_field_only": len(only_trace),
        "at_placed_attributed": sum(e["type"] == "gc" for e in at_events),
        "at_placed_unplaced": sum(e["type"] == "gc_unplaced" for e in at_events),
    })
    if cell is not None and cell.t_measure_ns and cell.t_stop_ns:
        info["gc_cpu"] = gc_cpu(lines, placed + at_events, cell.t_measure_ns, cell.t_stop_ns)
    warnings = []
    if only_trace and (info["at_placed_unplaced"] or not init_how):
        warnings.append(f"{len(only_trace)} Go cycle(s) were no longer in the runtime's 256-cycle pause buffer when "
                        f"it was read: timed by gctrace's whole-ms @ field only, their pauses are kept in the pause "
                        f"tables but left out of attribution when the placement error exceeds them")
    out_stats = {**stats, "runtime": "go", "go_outside": info, "stw_phases": {**summary, "gctrace_damaged_lines": damaged}}
    if warnings:
        out_stats["warnings"] = [*stats.get("warnings", []), *warnings]
    return [*events, *placed, *at_events], out_stats


def gc_cpu(lines: dict[int, GcTraceCycle], events: list[dict], t0_ns: int, t1_ns: int) -> dict:
    """GC CPU time of the cycles that began in [t0, t1] (from the gctrace `ms cpu` fields) and its share of
    the Ps' time over that span. Idle-P marking is reported apart: Go counts it as free (its own % leaves it out)."""
    starts: dict[int, int] = {}
    for e in events:
        if e.get("kind") in ("sweep_termination", "stw_cycle") and "cycle" in e:
            starts.setdefault(e["cycle"], e["start_ns"])
    cycles = [lines[c] for c, s in starts.items() if t0_ns <= s <= t1_ns and c in lines]
    busy_ns = sum(ln.cpu_sweep_termination.mid_ns + ln.cpu_assist.mid_ns + ln.cpu_background.mid_ns
                  + ln.cpu_mark_termination.mid_ns for ln in cycles)
    idle_ns = sum(ln.cpu_idle.mid_ns for ln in cycles)
    procs = max((ln.procs for ln in cycles), default=0)
    span = t1_ns - t0_ns
    return {
        "cycles": len(cycles), "span_ns": span, "procs": procs,
        "gc_cpu_ns": busy_ns, "gc_idle_mark_cpu_ns": idle_ns,
        "gc_cpu_share": busy_ns / (span * procs) if span > 0 and procs else None,
        "runtime_cumulative_percent_last": lines[max(lines)].cpu_percent if lines else None,
        "window": "from the end of warm-up to the end of the measured calls (as seen by the harness)",
    }
