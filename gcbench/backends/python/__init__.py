"""The built-in Python server (server.py, standard library only) run by the harness's own interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

from gcbench.backends.base import Availability, CellContext, LaunchSpec, SubprocessBackend
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

SERVER = Path(__file__).with_name("server.py")
PYTHON_MODES = {"default", "disabled", "freeze", "oob", "thresholds"}


def python_mode_reason(mode: GcMode) -> str | None:
    if mode.name not in PYTHON_MODES:
        return f"{mode} is not a CPython GC setting (Python takes: {', '.join(sorted(PYTHON_MODES))})"
    return None


class PythonBackend(SubprocessBackend):
    name = "python"
    runtime = "python"
    description = "CPython MCP server, standard library only, over stdio or HTTP"

    def availability(self) -> Availability:
        return Availability(True, version=f"{sys.implementation.name} {sys.version.split()[0]}")

    def unsupported_reason(self, mode: GcMode) -> str | None:
        return python_mode_reason(mode)

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        return LaunchSpec([sys.executable, str(SERVER)])
