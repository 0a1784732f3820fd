"""What one CPython collection is, by interpreter version and build: the kind the probe writes for it and which
kinds count as a full collection.

Standard library only and importable on its own (the probe loads it from this folder under CPython 3.7+).
Found in CPython's sources and release notes (python/cpython; gh-N is an issue or pull request there), and
measured here on 3.10.13, 3.11.7, 3.12.1 and 3.13.0 (this machine has no 3.14, 3.15 or free-threaded build):

Generational GC (3.10-3.12; 3.13.0 final; 3.14.5 on; 3.15.0b1 on): three generations. An automatic collection
  picks the oldest generation over its threshold (generation 2 only past the 25% rule: long-lived pending
  objects > 25% of long-lived total), and gc.callbacks gets that generation. gc.collect(g) reports g, so
  generation 2 is a full collection of every tracked object (frozen ones excepted) and the only one. Info
  dict keys (measured): {generation, collected, uncollectable}. get_threshold() (700, 10, 10) up to 3.12, (2000, 10, 10) on 3.13 (measured);
  get_count() (net container allocations since the last gen-0 collection, gen-0 collections since the last
  gen-1, gen-1 collections since the last gen-2); get_stats() 3 dicts {collections, collected, uncollectable}.
  3.12+ runs an automatic collection at the eval breaker, 3.10/3.11 inside the allocation that crossed the
  threshold. The 3.14.5 revert: Misc/NEWS.d/3.14.5rc1.rst, gh-142516 "Forward-port the generational cycle
  garbage collector to the default 3.14 build, replacing the incremental collector while leaving the
  free-threaded collector unchanged" (released 2026-05-04; 3.14.5 final 2026-05-10); Doc/whatsnew/3.14.rst
  "Python 3.14.0-3.14.4 shipped with a new incremental GC ... reverted back to the generational GC from 3.13".
  3.15: the same entry in Misc/NEWS.d/3.15.0b1.rst (2026-05-07, "to the default 3.15 build"); the Discourse
  thread "Reverting the incremental GC in Python 3.14 and 3.15" (2026-04-16) announced both.

Incremental GC (default build, 3.14.0-3.14.4; also 3.13.0a6-3.13.0rc2 and 3.15.0a1-3.15.0a8): two generations,
  the old one split into "pending" and "visited" spaces. Python/gc.c _PyGC_Collect switches on the
  generation: 0 -> gc_collect_young (young generation only), 1 -> gc_collect_increment (the young generation
  plus a slice of the pending space and what it reaches; or, at the start of a cycle, only the marking of
  roots), 2 -> gc_collect_full (everything). _Py_RunGC, the automatic trigger, always passes 1: every
  automatic collection reports generation 1 and is an increment, never a full collection; generation 0 comes
  only from gc.collect(0) and generation 2 only from gc.collect()/gc.collect(2)/PyGC_Collect. The whole old
  generation is scanned piecewise across many increments ("completed_scavenge" when pending is empty), so
  no single pause is a full collection. Doc/whatsnew/3.14.rst: "gc.collect(1): Performs an increment of
  garbage collection, rather than collecting generation 1". Modules/gcmodule.c (3.14): get_threshold()
  returns (young threshold, old[0] threshold, 0), i.e. (2000, 10, 0) at start; get_count() (young count,
  visited-space count, pending-space count); get_stats() 3 dicts, gen 1 counting increments. Info dict keys
  on 3.14: {generation, collected, uncollectable}. Added in 3.13.0a6 (Misc/NEWS.d/3.13.0a6.rst, gh-108362),
  reverted in 3.13.0rc3 (Misc/NEWS.d/3.13.0rc3.rst, gh-124567); main kept it for 3.14 and 3.15's alphas.

3.15 info dict: gh-140638 added "duration" (gh-141720: seconds, CPython's own PyTime_PerfCounterRaw around
  the collection, also in gc.get_stats(); default and free-threaded builds) and "candidates" (gh-141814:
  objects considered and traversed). Seen in the stored Python/gc.c of main: Py_BuildValue of generation,
  collected, uncollectable, candidates, duration at both phases ("start" carries zeros). gh-148726 plans to
  keep both in the forward-ported generational GC of 3.15. Not verified here: "candidates" on the
  free-threaded build. The probe stores whatever of the two keys is present.

Free-threaded builds (sysconfig Py_GIL_DISABLED, 3.13t/3.14t/3.15t; Python/gc_free_threading.c): one
  collector, not generational: gc_collect_internal visits every mimalloc heap whatever the generation
  argument, with the other threads stopped (_PyEval_StopTheWorld) while it finds the unreachable objects and
  again for resurrection checks (finalizers and weakref callbacks run with the world started). _Py_RunGC
  passes generation 0, so every automatic collection reports generation 0 and is a full collection;
  gc.collect(g) reports g and is a full collection too. Trigger (gc_should_collect): young count > threshold0
  and > long_lived_total / 4 (so the 25% rule gates every collection). 3.14t added a process-size deferral
  (gh-133464) that 3.15.0b1 removed (gh-148940). Info dict keys as the default build of the same version; the
  gh-142516 revert "leaves the free-threaded collector unchanged".

A development build ("3.14.4+") is taken as the release it names; a build from a branch after a revert but
before the next tag is labelled by the tag it names (its gc_design can then be wrong: the stats record keeps
the exact sys.version_info for checking).
"""

