"""`gcbench env`: the environment to start your own server with, so that `gcbench run --server-url` sees its GC.

The same settings --server-cmd applies when it starts a server, for a server you start yourself (under a process
manager, in a container's entrypoint, ...): the Python probe (plus SIGUSR1 to flush it, since the server does not
exit during the run), Go's GOGC / GOMEMLIMIT / GODEBUG=gctrace=1, or the JVM's collector and unified log in
JAVA_TOOL_OPTIONS. Node is not offered: its probe writes only when the process exits.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode

ENV_RUNTIMES = ("python", "go", "java")
PYTHON_ENV_MODES = ("default", "disabled", "thresholds")


def server_environment(runtime: str, events: Path, mode: GcMode) -> tuple[dict[str, str], list[str]]:
    """(variables to set, instructions) for a server started by hand; a GcbenchError for a mode it cannot take."""
    from gcbench.backends.custom import GO_USER_MODES, PYTHON_AUTOLOAD

    events = events.resolve()
    if runtime == "python":
        if mode.name not in PYTHON_ENV_MODES:
            raise GcbenchError(f"gcbench env --gc-mode {mode}: a Python server started by hand takes "
                               f"{', '.join(PYTHON_ENV_MODES)} (freeze and oob need gcbench to start it)")
        env = {"PYTHONPATH": str(PYTHON_AUTOLOAD), "GCBENCH_EVENTS": str(events), "GCBENCH_GC_MODE": str(mode),
               "GCBENCH_FLUSH_SIGNAL": "USR1"}
        notes = ["# start the server in this environment (any process of it that runs CPython loads the probe), then:",
                 f"#   gcbench run --server-url URL --runtime python --server-events {shlex.quote(str(events))}"]
        return env, notes
    if runtime == "go":
        from gcbench.backends.go import go_mode_env

        if mode.name not in GO_USER_MODES:
            raise GcbenchError(f"gcbench env --gc-mode {mode}: a Go server takes {', '.join(sorted(GO_USER_MODES))}")
        env = {**go_mode_env(mode), "GODEBUG": "gctrace=1"}
        notes = [f"# start the server with its stderr appended to the file: ... 2>>{shlex.quote(str(events))}",
                 f"#   gcbench run --server-url URL --runtime go --server-events {shlex.quote(str(events))}",
                 "# (gcbench also reads the runtime's pause buffer of the process listening on the URL's port)"]
        return env, notes
    if runtime == "java":
        from gcbench.backends.custom import java as java_outside

        reason = java_outside.mode_reason(None, mode)
        if reason:
            raise GcbenchError(f"gcbench env --gc-mode {mode}: {reason}")
        options = java_outside.tool_options(mode, None, events, os.environ.get("JAVA_TOOL_OPTIONS", ""))
        notes = ["# start the server's JVM in this environment, then:",
                 f"#   gcbench run --server-url URL --runtime java --server-events {shlex.quote(str(events))}"]
        return {"JAVA_TOOL_OPTIONS": options}, notes
    if runtime == "node":
        raise GcbenchError("gcbench env --runtime node: the Node probe writes its events only when the process "
                           "exits; let gcbench start the server (--server-cmd) to see its GC")
    raise GcbenchError(f"gcbench env --runtime {runtime}: choose one of {', '.join(ENV_RUNTIMES)}")


def render_shell(env: dict[str, str], notes: list[str]) -> str:
    lines = []
    for k, v in env.items():
        if k == "PYTHONPATH":
            lines.append(f'export PYTHONPATH={shlex.quote(v)}"${{PYTHONPATH:+:$PYTHONPATH}}"')
        else:
            lines.append(f"export {k}={shlex.quote(v)}")
    return "\n".join([*lines, *notes]) + "\n"
