#!/usr/bin/env python3
"""gcbench's built-in Python MCP tool server: standard library only, contract in ../PROTOCOL.md.

Run as a script (never imported with the gcbench package inside the server process, so the measured heap
is only what the scenario asks for). The ``work`` function is also imported by the in-process backend.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
from pathlib import Path

PROTOCOL_VERSION = "2025-06-18"
WORK_ARGS = ("alloc_objects", "cyclic_fraction", "retain_objects", "retain_cap", "payload_bytes", "cpu_iters", "sleep_us",
             "retain_shape")
# the names of gcbench.scenario.HEAP_SHAPES (this script never imports gcbench); absent means the first
HEAP_SHAPES = ("lists", "records", "instances", "json")

WORK_TOOL = {
    "name": "work",
    "description": "Simulated tool: allocates, retains, computes, sleeps and answers with a payload.",
    "inputSchema": {
        "type": "object",
        "properties": {
            **{name: {"type": "number" if name == "cyclic_fraction" else "integer", "minimum": 0}
               for name in WORK_ARGS if name != "retain_shape"},
            "retain_shape": {"type": "string", "enum": list(HEAP_SHAPES)},
        },
        "additionalProperties": False,
    },
}

_MASK64 = (1 << 64) - 1
# worker threads at most (scenario.MAX_AGENTS: every agent's call can be in flight at once); started on demand
POOL_THREADS = 256


class ToolArgumentError(ValueError):
    pass


# ---- heap shapes (PROTOCOL.md, "Heap shapes"): what the start-up heap and the retained cache are made of ----
# Record k of a batch (the start-up heap, or one call's retained objects) has five fields: an int, a short
# string, a small list, a nested map and a reference to record (k - 1) // 2 of the same batch (None for the
# first): a tree, so a chain of references is log2(count) long and the oldest cache entries are not kept alive
# by the newest. What CPython makes of them (gc.get_objects() before and after 300k, gc.is_tracked, measured on
# 3.11.7, 3.12.1, 3.13.0): `lists` 1 tracked object per record; `records`, `instances` and `json` 2 (the record
# and its list of tags): the nested map holds only ints, and CPython leaves such a dict untracked. 3.10.13:
# `instances` 3, an instance's __dict__ being a tracked dict of its own there.


class Record:
    """The `instances` shape: the record as an ordinary class (no __slots__, as most code writes it)."""

    def __init__(self, id, name, tags, meta, ref):  # noqa: A002  (the record's field names)
        self.id = id
        self.name = name
        self.tags = tags
        self.meta = meta
        self.ref = ref


def record_doc(count: int) -> str:
    """The `json` shape's document: a JSON array of `count` records; a reference is the other record's id."""
    parts = []
    for k in range(count):
        ref = (k - 1) >> 1 if k else "null"
        parts.append(f'{{"id":{k},"name":"rec-{k}","tags":[{k},{k + 1},{k + 2}],'
                     f'"meta":{{"size":{k},"score":{k % 100}}},"ref":{ref}}}')
    return "[" + ",".join(parts) + "]"


def build_objects(shape: str, count: int, doc: str | None = None) -> list:
    """`count` objects of a shape, in a list; `json` parses `doc` (record_doc(count)) when given."""
    if shape == "lists":
        return [[i, None] for i in range(count)]
    if shape == "json":
        return json.loads(doc if doc is not None else record_doc(count))
    out: list = []
    append = out.append
    if shape == "records":
        for k in range(count):
            append({"id": k, "name": f"rec-{k}", "tags": [k, k + 1, k + 2], "meta": {"size": k, "score": k % 100},
                    "ref": out[(k - 1) >> 1] if k else None})
    elif shape == "instances":
        for k in range(count):
            append(Record(k, f"rec-{k}", [k, k + 1, k + 2], {"size": k, "score": k % 100},
                          out[(k - 1) >> 1] if k else None))
    else:
        raise ValueError(f"unknown heap shape {shape!r} (one of {', '.join(HEAP_SHAPES)})")
    return out


class WorkState:
    """Server-global state of the work tool: the start-up heap, the long-lived cache and the CPU sink."""

    def __init__(self, heap_objects: int = 0, heap_shape: str = "lists") -> None:
        self.heap = build_objects(heap_shape, heap_objects)  # ValueError for an unknown shape
        self.cache: list = []
        self.cache_pos = 0
        self.cpu_sink = 0
        self._doc = (-1, "")  # the last `json` document retained: (records, text), the text as a tool receives it
        # Concurrent calls (PROTOCOL.md, "Concurrency") share the cache: retain() holds this lock, nothing else
        # does (the cpu sink is one reference store, atomic under the GIL; a lost update there is harmless).
        self.lock = threading.Lock()

    def retain(self, count: int, cap: int, shape: str = "lists") -> None:
        with self.lock:
            self._retain(count, cap, shape)

    def _retain(self, count: int, cap: int, shape: str) -> None:
        cache = self.cache
        if shape == "lists":  # one object at a time, as before shapes existed
            for i in range(count):
                obj = [i, None]
                if cap and len(cache) >= cap:
                    cache[self.cache_pos % cap] = obj
                    self.cache_pos += 1
                else:
                    cache.append(obj)
            return
        doc = None
        if shape == "json":
            if self._doc[0] != count:
                self._doc = (count, record_doc(count))
            doc = self._doc[1]
        for obj in build_objects(shape, count, doc):
            if cap and len(cache) >= cap:
                cache[self.cache_pos % cap] = obj
                self.cache_pos += 1
            else:
                cache.append(obj)


def parse_work_args(args: object) -> tuple:
    if not isinstance(args, dict):
        raise ToolArgumentError("arguments must be an object")
    for name in args:
        if name not in WORK_ARGS:
            raise ToolArgumentError(f"unknown argument {name!r}")
    values = []
    for name in WORK_ARGS:
        v = args.get(name, 0)
        if name == "retain_shape":
            v = args.get(name, HEAP_SHAPES[0])
            if not isinstance(v, str) or v not in HEAP_SHAPES:
                raise ToolArgumentError(f"argument {name!r} must be one of {', '.join(HEAP_SHAPES)}")
        elif name == "cyclic_fraction":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ToolArgumentError(f"argument {name!r} must be a number from 0 to 1")
        elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ToolArgumentError(f"argument {name!r} must be a non-negative integer")
        values.append(v)
    return tuple(values)


def work(state: WorkState, args: object) -> str:
    """Do one call's simulated work and return the payload text (raises ToolArgumentError)."""
    garbage, sleep_us, payload = work_before_sleep(state, args)
    if sleep_us:
        time.sleep(sleep_us / 1e6)  # releases the GIL: only this call's thread sleeps
    text = "x" * payload
    del garbage
    return text


