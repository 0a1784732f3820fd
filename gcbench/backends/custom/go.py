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

The buffer keeps 256 cycles, fewer than a busy server runs in one cell, so from the end of warm-up a sampler
process (go_memstats.py run as a script) reads it every 50 ms and keeps each new cycle; the final read is made
with the server idle. Measured: 0.30% of one core (30 ms CPU over 10 s and 4,237 calls, 194 reads), and
666 of 666 cycles of a 500-call gogc:50 cell timed exactly where the final read alone had 256 of 641.

A cycle in the gctrace log but not read from the buffer (before the sampler started, or lost) is placed from its
`@` field: runtimeInitTime (read from memory with the symbol table, else fitted from the cycles the buffer has)
+ T + half a ms. Its phases are then known to +- 0.5 ms plus the fit's error, far more than a Go pause (tens of
us): an event whose placement error exceeds its duration is typed `gc_unplaced`, kept in the event and pause
tables but left out of attribution, because it could belong to the call before or after just as well.

Measured (go1.27.3, this 2-core box, tests/fixtures/go_mcp_server, 300 calls of 20k nodes): the buffer read took
16 ms after the calls (mostly parsing the ELF symbol table, now once per binary); the runtime's wall-monotonic pair and the
harness's differed by 3.4 us; 157 of 160 cycles split into their phases, 3 not (their printed sweep termination
includes the wait for sched.lock before the world stops, which PauseNs leaves out: they stay one `stw_cycle`
`gc_unplaced`, as in the built-in backend); the exact ends were 11-1590 us after runtimeInitTime + T + the
printed durations, the 1 ms truncation of `@` plus the truncation of the durations. runtimeInitTime itself
came 0.75-13 ms after the harness's Popen (p50 1.16 ms, p99 12.5 ms over 200 launches on the loaded box):
a launch-time anchor would have been worse than the `@` field's own 1 ms, hence memory or the fit (a stripped
binary's fit: +- 10-30 us).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from gcbench import procs
from gcbench.backends.custom import go_memstats
from gcbench.backends.custom.go_memstats import (
    PAUSE_SLOTS,
    SAMPLE_INTERVAL_S,
    GoMemError,
    PauseBuffer,
    memstats_regions,
    read_pause_buffer,
)
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
    sampler: subprocess.Popen | None = None
    sampler_out: Path | None = None
    sampled: dict = field(default_factory=dict)  # what the sampler wrote (cycles, pairs, samples, error)


def samples_path(events_path: Path) -> Path:
    """The sampler's output beside the cell's side channel (kept in the run folder: the raw record)."""
    return events_path.with_name(events_path.name.split(".")[0] + ".go-pause-buffer.json")


def start_sampler(cell: GoCell, pid: int, out_path: Path, interval_s: float = SAMPLE_INTERVAL_S,
                  ready_timeout_s: float = 10.0) -> None:
    """Start the buffer sampler beside the Go process, after warm-up, and wait until it is ready (its start-up
    stays out of the measured calls); registered, so it is never left behind."""
    go_pid, why = find_go_process(pid)
    if go_pid is None:
        cell.read_error = why
        return
    cell.go_pid = go_pid
    try:
        regions, _ = memstats_regions(go_pid)
        address = 0
        try:
            address = read_pause_buffer(go_pid).address  # found now, the sampler never has to search
        except GoMemError:
            if not (regions and regions[0][2].startswith("symbol")):
                cell.read_error = ("no GC cycle before the measured calls in a binary without symbols: the pause "
                                   "buffer is read once, at the end (its last 256 cycles)")
                return
            regions = regions[:1]  # with the symbol table the search is cheap (0.4 ms)
    except GoMemError as e:
        cell.read_error = str(e)
        return
    cell.sampler_out = out_path
    out_path.unlink(missing_ok=True)
    argv = [sys.executable, "-I", go_memstats.__file__, str(go_pid), str(interval_s), str(out_path), str(address),
            *(f"{a}:{n}" for a, n, _ in regions)]
    with procs.held():
        cell.sampler = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        procs.register_group(cell.sampler.pid, "Go pause-buffer sampler")
    import select

    ready, _, _ = select.select([cell.sampler.stdout], [], [], ready_timeout_s)
    if not ready or not cell.sampler.stdout.readline().startswith(b"ready"):
        kill_sampler(cell)
        cell.read_error = "the pause-buffer sampler did not start"


def stop_sampler(cell: GoCell, wait_s: float = 5.0) -> None:
    """End of its stdin: it writes what it saw and exits (killed if it does not); its output is read."""
    proc = cell.sampler
    if proc is None:
        return
    try:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            procs.kill_group(proc.pid)
            proc.wait()
    finally:
        procs.unregister_group(proc.pid)
        proc.stdout.close()
        cell.sampler = None
    try:
        cell.sampled = json.loads(cell.sampler_out.read_text()) if cell.sampler_out else {}
    except (OSError, ValueError):
        cell.sampled = {"error": "the sampler wrote nothing readable"}


