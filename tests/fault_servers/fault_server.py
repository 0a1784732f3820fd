"""A small MCP stdio server that misbehaves on purpose, for the fault tests (standard library only).

    python fault_server.py MODE [K]

It answers initialize, tools/list (one tool, `work`) and tools/call like a well-behaved server, except in
the way MODE says, at the K-th tools/call (0-based, warm-up calls included):

    ok              behave
    crash           exit with code 3 instead of answering call K
    hang            stop answering at call K (blocked, stdin no longer read)
    hang-stubborn   as hang, and ignore SIGTERM too (only SIGKILL ends it)
    garbage         answer call K with a line that is not JSON
    rpc-error       answer call K (and every call K + 5n) with a JSON-RPC error; the others normally
    wrong-id        answer call K with an id that was never sent
    no-handshake    read everything, answer nothing (never finishes the handshake)
    huge            at call K write FAULT_HUGE_BYTES (default 300 MiB) without a newline
    balloon         at call K allocate FAULT_BALLOON_MB (default 400) MiB, touched, and keep it
    fork            at start, fork a child that sleeps (it stays in the process group)
    setsid-child    at start, fork a child that leaves the process group (setsid) and sleeps
    daemon          at start, double-fork a detached grandchild (setsid, its parent exits) that sleeps
    slow-start      sleep FAULT_SLOW_START_S (default 30) before reading anything
    http-port       GCBENCH_TRANSPORT=http: bind 127.0.0.1:FAULT_PORT (a port the test holds) and serve

FAULT_ONCE_FILE (optional): misbehave only if this file does not exist yet (it is created), so the next
cell of the same run gets a healthy server. FAULT_STARTED_FILE (optional): touched once the server runs.
"""

import json
import os
import signal
import socket
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
K = int(sys.argv[2]) if len(sys.argv) > 2 else 0
out = sys.stdout.buffer


def send(msg: dict) -> None:
    out.write(json.dumps(msg).encode() + b"\n")
    out.flush()


def sleep_forever() -> None:
    while True:
        time.sleep(3600)


def child_that_sleeps(detach: bool) -> None:
    if os.fork() == 0:
        if detach:
            os.setsid()
        os.closerange(0, 3)
        sleep_forever()


def daemonize_grandchild() -> None:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.closerange(0, 3)
            sleep_forever()
        os._exit(0)
    os.wait()


def main() -> None:
    mode = MODE
    once = os.environ.get("FAULT_ONCE_FILE")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            mode = "ok"
    started = os.environ.get("FAULT_STARTED_FILE")
    if started:
        open(started, "a").close()
    if mode == "fork":
        child_that_sleeps(detach=False)
    elif mode == "setsid-child":
        child_that_sleeps(detach=True)
    elif mode == "daemon":
        daemonize_grandchild()
    elif mode == "slow-start":
        time.sleep(float(os.environ.get("FAULT_SLOW_START_S", "30")))
    elif mode == "http-port":
        sock = socket.socket()
        sock.bind(("127.0.0.1", int(os.environ["FAULT_PORT"])))  # fails: the port is in use
        sock.listen()
        print(f"GCBENCH_LISTENING {sock.getsockname()[1]}", flush=True)
        sleep_forever()

    call = 0
    hoard = []
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
        except ValueError:
            send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
            continue
        if "id" not in req or mode == "no-handshake":
            continue
        rid, method = req["id"], req.get("method")
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": req["params"]["protocolVersion"], "capabilities": {"tools": {}},
                "serverInfo": {"name": f"fault-{mode}", "version": "0"}}})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [
                {"name": "work", "inputSchema": {"type": "object"}}]}})
        elif method == "tools/call":
            k, call = call, call + 1
            if k == K and mode == "crash":
                os._exit(3)
            if k == K and mode in ("hang", "hang-stubborn"):
                if mode == "hang-stubborn":
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                sleep_forever()
            if k == K and mode == "garbage":
                out.write(b"this is not JSON\n")
                out.flush()
                continue
            if k == K and mode == "wrong-id":
                send({"jsonrpc": "2.0", "id": 987654321, "result": {"content": []}})
                continue
            if k == K and mode == "huge":
                chunk = b"x" * (1 << 20)
                for _ in range(int(os.environ.get("FAULT_HUGE_BYTES", str(300 << 20))) >> 20):
                    out.write(chunk)
                out.flush()
                continue
            if k == K and mode == "balloon":
                for _ in range(int(os.environ.get("FAULT_BALLOON_MB", "400"))):
                    hoard.append(bytearray(b"y" * (1 << 20)))  # touched: resident
            if mode == "rpc-error" and k >= K and (k - K) % 5 == 0:
                send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": f"simulated failure {k}"}})
                continue
            send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "ok"}],
                                                          "isError": False}})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": rid, "result": {}})
        else:
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}})


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        os._exit(1)
