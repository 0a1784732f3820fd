"""The Go runtime's GODEBUG=gctrace=1 lines: a parser, and the split of a cycle's stop-the-world time into its phases.

One line per GC cycle on stderr, printed by the goroutine that finished the cycle, after the world has restarted
(runtime/mgc.go, gcMarkTermination; read in go1.27.3's source, the format is the same back to Go 1.5 apart from
parenthesised notes such as "(checking for goroutine leaks)" before the colon and "(forced)" at the end):

    gc 15 @2.122s 21%: 0.20+97+0.004 ms clock, 0.40+5.1/45/67+0.009 ms cpu, 138->153->87 MB, 163 MB goal, ...

- `gc 15`: the cycle number, memstats.numgc after the cycle: cycle c is MemStats.PauseNs[(c-1) % 256].
- `@2.122s`: tSweepTerm - runtimeInitTime, truncated to whole ms (itoaDiv(ns/1e6, 3)).
- `0.20+97+0.004 ms clock`: tMark-tSweepTerm (stop-the-world sweep termination), tMarkTerm-tMark (concurrent
  mark), tEnd-tMarkTerm (stop-the-world mark termination), from nanotime().
- PauseNs = (tMark - stop1 started) + (tEnd - stop2 started), where each "started" is read inside
  stopTheWorldWithSema a few hundred ns after tSweepTerm / tMarkTerm; PauseEnd is the wall clock read right
  after tEnd. So a cycle's end is exact, and the phases are placed back from it with the printed durations.

Precision (fmtNSAsMS): a duration of 10 ms or more prints as whole ms, truncated ("44" is [44, 45) ms); below,
two significant digits truncated with at most three decimals ("4.4" is [4.4, 4.5) ms, "0.063" is [63, 64) us,
"0.004" is [4, 5) us); under 1 us prints "0". Every printed value is therefore an interval [lo, lo + width).

Measured once (go1.27.3, 2 shared cores, the gcbench server with 3M live 2-pointer objects, 200 calls of 200k
garbage objects): the two phases were 49-117 ms apart (p50 ~80 ms); the old single interval put the sweep
termination that far too late. In `oob` mode the server reads nanotime() just before runtime.GC(), which starts
the cycle at once: over 13 cycles the placed sweep-termination start was -466 to +402 us from that read (inside
the +-0.5 ms the printed whole-ms mark allows), where the old placement's start was 49-112 ms after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(
    r"gc (?P<cycle>\d+) @(?P<at>\d+\.\d{3})s (?P<util>\d+)%(?: \([^)]*\))*: "
    r"(?P<st>[\d.]+)\+(?P<mark>[\d.]+)\+(?P<mt>[\d.]+) ms clock, "
    r"(?P<st_cpu>[\d.]+)\+(?P<assist>[\d.]+)/(?P<background>[\d.]+)/(?P<idle>[\d.]+)\+(?P<mt_cpu>[\d.]+) ms cpu, "
    r"(?P<h0>\d+)->(?P<h1>\d+)->(?P<h2>\d+) MB, (?P<goal>\d+) MB goal, .*?(?P<procs>\d+) P(?P<forced> \(forced\))?\s*$"
)
_PREFIX = re.compile(r"gc \d+ @")  # looks like a gctrace line: one that then fails to parse is counted as damaged
_MS = re.compile(r"(\d+)(?:\.(\d{1,3}))?")


@dataclass(frozen=True)
class MsValue:
    """A duration gctrace printed: the true value lies in [lo_ns, lo_ns + width_ns)."""

    lo_ns: int
    width_ns: int

    @property
    def hi_ns(self) -> int:
        return self.lo_ns + self.width_ns

    @property
    def mid_ns(self) -> int:
        return self.lo_ns + self.width_ns // 2


def parse_ms(text: str) -> MsValue:
    """'44' -> [44, 45) ms, '4.4' -> [4.4, 4.5) ms, '0.063' -> [63, 64) us, '0' -> [0, 1) us (fmtNSAsMS)."""
    m = _MS.fullmatch(text)
    if not m:
        raise ValueError(f"not a gctrace duration: {text!r}")
    whole, frac = m[1], m[2] or ""
    if not frac and int(whole) == 0:
        return MsValue(0, 1_000)  # fmtNSAsMS prints "0" below 1 us
    unit_ns = 10 ** (6 - len(frac))
    return MsValue(int(whole + frac) * unit_ns, unit_ns)


@dataclass(frozen=True)
class GcTraceCycle:
    cycle: int
    start_ns: MsValue  # tSweepTerm - runtimeInitTime (the `@` field)
    cpu_percent: int  # the GC's share of CPU time since the program started
    sweep_termination: MsValue  # stop-the-world
    mark: MsValue  # concurrent
    mark_termination: MsValue  # stop-the-world
    heap_start_mb: int
    heap_marked_end_mb: int
    heap_live_mb: int
    heap_goal_mb: int
    procs: int
    forced: bool
    # CPU time (ms cpu): the two stop-the-world phases x the Ps they stopped, mark assists, dedicated and
    # fractional background marking, marking on idle Ps (which Go leaves out of its own % figure)
    cpu_sweep_termination: MsValue = MsValue(0, 1_000)
    cpu_assist: MsValue = MsValue(0, 1_000)
    cpu_background: MsValue = MsValue(0, 1_000)
    cpu_idle: MsValue = MsValue(0, 1_000)
    cpu_mark_termination: MsValue = MsValue(0, 1_000)


def parse_line(line: str) -> GcTraceCycle | None:
    """The cycle a gctrace line describes, or None for any other line."""
    m = _LINE.match(line.strip())
    if not m:
        return None
    return GcTraceCycle(
        cycle=int(m["cycle"]), start_ns=MsValue(int(m["at"].replace(".", "")) * 1_000_000, 1_000_000),
        cpu_percent=int(m["util"]), sweep_termination=parse_ms(m["st"]), mark=parse_ms(m["mark"]),
        mark_termination=parse_ms(m["mt"]), heap_start_mb=int(m["h0"]), heap_marked_end_mb=int(m["h1"]),
        heap_live_mb=int(m["h2"]), heap_goal_mb=int(m["goal"]), procs=int(m["procs"]), forced=bool(m["forced"]),
        cpu_sweep_termination=parse_ms(m["st_cpu"]), cpu_assist=parse_ms(m["assist"]),
        cpu_background=parse_ms(m["background"]), cpu_idle=parse_ms(m["idle"]),
        cpu_mark_termination=parse_ms(m["mt_cpu"]),
    )


def parse_log(path: Path) -> tuple[dict[int, GcTraceCycle], int]:
    """Every cycle in a stderr log (by cycle number), and how many lines looked like gctrace but did not parse
    (e.g. the last line of a killed process). Other lines are not counted: the log also holds the server's own."""
    cycles: dict[int, GcTraceCycle] = {}
    damaged = 0
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return cycles, 0
    with f:
        for line in f:
            c = parse_line(line)
            if c is not None:
                cycles[c.cycle] = c
            elif _PREFIX.match(line):
                damaged += 1
    return cycles, damaged


