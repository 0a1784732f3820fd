"""`gcbench tools`: a server's tools with their input schemas, and a trace line to start each from.

The first step of writing a trace by hand (gcbench/trace.py): start the server, initialize, tools/list
(every page), stop it. A user's command is run as it is (no shell, no GC probe: nothing is measured).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import tempfile
from pathlib import Path

from gcbench.errors import CellError, GcbenchError
from gcbench.mcp import Session, StdioTransport

EXAMPLE_BY_TYPE = {"string": "{word}", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}


def _example(schema: object) -> object:
    if not isinstance(schema, dict):
        return None
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    for key in ("enum", "examples"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    t = schema.get("type")
    t = t[0] if isinstance(t, list) and t else t
    return EXAMPLE_BY_TYPE.get(t) if isinstance(t, str) else None


def example_arguments(input_schema: object) -> dict:
    """Arguments to edit: every property of the schema, with its default, first enum value or a typed
    placeholder value (strings get {word})."""
    props = input_schema.get("properties") if isinstance(input_schema, dict) else None
    return {k: _example(v) for k, v in props.items()} if isinstance(props, dict) else {}


def trace_line(tool: dict) -> str:
    return json.dumps({"tool": tool.get("name"), "arguments": example_arguments(tool.get("inputSchema"))})


def _tail(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_bytes()[-limit:].decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-3:])


def list_command_tools(command: str | list[str], timeout_s: float = 30.0) -> tuple[dict, list[dict]]:
    """(the server's initialize result, its tools) for a stdio server command."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise GcbenchError("tools: give the server command (after -- or with --server-cmd)")
    with tempfile.TemporaryDirectory(prefix="gcbench-tools-") as tmp:
        err_path = Path(tmp) / "stderr.log"
        with open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                        start_new_session=True)
            except OSError as e:
                raise GcbenchError(f"tools: cannot start {argv[0]!r}: {e.strerror or e}") from None
            transport = StdioTransport(proc.stdin.fileno(), proc.stdout.fileno())
            try:
                session = Session(transport, timeout_s)
                init = session.handshake([])
                return init, session.list_tools()
            except CellError as e:
                tail = _tail(err_path)
                raise GcbenchError(f"tools: server {argv[0]!r}: {e}" + (f"; its stderr ends: {tail}" if tail else "")) from None
            finally:
                transport.close()
                _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(2.0)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the server and whatever it started
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    proc.stdout.close()


def list_backend_tools(name: str, timeout_s: float = 60.0) -> tuple[dict, list[dict]]:
    """The same for a built-in backend's server (started as a run would, GC mode default)."""
    from gcbench.backends import get_backend
    from gcbench.backends.base import CellContext
    from gcbench.gcmode import GcMode
    from gcbench.scenario import Scenario

    backend = get_backend(name)
    backend.prepare(lambda m: None)
    with tempfile.TemporaryDirectory(prefix="gcbench-tools-") as tmp:
        ctx = CellContext(Path(tmp) / "events.jsonl", Path(tmp) / "stderr.log", timeout_s=timeout_s)
        try:
            handle = backend.start(GcMode("default"), Scenario(name="tools"), ctx)
        except CellError as e:
            raise GcbenchError(f"tools: backend {name}: {e}") from None
        try:
            init = handle.session.handshake([])
            return init, handle.session.list_tools()
        except CellError as e:
            raise GcbenchError(f"tools: backend {name}: {e}") from None
        finally:
            handle.stop()


def render(init: dict, tools: list[dict]) -> str:
    info = init.get("serverInfo") if isinstance(init.get("serverInfo"), dict) else {}
    lines = [f"server: {info.get('name', '?')} {info.get('version', '')}".rstrip()
             + f" (protocol {init.get('protocolVersion', '?')}), {len(tools)} tool(s)"]
    for t in tools:
        lines += ["", str(t.get("name"))]
        desc = str(t.get("description") or "").strip()
        if desc:
            lines.append(f"  description:  {desc.splitlines()[0][:200]}")
        lines.append(f"  input schema: {json.dumps(t.get('inputSchema', {}), separators=(',', ':'))}")
        lines.append(f"  trace line:   {trace_line(t)}")
    lines += ["", "A trace is one such line per call (edit the arguments; placeholders: {chain} {call} {index} "
                  "{rep} {word}); run it with `gcbench run --server-cmd ... --trace FILE`."]
    return "\n".join(lines) + "\n"
