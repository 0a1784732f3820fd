"""An MCP stdio server that answers every call and floods or damages what it writes beside MCP (standard
library only), for tests/test_faults_store.py.

    python output_fault_server.py MODE [K]

From the K-th tools/call on (0-based):

    stderr-flood    write FLOOD_BYTES (default 1 MiB) to stderr per call
    side-flood      append FLOOD_BYTES (default 1 MiB) of well-formed GC event lines to $GCBENCH_EVENTS per call
    side-garbage    at call K, append malformed lines (deep nesting, 2**70, not an object, not UTF-8, a 1 MiB
                    line, an event without end_ns) and two well-formed GC events to $GCBENCH_EVENTS
"""

import json
import os
import sys
import time

MODE = sys.argv[1]
K = int(sys.argv[2]) if len(sys.argv) > 2 else 0
FLOOD = int(os.environ.get("FLOOD_BYTES", str(1 << 20)))
out = sys.stdout.buffer


def send(msg: dict) -> None:
    out.write(json.dumps(msg).encode() + b"\n")
    out.flush()


def event(start_ns: int) -> bytes:
    return json.dumps({"type": "gc", "runtime": "python", "kind": "gen0", "generation": 0, "start_ns": start_ns,
                       "end_ns": start_ns + 1000, "collected": 1}).encode() + b"\n"


def append_events(data: bytes) -> None:
    with open(os.environ["GCBENCH_EVENTS"], "ab") as f:
        f.write(data)


def misbehave(k: int) -> None:
    if MODE == "stderr-flood":
        block = (b"E" * 1023 + b"\n") * (FLOOD // 1024)
        sys.stderr.buffer.write(block)
        sys.stderr.buffer.flush()
    elif MODE == "side-flood":
        line = event(time.monotonic_ns())
        append_events(line * (FLOOD // len(line)))
    elif MODE == "side-garbage" and k == K:
        now = time.monotonic_ns()
        append_events(b"".join([
            b"[" * 100_000 + b"\n",
            json.dumps({"type": "gc", "start_ns": 2**70, "end_ns": 2**70 + 1}).encode() + b"\n",
            b"[1, 2]\n",
            b'{"type": "gc", "start_ns": 1, "end_ns": 2, "kind": "\xff\xfe"}\n',
            b'{"type": "gc", "note": "' + b"x" * (1 << 20) + b'"}\n',
            json.dumps({"type": "gc", "start_ns": now}).encode() + b"\n",
            event(now), event(now + 5000),
        ]))


def main() -> None:
    call = 0
    for line in sys.stdin.buffer:
        req = json.loads(line)
        if "id" not in req:
            continue
        rid, method = req["id"], req.get("method")
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": req["params"]["protocolVersion"], "capabilities": {"tools": {}},
                "serverInfo": {"name": f"output-{MODE}", "version": "0"}}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [{"name": "work", "inputSchema": {"type": "object"}}]}})
        elif method == "tools/call":
            k, call = call, call + 1
            if k >= K:
                misbehave(k)
            send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "ok"}], "isError": False}})
        else:
            send({"jsonrpc": "2.0", "id": rid, "result": {}})


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        os._exit(1)