# ------------------------------------------------------------------------------------------------ the split

# PauseNs may fall short of the printed phases by the few hundred ns between tSweepTerm / tMarkTerm and the
# start of stopping the world; beyond this a line and a PauseNs do not describe the same cycle.
MISMATCH_SLACK_NS = 20_000


@dataclass(frozen=True)
class StwPhases:
    """One cycle's two stop-the-world phases on the monotonic clock of the cycle's end."""

    sweep_start_ns: int
    sweep_end_ns: int
    mark_term_start_ns: int
    mark_term_end_ns: int
    position_error_ns: int  # sweep termination's start and end are within +- this (the printed precision)
    split_error_ns: int  # each phase's duration is within +- this (their sum is exact)


def split_cycle(end_ns: int, pause_ns: int, line: GcTraceCycle) -> StwPhases | None:
    """Place a cycle's phases from its exact end (PauseEnd on the monotonic clock), its exact summed pause
    (PauseNs), and its gctrace line; None when the line's phases cannot add up to the pause (not this cycle).

    The two durations take the middle of what both the printed values and their exact sum allow; the sweep
    termination then ends the mark termination and the printed concurrent mark (its middle) earlier.
    """
    st, mark, mt = line.sweep_termination, line.mark, line.mark_termination
    if not (st.lo_ns + mt.lo_ns - MISMATCH_SLACK_NS <= pause_ns <= st.hi_ns + mt.hi_ns + MISMATCH_SLACK_NS):
        return None
    lo = max(mt.lo_ns, pause_ns - st.hi_ns)
    hi = min(mt.hi_ns, pause_ns - st.lo_ns)
    mark_term_ns = min(max((lo + hi) // 2, 0), pause_ns)
    split_error_ns = max(abs(hi - lo) // 2, 0) + 1
    sweep_ns = pause_ns - mark_term_ns
    mark_term_start = end_ns - mark_term_ns
    sweep_end = mark_term_start - mark.mid_ns
    return StwPhases(
        sweep_start_ns=sweep_end - sweep_ns, sweep_end_ns=sweep_end,
        mark_term_start_ns=mark_term_start, mark_term_end_ns=end_ns,
        position_error_ns=mark.width_ns // 2 + split_error_ns, split_error_ns=split_error_ns,
    )


def place_cycles(events: list[dict], lines: dict[int, GcTraceCycle]) -> tuple[list[dict], dict]:
    """Replace each `stw_cycle` event (one cycle's summed pauses at its exact end) by its two phases,
    kinds `sweep_termination` and `mark_termination`; a cycle that has no matching line becomes type
    `gc_unplaced` (left out of attribution and pause tables: its first phase has no known time).

    Returns the new events and a summary for the stats record.
    """
    out: list[dict] = []
    placed = no_line = mismatch = 0
    unplaced_pause_ns = 0
    errors: list[int] = []
    gaps: list[int] = []
    for e in events:
        if e.get("kind") != "stw_cycle" or e.get("type") != "gc":
            out.append(e)
            continue
        line = lines.get(e.get("cycle", -1))
        phases = split_cycle(e["end_ns"], e["pause_ns"], line) if line is not None else None
        if phases is None:
            no_line += line is None
            mismatch += line is not None
            unplaced_pause_ns += e["pause_ns"]
            out.append({**e, "type": "gc_unplaced"})
            continue
        placed += 1
        errors.append(phases.position_error_ns)
        gaps.append(phases.mark_term_start_ns - phases.sweep_end_ns)
        out.append({**e, "kind": "sweep_termination", "start_ns": phases.sweep_start_ns,
                    "end_ns": phases.sweep_end_ns, "pause_ns": phases.sweep_end_ns - phases.sweep_start_ns})
        out.append({**e, "kind": "mark_termination", "start_ns": phases.mark_term_start_ns,
                    "end_ns": phases.mark_term_end_ns,
                    "pause_ns": phases.mark_term_end_ns - phases.mark_term_start_ns})
    errors.sort()
    gaps.sort()
    summary = {
        "source": "GODEBUG=gctrace=1",
        "cycles": placed + no_line + mismatch,
        "placed": placed,
        "unplaced_no_line": no_line,
        "unplaced_mismatch": mismatch,
        "unplaced_pause_ns": unplaced_pause_ns,
        "sweep_position_error_max_ns": errors[-1] if errors else 0,
        "sweep_position_error_p50_ns": errors[len(errors) // 2] if errors else 0,
        "phase_gap_p50_ns": gaps[len(gaps) // 2] if gaps else 0,  # sweep termination end to mark termination start
        "phase_gap_max_ns": gaps[-1] if gaps else 0,
    }
    return out, summary
