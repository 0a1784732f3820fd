"""`gcbench record -o FILE -- CMD ARGS...`: a transparent stdio proxy that writes a real session as a trace.

An agent host (Claude Desktop, an IDE, an SDK client) launches `gcbench record` in place of the MCP server. The
proxy starts CMD, forwards every byte both ways unchanged, as soon as it is read (one os.read, one write: never
a line held back), and only then parses a copy. Each tools/call the client sends becomes a trace line with its
tool, its arguments and the think time before it: from the last reply before this request (0 when the previous
call was still unanswered, as a replay is sequential); the first call has none. `gcbench run --trace FILE`
replays it.

The trace is appended call by call (one write of one whole line, after forwarding) to FILE.partial, which is
renamed to FILE when the session ends (client or server closes, SIGTERM, SIGINT, SIGHUP): FILE appears whole,
and a proxy killed outright leaves whole lines in FILE.partial. The proxy's messages go to stderr only (stdout
is the protocol); CMD's stderr is passed through. The proxy exits with CMD's exit code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from gcbench.errors import GcbenchError

CHUNK = 1 << 16
MAX_LINE_BYTES = 64 * 1024 * 1024  # a longer line is forwarded but not parsed (bounded proxy memory)
STOP_GRACE_S = 5.0  # after a signal: how long CMD may take to exit before it is killed


def _id_key(msg_id: object) -> tuple[str, object] | None:
    """A JSON-RPC id as a dict key that keeps 1 and "1" apart."""
    if isinstance(msg_id, bool) or not isinstance(msg_id, (int, str)):
        return None
    return (type(msg_id).__name__, msg_id)


class _Lines:
    """Complete lines out of a byte stream read in chunks of any size; a line over the cap is skipped."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False
        self.skipped = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        out = []
        start = 0
        while (nl := chunk.find(b"\n", start)) >= 0:
            if self._skipping:
                self._skipping = False  # the end of a line over the cap
            else:
                self._buf += chunk[start:nl]
                out.append(bytes(self._buf))
            self._buf.clear()
            start = nl + 1
        if not self._skipping:
            self._buf += chunk[start:]
            if len(self._buf) > MAX_LINE_BYTES:
                self._buf.clear()
                self._skipping = True
                self.skipped += 1
        return out


def _messages(line: bytes) -> list[dict]:
    """The JSON-RPC messages of one line (a batch is an array); [] for anything else."""
    try:
        doc = json.loads(line)
    except (ValueError, RecursionError):
        return []
    if isinstance(doc, dict):
        return [doc]
    return [m for m in doc if isinstance(m, dict)] if isinstance(doc, list) else []


class _Call:
    __slots__ = ("step", "seq", "t_send_ns", "t_reply_ns", "prev")

    def __init__(self, step: dict, seq: int, t_send_ns: int, prev: _Call | None) -> None:
        self.step = step
        self.seq = seq
        self.t_send_ns = t_send_ns
        self.t_reply_ns: int | None = None
        self.prev = prev


