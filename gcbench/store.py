"""The result store: a run folder with run.json and Parquet tables, written atomically, never overwritten."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gcbench.atomic import atomic_replace, atomic_write_json
from gcbench.errors import GcbenchError
from gcbench.formats import (
    CALL_COLUMNS,
    COLUMN_SINCE,
    EVENT_COLUMNS,
    RUN_FORMAT,
    RunTables,
    check_version,
    stored_run_format,
    upgrade_run,
)

SCHEMA_VERSION = RUN_FORMAT  # what the writer writes; formats.py has the history and the upgrades
RUN_JSON = "run.json"
COMPLETE_STATUSES = ("complete", "complete-with-failures")  # every cell of the run was attempted
CALLS = "calls.parquet"
GC_EVENTS = "gc_events.parquet"


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def conform(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """The table's declared columns, in order and with their types (extra columns are kept at the end)."""
    out = df.copy()
    for c, t in columns.items():
        if c not in out:
            out[c] = pd.Series(dtype=t) if len(out) == 0 else None
        out[c] = out[c].astype(t)
    return out[list(columns) + [c for c in out.columns if c not in columns]]


def _atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    atomic_replace(path, lambda tmp: df.to_parquet(tmp, index=False))


def safe_run_id(text: str) -> str:
    """One harmless path component (no separator, no '..', no leading dot, bounded length)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:100].strip("-.") or "run"


def new_run_id(scenario_name: str) -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + safe_run_id(scenario_name)


class RunWriter:
    """Owns one new run folder; every add_cell leaves a complete, loadable folder on disk."""

    def __init__(self, out_dir: Path, run_id: str, meta: dict) -> None:
        run_id = safe_run_id(run_id)  # the folder is always created directly inside out_dir
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise GcbenchError(f"--out {out_dir}: cannot create the folder ({e.strerror})") from None
        for n in range(1, 1000):
            path = out_dir / (run_id if n == 1 else f"{run_id}-{n}")
            try:
                path.mkdir()  # fails if it exists: a run folder is never overwritten
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise GcbenchError(f"--out {out_dir}: cannot create a run folder in it ({e.strerror})") from None
        else:
            raise GcbenchError(f"cannot create a new run folder under {out_dir}")
        self.path = path
        (path / "cells").mkdir()
        self.meta = {"schema_version": SCHEMA_VERSION, "run_id": path.name, "status": "running", **meta, "cells": []}
        self._calls: list[pd.DataFrame] = []
        self._events: list[pd.DataFrame] = []
        try:
            self._write()
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)  # empty but for what failed to be written: no debris
            raise

    def cell_file(self, cell_id: str, suffix: str) -> Path:
        return self.path / "cells" / f"{cell_id}{suffix}"

    def add_cell(self, cell: dict, calls: pd.DataFrame | None = None, events: pd.DataFrame | None = None) -> None:
        """Commit one cell: its rows to the tables, then its entry to run.json (the loader keeps only the rows of
        cells run.json lists, so a kill between the writes leaves the folder as it was). A write that fails
        (a full disk: a WriteError naming the file) leaves the folder and this writer as they were."""
        n_calls, n_events = len(self._calls), len(self._events)
        if calls is not None and len(calls):
            self._calls.append(conform(calls, CALL_COLUMNS))
        if events is not None and len(events):
            self._events.append(conform(events, EVENT_COLUMNS))
        self.meta["cells"].append(cell)
        try:
            self._write(tables=len(self._calls) > n_calls or len(self._events) > n_events)
        except BaseException:
            self.meta["cells"].pop()
            del self._calls[n_calls:], self._events[n_events:]
            raise

    def finish(self, status: str, **extra) -> None:
        self.meta["status"] = status
        self.meta["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())  # a sweep's wall time
        self.meta.update(extra)
        self._write(tables=False)  # the tables already hold every cell run.json lists

    def finish_quietly(self, status: str, **extra) -> str | None:
        """finish() for a run being stopped by another error (the one to show): None, or why run.json could not
        be marked (it then still says 'running', and every cell it lists is intact)."""
        try:
            self.finish(status, **extra)
        except (OSError, GcbenchError) as e:
            return str(e)
        return None

    def _write(self, tables: bool = True) -> None:
        if tables:
            calls = pd.concat(self._calls, ignore_index=True) if self._calls else empty_frame(CALL_COLUMNS)
            events = pd.concat(self._events, ignore_index=True) if self._events else empty_frame(EVENT_COLUMNS)
            write_folder(self.path, self.meta, calls, events)
        else:
            atomic_write_json(self.path / RUN_JSON, self.meta)


def write_folder(path: Path, meta: dict, calls: pd.DataFrame, events: pd.DataFrame) -> None:
    _atomic_write_parquet(path / CALLS, calls)
    _atomic_write_parquet(path / GC_EVENTS, events)
    # run.json last: it names what the tables hold. A kill before it leaves rows of a cell it does not list,
    # which the loader leaves out (listed_rows); an upgrade cut short leaves new tables and the old run.json,
    # which loads: every upgrade leaves a column it finds already there alone
    atomic_write_json(path / RUN_JSON, meta)


def incomplete_note(meta: dict) -> str | None:
    """One sentence for a report of a run that did not attempt all its cells; None for a complete one."""
    status = meta.get("status")
    if status in COMPLETE_STATUSES:
        return None
    n = len(meta.get("cells", []))
    why = {"running": "run.json still says 'running': gcbench was killed (or is still running)",
           "interrupted": "it was interrupted (SIGINT or SIGTERM)",
           "aborted": f"it was aborted ({str(meta.get('error', 'no reason recorded'))[:200]})"}
    return (f"INCOMPLETE RUN: {why.get(str(status), f'its status is {str(status)[:40]!r}')}; only the {n} cell(s) "
            f"it recorded are shown.")


@dataclass
class RunData:
    path: Path
    meta: dict  # upgraded: meta["schema_version"] is RUN_FORMAT
    calls: pd.DataFrame
    gc_events: pd.DataFrame
    stored_format: int = RUN_FORMAT  # the format the folder holds on disk (before the upgrades on load)

    @property
    def scenario(self) -> dict:
        return self.meta.get("scenario", {})


def load_run(path: str | os.PathLike) -> RunData:
    """A run folder of any known format, upgraded in memory to the latest one (formats.py)."""
    p = Path(path)
    if p.is_file() and p.name == RUN_JSON:
        p = p.parent
    meta_path = p / RUN_JSON
    if not p.is_dir():
        raise GcbenchError(f"{p}: not a run folder (no such directory)")
    if not meta_path.is_file():
        raise GcbenchError(f"{p}: not a run folder (no {RUN_JSON})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except OSError as e:
        raise GcbenchError(f"{meta_path}: cannot read: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise GcbenchError(f"{meta_path}: corrupted ({e.__class__.__name__}: {str(e)[:80]})") from None
    if not isinstance(meta, dict) or "schema_version" not in meta:
        raise GcbenchError(f"{meta_path}: not a gcbench run.json (no schema_version)")
    version = check_version(meta_path, meta["schema_version"], RUN_FORMAT)  # a newer one: "upgrade gcbench"
    _check_meta(meta_path, meta)
    tables = []
    for name in (CALLS, GC_EVENTS):
        f = p / name
        if not f.is_file():
            raise GcbenchError(f"{f}: missing table")
        try:
            tables.append(pd.read_parquet(f))
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise GcbenchError(f"{f}: corrupted table ({e.__class__.__name__})") from None
    stored = stored_run_format(version, tables[0].columns)
    _check_columns(p, tables, stored)
    tables = listed_rows(meta, tables)
    run = upgrade_run(RunTables(meta, tables[0], tables[1]), stored)
    _check_columns(p, [run.calls, run.gc_events], RUN_FORMAT)
    return RunData(p, run.meta, run.calls, run.gc_events, stored)


CELL_KEY = ["backend", "gc_mode", "rep"]


def listed_rows(meta: dict, tables: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Only the rows of cells run.json lists: a writer killed after writing a cell's tables but before its
    run.json leaves rows of a cell that was never committed (counted in meta["uncommitted_rows"])."""
    listed = {(c.get("backend"), c.get("gc_mode"), c.get("rep")) for c in meta["cells"]}
    out, dropped = [], {}
    for name, df in zip((CALLS, GC_EVENTS), tables, strict=True):
        key = _cell_key(df)  # one integer per row naming its cell: 0.1 s for 1M rows
        first = pd.Series(key).drop_duplicates().index.to_numpy()
        extra = [key[i] for i, (b, m, r) in zip(first, df[CELL_KEY].iloc[first].itertuples(index=False, name=None),
                                                 strict=True) if (b, m, _int_or_none(r)) not in listed]
        if extra:
            keep = ~np.isin(key, extra)
            dropped[name] = int((~keep).sum())
            df = df[keep].reset_index(drop=True)
        out.append(df)
    if dropped:
        meta["uncommitted_rows"] = dropped
    return out


