"""Which same-runtime cell a (backend, gc mode) is set against, or why there is none.

The choice is a typed finding (Reference or NoReference) whose str() is the sentence the reports print; the
fields are for a renderer that words it itself. Never another runtime: the difference between two runtimes is
not GC cost (runtime_reference names the no-GC control a runtime without an off switch is shown against).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pandas as pd

from gcbench.analysis.attribution import GROUP_KEYS, measured_server_events

OFF_MODE = "disabled"  # the GC-off cell of a backend, the counterfactual's first choice
OFF_MODES = {"java": "epsilon"}  # runtimes whose GC-off mode has another name (the JVM's no-op collector)
CONTROL_BACKEND = "rust"  # no GC at all: a runtime difference against it is shown for Node, never as GC cost
NO_GC_RUNTIMES = frozenset({"rust"})  # no garbage collector: a cell is its own reference
# Runtimes that cannot turn GC off: V8 has no such switch (the node backends refuse --gc-mode disabled).
# Every other runtime with a GC can, so without its `disabled` cell there is no GC cost to state.
NO_OFF_SWITCH_RUNTIMES = frozenset({"node"})

Cell = tuple[str, str]  # (backend, gc mode)


def cell_name(cell: Cell) -> str:
    return f"{cell[0]}/{cell[1]}"


class RefKind(Enum):
    """What makes a cell a GC-cost reference; the value is the summary's gc_cost_ref_kind."""

    GC_OFF = "gc-off"  # the same backend with GC disabled
    NO_GC = "no-gc"  # no garbage collector in this runtime: the control
    GC_QUIET = "gc-quiet"  # a cell of the same backend whose measured window had 0 server GC events


@dataclass(frozen=True)
class Reference:
    """The same-runtime reference of `cell` (the summary's gc_cost_note when there is one)."""

    cell: Cell
    ref: Cell
    kind: RefKind
    quiet_reps: int = 0  # gc-quiet: the reference cell's repetitions
    events_elsewhere: int = 0  # gc-quiet: GC events its backend's probe reported in its other cells

    @property
    def is_self(self) -> bool:
        return self.ref == self.cell

    @property
    def label(self) -> str:
        return cell_name(self.ref)

    def why(self) -> str:
        if self.kind is RefKind.GC_OFF:
            return "GC off, same backend"
        if self.kind is RefKind.NO_GC:
            return "no garbage collector in this runtime: the control"
        return (f"GC-quiet: 0 server GC events in its measured window ({self.quiet_reps} rep(s)), while its probe "
                f"reported {self.events_elsewhere} elsewhere in the run")

    def __str__(self) -> str:
        return f"the reference ({self.why()})" if self.is_self else f"vs {self.label} ({self.why()})"


class NoReferenceReason(Enum):
    NOT_IN_RUN = "not-in-run"  # the run holds no GC-off reference (what compare and a missing note say)
    NO_OFF_CELL = "no-off-cell"  # a runtime with an off switch, measured without its GC-off cell
    NO_OFF_SWITCH = "no-off-switch"  # a runtime without an off switch (Node) and no GC-quiet cell of it


@dataclass(frozen=True)
class NoReference:
    """Why a cell has no GC cost (the summary's gc_cost_note then)."""

    reason: NoReferenceReason = NoReferenceReason.NOT_IN_RUN
    backend: str = ""
    runtime: str = ""
    runtime_ref: Cell | None = None  # the no-GC control of the runtime difference (never GC cost), if any
    window_quiet: bool = False  # its own measured window had 0 server GC events, with nothing to set it against

    def __str__(self) -> str:
        if self.reason is NoReferenceReason.NOT_IN_RUN:
            return "no GC-off reference in this run"
        if self.reason is NoReferenceReason.NO_OFF_SWITCH:
            text = f"{self.runtime} has no GC off switch and no {self.backend} cell of this run was GC-quiet"
            if self.runtime_ref is not None:
                text += f"; runtime difference vs {cell_name(self.runtime_ref)} instead (not GC cost)"
        else:
            text = f"no GC-off cell of {self.backend} in this run (measure --gc-mode disabled too)"
        return text + ("; its measured window had 0 server GC events" if self.window_quiet else "")


NO_REFERENCE = NoReference()  # the run holds no GC-off reference for the cell


def off_mode(backend: str, runtime: str = "") -> str:
    """The GC-off mode of a backend: keyed by its runtime (a user's JVM server is `java` too, whatever its
    backend is called), else by the backend's own name (java+meter too)."""
    return OFF_MODES.get(runtime) or OFF_MODES.get(backend.split("+")[0], OFF_MODE)


