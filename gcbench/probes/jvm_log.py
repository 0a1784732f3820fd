"""HotSpot unified logging (JDK 17+) -> stop-the-world pause records on CLOCK_MONOTONIC.

Standalone (standard library only): give it the log a JVM wrote with ``xlog_options(path)`` and it returns
what the JVM stopped for. The built-in Java server uses it, and so can any other JVM: a user's server
started with the same ``-Xlog`` options.

What OpenJDK 17.0.15 really logs (measured with every collector, ``-Xlog:safepoint,gc,gc+phases``):

- Every stop-the-world pause is a safepoint, and the VM thread logs one ``safepoint`` line when the
  safepoint ends: ``Safepoint "G1CollectForAllocation", Time since last: 55506232 ns, Reaching safepoint:
  3375 ns, Cleanup: 25967 ns, At safepoint: 23838361 ns, Total: 23867703 ns``. ``Total`` runs from the
  start of the stop (threads being brought to the safepoint) to the end, read just before the line is
  logged; the line's ``timenanos`` is read a few microseconds later. So a pause is
  ``[timenanos - Total, timenanos]``: its real length, placed up to a few microseconds late.
- The collector's own pause line is logged by the same VM thread inside that window:
  ``GC(0) Pause Young (Normal) (G1 Evacuation Pause) 22M->22M(380M) 23.364ms`` (tag ``gc``; ZGC's
  ``Pause Mark Start 0.012ms`` is tagged ``gc,phases``). Its duration leaves out the time to reach the
  safepoint: for ZGC 12 us against a safepoint Total of 229 us, so the safepoint is what threads felt.
- VM operations by collector (17): G1 ``G1CollectForAllocation`` (young, and a full collection in the same
  safepoint after "To-space exhausted"), ``G1PauseRemark``, ``G1PauseCleanup``, ``G1CollectFull``; Parallel
  ``ParallelGCFailedAllocation``, ``ParallelGCSystemGC``; Serial ``GenCollectForAllocation``,
  ``GenCollectFull``; ZGC ``ZMarkStart``, ``ZMarkEnd``, ``ZRelocateStart``; Shenandoah ``ShenandoahInitMark``,
  ``ShenandoahFinalMarkStartEvac``, ``ShenandoahFinalRoots``, ``ShenandoahInitUpdateRefs``,
  ``ShenandoahFinalUpdateRefs``, ``ShenandoahDegeneratedGC``. Epsilon logs no GC pause at all (``GC request
  for "System.gc()" is ignored``), but the JVM still stops for other reasons (a ``Cleanup`` safepoint, about
  once a second): those are kept apart as non-GC safepoints, never as GC.
- ZGC also stops single threads outside any safepoint when the heap runs out: ``Allocation Stall (main)
  63.073ms`` (tag ``gc``). That is GC time a request waits for, so it is an event too (not stop-the-world).
- ``timenanos`` is ``os::javaTimeNanos()``, which on Linux is ``clock_gettime(CLOCK_MONOTONIC)``: the
  harness's clock (checked by a test against ``time.monotonic_ns()`` around a forced GC).
- Decorators are printed in a fixed order whatever order they are asked in (timenanos before uptimenanos),
  so in a line with two ``...ns`` decorations the first is ``timenanos``.
- ``-Xlog:async`` (new in 17) hands lines to a logger thread, so a pause costs a buffer copy, not a file
  write. A full buffer drops lines and later says ``N messages dropped due to async logging``: counted.
- The JVM's default logging writes warnings to **stdout**, which would break MCP over stdio:
  ``xlog_options`` turns that off and sends warnings to stderr.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

# What to log, and how; file output without rotation (a rotated log would be split over files).
XLOG_SELECTION = "safepoint=info,gc=info,gc+phases=info"
XLOG_DECORATORS = "timenanos,uptimenanos,tid,level,tags"


def xlog_options(log_path: str | os.PathLike) -> list[str]:
    """The JVM options that write the log this module reads (and keep the JVM's own warnings off stdout)."""
    path = os.fspath(log_path)
    if '"' in path:
        raise ValueError(f"JVM log path {path!r}: a double quote cannot be passed to -Xlog")
    return [
        "-Xlog:disable",  # the default configuration prints warnings on stdout
        "-Xlog:all=warning:stderr:uptime,level,tags",
        "-Xlog:async",
        f'-Xlog:{XLOG_SELECTION}:file="{path}":{XLOG_DECORATORS}:filecount=0',
    ]


class JvmLogError(ValueError):
    """The log cannot be read as asked (e.g. it has no timenanos decoration)."""


# VM operations of the collectors (OpenJDK 17 to 21), and the pause kind to use when no pause line says more.
GC_OPERATIONS: dict[str, str] = {
    "G1CollectForAllocation": "young",
    "G1CollectFull": "full",
    "G1PauseRemark": "remark",
    "G1PauseCleanup": "cleanup",
    "G1Concurrent": "concurrent",  # JDK 11-16: remark and cleanup
    "G1TryInitiateConcMark": "concurrent-start",
    "ParallelGCFailedAllocation": "young",
    "ParallelGCSystemGC": "full",
    "GenCollectForAllocation": "young",
    "GenCollectFull": "full",
    "GenCollectFullConcurrent": "full",
    "CollectForMetadataAllocation": "metadata",
    "CollectForCodeCacheAllocation": "code-cache",
    "GC_HeapInspection": "heap-inspection",
    "HeapDumper": "heap-dump",
    "ZMarkStart": "mark-start",
    "ZMarkEnd": "mark-end",
    "ZRelocateStart": "relocate-start",
    "ZVerify": "verify",
    "ShenandoahInitMark": "init-mark",
    "ShenandoahFinalMarkStartEvac": "final-mark",
    "ShenandoahFinalRoots": "final-roots",
    "ShenandoahInitUpdateRefs": "init-update-refs",
    "ShenandoahFinalUpdateRefs": "final-update-refs",
    "ShenandoahDegeneratedGC": "degenerated",
    "ShenandoahFullGC": "full",
}

# "Using G1" -> the collector's short name
COLLECTORS = {
    "G1": "g1",
    "Parallel": "parallel",
    "Serial": "serial",
    "The Z Garbage Collector": "zgc",
    "Shenandoah": "shenandoah",
    "Epsilon": "epsilon",
}

_DECORATION = re.compile(r"\[([^\]]*)\]")
_NS = re.compile(r"(\d+)ns")
_LEVELS = {"trace", "debug", "info", "warning", "error"}
_SAFEPOINT = re.compile(r'Safepoint "([^"]+)"((?:, [A-Za-z ]+: \d+ ns)+)$')
_SAFEPOINT_FIELD = re.compile(r", ([A-Za-z ]+): (\d+) ns")
_PAUSE = re.compile(
    r"GC\((\d+)\) (Pause .+?)(?: (\d+)([KMG])->(\d+)([KMG])\((\d+)([KMG])\))? (\d+(?:\.\d+)?)ms$"
)
_STALL = re.compile(r"(Allocation|Relocation) Stall \((.*)\) (\d+(?:\.\d+)?)ms$")
_USING = re.compile(r"Using (.+)$")
_DROPPED = re.compile(r"(\d+) messages dropped due to async logging$")
_UNIT = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
# A pause line this long before its safepoint's computed start belongs to another (lost) safepoint.
MAX_LOG_LAG_NS = 1_000_000


@dataclass(frozen=True)
class JvmEvent:
    """What stopped Java threads: a safepoint (all of them), or an allocation stall (one thread).

    Times are CLOCK_MONOTONIC ns (the log's timenanos). -1 / "" where the log does not say.
    """

    start_ns: int
    end_ns: int
    gc: bool  # caused by the collector (False: a safepoint for something else, e.g. Cleanup, Deoptimize)
    stop_the_world: bool  # a safepoint; False: an allocation stall of one thread
    kind: str  # young, mixed, full, remark, cleanup, mark-start, ..., allocation-stall; or the VM operation
    operation: str = ""  # the safepoint's VM operation, e.g. G1CollectForAllocation
    pause: str = ""  # the collector's pause line(s), e.g. "Pause Young (Normal) (G1 Evacuation Pause)"
    gc_id: int = -1  # GC(n) of the (first) pause line
    time_to_safepoint_ns: int = -1  # "Reaching safepoint": threads were being stopped
    at_safepoint_ns: int = -1
    collector_pause_ns: int = -1  # the duration printed on the pause line(s): the collector's own work
    heap_before_bytes: int = -1
    heap_after_bytes: int = -1
    heap_capacity_bytes: int = -1
    thread: str = ""  # allocation stall: the stalled thread
    timing: str = "safepoint"  # safepoint | gc-line (a pause line that no safepoint line contains) | stall
    line: int = 0  # 1-based line number of the line that closes the event


@dataclass
class JvmLog:
    events: list[JvmEvent] = field(default_factory=list)
    collector: str = ""  # g1, parallel, serial, zgc, shenandoah, epsilon (from "Using ..."), "" if not seen
    collector_name: str = ""  # as the JVM wrote it, e.g. "The Z Garbage Collector"
    lines: int = 0
    dropped_messages: int = 0  # lost by -Xlog:async (its buffer was full)
    bad_lines: int = 0  # safepoint or pause lines that could not be read
    unmatched_pause_lines: int = 0  # pause lines outside every safepoint (kept, timed from the pause line)
    gc_ids: set[int] = field(default_factory=set)

    @property
    def gc_pauses(self) -> list[JvmEvent]:
        return [e for e in self.events if e.gc and e.stop_the_world]


@dataclass
class _PauseLine:
    t_ns: int
    tid: int
    gc_id: int
    name: str
    duration_ns: int
    heap: tuple[int, int, int] | None
    line: int


def pause_kind(name: str) -> str:
    """'Pause Young (Mixed) (G1 Evacuation Pause)' -> 'mixed'; 'Pause Init Mark (unload classes)' -> 'init-mark'."""
    base = name.removeprefix("Pause ").split(" (", 1)[0].strip()
    if base == "Young" and name.startswith("Pause Young (Mixed)"):
        return "mixed"
    if base == "Degenerated GC":
        return "degenerated"
    return base.lower().replace(" ", "-")


def _decorations(line: str) -> tuple[list[str], str] | None:
    """(decorations, message) of a decorated line, or None."""
    decos = []
    pos = 0
    while pos < len(line) and line[pos] == "[":
        m = _DECORATION.match(line, pos)
        if not m:
            return None
        decos.append(m.group(1))
        pos = m.end()
    if not decos:
        return None
    return decos, line[pos + 1:] if line[pos:pos + 1] == " " else line[pos:]


def _timenanos(decos: list[str], lineno: int) -> int:
    ns = [int(m.group(1)) for d in decos if (m := _NS.fullmatch(d.strip()))]
    if len(ns) >= 2:
        return ns[0]  # timenanos is printed before uptimenanos
    raise JvmLogError(
        f"line {lineno}: needs both the timenanos and uptimenanos decorations to tell them apart "
        f"(-Xlog:...:{XLOG_DECORATORS}); found {len(ns)} '...ns' decoration(s)"
    )


def _bytes(num: str, unit: str) -> int:
    return int(num) * _UNIT[unit]


def _duration_ns(ms: str) -> int:
    return round(float(ms) * 1e6)


def _tid(decos: list[str]) -> int:
    """The tid decoration (printed after pid: the last all-digit one), -1 without one."""
    digits = [d for d in decos if d.strip().isdigit()]
    return int(digits[-1]) if digits else -1


def parse_lines(lines, *, strict_decorators: bool = True) -> JvmLog:
    """Parse log lines (an iterable of str) into a JvmLog. Undecorated lines and other tags are skipped.

    A pause line belongs to the next safepoint line of the same thread (the VM thread logs both, in that
    order); a pause line that no safepoint line claims (a log without the safepoint tag, or one whose safepoint
    line was dropped) becomes an event timed by the pause line alone (`timing` "gc-line").
    """
    log = JvmLog()
    pending: list[_PauseLine] = []  # pause lines since the last safepoint line
    saw_safepoint = False

    def unmatched(p: _PauseLine) -> None:
        log.unmatched_pause_lines += saw_safepoint
        log.events.append(_event_from_pause_line(p))

    for lineno, raw in enumerate(lines, 1):
        log.lines = lineno
        parsed = _decorations(raw.rstrip("\r\n"))
        if parsed is None:
            continue
        decos, msg = parsed
        tags = next((d.strip() for d in reversed(decos) if not _NS.fullmatch(d.strip()) and not d.strip().isdigit()
                     and d.strip() not in _LEVELS), "")
        if not tags and (m := _DROPPED.search(msg)):
            log.dropped_messages += int(m.group(1))
            continue
        if tags not in ("safepoint", "gc", "gc,phases"):
            continue
        try:
            t_ns = _timenanos(decos, lineno)
        except JvmLogError:
            if strict_decorators:
                raise
            log.bad_lines += 1
            continue
        msg = msg.strip()
        if tags == "safepoint":
            if not msg.startswith('Safepoint "'):
                continue
            m = _SAFEPOINT.match(msg)
            fields = {k: int(v) for k, v in _SAFEPOINT_FIELD.findall(m.group(2))} if m else {}
            if "Total" not in fields:
                log.bad_lines += 1
                continue
            saw_safepoint = True
            tid = _tid(decos)
            start_ns = t_ns - fields["Total"]
            inside = []
            for p in pending:
                if (tid < 0 or p.tid < 0 or p.tid == tid) and p.t_ns >= start_ns - MAX_LOG_LAG_NS:
                    inside.append(p)
                else:
                    unmatched(p)
            pending.clear()
            log.events.append(_event_from_safepoint(m.group(1), t_ns, fields, inside, lineno))
        elif msg.startswith("GC(") and " Pause " in msg:
            m = _PAUSE.match(msg)
            if not m:
                log.bad_lines += 1
                continue
            gc_id = int(m.group(1))
            log.gc_ids.add(gc_id)
            heap = (_bytes(m.group(3), m.group(4)), _bytes(m.group(5), m.group(6)),
                    _bytes(m.group(7), m.group(8))) if m.group(3) else None
            pending.append(_PauseLine(t_ns, _tid(decos), gc_id, m.group(2), _duration_ns(m.group(9)), heap, lineno))
        elif tags == "gc" and (m := _STALL.match(msg)):
            d_ns = _duration_ns(m.group(3))
            log.events.append(JvmEvent(
                start_ns=t_ns - d_ns, end_ns=t_ns, gc=True, stop_the_world=False,
                kind=f"{m.group(1).lower()}-stall", thread=m.group(2), timing="stall", line=lineno,
            ))
        elif tags == "gc" and not log.collector_name and (m := _USING.match(msg)):
            log.collector_name = m.group(1)
            log.collector = COLLECTORS.get(m.group(1), m.group(1).lower())
    for p in pending:
        unmatched(p)
    log.events.sort(key=lambda e: (e.start_ns, e.end_ns))
    return log


def _event_from_safepoint(operation: str, log_ns: int, fields: dict[str, int], inside: list[_PauseLine],
                          lineno: int) -> JvmEvent:
    total_ns = fields["Total"]
    start_ns = log_ns - total_ns
    if inside:
        # The line's timestamp is read after the safepoint's own end time; on a loaded machine the gap was
        # tens of us (a ZMarkStart's pause line logged 27 us before log_ns - Total). The collector's work
        # starts after the threads are stopped and the cleanup is done, so the safepoint began no later than
        # (first pause line) - (its duration) - reaching - cleanup: when that is earlier, it places the pause.
        first = inside[0]
        latest_start = (first.t_ns - first.duration_ns - fields.get("Reaching safepoint", 0)
                        - fields.get("Cleanup", 0))
        start_ns = min(start_ns, latest_start)
    gc = bool(inside) or operation in GC_OPERATIONS
    # young then full in one safepoint (G1 after "To-space exhausted"): the last pause says what it became
    kind = pause_kind(inside[-1].name) if inside else GC_OPERATIONS.get(operation, operation)
    heaps = [p.heap for p in inside if p.heap]
    return JvmEvent(
        start_ns=start_ns, end_ns=start_ns + total_ns, gc=gc, stop_the_world=True, kind=kind,
        operation=operation, pause=" + ".join(p.name for p in inside),
        gc_id=inside[0].gc_id if inside else -1,
        time_to_safepoint_ns=fields.get("Reaching safepoint", -1),
        at_safepoint_ns=fields.get("At safepoint", -1),
        collector_pause_ns=sum(p.duration_ns for p in inside) if inside else -1,
        heap_before_bytes=heaps[0][0] if heaps else -1,
        heap_after_bytes=heaps[-1][1] if heaps else -1,
        heap_capacity_bytes=heaps[-1][2] if heaps else -1,
        line=lineno,
    )


def _event_from_pause_line(p: _PauseLine) -> JvmEvent:
    """A pause line no safepoint line contains (a log without the safepoint tag): timed by the line alone.

    The line is logged as the pause ends; its duration leaves out the time to reach the safepoint."""
    return JvmEvent(
        start_ns=p.t_ns - p.duration_ns, end_ns=p.t_ns, gc=True, stop_the_world=True, kind=pause_kind(p.name),
        pause=p.name, gc_id=p.gc_id, collector_pause_ns=p.duration_ns,
        heap_before_bytes=p.heap[0] if p.heap else -1, heap_after_bytes=p.heap[1] if p.heap else -1,
        heap_capacity_bytes=p.heap[2] if p.heap else -1, timing="gc-line", line=p.line,
    )


def parse_file(path: str | os.PathLike, *, strict_decorators: bool = True) -> JvmLog:
    """Parse a JVM log file; a missing file is an empty log."""
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return JvmLog()
    with f:
        return parse_lines(f, strict_decorators=strict_decorators)


# ------------------------------------------------------------------------------------ gcbench side channel


def side_channel_records(log: JvmLog, runtime: str = "java", pid: int | None = None) -> list[dict]:
    """gcbench side-channel lines: `gc` for GC pauses and stalls, `safepoint` for the other safepoints (the
    harness keeps only gc, stall and hiccup records, so those are in the file for the reader, not in the
    attribution)."""
    out = []
    for e in log.events:
        rec = {"type": "gc" if e.gc else "safepoint", "runtime": runtime, "kind": e.kind, "generation": -1,
               "start_ns": e.start_ns, "end_ns": e.end_ns, "collector": log.collector,
               "stop_the_world": e.stop_the_world}
        for k, v in asdict(e).items():
            if k in ("start_ns", "end_ns", "gc", "stop_the_world", "kind", "line") or v in (-1, ""):
                continue
            rec[k] = v
        if pid is not None:
            rec["pid"] = pid
        out.append(rec)
    return out


def summary_stats(log: JvmLog) -> dict:
    """Counts for the stats record, over the whole log (the JVM's life: start-up and warm-up included)."""
    pauses = [e.end_ns - e.start_ns for e in log.gc_pauses]
    stalls = [e.end_ns - e.start_ns for e in log.events if e.gc and not e.stop_the_world]
    other = [e.end_ns - e.start_ns for e in log.events if not e.gc]
    return {
        "jvm_collector": log.collector,
        "num_gc": len(log.gc_ids),
        "gc_pauses": len(pauses),
        "pause_total_ns": sum(pauses),
        "pause_max_ns": max(pauses, default=0),
        "ttsp_max_ns": max((e.time_to_safepoint_ns for e in log.gc_pauses), default=0),
        "allocation_stalls": len(stalls),
        "allocation_stall_total_ns": sum(stalls),
        "safepoints_non_gc": len(other),
        "safepoint_non_gc_total_ns": sum(other),
        "safepoint_non_gc_max_ns": max(other, default=0),
        "jvm_log_lines": log.lines,
        "jvm_log_dropped_messages": log.dropped_messages,
        "jvm_log_bad_lines": log.bad_lines,
        "jvm_log_unmatched_pause_lines": log.unmatched_pause_lines,
    }


def append_to_side_channel(log_path: str | os.PathLike, events_path: str | os.PathLike, runtime: str = "java",
                           pid: int | None = None) -> JvmLog:
    """After the JVM has exited: append its pauses, and the last stats record merged with the log's counts,
    to the side-channel file (one write)."""
    log = parse_file(log_path, strict_decorators=False)
    events_path = Path(events_path)
    stats: dict = {}
    try:
        with open(events_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"stats"' in line:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(rec, dict) and rec.get("type") == "stats":
                        stats = rec
    except FileNotFoundError:
        pass
    stats = {"type": "stats", "runtime": runtime, **stats, **summary_stats(log)}
    if pid is None and isinstance(stats.get("pid"), int):
        pid = stats["pid"]  # the server's own record says which process wrote the log
    lines = [json.dumps(r, separators=(",", ":")) for r in side_channel_records(log, runtime, pid)]
    lines.append(json.dumps(stats, separators=(",", ":")))
    with open(events_path, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return log
