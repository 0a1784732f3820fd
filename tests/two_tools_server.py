"""A user's MCP stdio server with two tools (standard library only), for the trace and record tests.

alloc: builds `n` reference cycles (work for CPython's cycle collector); echo: answers `text`.
With TWO_TOOLS_LOG set, every tools/call's params are appended to that file, one JSON line each.
"""

import json
import os
import sys

TOOLS = [
    {"name": "alloc", "description": "Builds n reference cycles.",
     "inputSchema": {"type": "object", "properties": {"n": {"type": "integer", "default": 1000}}, "required": ["n"]}},
    {"name": "echo", "description": "Answers its text.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
]
LOG = os.environ.get("TWO_TOOLS_LOG")


def answer(msg_id, result=None, error=None):
    out = {"jsonrpc": "2.0", "id": msg_id}
    out.update({"error": error} if error else {"result": result})
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    method = msg.get("method")
    if method == "initialize":
        answer(msg["id"], {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                           "serverInfo": {"name": "two-tools", "version": "1"}})
    elif method == "tools/list":
        answer(msg["id"], {"tools": TOOLS})
    elif method == "tools/call":
        params = msg["params"]
        if LOG:
            with open(LOG, "a") as f:
                f.write(json.dumps(params) + "\n")
        if params["name"] == "alloc":
            for _ in range(params["arguments"]["n"]):
                a = []
                a.append(a)
            text = "done"
        else:
            text = params["arguments"].get("text", "")
        answer(msg["id"], {"content": [{"type": "text", "text": text}]})
    else:
        answer(msg["id"], error={"code": -32601, "message": f"Method not found: {method}"})
