"""The `work` tool on the official MCP Python SDK (PyPI `mcp`), to show what a real SDK server costs.

`python-sdk` runs in gcbench's own environment; `python-sdk@3.12` runs under another CPython, in a venv
built once into the cache with the same SDK version (sdk_env.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gcbench.backends.base import Availability, CellContext, LaunchSpec, SubprocessBackend
from gcbench.backends.interpreters import Interpreter
from gcbench.backends.python import harness_label, interpreter_metadata
from gcbench.backends.python_sdk import sdk_env
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

SERVER = Path(__file__).with_name("server.py")
SDK_MODES = ("default", "disabled", "freeze", "thresholds")  # freeze: at start-up, before the first request
INSTALL_HINT = "pip install 'gcbench[sdk]'"


def _stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class PythonSdkBackend(SubprocessBackend):
    name = "python-sdk"
    runtime = "python"
    description = "the official MCP Python SDK (MCPServer, async tool), CPython"
    takes_interpreter = True  # python-sdk@3.12: the same SDK version in a venv of another CPython
    gc_modes = SDK_MODES
    gc_mode_reasons = {"*": "{mode} needs a hook between warm-up and measurement or between calls, which the SDK "
                            "server does not offer (python-sdk takes: {takes})"}

    def __init__(self, interpreter: Interpreter | None = None, version: str = "") -> None:
        self.interpreter = interpreter  # None: the harness's own interpreter and environment
        if version:
            self.name = f"{type(self).name}@{version}"

    def _own_env(self) -> bool:
        """True when the server runs in gcbench's own environment (no venv to build)."""
        it = self.interpreter
        return it is None or (os.path.realpath(it.executable) == os.path.realpath(sys.executable)
                              and os.path.realpath(it.prefix) == os.path.realpath(sys.prefix))

    def availability(self) -> Availability:
        version = sdk_env.sdk_pin()
        if version is None:
            return Availability(False, reason=f"the MCP Python SDK is not installed; {INSTALL_HINT}")
        if int(version.split(".")[0]) < 2:
            return Availability(False, reason=f"mcp {version} is too old (needs 2.x); {INSTALL_HINT}")
        it = self.interpreter
        label = f"{harness_label() if it is None else it.label}, mcp {version}"
        if self._own_env():
            return Availability(True, version=label)
        reason = it.too_old_reason()
        if reason:
            return Availability(False, version=label, reason=reason)
        needs = sdk_env.sdk_requires_python()
        if sdk_env.version_satisfies(tuple(it.version_info[:3]), needs) is False:
            return Availability(False, version=label, reason=f"mcp {version} requires Python {needs}; CPython "
                                                             f"{it.version} ({it.executable}) is too old for it")
        if sdk_env.read_marker(sdk_env.env_dir(it)) is None:
            return Availability(True, version=label, reason="venv not built yet; pip builds it on first use")
        return Availability(True, version=label)

    def _env(self, log) -> Path | None:
        return None if self._own_env() else sdk_env.ensure_env(self.interpreter, log)

    def prepare(self, log) -> None:
        self._env(log)

    def runtime_metadata(self) -> dict:
        meta = {"interpreter": interpreter_metadata(self.interpreter), "sdk_version": sdk_env.sdk_pin()}
        folder = None if self._own_env() else sdk_env.env_dir(self.interpreter)
        marker = sdk_env.read_marker(folder) if folder else None
        if folder is None:
            meta.update(environment="gcbench's own", packages=sdk_env.pinned_closure())
        else:
            marker = marker or {}
            meta.update(environment=str(folder), packages=marker.get("packages"),
                        not_pinned_to_harness=marker.get("not_pinned", {}))
        return meta

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        folder = self._env(_stderr_log)  # prepare() has normally built it already
        python = sys.executable if folder is None else str(sdk_env.venv_python(folder))
        return LaunchSpec([python, str(SERVER)])
