"""Reading a GC side channel (PROTOCOL.md): JSON lines of events and stats, written by a server's probe.

The reader trusts nothing in the file: a line that is not well-formed JSON, nests too deep, holds a number
that does not fit int64 or an event without its timestamps is dropped and counted (the cell's
`side_channel_bad_lines`), and the cell's calls stay. Only well-formed events count as GC.

Memory is bounded: lines are read one at a time (at most MAX_LINE_BYTES each); an event keeps its scalar
fields with its strings shared (measured: 0.37 KB per Python-probe event instead of 1.0 KB for the parsed
line), and a file over SIDE_CHANNEL_MAX_BYTES or with more than MAX_EVENTS events fails its cell (its GC
events would be incomplete: no dead time is better than a wrong one). Record types other than the event
types and "stats" are skipped (new probes may write new ones); new `kind` values and fields pass through.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from gcbench import output_guard
from gcbench.errors import CellError
from gcbench.output_guard import MIB

EVENT_TYPES = ("gc", "stall", "hiccup")
MAX_LINE_BYTES = 64 * 1024  # a probe's longest line (a stats record) is under 2 KB
MAX_EVENTS = 2_000_000
MAX_NAME_CHARS = 64  # runtime and kind
INT64_MAX = 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def read_side_channel(path: Path, max_bytes: int | None = None,
                      max_events: int | None = None) -> tuple[list[dict], dict, int]:
    """Events (type gc/stall/hiccup), the last stats record, and how many lines were dropped as malformed.

    Raises CellError when the file is over max_bytes (default: output_guard.SIDE_CHANNEL_MAX_BYTES) or holds
    more than max_events (default MAX_EVENTS) events."""
    max_bytes = max_bytes or output_guard.SIDE_CHANNEL_MAX_BYTES
    max_events = max_events or MAX_EVENTS
    events: list[dict] = []
    stats: dict = {}
    bad = 0
    names: dict[str, str] = {}  # one str object per distinct runtime / kind / type
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return events, stats, 0
    except OSError as e:
        raise CellError(f"cannot read its GC side channel {path.name}: {e.strerror or e}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise CellError(f"its GC side channel is {size / MIB:.0f} MiB, over the cap of {max_bytes / MIB:.0f} MiB "
                            f"(its GC events would be incomplete)")
        while True:
            line = f.readline(MAX_LINE_BYTES + 1)
            if not line:
                break
            if len(line) > MAX_LINE_BYTES:
                while line and not line.endswith(b"\n"):  # the rest of an overlong line
                    line = f.readline(MAX_LINE_BYTES)
                bad += 1
                continue
            if not line.strip():
                continue
            rec = _parse(line)
            kind = rec.get("type") if rec is not None else None
            if rec is None or not isinstance(kind, str):
                bad += 1
            elif kind in EVENT_TYPES:
                event = _event(rec, names)
                if event is None:
                    bad += 1
                    continue
                if len(events) >= max_events:
                    raise CellError(f"its GC side channel holds more than {max_events} events, the cap "
                                    f"(its GC events would be incomplete)")
                events.append(event)
            elif kind == "stats":
                stats = rec
    return events, stats, bad


def _parse(line: bytes) -> dict | None:
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):  # not JSON or not UTF-8 (ValueError), nested too deep
        return None
    return rec if isinstance(rec, dict) else None


def _event(rec: dict, names: dict[str, str]) -> dict | None:
    """The event with its fields checked, or None if one is missing or out of range. Fields the events table
    does not use are kept when they are numbers, booleans or short strings (for the columns to come)."""
    start, end = rec.get("start_ns"), rec.get("end_ns")
    if not (type(start) is int and type(end) is int and 0 <= start <= end <= INT64_MAX):
        return None
    generation, collected, kind = rec.get("generation", -1), rec.get("collected", -1), rec.get("kind", rec["type"])
    if not (type(generation) is int and INT32_MIN <= generation <= INT32_MAX and type(collected) is int):
        return None
    if type(kind) is int and INT32_MIN <= kind <= INT32_MAX:
        kind = str(kind)  # the table's kind is a string
    if type(kind) is not str or type(rec.get("runtime", "")) is not str:
        return None
    event = {}
    for key, value in rec.items():
        t = type(value)
        if t is str:
            if len(value) > MAX_NAME_CHARS:
                return None
            value = names.setdefault(value, value)
        elif t is int:
            if not -INT64_MAX <= value <= INT64_MAX:
                return None
        elif t not in (float, bool) and value is not None:
            continue  # nested: no column holds it
        if len(key) <= MAX_NAME_CHARS:
            event[names.setdefault(key, key)] = value
    event["kind"] = names.setdefault(kind, kind)
    return event