def kill_sampler(cell: GoCell) -> None:
    """A failed cell: no data wanted, only no process left behind."""
    if cell.sampler is not None:
        procs.kill_group(cell.sampler.pid)
        cell.sampler.wait()
        procs.unregister_group(cell.sampler.pid)
        for pipe in (cell.sampler.stdin, cell.sampler.stdout):
            pipe.close()
        cell.sampler = None


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
    stop_sampler(cell)
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


def fit_init_ns(cycles: dict[int, tuple[int, int]], lines: dict[int, GcTraceCycle], offset_of) -> tuple[int, int] | None:
    """runtimeInitTime (monotonic ns) and its +- error from the cycles with an exact end and a gctrace line:
    end = init + T + f + (tEnd - tSweepTerm) with f in [0, 1 ms) and each printed duration truncated.
    `offset_of(cycle)`: that cycle's unix - monotonic offset."""
    lo, hi = None, None
    for c, (_, end_unix) in cycles.items():
        ln = lines.get(c)
        if ln is None or not end_unix:
            continue
        end = end_unix - offset_of(c)
        durs = (ln.sweep_termination, ln.mark, ln.mark_termination)
        c_hi = end - ln.start_ns.lo_ns - sum(d.lo_ns for d in durs)
        c_lo = end - ln.start_ns.lo_ns - AT_WIDTH_NS - sum(d.hi_ns for d in durs)
        lo = c_lo if lo is None else max(lo, c_lo)
        hi = c_hi if hi is None else min(hi, c_hi)
    if lo is None or hi < lo:
        return None
    return (lo + hi) // 2, (hi - lo) // 2 + 1


def clock_offsets(cell: GoCell | None, harness_offset_ns: int):
    """offset_of(cycle) -> unix - monotonic for that cycle's end: the runtime's own pair taken nearest to it
    (the sampler's and the final read's; each is exact for its cycle and follows any wall-clock step), else the
    harness's pair; and how it was known."""
    pairs = []
    if cell is not None:
        for numgc, unix, mono in cell.sampled.get("pairs") or ():
            if mono and abs((unix - mono) - harness_offset_ns) < 1_000_000_000:
                pairs.append((numgc, unix - mono))
        b = cell.buffer
        if b is not None and b.last_gc_mono_ns:
            pairs.append((b.numgc, b.last_gc_unix_ns - b.last_gc_mono_ns))
    if not pairs:
        return (lambda c: harness_offset_ns), "the harness's (wall, monotonic) pair read with the buffer"
    pairs.sort()
    import bisect

    keys = [n for n, _ in pairs]

    def offset_of(c: int) -> int:
        i = bisect.bisect_left(keys, c)
        near = [pairs[j] for j in (i - 1, i) if 0 <= j < len(pairs)]
        return min(near, key=lambda p: abs(p[0] - c))[1]

    return offset_of, f"the runtime's (last_gc_unix, last_gc_nanotime) pair nearest each cycle ({len(pairs)} pairs)"


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
    sampled = cell.sampled if cell else {}
    cycles: dict[int, tuple[int, int]] = {int(c): (int(v[0]), int(v[1])) for c, v in (sampled.get("cycles") or {}).items()}
    n_sampled = len(cycles)
    if buffer is not None:
        cycles.update(buffer.cycles())  # read with the server idle: the last word
    stw: list[dict] = []
    init_ns, init_err_ns, init_how = 0, 0, ""
    if cell is not None and cell.sampler_out is not None:
        info.update({"sampler_interval_s": SAMPLE_INTERVAL_S, "sampler_samples": sampled.get("samples", 0),
                     "sampler_error": sampled.get("error") or None, "cycles_seen_by_sampler": n_sampled})
    if buffer is not None or cycles:
        harness_offset = buffer.read_unix_ns - buffer.read_mono_ns if buffer else 0
        offset_of, how = clock_offsets(cell, harness_offset)
        info.update({"go_pid": cell.go_pid, "wall_to_monotonic": how})
        if buffer is not None:
            info.update({"pause_buffer": buffer.found_by, "pause_buffer_numgc": buffer.numgc,
                         "wall_offset_runtime_minus_harness_ns": offset_of(buffer.numgc) - harness_offset})
        for c, (pause, end_unix) in sorted(cycles.items()):
            if not end_unix:
                continue
            end = end_unix - offset_of(c)
            stw.append({"type": "gc", "runtime": "go", "kind": "stw_cycle", "generation": -1, "start_ns": end - pause,
                        "end_ns": end, "pause_ns": pause, "cycle": c})
        if buffer is not None and buffer.runtime_init_mono_ns:
            init_ns, init_how = buffer.runtime_init_mono_ns, "runtime.runtimeInitTime read from memory (exact)"
        elif (fit := fit_init_ns(cycles, lines, offset_of)) is not None:
            (init_ns, init_err_ns), init_how = fit, "fitted from the cycles read from the pause buffer"
    if buffer is None and cell is not None:
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
        warnings.append(f"{len(only_trace)} Go cycle(s) were not read from the runtime's {PAUSE_SLOTS}-cycle pause "
                        f"buffer: timed by gctrace's whole-ms @ field only, their pauses are kept in the pause "
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
