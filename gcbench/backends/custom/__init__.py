"""A user's own MCP stdio server, started from a command line, with the GC probe attached when it can be.

The command is split like a shell would (shlex) and run without a shell. Python servers get the probe
through a sitecustomize on PYTHONPATH, Node servers through NODE_OPTIONS=--require; neither changes the
user's code. Other runtimes are measured without GC events (latency only).
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from gcbench.backends.base import Availability, CellContext, LaunchSpec, SubprocessBackend
from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

PROBES = Path(__file__).resolve().parents[2] / "probes"
PYTHON_AUTOLOAD = PROBES / "autoload"
NODE_PROBE = PROBES / "node_gc.js"


def detect_runtime(argv: list[str]) -> str:
    exe = os.path.basename(argv[0]).lower()
    if exe.startswith(("python", "pypy")) or exe in ("uv", "uvx", "pipx") or exe.endswith(".py"):
        return "python"
    if exe in ("node", "nodejs", "npx", "tsx", "ts-node") or exe.endswith((".js", ".mjs", ".cjs")):
        return "node"
    return "unknown"


class CustomBackend(SubprocessBackend):
    name = "custom"
    runtime = "unknown"
    description = "your own MCP stdio server (--server-cmd), GC probe auto-attached for Python and Node"

    def __init__(self, command: str | None = None, tool: str = "work", tool_args: dict | None = None,
                 name: str = "custom") -> None:
        self.command = command
        self.name = name
        self.tool = tool
        self._tool_args = tool_args
        self.argv: list[str] = []
        if command is not None:
            try:
                self.argv = shlex.split(command)
            except ValueError as e:
                raise GcbenchError(f"--server-cmd: cannot split {command!r}: {e}") from None
            if not self.argv:
                raise GcbenchError("--server-cmd is empty")
            self.runtime = detect_runtime(self.argv)

    def availability(self) -> Availability:
        if not self.argv:
            return Availability(False, reason="needs --server-cmd 'COMMAND ARGS' (or [server] command in the scenario)")
        exe = self.argv[0]
        found = shutil.which(exe) if os.sep not in exe else (exe if os.access(exe, os.X_OK) else None)
        if not found:
            return Availability(False, reason=f"server command not found: {exe!r}")
        return Availability(True, version=f"{self.runtime} server: {self.command}")

    def unsupported_reason(self, mode: GcMode) -> str | None:
        allowed = {"python": {"default", "disabled", "thresholds"}, "node": {"default", "semi", "old"}}.get(
            self.runtime, {"default"}
        )
        if mode.name not in allowed:
            return (f"a {self.runtime} server started with --server-cmd can only be run with: "
                    f"{', '.join(sorted(allowed))} (other modes need the server's cooperation)")
        return None

    def prepare(self, log) -> None:
        log(f"gcbench: will run your server command (no shell): {self.argv}")

    def tool_arguments(self, scenario: Scenario) -> dict:
        return scenario.work.as_arguments() if self._tool_args is None else self._tool_args

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        env: dict[str, str] = {}
        if self.runtime == "python":
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PYTHON_AUTOLOAD), os.environ.get("PYTHONPATH")) if p)
        elif self.runtime == "node":
            opts = [os.environ.get("NODE_OPTIONS", ""), f"--require={NODE_PROBE}"]
            if mode.name == "semi":
                opts.append(f"--max-semi-space-size={mode.arg}")
            elif mode.name == "old":
                opts.append(f"--max-old-space-size={mode.arg}")
            env["NODE_OPTIONS"] = " ".join(o for o in opts if o)
        return LaunchSpec(list(self.argv), env)
