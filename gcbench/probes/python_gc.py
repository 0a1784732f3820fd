"""GC probe for CPython processes: records every collection through ``gc.callbacks``.

Standard library only, importable without the gcbench package: the built-in Python server, the
auto-attached probe for users' servers and the harness itself all use it. The callback appends seven
integers to an ``array`` (no Python object kept per event, no I/O, no heap walk) and never writes:
``flush()``, called only on ``gcbench/flush`` and at exit (outside the measured window), writes JSON lines
to the side-channel file. Memory stays bounded: past ``GC_MAX_EVENTS`` unflushed events the callback only
counts (``gc_events_dropped`` in the stats record).

What a collection is depends on the interpreter (pygc_kinds, beside this file, says what was found per
version): the callback stores the raw generation; flush writes the kind it means on this interpreter
(gen0/gen1/gen2 on the generational GC; young/increment/full on 3.14.0-3.14.4's incremental GC, whose
automatic collections all report generation 1; full for every collection of a free-threaded build). The
stats record carries the interpreter's version_info, build and GC design once. CPython 3.15's own
"duration" and "candidates", when the info dict has them, go into the event record (cpython_duration_ns,
candidates) and the duration is checked against the probe's interval (gc_duration_* in the stats record).

``HiccupMeter`` (started by ``GcProbe.start_meter_from_env``) is the hiccup meter of PROTOCOL.md: a daemon
thread that sleeps a fixed interval and records how late it woke. It needs the GIL to wake, so it sees every
stretch in which another thread held the GIL without blocking: GC, but also the server's own calls.
"""

from __future__ import annotations

import array
import gc
import json
import os
import sys
import threading
import time

try:  # as gcbench.probes.python_gc
    from . import pygc_kinds
except ImportError:  # loaded on its own, with this folder on sys.path (servers, sitecustomize)
    import pygc_kinds

# generation, start_ns, end_ns, collected, uncollectable, CPython's duration in ns and candidates (3.15; -1 absent)
_FIELDS = 7
# Events go into arrays of at most CHUNK_EVENTS; a full one is set aside and a new one started, so no append
# inside the callback reallocates (copies) more than one chunk (896 KiB), however many events are held.
CHUNK_EVENTS = 16_384
GC_MAX_EVENTS = 2_000_000  # unflushed (112 MB at most); beyond this GC events are only counted as dropped
HICCUP_FLOOR_US = 200  # default: only wake-ups later than this are recorded as events
HICCUP_MAX_EVENTS = 1_000_000  # unflushed; beyond this hiccups are only counted (memory stays bounded)


