"""The `work` tool on the official MCP Python SDK (PyPI `mcp`), to show what a real SDK server costs."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from gcbench.backends.base import Availability, CellContext, LaunchSpec, SubprocessBackend
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

SERVER = Path(__file__).with_name("server.py")
SDK_MODES = {"default", "disabled", "thresholds", "freeze"}  # freeze: at start-up, before the first request


class PythonSdkBackend(SubprocessBackend):
    name = "python-sdk"
    runtime = "python"
    description = "the official MCP Python SDK (MCPServer, async tool), CPython"

    def availability(self) -> Availability:
        try:
            version = importlib.metadata.version("mcp")
        except importlib.metadata.PackageNotFoundError:
            return Availability(False, reason="the MCP Python SDK is not installed; pip install 'gcbench[sdk]'")
        if int(version.split(".")[0]) < 2:
            return Availability(False, reason=f"mcp {version} is too old (needs 2.x); pip install 'gcbench[sdk]'")
        return Availability(True, version=f"cpython {sys.version.split()[0]}, mcp {version}")

    def unsupported_reason(self, mode: GcMode) -> str | None:
        if mode.name not in SDK_MODES:
            return (f"{mode} needs a hook between warm-up and measurement or between calls, which the SDK server "
                    f"does not offer (python-sdk takes: {', '.join(sorted(SDK_MODES))})")
        return None

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        return LaunchSpec([sys.executable, str(SERVER)])