from __future__ import annotations

import re
import sys

GENERATIONAL = "generational"
INCREMENTAL = "incremental"
FREE_THREADED = "free-threaded"
DESIGNS = (GENERATIONAL, INCREMENTAL, FREE_THREADED)

# The kind written for generation 0, 1, 2 (what the callback's "generation" means on that design).
KINDS = {
    GENERATIONAL: ("gen0", "gen1", "gen2"),
    INCREMENTAL: ("young", "increment", "full"),
    FREE_THREADED: ("full", "full", "full"),
}
# What counts as a full collection, in this naming and in the gen0/gen1/gen2 naming every run recorded before
# it (there gen2 was gc.collect() on an incremental GC, and every kind was full on a free-threaded build).
FULL_KINDS = {
    GENERATIONAL: frozenset({"gen2"}),
    INCREMENTAL: frozenset({"full", "gen2"}),
    FREE_THREADED: frozenset({"full", "gen0", "gen1", "gen2"}),
}
UNKNOWN_FULL_KINDS = frozenset({"gen2", "full"})  # no runtime information: generation 2, or a "full" kind

_LEVELS = {"alpha": 0, "beta": 1, "candidate": 2, "final": 3}
_SUFFIX_LEVELS = {"a": "alpha", "b": "beta", "rc": "candidate"}
# [first, end) release ranges of the default build that shipped the incremental GC
INCREMENTAL_RANGES = (
    ((3, 13, 0, "alpha", 6), (3, 13, 0, "candidate", 3)),
    ((3, 14, 0, "alpha", 0), (3, 14, 5, "candidate", 1)),
    ((3, 15, 0, "alpha", 0), (3, 15, 0, "beta", 1)),
)
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:(a|b|rc)(\d+))?")


def _key(v) -> tuple:
    """A comparable (major, minor, micro, level rank, serial) from a version_info-like sequence."""
    v = tuple(v) + (0, 0, 0, "final", 0)[len(tuple(v)):]
    return (int(v[0]), int(v[1]), int(v[2]), _LEVELS.get(str(v[3]), 3), int(v[4]))


def parse_version(text: str) -> tuple | None:
    """(major, minor, micro, releaselevel, serial) from "3.14.2", "3.15.0a8", "3.13.0rc3+", or None."""
    m = _VERSION.match(str(text).strip())
    if not m:
        return None
    level = _SUFFIX_LEVELS.get(m.group(4) or "", "final")
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), level, int(m.group(5) or 0))


def gc_design(version_info, gil_disabled: bool = False) -> str:
    """The collector of that CPython: GENERATIONAL, INCREMENTAL or FREE_THREADED."""
    k = _key(version_info)
    if gil_disabled and k >= _key((3, 13, 0, "alpha", 0)):
        return FREE_THREADED
    if any(_key(lo) <= k < _key(hi) for lo, hi in INCREMENTAL_RANGES):
        return INCREMENTAL
    return GENERATIONAL


def runtime_info(version_info=None, gil_disabled: bool | None = None) -> dict:
    """The interpreter facts the probe writes once in its stats record; defaults to the running interpreter."""
    if version_info is None:
        version_info = sys.version_info
    if gil_disabled is None:
        import sysconfig

        gil_disabled = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    vi = tuple(version_info)[:5]
    design = gc_design(vi, gil_disabled)
    return {"python_version_info": [int(vi[0]), int(vi[1]), int(vi[2]), str(vi[3]), int(vi[4])],
            "python_gil_disabled": bool(gil_disabled), "gc_design": design, "gc_kinds": list(KINDS[design])}


def event_kind(generation: int, design: str) -> str:
    """The kind of one collection whose callback reported `generation` on a collector of `design`."""
    kinds = KINDS.get(design, KINDS[GENERATIONAL])
    return kinds[generation] if 0 <= generation < len(kinds) else f"gen{generation}"


def design_of(info: dict | None) -> str | None:
    """The collector a stats record (or run.json cell "stats") describes: its gc_design, else derived from
    python_version_info / python_version and python_gil_disabled (older records: the build is not known, the
    default build is assumed); None when it says nothing."""
    if not isinstance(info, dict):
        return None
    if info.get("gc_design") in DESIGNS:
        return str(info["gc_design"])
    gil = bool(info.get("python_gil_disabled", False))
    vi = info.get("python_version_info")
    if isinstance(vi, (list, tuple)) and len(vi) >= 3:
        try:
            return gc_design(vi, gil)
        except (TypeError, ValueError):
            pass
    parsed = parse_version(info["python_version"]) if info.get("python_version") else None
    return gc_design(parsed, gil) if parsed else None