def _cell_key(df: pd.DataFrame) -> np.ndarray:
    key = np.zeros(len(df), np.int64)
    for c in CELL_KEY:
        codes, uniques = pd.factorize(df[c])  # a missing value: -1
        key = key * (len(uniques) + 1) + codes + 1
    return key


def _int_or_none(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def upgrade_folder(path: str | os.PathLike) -> tuple[int, bool]:
    """Rewrite a run folder in the latest format (what load_run does in memory); (the schema_version it
    said, rewritten)."""
    run = load_run(path)
    stored_version = json.loads((run.path / RUN_JSON).read_text(encoding="utf-8"))["schema_version"]
    if stored_version == RUN_FORMAT:
        return stored_version, False
    meta = {**run.meta, "upgraded_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "upgraded_from_schema_version": stored_version}
    write_folder(run.path, meta, conform(run.calls, CALL_COLUMNS), conform(run.gc_events, EVENT_COLUMNS))
    return stored_version, True


def _check_columns(folder: Path, tables: list[pd.DataFrame], fmt: int) -> None:
    """Every column the format declares is there with its kind of type (checked before the upgrades, so a
    damaged old folder is named as such, and after them)."""
    for name, df, cols in ((CALLS, tables[0], CALL_COLUMNS), (GC_EVENTS, tables[1], EVENT_COLUMNS)):
        f = folder / name
        declared = {c: t for c, t in cols.items() if fmt >= COLUMN_SINCE.get(c, 1)}
        missing = [c for c in declared if c not in df.columns]
        if missing:
            raise GcbenchError(f"{f}: missing columns {', '.join(missing)}")
        for c, t in declared.items():
            if not _KIND_OK[t](df[c].dtype):
                raise GcbenchError(f"{f}: column {c!r} holds {df[c].dtype}, expected {t}")


_KIND_OK = {
    "int32": pd.api.types.is_integer_dtype,
    "int64": pd.api.types.is_integer_dtype,
    "bool": pd.api.types.is_bool_dtype,
    "string": lambda d: pd.api.types.is_string_dtype(d) or pd.api.types.is_object_dtype(d),
}
_META_TYPES = {"run_id": str, "status": str, "cells": list, "scenario": dict, "config": dict, "environment": dict}


def _check_meta(meta_path: Path, meta: dict) -> None:
    """The fields every reader relies on have their types, so a damaged run.json is one clear line."""
    for key, typ in _META_TYPES.items():
        if key not in meta:
            if key != "run_id":  # written by every gcbench; run_id falls back to the folder's name
                raise GcbenchError(f"{meta_path}: field {key!r} is missing")
        elif not isinstance(meta[key], typ):
            raise GcbenchError(f"{meta_path}: field {key!r} should be {typ.__name__}, not {type(meta[key]).__name__}")
    if "run_id" in meta and meta["run_id"] != safe_run_id(meta["run_id"]):
        raise GcbenchError(f"{meta_path}: field 'run_id' {meta['run_id'][:40]!r} is not a run folder name")
    for i, cell in enumerate(meta.get("cells", [])):
        if not isinstance(cell, dict) or not all(isinstance(cell.get(k), str) for k in ("backend", "gc_mode", "status")):
            raise GcbenchError(f"{meta_path}: cells[{i}] is damaged (needs backend, gc_mode and status)")
