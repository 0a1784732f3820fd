"""GC probe for CPython processes: records every collection through ``gc.callbacks``.

Standard library only, importable without the gcbench package: the built-in Python server, the
auto-attached probe for users' servers and the harness itself all use it. The callback appends five
integers to a preallocated ``array`` (no Python object per event, no I/O); ``flush()`` writes JSON lines
to the side-channel file.
"""

from __future__ import annotations

import array
import gc
import json
import os
import sys
import time

_FIELDS = 5  # generation, start_ns, end_ns, collected, uncollectable
FLUSH_EVERY_EVENTS = 10_000


class GcProbe:
    def __init__(self, path: str | None, runtime: str = "python", kind_prefix: str = "gen") -> None:
        self.path = path
        self.runtime = runtime
        self.kind_prefix = kind_prefix
        self._buf = array.array("q")
        self._start_ns = 0
        self.written = 0
        self._installed = False
        self._clock = time.monotonic_ns

    def install(self) -> GcProbe:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            gc.callbacks.remove(self._callback)
            self._installed = False

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start_ns = self._clock()
            return
        end_ns = self._clock()
        buf = self._buf
        buf.append(info["generation"])
        buf.append(self._start_ns)
        buf.append(end_ns)
        buf.append(info.get("collected", -1))
        buf.append(info.get("uncollectable", -1))
        if len(buf) >= FLUSH_EVERY_EVENTS * _FIELDS:
            self.flush()

    def pending(self) -> int:
        return len(self._buf) // _FIELDS

    def drain(self) -> list[tuple[int, int, int, int, int]]:
        """Return the buffered events as tuples and empty the buffer (for in-process use)."""
        b = self._buf
        out = [tuple(b[i : i + _FIELDS]) for i in range(0, len(b), _FIELDS)]
        del b[:]
        return out

    def stats_record(self) -> dict:
        return {
            "type": "stats",
            "runtime": self.runtime,
            "python_version": sys.version.split()[0],
            "gc_enabled": gc.isenabled(),
            "gc_counts": list(gc.get_count()),
            "gc_thresholds": list(gc.get_threshold()),
            "freeze_count": gc.get_freeze_count(),
            "collections": [s["collections"] for s in gc.get_stats()],
            "tracked_objects": len(gc.get_objects()),
        }

    def flush(self, stats: bool = True) -> int:
        """Write buffered events (and a stats record) as JSON lines; return the total written so far."""
        events = self.drain()
        if self.path is None:
            return self.written
        lines = []
        for gen, start, end, collected, uncollectable in events:
            lines.append(
                json.dumps(
                    {
                        "type": "gc",
                        "runtime": self.runtime,
                        "kind": f"{self.kind_prefix}{gen}",
                        "generation": gen,
                        "start_ns": start,
                        "end_ns": end,
                        "collected": collected,
                        "uncollectable": uncollectable,
                        "pid": os.getpid(),
                    }
                )
            )
        if stats:
            lines.append(json.dumps(self.stats_record()))
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self.written += len(events)
        return self.written
