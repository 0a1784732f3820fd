#!/usr/bin/env python3
"""The `work` tool served by the official MCP Python SDK (PyPI `mcp`, MCPServer, async tool).

Same tool semantics as the built-in Python server (its `work_before_sleep` is reused; the sleep is
`asyncio.sleep`, so concurrent calls overlap on the SDK's event loop). The SDK does not
route custom methods, so `gcbench/measure` and `gcbench/flush` are unknown here: the GC probe writes its
events when the server exits, and only the GC modes that need no measurement-phase hook apply.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import socket
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "probes"))
from python_gc import GcProbe  # noqa: E402

_spec = importlib.util.spec_from_file_location("gcbench_builtin_python_server", HERE.parent / "python" / "server.py")
builtin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(builtin)

from mcp.server.mcpserver import MCPServer  # noqa: E402
from mcp.server.mcpserver.exceptions import ToolError  # noqa: E402


def main() -> None:
    probe = GcProbe(os.environ.get("GCBENCH_EVENTS") or None, runtime="python").install()
    mode = os.environ.get("GCBENCH_GC_MODE", "default")
    if mode == "disabled":
        gc.disable()
    elif mode.startswith("thresholds:"):
        gc.set_threshold(*(int(p) for p in mode.split(":", 1)[1].split(",")))
    shape = os.environ.get("GCBENCH_HEAP_SHAPE") or builtin.HEAP_SHAPES[0]
    if shape not in builtin.HEAP_SHAPES:
        sys.stderr.write(f"gcbench python-sdk server: unknown GCBENCH_HEAP_SHAPE {shape!r} "
                         f"(one of {', '.join(builtin.HEAP_SHAPES)})\n")
        raise SystemExit(2)
    state = builtin.WorkState(int(os.environ.get("GCBENCH_HEAP_OBJECTS", "0") or 0), shape)
    probe.start_meter_from_env()  # the hiccup meter (PROTOCOL.md), when GCBENCH_HICCUP_US asks for it
    server = MCPServer("gcbench-python-sdk", version=sys.version.split()[0], log_level="WARNING")

    @server.tool(name="work", description="Simulated tool: allocates, retains, computes, sleeps and answers.")
    async def work(alloc_objects: int = 0, cyclic_fraction: float = 0.0, retain_objects: int = 0,
                   retain_cap: int = 0, payload_bytes: int = 0, cpu_iters: int = 0, sleep_us: int = 0,
                   retain_shape: str = builtin.HEAP_SHAPES[0]) -> str:
        try:
            garbage, sleep_us, payload = builtin.work_before_sleep(state, {
                "alloc_objects": alloc_objects, "cyclic_fraction": cyclic_fraction, "retain_objects": retain_objects,
                "retain_cap": retain_cap, "payload_bytes": payload_bytes, "cpu_iters": cpu_iters, "sleep_us": sleep_us,
                "retain_shape": retain_shape,
            })
        except builtin.ToolArgumentError as e:
            raise ToolError(str(e)) from None  # the SDK passes a ToolError's text to the client
        if sleep_us:
            # the SDK runs an async tool on its event loop: a blocking sleep would stop every other request
            await asyncio.sleep(sleep_us / 1e6)
        text = "x" * payload
        del garbage  # held across the sleep, as in the built-in server
        return text

    if mode == "freeze":
        # No measurement-phase hook here: freeze once the SDK, the tool and the start-up heap are built, before
        # the first request. Moves everything imported so far out of every later collection.
        gc.collect()
        gc.freeze()
    try:
        if os.environ.get("GCBENCH_TRANSPORT", "stdio") == "http":
            asyncio.run(serve_http(server))
        else:
            asyncio.run(server.run_stdio_async())
    finally:
        probe.flush()


async def serve_http(server: MCPServer) -> None:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted sockets inherit it: without it a response split in two writes waits for a delayed ACK (~40 ms)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections queue from now on, before uvicorn starts accepting
    port = sock.getsockname()[1]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
    )
    app = server.streamable_http_app(json_response=True, stateless_http=True, transport_security=security)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    userver = uvicorn.Server(config)
    print(f"GCBENCH_LISTENING {port}", flush=True)
    loop = asyncio.get_running_loop()
    loop.add_reader(sys.stdin.fileno(), lambda: _stop_on_eof(userver, loop))
    await userver.serve(sockets=[sock])


def _stop_on_eof(userver, loop) -> None:
    if not os.read(sys.stdin.fileno(), 65536):
        loop.remove_reader(sys.stdin.fileno())
        userver.should_exit = True


if __name__ == "__main__":
    main()