def full_collection_kinds(info: dict | None) -> frozenset:
    """The event kinds that are a full collection of every tracked object on the runtime a stats record
    describes (generation 2 on the generational GC; gc.collect() alone on the incremental GC, whose automatic
    collections are increments; every collection on a free-threaded build)."""
    design = design_of(info)
    return FULL_KINDS[design] if design else UNKNOWN_FULL_KINDS


def _cell_stats(cells) -> dict:
    """(backend, gc mode, rep) -> the stats record of that cell."""
    out = {}
    for c in cells or ():
        if isinstance(c, dict) and isinstance(c.get("stats"), dict):
            out[(str(c.get("backend")), str(c.get("gc_mode")), int(c.get("rep", 0) or 0))] = c["stats"]
    return out


def full_collection_mask(events, cells) -> list:
    """Per row of a gc_events table (backend, gc_mode, rep, runtime, type, kind; source optional): True where
    it is a server's CPython full collection, by its cell's stats record in `cells` (run.json "cells")."""
    if len(events) == 0:
        return []
    stats = _cell_stats(cells)
    have = set(events.columns)
    n = len(events)
    src = events["source"].astype(str).tolist() if "source" in have else ["server"] * n
    typ = events["type"].astype(str).tolist() if "type" in have else ["gc"] * n
    rt = events["runtime"].astype(str).tolist() if "runtime" in have else ["python"] * n
    kinds_of: dict = {}
    out = []
    cols = (events["backend"].astype(str), events["gc_mode"].astype(str), events["rep"].tolist(), src, typ, rt,
            events["kind"].astype(str))
    for b, m, r, s, t, rtm, k in zip(*cols):  # noqa: B905  (no strict=: this module also runs on 3.7)
        if s != "server" or t != "gc" or rtm != "python":
            out.append(False)
            continue
        key = (b, m, int(r))
        if key not in kinds_of:
            kinds_of[key] = full_collection_kinds(stats.get(key))
        out.append(k in kinds_of[key])
    return out


def group_design(cells, backend: str, gc_mode: str) -> str | None:
    """The collector the ok cells of one (backend, gc mode) ran on, from their stats records (the first that
    says), or None."""
    for c in cells or ():
        if c.get("backend") == backend and c.get("gc_mode") == gc_mode and c.get("status", "ok") == "ok":
            d = design_of(c.get("stats"))
            if d:
                return d
    return None


def few_full_collections_warning(n_full: int, n_collections: int, design: str | None, minimum: int) -> str | None:
    """The warning for a (backend, gc mode) whose server CPython had `n_full` full collections among
    `n_collections`, or None when there are enough; worded for what a full collection is on `design`."""
    if n_full >= minimum:
        return None
    if design == INCREMENTAL:
        return (f"only {n_full} CPython full collection(s) seen: on the incremental GC of 3.14.0-3.14.4 only "
                f"gc.collect() runs one; its {n_collections - n_full} other collection(s) are a young collection plus an "
                "increment of the old generation (kind increment), whose pauses are the ones a call meets")
    if design == FREE_THREADED:
        return (f"only {n_full} CPython collection(s) seen, each a full stop-the-world collection of the whole "
                "heap on this free-threaded build: too few to say anything about their cost (longer runs or more "
                "allocation; a collection waits for new objects to exceed 25% of the live heap)")
    return (f"only {n_full} CPython full collection(s) seen: too few to say anything about their cost "
            "(longer runs or a bigger live heap, see CPython's 25% pending rule)")


DURATION_TOLERANCE_NS = 1_000  # both clocks are CLOCK_MONOTONIC on Linux; room for float rounding elsewhere


def duration_check_warnings(stats: list[dict]) -> list[str]:
    """Warnings from the probe's cross-check against CPython 3.15's own "duration": a probe interval shorter
    than CPython's own timing of the collection inside it means the two clocks disagree."""
    short = sum(int(s.get("gc_duration_probe_short") or 0) for s in stats)
    checked = sum(int(s.get("gc_duration_checked") or 0) for s in stats)
    if not short:
        return []
    return [f"{short} of {checked} CPython collection(s) lasted less by the probe's clock than by CPython's own "
            f"\"duration\" (beyond {DURATION_TOLERANCE_NS} ns): the probe's pause times may be off"]


def full_collection_warnings(events, cells, backend: str, gc_mode: str, minimum: int) -> list[str]:
    """The few-full-collections warning of one (backend, gc mode), from its rows of the gc_events table
    (`events`, any source) and run.json's cells: [] or one line."""
    full = full_collection_mask(events, cells)
    n_full = sum(full)
    if "source" in events.columns:
        server = (events["source"].astype(str) == "server") & (events["type"].astype(str) == "gc")
    else:
        server = events["type"].astype(str) == "gc"
    n_all = int((server & (events["runtime"].astype(str) == "python")).sum())
    w = few_full_collections_warning(n_full, n_all, group_design(cells, backend, gc_mode), minimum)
    return [w] if w else []


# What "full collection" selects, for report titles: the same rows full_collection_mask marks.
FULL_COLLECTION_NOTE = ("generation 2; every collection on a free-threaded build; only gc.collect() on the "
                        "incremental GC of 3.14.0-3.14.4")