def reference_cell(backend: str, gc_mode: str, present: set[Cell], runtime: str = "") -> Cell | None:
    """The same-runtime GC-off cell that (backend, gc mode) is compared with, or None when the run has none.

    The same backend with GC disabled (`epsilon` for java, OFF_MODES); the no-GC control (`rust`) is its own
    reference. Never another runtime:
    the difference between two runtimes is not GC cost (see runtime_reference). Without events to check, no
    GC-quiet cell can be chosen here (choose_reference does that).
    """
    off = off_mode(backend, runtime)
    if (backend, off) in present:
        return (backend, off)
    if backend == CONTROL_BACKEND or runtime in NO_GC_RUNTIMES:
        return (backend, gc_mode)
    return None


def runtime_reference(backend: str, runtime: str, present: set[Cell]) -> Cell | None:
    """The no-GC control cell a runtime without an off switch is set against, as a runtime difference (never
    called GC cost), or None: a runtime that has an off switch is only ever compared with itself."""
    if runtime not in NO_OFF_SWITCH_RUNTIMES or backend == CONTROL_BACKEND:
        return None
    for mode in (OFF_MODE, "default"):
        if (CONTROL_BACKEND, mode) in present:
            return (CONTROL_BACKEND, mode)
    control = sorted(m for b, m in present if b == CONTROL_BACKEND)
    return (CONTROL_BACKEND, control[0]) if control else None


def choose_reference(cell: Cell, cells: list[Cell], runtime: str, quiet: dict[Cell, int],
                     reps: dict[Cell, int]) -> Reference | NoReference:
    """The reference of `cell` among the run's `cells` (in run order), in order of preference: the same backend
    with GC off; the cell itself when its runtime has no GC; a GC-quiet cell of the same backend (`quiet`, from
    gc_quiet_cells), but only when some other cell of that backend did collect. `reps`: repetitions per cell."""
    backend, mode = cell
    present = set(cells)
    ref = reference_cell(backend, mode, present, runtime)
    if ref is not None:
        kind = RefKind.GC_OFF if ref[1] in (OFF_MODE, *OFF_MODES.values()) else RefKind.NO_GC
        return Reference(cell, ref, kind)
    mine = [k for k in cells if k[0] == backend]
    own_quiet = [k for k in mine if k in quiet]
    if own_quiet and len(own_quiet) < len(mine):  # a quiet cell that a GC'd one is set against
        ref = cell if cell in own_quiet else own_quiet[0]
        return Reference(cell, ref, RefKind.GC_QUIET, reps.get(ref, 0), quiet[ref])
    reason = NoReferenceReason.NO_OFF_SWITCH if runtime in NO_OFF_SWITCH_RUNTIMES else NoReferenceReason.NO_OFF_CELL
    return NoReference(reason, backend, runtime, runtime_reference(backend, runtime, present), cell in quiet)


def backend_runtimes(events: pd.DataFrame | None, cells: list[dict] | None = None) -> dict[str, str]:
    """backend -> runtime: from run.json's cells when given, else from the runtime its server events name."""
    out: dict[str, str] = {}
    for c in cells or []:
        if c.get("backend") and c.get("runtime"):
            out.setdefault(str(c["backend"]), str(c["runtime"]))
    if events is not None and len(events) and {"source", "runtime", "backend"} <= set(events.columns):
        ev = events[(events["source"] == "server") & (events["runtime"].astype(str) != "")]
        for b, g in ev.groupby("backend", sort=False, observed=True):
            out.setdefault(str(b), str(g["runtime"].mode().iloc[0]))
    return out


def gc_quiet_cells(events: pd.DataFrame | None, keys: list[Cell]) -> dict[Cell, int]:
    """The cells (backend, gc mode) whose measured windows saw zero server GC events, verified from gc_events:
    only for a backend whose probe did report GC events somewhere in the run (warm-up included), so that a
    backend without a probe never looks quiet. Maps each quiet cell to the GC events of its backend's other
    cells (the evidence that the probe reports)."""
    if events is None or len(events) == 0 or "source" not in events.columns:
        return {}
    gc_ev = events[(events["source"] == "server") & (events["type"] == "gc")]
    reported = gc_ev.groupby("backend", observed=True).size().to_dict()
    measured = measured_server_events(gc_ev)
    in_window = measured.groupby(GROUP_KEYS, observed=True).size().to_dict() if len(measured) else {}
    return {k: int(reported[k[0]]) for k in keys if reported.get(k[0], 0) > 0 and in_window.get(k, 0) == 0}
