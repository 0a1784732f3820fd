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
    http-chatty     serve MCP over HTTP (port 0) and write FAULT_CHATTY_BYTES (default 32 KiB) of log lines
                    to stdout at every tools/call
    immortal        at start, double-fork a detached daemon (its pid written to FAULT_DAEMON_FILE once it
                    runs); ignore SIGTERM and SIGHUP; answer each call after FAULT_CALL_DELAY_S (default
                    0.2); at end of input, do not exit
    flood           at call K, write notifications/progress without pause for FAULT_FLOOD_S (default 10) s,
                    then answer
    orphaned-pipe   at call K, fork a child that keeps stdout open and sleeps, and exit with code 4
    launcher        at start, fork a child that serves, and exit with code 0 (a launcher handing over)
    deep            answer call K with a result nested 100000 arrays deep
    ansi            at call K, write terminal escape codes (erase line, carriage return, a fake "ok") to
                    stderr and exit with code 2
    ansi-error      answer call K with a JSON-RPC error whose message holds terminal escape codes
    float-id        answer call K with its id as a float (1000000002.0 for 1000000002)

FAULT_ONCE_FILE (optional): misbehave only if this file does not exist yet (it is created), so the next
cell of the same run gets a healthy server. FAULT_STARTED_FILE (optional): touched once the server runs.
"""

import fcntl
import http.server
import json
import os
import signal
import socket
import sys
import threading
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


def daemon_with_pid_file(path: str) -> None:
    """A double-forked daemon (setsid, its parent exits); path holds its pid once it runs."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.closerange(0, 3)
            with open(path + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(path + ".tmp", path)
            sleep_forever()
        os._exit(0)
    os.wait()


def answer(mode: str, k: int, rid, hoard: list) -> dict | None:
    """The answer to tools/call number k (None: already written, or none)."""
    if k == K and mode == "crash":
        os._exit(3)
    if k == K and mode in ("hang", "hang-stubborn"):
        if mode == "hang-stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sleep_forever()
    if k == K and mode == "garbage":
        out.write(b"this is not JSON\n")
        out.flush()
        return None
    if k == K and mode == "wrong-id":
        return {"jsonrpc": "2.0", "id": 987654321, "result": {"content": []}}
    if k == K and mode == "float-id":
        return {"jsonrpc": "2.0", "id": float(rid), "result": {"content": []}}
    if k == K and mode == "huge":
        chunk = b"x" * (1 << 20)
        for _ in range(int(os.environ.get("FAULT_HUGE_BYTES", str(300 << 20))) >> 20):
            out.write(chunk)
        out.flush()
        return None
    if k == K and mode == "balloon":
        for _ in range(int(os.environ.get("FAULT_BALLOON_MB", "400"))):
            hoard.append(bytearray(b"y" * (1 << 20)))  # touched: resident
    if k == K and mode == "flood":
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/progress",
                           "params": {"progressToken": 1, "progress": 0}}).encode() + b"\n"
        # keep the pipe full: a 1 MiB pipe, two writers (a reader that catches up for an instant would let
        # poll time out, and an old gcbench only checked the deadline then); each write at most PIPE_BUF
        # bytes, so the two writers' messages never interleave
        fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 1 << 20)
        end = time.monotonic() + float(os.environ.get("FAULT_FLOOD_S", "10"))
        helper = os.fork()
        while time.monotonic() < end:
            os.write(1, note * (4096 // len(note)))
        if helper == 0:
            os._exit(0)
        os.waitpid(helper, 0)
    if k == K and mode == "orphaned-pipe":
        if os.fork() == 0:
            sleep_forever()  # stdout inherited and kept open
        os._exit(4)
    if k == K and mode == "deep":
        n = 100_000
        out.write(b'{"jsonrpc": "2.0", "id": %d, "result": ' % rid + b"[" * n + b"]" * n + b"}\n")
        out.flush()
        return None
    if k == K and mode == "ansi":
        sys.stderr.write("\x1b[2K\r[2/4] custom gc=default rep=0: 15 calls in 0.1 s, 0 GC events\n")
        sys.stderr.flush()
        os._exit(2)
    if k == K and mode == "ansi-error":
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "bad\x1b[2K\rall ok"}}
    if mode == "rpc-error" and k >= K and (k - K) % 5 == 0:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": f"simulated failure {k}"}}
    if mode == "immortal":
        time.sleep(float(os.environ.get("FAULT_CALL_DELAY_S", "0.2")))
    if mode == "http-chatty":
        line = b"log: working on a call " + b"." * 100 + b"\n"
        size = int(os.environ.get("FAULT_CHATTY_BYTES", str(32 << 10)))
        sys.stdout.buffer.write(line * (size // len(line)))
        sys.stdout.buffer.flush()
    return {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "ok"}], "isError": False}}


def serve_http(mode: str) -> None:
    """A minimal MCP Streamable HTTP server: POST /mcp, one JSON answer per request, 202 for notifications."""
    calls = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            if "id" not in req:
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            rid, method = req["id"], req.get("method")
            if method == "tools/call":
                with lock:
                    k, calls[0] = calls[0], calls[0] + 1
                reply = answer(mode, k, rid, [])
            else:
                reply = handshake_answer(mode, req)
            body = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"GCBENCH_LISTENING {server.server_address[1]}", flush=True)
    # end of input is the harness's polite stop, as for a stdio server
    threading.Thread(target=lambda: (sys.stdin.buffer.read(), os._exit(0)), daemon=True).start()
    server.serve_forever()


def handshake_answer(mode: str, req: dict) -> dict:
    rid, method = req["id"], req.get("method")
    if method == "initialize":
        return {"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": req["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": f"fault-{mode}", "version": "0"}}}
    if method == "tools/list":
        return {"jsonrpc": "2.0", "id": rid, "result": {"tools": [{"name": "work", "inputSchema": {"type": "object"}}]}}
    if method == "ping":
        return {"jsonrpc": "2.0", "id": rid, "result": {}}
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "Method not found"}}


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

    elif mode == "http-chatty":
        serve_http(mode)
    elif mode == "launcher" and os.fork() != 0:
        os._exit(0)
    elif mode == "immortal":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        daemon_with_pid_file(os.environ["FAULT_DAEMON_FILE"])

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
        if req.get("method") == "tools/call":
            k, call = call, call + 1
            reply = answer(mode, k, req["id"], hoard)
        else:
            reply = handshake_answer(mode, req)
        if reply is not None:
            send(reply)
    if mode == "immortal":
        sleep_forever()  # end of input is ignored


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        os._exit(1)
