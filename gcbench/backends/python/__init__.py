"""The built-in Python server (server.py, standard library only), under the harness's interpreter (`python`)
or another CPython found on this machine (`python@3.12`, see ../interpreters.py)."""

from __future__ import annotations

import platform
import sys
import sysconfig
from pathlib import Path

from gcbench.backends import interpreters
from gcbench.backends.base import (
    Availability,
    CellContext,
    LaunchSpec,
    SubprocessBackend,
    declared_mode_reason,
)
from gcbench.backends.interpreters import Interpreter
from gcbench.gcmode import GcMode
from gcbench.scenario import Scenario

SERVER = Path(__file__).with_name("server.py")
PYTHON_MODES = ("default", "disabled", "freeze", "oob", "thresholds")


def python_mode_reason(mode: GcMode) -> str | None:
    return declared_mode_reason(mode, PYTHON_MODES, "CPython", "Python", {})


def harness_label() -> str:
    """The harness's runtime version string, without starting a process: `cpython 3.11.7`."""
    free = " free-threaded" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
    return f"{sys.implementation.name} {platform.python_version()}{free}"


def interpreter_metadata(interpreter: Interpreter | None) -> dict:
    """run.json's record of the interpreter a server runs under (exact version, build, GC thresholds)."""
    it = interpreter or interpreters.harness()
    if isinstance(it, Exception):
        return {"executable": sys.executable, "error": str(it)}
    return it.to_dict()


class PythonBackend(SubprocessBackend):
    name = "python"
    runtime = "python"
    description = "CPython MCP server, standard library only, over stdio or HTTP"
    takes_interpreter = True  # python@3.12: the same server under another CPython
    gc_modes = PYTHON_MODES
    gc_setting = "CPython"
    gc_takes = "Python"

    def __init__(self, interpreter: Interpreter | None = None, version: str = "") -> None:
        self.interpreter = interpreter  # None: the harness's own interpreter
        if version:
            self.name = f"{type(self).name}@{version}"

    @property
    def executable(self) -> str:
        return self.interpreter.executable if self.interpreter else sys.executable

    def availability(self) -> Availability:
        if self.interpreter is None:
            return Availability(True, version=harness_label())
        reason = self.interpreter.too_old_reason()
        return Availability(reason is None, version=self.interpreter.label, reason=reason or "")

    def runtime_metadata(self) -> dict:
        return {"interpreter": interpreter_metadata(self.interpreter)}

    def launch_spec(self, mode: GcMode, scenario: Scenario, ctx: CellContext) -> LaunchSpec:
        return LaunchSpec([self.executable, str(SERVER)])