class Recorder:
    """Turns copies of the two byte streams into trace lines, handed to `sink` in call order.

    The two directions run on two threads, each forwarding before it parses, so a reply can be parsed before
    the request it answers (a fast server), or after the client's next request (a slow parse): a call's line is
    written once the reply to the call before it is known, whichever thread learns it. Times are the proxy's
    read times of the request and of the reply.
    """

    MAX_EARLY_REPLIES = 4096  # replies parsed before their request (or to other requests): bounded memory
    RECENT_CALLS = 64  # calls in flight together that the think time looks back over

    def __init__(self, sink: Callable[[list[bytes]], None]) -> None:
        self._sink = sink
        self._client = _Lines()
        self._server = _Lines()
        self._lock = threading.Lock()
        self._waiting: dict = {}  # id -> the call that awaits its reply
        self._early: dict = {}  # id -> reply time, for a reply whose request was not parsed yet
        self._unwritten: list[_Call] = []  # in call order
        self._last: _Call | None = None
        self._recent: deque[_Call] = deque(maxlen=self.RECENT_CALLS)
        self.calls = 0
        self.not_recorded = 0  # tools/call requests without a usable tool name or arguments

    @property
    def skipped_lines(self) -> int:
        return self._client.skipped + self._server.skipped

    def from_client(self, chunk: bytes, t_ns: int) -> None:
        """What the client sent, read at t_ns."""
        for line in self._client.feed(chunk):
            if b"tools/call" not in line:
                continue
            for msg in _messages(line):
                if msg.get("method") != "tools/call":
                    continue
                params = msg.get("params")
                tool = params.get("name") if isinstance(params, dict) else None
                args = params.get("arguments", {}) if isinstance(params, dict) else None
                if not isinstance(tool, str) or not tool or not isinstance(args, dict):
                    self.not_recorded += 1
                    continue
                key = _id_key(msg.get("id"))
                with self._lock:
                    call = _Call({"tool": tool, "arguments": args}, self.calls, t_ns, self._last)
                    self._last = call
                    self._recent.append(call)
                    self.calls += 1
                    if key in self._early:
                        call.t_reply_ns = self._early.pop(key)
                    elif key is not None:
                        self._waiting[key] = call
                    self._unwritten.append(call)
                    self._emit(final=False)

    def from_server(self, chunk: bytes, t_ns: int) -> None:
        """What the server sent, read at t_ns."""
        for line in self._server.feed(chunk):
            if b'"id"' not in line:
                continue  # a notification: no id
            for msg in _messages(line):
                if "method" in msg:
                    continue  # the server's own request
                key = _id_key(msg.get("id"))
                if key is None:
                    continue
                with self._lock:
                    call = self._waiting.pop(key, None)
                    if call is None:
                        self._early[key] = t_ns
                        if len(self._early) > self.MAX_EARLY_REPLIES:
                            del self._early[next(iter(self._early))]
                        continue
                    call.t_reply_ns = t_ns
                    self._emit(final=False)

    def finish(self) -> None:
        """The session ended: write what is left (after a call never answered: think time 0)."""
        with self._lock:
            self._emit(final=True)

    def _emit(self, final: bool) -> None:
        """Write, in order, every call whose think time is known (under the lock)."""
        lines = []
        while self._unwritten:
            call = self._unwritten[0]
            prev = call.prev
            step = call.step
            if prev is not None:
                if prev.t_reply_ns is None and not final:
                    break
                if prev.t_reply_ns is None or prev.t_reply_ns > call.t_send_ns:
                    gap = 0  # sent before the previous call was answered (a replay is sequential)
                else:  # from the last reply before it (calls in flight together: the last of them)
                    gap = call.t_send_ns - max([prev.t_reply_ns, *(
                        r.t_reply_ns for r in self._recent
                        if r.seq < call.seq and r.t_reply_ns is not None and r.t_reply_ns <= call.t_send_ns)])
                step["think_ms"] = round(gap / 1e6, 3)
            call.prev = None  # written: its own predecessor is not needed any more
            self._unwritten.pop(0)
            lines.append(json.dumps(step, separators=(", ", ": ")).encode() + b"\n")
        if lines:
            self._sink(lines)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _TraceFile:
    """FILE.partial, one whole line per write; renamed to FILE when the session ends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        try:
            self._fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        except OSError as e:
            raise GcbenchError(f"-o {path}: cannot write {self.partial}: {e.strerror}") from None
        self._lock = threading.Lock()

    def write(self, lines: list[bytes]) -> None:
        with self._lock:
            if self._fd >= 0:
                for line in lines:
                    _write_all(self._fd, line)

    def abandon(self) -> None:
        with self._lock:
            os.close(self._fd)
            self._fd = -1
            self.partial.unlink(missing_ok=True)

    def finish(self) -> None:
        with self._lock:
            if self._fd < 0:
                return
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self.partial, self.path)
            try:
                dfd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
            except OSError:
                pass


def record(argv: list[str], out: Path, log: Callable[[str], None],
           stdin_fd: int = 0, stdout_fd: int = 1, clock: Callable[[], int] = time.monotonic_ns) -> int:
    """Run CMD behind the proxy until the session ends; return CMD's exit code."""
    if not argv:
        raise GcbenchError("record: give the server command after --, e.g. gcbench record -o t.jsonl -- python s.py")
    if not out.parent.is_dir():
        raise GcbenchError(f"-o {out}: folder {out.parent} does not exist")
    trace = _TraceFile(out)
    rec = Recorder(trace.write)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    except OSError as e:
        trace.abandon()
        raise GcbenchError(f"record: cannot start {argv[0]!r}: {e.strerror or e}") from None
    to_server, from_server = proc.stdin.fileno(), proc.stdout.fileno()

    def client_to_server() -> None:
        try:
            while chunk := os.read(stdin_fd, CHUNK):
                t = clock()
                _write_all(to_server, chunk)  # forward first
                rec.from_client(chunk, t)  # record after
        except OSError:
            pass  # the server closed its input (it exited) or our stdin went away
        finally:
            try:
                proc.stdin.close()  # EOF to the server: the client is done
            except OSError:
                pass

    def server_to_client() -> None:
        try:
            while chunk := os.read(from_server, CHUNK):
                t = clock()
                _write_all(stdout_fd, chunk)
                rec.from_server(chunk, t)
        except OSError:
            pass  # the client closed our stdout: it is gone
        finally:
            try:  # EOF to the client: the server is done (dup2 closes the pipe; fd 1 stays valid for Python)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stdout_fd)
                os.close(devnull)
            except OSError:
                pass

    signals = []

    def on_signal(signum, frame) -> None:
        """Passed on to the server (which ends the session); a second signal kills it."""
        signals.append(signum)
        if proc.poll() is None:
            try:
                proc.kill() if len(signals) > 1 else proc.send_signal(signum)
            except OSError:
                pass

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    up = threading.Thread(target=client_to_server, name="client->server", daemon=True)
    down = threading.Thread(target=server_to_client, name="server->client", daemon=True)
    up.start()
    down.start()
    try:
        while down.is_alive():  # until the server closes its output (a signal handler runs in between)
            down.join(0.2)
        try:
            code = proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        rec.finish()
        trace.finish()
    extra = "".join([f", {rec.not_recorded} tools/call without a tool name or arguments not recorded"
                     if rec.not_recorded else "",
                     f", {rec.skipped_lines} lines over {MAX_LINE_BYTES >> 20} MiB not parsed" if rec.skipped_lines else ""])
    log(f"gcbench record: {rec.calls} tools/call written to {out}{extra}")
    return code if code >= 0 else 128 - code