def work_before_sleep(state: WorkState, args: object) -> tuple[list, int, int]:
    """A call's work up to its sleep: (the garbage, which the caller holds until the payload is built,
    sleep_us, payload_bytes). The SDK server sleeps with asyncio.sleep between the two halves."""
    alloc, cyclic_fraction, retain, cap, payload, cpu_iters, sleep_us, retain_shape = parse_work_args(args)
    garbage = []
    n_cyclic = int(alloc * cyclic_fraction) & ~1  # pairs
    for _ in range(n_cyclic // 2):
        a = [None, None]
        b = [a, None]
        a[0] = b
        garbage.append(a)
        garbage.append(b)
    for _ in range(alloc - n_cyclic):
        garbage.append([None, None])
    if retain:
        state.retain(retain, cap, retain_shape)
    if cpu_iters:
        x = state.cpu_sink | 1
        for _ in range(cpu_iters):
            x ^= (x << 13) & _MASK64
            x ^= x >> 7
            x ^= (x << 17) & _MASK64
        state.cpu_sink = x
    return garbage, sleep_us, payload


class Server:
    def __init__(self, gc_mode: str, heap_objects: int, events_path: str | None, heap_shape: str = "lists") -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "probes"))
        from python_gc import GcProbe  # noqa: E402  (found through the path above)

        self.gc_mode = gc_mode
        self.probe = GcProbe(events_path).install()
        self.thresholds = gc.get_threshold()
        if gc_mode.startswith("thresholds:"):
            parts = [int(p) for p in gc_mode.split(":", 1)[1].split(",")]
            gc.set_threshold(*parts)
            self.thresholds = gc.get_threshold()
        elif gc_mode in ("disabled", "oob"):
            gc.disable()
        elif gc_mode not in ("default", "freeze"):
            raise SystemExit(f"gcbench python server: unknown GC mode {gc_mode!r}")
        if heap_shape not in HEAP_SHAPES:
            sys.stderr.write(f"gcbench python server: unknown GCBENCH_HEAP_SHAPE {heap_shape!r} "
                             f"(one of {', '.join(HEAP_SHAPES)})\n")
            raise SystemExit(2)
        self.state = WorkState(heap_objects, heap_shape)
        self._idle = threading.Condition()  # guards _inflight; see "concurrency" below
        self._inflight = 0
        self.probe.start_meter_from_env()  # after the start-up heap: building it is not a hiccup

    def collect_out_of_band(self) -> int | None:
        """Between calls, apply CPython's own trigger rule to CPython's own counters; return the generation
        collected, or None.

        The rule of _PyObject_GC_Link / gc_collect_generations (3.10 to 3.13): nothing unless the young count
        exceeds threshold0 (and threshold0 is not 0); then the oldest generation whose count exceeds its
        threshold, without the 25% long-lived-pending rule for the oldest (that counter is not exposed).

        This is not the schedule automatic GC would have run. With GC off, gc.get_count()[0] still counts
        tracked allocations, but net of deallocations (measured on 3.10.13, 3.11.7, 3.12.1 and 3.13.0, from
        a count of 0: 20,000 lists allocated -> 20,002; all freed by reference counting -> 82). Automatic GC
        fires while a call's temporaries are still alive (every threshold0 allocations); here the call's
        freed garbage no longer counts, only what outlived the call (retained objects, garbage in cycles).
        So this mode collects far less often than `default` (claim-check heavy profile, 400 measured calls:
        363 young collections against 10,190), and each collection finds the call's temporaries already
        gone: it is an out-of-band policy a server can really run, not `default`'s collections moved.
        """
        counts, limits = gc.get_count(), self.thresholds
        if not limits[0] or counts[0] <= limits[0]:
            return None
        gen = 2 if counts[2] > limits[2] else 1 if counts[1] > limits[1] else 0
        gc.collect(gen)
        return gen

    def handle(self, msg: object) -> dict | None:
        if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or not isinstance(msg.get("method"), str):
            return _error(msg.get("id") if isinstance(msg, dict) else None, -32600, "Invalid Request")
        if "id" not in msg:
            return None  # notification
        mid = msg["id"]
        method = msg["method"]
        params = msg.get("params") or {}
        if method == "tools/call":
            if not isinstance(params, dict) or params.get("name") != "work":
                return _error(mid, -32602, f"Unknown tool: {params.get('name') if isinstance(params, dict) else params!r}")
            try:
                text = work(self.state, params.get("arguments", {}))
            except ToolArgumentError as e:
                return _result(mid, {"content": [{"type": "text", "text": str(e)}], "isError": True})
            return _result(mid, {"content": [{"type": "text", "text": text}], "isError": False})
        if method == "initialize":
            requested = params.get("protocolVersion") if isinstance(params, dict) else None
            return _result(
                mid,
                {
                    "protocolVersion": requested if isinstance(requested, str) else PROTOCOL_VERSION,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "gcbench-python", "version": sys.version.split()[0]},
                },
            )
        if method == "ping":
            return _result(mid, {})
        if method == "tools/list":
            return _result(mid, {"tools": [WORK_TOOL]})
        if method == "gcbench/measure":
            if self.gc_mode == "freeze":
                gc.collect()
                gc.freeze()
            if self.probe.meter is not None:
                self.probe.meter.reset()
            return _result(mid, {})
        if method == "gcbench/flush":
            return _result(mid, {"events": self.probe.flush()})
        return _error(mid, -32601, f"Method not found: {method}")

    # ---- concurrency (PROTOCOL.md, "Concurrency") ----
    # Every tools/call runs on a worker thread (stdio: a pool fed by the reader; HTTP: the connection's
    # thread); the other methods run on the thread that read them. `_inflight` counts the calls started and
    # not yet answered. gcbench/measure and gcbench/flush wait until it is 0, so a flush comes after every
    # earlier call's events are buffered; oob collects when the last call in flight has answered, holding the
    # lock, so a call that arrives meanwhile waits for the collection (as a request waited for it before).

    def _call_started(self) -> None:
        with self._idle:
            self._inflight += 1

    def _call_done(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._between_calls()

    def _between_calls(self) -> None:
        """With self._idle held: when no call is in flight, oob's collection, and wake wait_idle."""
        if self._inflight == 0:
            if self.gc_mode == "oob":
                self.collect_out_of_band()
            self._idle.notify_all()

    def _wait_idle(self) -> None:
        with self._idle:
            while self._inflight:
                self._idle.wait()

    def _after_inline(self) -> None:
        with self._idle:
            self._between_calls()

    def _handle_call(self, msg: dict) -> dict | None:
        try:
            return self.handle(msg)
        except Exception as e:  # noqa: BLE001  (the call is answered; the server goes on, as on a real pool)
            import traceback

            traceback.print_exc(file=sys.stderr)
            return _error(msg.get("id"), -32603, f"Internal error: {type(e).__name__}: {e}")

    def serve_stdio(self) -> None:
        """A reader (this thread) dispatches each tools/call to a thread pool; a response is one whole line
        written under a lock, in the order the calls finish (the client matches them by id)."""
        stdin = sys.stdin.buffer
        stdout = sys.stdout.buffer
        write_lock = threading.Lock()

        def write(reply: dict) -> None:
            data = json.dumps(reply, separators=(",", ":")).encode() + b"\n"
            with write_lock:
                stdout.write(data)
                stdout.flush()

        def run_call(msg: dict) -> None:
            try:
                reply = self._handle_call(msg)
                if reply is not None:
                    write(reply)
            finally:
                self._call_done()

        pool = _Pool(run_call, POOL_THREADS)
        for line in stdin:
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                write(_error(None, -32700, "Parse error"))
                continue
            if _is_tool_call(msg):
                self._call_started()
                pool.submit(msg)
                continue
            if _is_control(msg):
                self._wait_idle()
            reply = self.handle(msg)
            if reply is not None:
                write(reply)
            self._after_inline()
        self._wait_idle()  # stdin's EOF: every call in flight is answered first
        pool.shutdown()
        self.probe.flush()

    def serve_http(self) -> None:
        """Streamable HTTP (stateless, JSON responses) on 127.0.0.1: a thread per connection, no lock around
        the tool (the harness keeps one keep-alive connection per agent)."""
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small responses must not wait for a delayed ACK

            def log_message(self, *args) -> None:  # no per-request logging
                pass

            def _reply(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)
                self.wfile.flush()

            def do_POST(self) -> None:
                if self.path != "/mcp":
                    return self._reply(404, b"not found", "text/plain")
                if not _origin_allowed(self.headers.get("Origin")):
                    return self._reply(403, b"forbidden origin", "text/plain")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    msg = json.loads(body)
                except ValueError:
                    err = _error(None, -32700, "Parse error")
                    return self._reply(400, json.dumps(err, separators=(",", ":")).encode())
                call = _is_tool_call(msg)
                if call:
                    server._call_started()
                elif _is_control(msg):
                    server._wait_idle()
                try:
                    reply = server._handle_call(msg) if call else server.handle(msg)
                    if reply is None:
                        self._reply(202)
                    else:
                        self._reply(200, json.dumps(reply, separators=(",", ":")).encode())
                finally:  # after the response is sent: oob's collection does not delay it
                    if call:
                        server._call_done()
                    else:
                        server._after_inline()

            def do_GET(self) -> None:  # no server-initiated stream in stateless mode
                self._reply(405, b"method not allowed", "text/plain")

        class Listener(ThreadingHTTPServer):
            # socketserver's default backlog is 5: 32 agents connecting at once lost SYNs and waited for the
            # client's 1 s and 3 s retransmissions
            request_queue_size = 256

        httpd = Listener(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        sys.stdout.write(f"GCBENCH_LISTENING {httpd.server_address[1]}\n")
        sys.stdout.flush()

        def stop_on_stdin_eof() -> None:
            sys.stdin.buffer.read()
            httpd.shutdown()

        threading.Thread(target=stop_on_stdin_eof, daemon=True).start()
        httpd.serve_forever(poll_interval=0.2)
        self._wait_idle()  # a call still running on its connection's thread is answered first
        self.probe.flush()


class _Pool:
    """Worker threads fed by one queue, a thread started only when none is spare (as many as calls overlap,
    at most `limit`). concurrent.futures' executor does the same with a Future per call: ~10 us more here."""

    def __init__(self, run, limit: int) -> None:
        import queue

        self._queue = queue.SimpleQueue()
        self._run = run
        self._limit = limit
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._spare = 0  # workers waiting on the queue with no item reserved for them

    def submit(self, item) -> None:
        with self._lock:
            if self._spare:
                self._spare -= 1
            elif len(self._threads) < self._limit:
                t = threading.Thread(target=self._worker, name=f"gcbench-call-{len(self._threads)}", daemon=True)
                self._threads.append(t)
                t.start()
        self._queue.put(item)

    def _worker(self) -> None:
        get, run = self._queue.get, self._run
        while True:
            item = get()
            if item is None:
                return
            run(item)
            with self._lock:
                self._spare += 1

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()


def _is_tool_call(msg: object) -> bool:
    return isinstance(msg, dict) and msg.get("method") == "tools/call" and "id" in msg


def _is_control(msg: object) -> bool:
    """gcbench/measure and gcbench/flush: answered once no call is in flight."""
    return isinstance(msg, dict) and msg.get("method") in ("gcbench/measure", "gcbench/flush")


def _origin_allowed(origin: str | None) -> bool:
    """DNS-rebinding guard: a browser's Origin must be this machine's loopback."""
    if origin is None:
        return True
    from urllib.parse import urlsplit

    return urlsplit(origin).hostname in ("127.0.0.1", "localhost", "::1")


def _result(mid: object, result: dict) -> dict:
    return {"jsonrpc": "2.0", "id": mid, "result": result}


def _error(mid: object, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": mid, "error": {"code": code, "message": message}}


def main() -> None:
    server = Server(
        gc_mode=os.environ.get("GCBENCH_GC_MODE", "default"),
        heap_objects=int(os.environ.get("GCBENCH_HEAP_OBJECTS", "0") or 0),
        events_path=os.environ.get("GCBENCH_EVENTS") or None,
        heap_shape=os.environ.get("GCBENCH_HEAP_SHAPE") or HEAP_SHAPES[0],
    )
    transport = os.environ.get("GCBENCH_TRANSPORT", "stdio")
    if transport == "stdio":
        server.serve_stdio()
    elif transport == "http":
        server.serve_http()
    else:
        raise SystemExit(f"gcbench python server: unknown transport {transport!r}")


if __name__ == "__main__":
    main()