def _max_rss_bytes() -> int:
    """This process's peak resident set size (VmHWM, the kernel's high-water mark), 0 where unknown.

    Not getrusage's ru_maxrss: Linux carries it across execve, so a server started by the harness reports the
    harness's own peak (measured: 299 MiB in a fresh interpreter whose VmHWM was 13 MiB)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return 0


class HiccupMeter:
    """A daemon thread that sleeps ``interval_us`` and records each wake-up later than ``floor_us``."""

    def __init__(self, interval_us: int, floor_us: int = HICCUP_FLOOR_US) -> None:
        self.interval_ns = int(interval_us) * 1000
        self.floor_ns = int(floor_us) * 1000
        self._buf = array.array("q")  # pairs: when it should have woken, when it woke
        self.wakeups = 0
        self.hiccups = 0
        self.max_late_ns = 0
        self.dropped = 0
        self._reset = False

    @classmethod
    def from_env(cls, environ=os.environ) -> HiccupMeter | None:
        """The meter GCBENCH_HICCUP_US / GCBENCH_HICCUP_FLOOR_US ask for, or None (unset or 0: off)."""
        interval_us = int(environ.get("GCBENCH_HICCUP_US", "0") or 0)
        if interval_us <= 0:
            return None
        return cls(interval_us, int(environ.get("GCBENCH_HICCUP_FLOOR_US", "") or HICCUP_FLOOR_US))

    def start(self) -> HiccupMeter:
        threading.Thread(target=self._run, name="gcbench-hiccup", daemon=True).start()
        return self

    def reset(self) -> None:
        """Start the counters again at the next wake-up (the meter thread alone writes them)."""
        self._reset = True

    def _run(self) -> None:
        clock = time.monotonic_ns
        sleep = time.sleep
        interval_ns = self.interval_ns
        interval_s = interval_ns / 1e9
        floor_ns = self.floor_ns
        buf = self._buf  # never replaced: drain() removes from its front
        cap = 2 * HICCUP_MAX_EVENTS
        while True:
            t0 = clock()
            sleep(interval_s)
            woke = clock()
            if self._reset:
                self._reset = False
                self.wakeups = self.hiccups = self.max_late_ns = self.dropped = 0
            self.wakeups += 1
            late = woke - t0 - interval_ns
            if late > self.max_late_ns:
                self.max_late_ns = late
            if late > floor_ns:
                self.hiccups += 1
                if len(buf) < cap:
                    buf.extend((t0 + interval_ns, woke))  # one C call: the pair is never split by a drain
                else:
                    self.dropped += 1

    def drain(self) -> list[tuple[int, int]]:
        """Take the buffered (due_ns, woke_ns) pairs; safe while the meter runs (each step is one C call)."""
        b = self._buf
        n = len(b) & ~1
        data = b[:n]
        del b[:n]
        # n is even; no strict= (even strict=False): the server also runs under CPython 3.7-3.9 (python@3.9)
        return list(zip(data[0::2], data[1::2]))  # noqa: B905

    def stats(self) -> dict:
        return {
            "hiccup_interval_us": self.interval_ns // 1000,
            "hiccup_floor_us": self.floor_ns // 1000,
            "hiccup_wakeups": self.wakeups,
            "hiccup_count": self.hiccups,
            "hiccup_max_late_ns": self.max_late_ns,
            "hiccup_dropped": self.dropped,
        }


class GcProbe:
    def __init__(self, path: str | None, runtime: str = "python", version_info=None,
                 gil_disabled: bool | None = None, clock=None) -> None:
        """`version_info` / `gil_disabled` (sys.version_info and sysconfig's Py_GIL_DISABLED by default) decide
        what each generation is called; tests pass another interpreter's. `clock` defaults to monotonic_ns."""
        self.path = path
        self.runtime = runtime
        self.gc_runtime = pygc_kinds.runtime_info(version_info, gil_disabled)
        self._kinds = self.gc_runtime["gc_kinds"]
        self._buf = array.array("q")  # the chunk being filled
        self._chunks: list[array.array] = []  # full chunks, oldest first
        self._held = 0  # events in _chunks and _buf
        self._start_ns = 0
        self.seen = 0  # every collection the callback saw (held, written or dropped)
        self.dropped = 0  # seen but not held: the buffer was at GC_MAX_EVENTS
        self.written = 0
        self._installed = False
        self._clock = clock or time.monotonic_ns
        self.meter: HiccupMeter | None = None
        # cross-check with CPython's own duration (3.15+), counted at flush
        self.duration_checked = 0
        self.duration_probe_short = 0  # the probe's interval shorter than CPython's own: clocks disagree
        self.duration_excess_max_ns: int | None = None  # the largest (probe interval - CPython's duration)

    def install(self) -> GcProbe:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True
        return self

    def start_meter_from_env(self) -> GcProbe:
        """Start the hiccup meter when GCBENCH_HICCUP_US asks for one; its events go out with ours."""
        if self.meter is None:
            self.meter = HiccupMeter.from_env()
            if self.meter is not None:
                self.meter.start()
        return self

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def _callback(self, phase: str, info: dict) -> None:
        # Runs inside whatever call triggered the collection: appends only, never writes or walks the heap.
        if phase == "start":
            self._start_ns = self._clock()
            return
        end_ns = self._clock()
        self.seen += 1
        if self._held >= GC_MAX_EVENTS:
            self.dropped += 1
            return
        buf = self._buf
        d = info.get("duration")  # 3.15+: seconds, CPython's own timer; converted here (cheap), checked at flush
        buf.extend((info["generation"], self._start_ns, end_ns, info.get("collected", -1),
                    info.get("uncollectable", -1), -1 if d is None else round(d * 1e9), info.get("candidates", -1)))
        self._held += 1
        if len(buf) >= CHUNK_EVENTS * _FIELDS:
            self._chunks.append(buf)
            self._buf = array.array("q")

    def pending(self) -> int:
        return self._held

    def _take(self) -> list[array.array]:
        """Detach every held chunk (the callback goes on filling a fresh one)."""
        # Both new containers first: creating the list can trigger a collection, whose event must land in
        # what is taken. From here on nothing GC-tracked is allocated, so no event falls between the steps.
        fresh, fresh_chunks = array.array("q"), []
        chunks = self._chunks
        chunks.append(self._buf)
        self._buf = fresh
        self._chunks = fresh_chunks
        self._held = 0
        return chunks

    def drain(self) -> list[tuple[int, int, int, int, int]]:
        """Return the buffered events as (generation, start_ns, end_ns, collected, uncollectable) tuples and
        empty the buffer (for in-process use)."""
        return [e[:5] for e in self._drain_all()]

    def _drain_all(self) -> list[tuple]:
        out = []
        for b in self._take():
            out.extend(tuple(b[i : i + _FIELDS]) for i in range(0, len(b), _FIELDS))
        return out

    def kind(self, generation: int) -> str:
        """What a collection of `generation` is on this interpreter (gen2, increment, full, ...)."""
        return self._kinds[generation] if 0 <= generation < len(self._kinds) else f"gen{generation}"

    def stats_record(self, gc_enabled: bool | None = None) -> dict:
        gc_stats = gc.get_stats()
        rec = {
            "type": "stats",
            "runtime": self.runtime,
            "python_version": sys.version.split()[0],
            **self.gc_runtime,  # version_info, build, GC design and the kind of each generation
            "gc_enabled": gc.isenabled() if gc_enabled is None else gc_enabled,
            "gc_counts": list(gc.get_count()),
            "gc_thresholds": list(gc.get_threshold()),
            "freeze_count": gc.get_freeze_count(),
            "collections": [s["collections"] for s in gc_stats],
            "gc_collected": [s["collected"] for s in gc_stats],
            "gc_uncollectable": [s["uncollectable"] for s in gc_stats],
            # a heap walk: only ever at flush, outside the window. It leaves out the frozen objects (measured on
            # 3.11.7, 3.12.1, 3.13.0: 0 right after gc.freeze()); freeze_count is the rest of the heap
            "tracked_objects": len(gc.get_objects()),
            "max_rss_bytes": _max_rss_bytes(),
            "gc_events_seen": self.seen,
            "gc_events_dropped": self.dropped,
            "gc_events_max": GC_MAX_EVENTS,
            "gc_duration_checked": self.duration_checked,
            "gc_duration_probe_short": self.duration_probe_short,
            "gc_duration_excess_max_ns": self.duration_excess_max_ns,
            "flush_ns": self._clock(),  # when this record was made: shows every write is outside the window
        }
        if self.meter is not None:
            rec.update(self.meter.stats())
        return rec

    def flush(self, stats: bool = True) -> int:
        """Write buffered events (and a stats record) as JSON lines; return the total written so far.

        Automatic GC is held off while it runs, so no collection happens between taking the events and
        counting them in the stats record: every event ``gc_events_seen`` counts is written or dropped.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._flush(stats, was_enabled)
        finally:
            if was_enabled:
                gc.enable()

    def _check_duration(self, start: int, end: int, duration_ns: int) -> None:
        self.duration_checked += 1
        excess = end - start - duration_ns
        if excess < -pygc_kinds.DURATION_TOLERANCE_NS:
            self.duration_probe_short += 1
        if self.duration_excess_max_ns is None or excess > self.duration_excess_max_ns:
            self.duration_excess_max_ns = excess

    def _flush(self, stats: bool, gc_enabled: bool) -> int:
        events = self._drain_all()
        if self.path is None:
            return self.written
        lines = []
        pid = os.getpid()
        for gen, start, end, collected, uncollectable, duration_ns, candidates in events:
            rec = {
                "type": "gc",
                "runtime": self.runtime,
                "kind": self.kind(gen),
                "generation": gen,
                "start_ns": start,
                "end_ns": end,
                "collected": collected,
                "uncollectable": uncollectable,
                "pid": pid,
            }
            if duration_ns >= 0:
                rec["cpython_duration_ns"] = duration_ns
                self._check_duration(start, end, duration_ns)
            if candidates >= 0:
                rec["candidates"] = candidates
            lines.append(json.dumps(rec))
        if self.meter is not None:
            for due, woke in self.meter.drain():
                lines.append(
                    f'{{"type":"hiccup","runtime":"{self.runtime}","kind":"hiccup","generation":-1,'
                    f'"start_ns":{due},"end_ns":{woke},"pid":{pid}}}'
                )
        if stats:
            lines.append(json.dumps(self.stats_record(gc_enabled)))
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self.written += len(events)
        return self.written
