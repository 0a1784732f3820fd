"""Calibration backend: the Rust server (no GC) stalling for known times inside chosen calls.

Each stall is written to the side channel like a GC event (``type`` ``stall``), so the harness's
attribution can be checked against ground truth: every recovered pause should match a planned one.
"""

from __future__ import annotations

from collections.abc import Mapping

from gcbench.backends.rust import RustBackend
from gcbench.errors import GcbenchError

STALL_MODES = ("busy", "sleep")


class StallBackend(RustBackend):
    name = "stall"
    runtime = "rust"
    description = "calibration: the Rust server with injected stalls of known length (busy-wait or sleep)"
    in_default_run = False

    def __init__(self, stalls: Mapping[int, int] | None = None, mode: str = "busy") -> None:
        """``stalls``: {tools/call index counted from gcbench/measure (0-based): stall microseconds}."""
        super().__init__()
        if mode not in STALL_MODES:
            raise GcbenchError(f"stall mode {mode!r}: expected one of {', '.join(STALL_MODES)}")
        plan = dict(stalls or {})
        for index, us in plan.items():
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise GcbenchError(f"stall call index {index!r}: expected an integer >= 0")
            if isinstance(us, bool) or not isinstance(us, int) or us < 0:
                raise GcbenchError(f"stall at call {index}: {us!r} microseconds, expected an integer >= 0")
        self.stalls = plan
        self.mode = mode

    def server_env(self) -> dict[str, str]:
        return {
            "GCBENCH_STALLS": ",".join(f"{i}:{us}" for i, us in sorted(self.stalls.items())),
            "GCBENCH_STALL_MODE": self.mode,
        }
