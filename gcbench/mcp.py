"""Minimal MCP client side: JSON-RPC 2.0 framing and the stdio transport the chain driver talks through.

The transport is the instrument: it reads with one os.read per wake-up, stamps the receive time before it
parses, and never logs or allocates more per message than json.loads does. A response in the usual shape is
not even parsed there: its id is read from its first bytes and the line is parsed after the measured window
(RawReply), which took json.loads (1.5-3.7 us for a 150-byte response) off the per-call path.
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import time
from collections.abc import Callable

from gcbench.errors import CellError, printable

PROTOCOL_VERSION = "2025-06-18"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # one message from a server; more is a fault (bounded harness memory)
READ_CHUNK = 1 << 16  # below malloc's mmap threshold: a 1 MiB read buffer cost ~20 us per call


# The head of a JSON-RPC response as servers write it: its id is all the chain driver needs while measuring.
# "result"/"error" after the id tells a response from a server's own request (which has a "method").
_REPLY_HEAD = re.compile(rb'\{"jsonrpc": ?"2\.0", ?"id": ?([0-9]{1,18}), ?"(?:result|error)"')


class RawReply:
    """A response whose id was read from its head; `message()` parses the whole line (after the window).

    The id is a guess until then: `message()` is the same parse the transport does, and the caller checks
    that the parsed id is the one the head said (a leading zero or a duplicate key would differ).
    """

    __slots__ = ("id", "line", "_msg")

    def __init__(self, msg_id: int, line: bytes) -> None:
        self.id = msg_id
        self.line = line
        self._msg: dict | None = None

    def message(self) -> dict:
        if self._msg is None:
            self._msg = parse_message(self.line)
        return self._msg

    # read like the dict it stands for (parsed on first use): code outside the chain loop needs no care
    def __getitem__(self, key: str):
        return self.message()[key]

    def get(self, key: str, default=None):
        return self.message().get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.message()


def parse_message(line: bytes | str) -> dict | None:
    """One line as a JSON-RPC message; None for a blank line; CellError for anything that is not one."""
    try:
        msg = json.loads(line)
    except ValueError:
        if not line.strip():
            return None
        raise CellError(f"server wrote non-JSON on stdout: {_snippet(line)!r}") from None
    except RecursionError:
        raise _too_deep(line) from None
    if not isinstance(msg, dict):
        raise CellError(f"server wrote a JSON value that is not a message: {_snippet(line)!r}")
    return msg


def as_message(msg: dict | RawReply) -> dict:
    return msg.message() if type(msg) is RawReply else msg


def encode_request(msg_id: int, method: str, params: dict | None = None) -> bytes:
    msg: dict = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def encode_notification(method: str, params: dict | None = None) -> bytes:
    msg: dict = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def call_template(tool: str, arguments: dict) -> bytes:
    """A tools/call request with a %d hole for the id: the per-call path only formats an integer.

    NaN and infinities are refused (ValueError): json.dumps would write `NaN`, which is not JSON. The CLI and
    the scenario loader refuse them up front; this is the backstop for library callers.
    """
    return request_template(json.dumps({"name": tool, "arguments": arguments}, separators=(",", ":"),
                                       allow_nan=False).encode())


def request_template(params: bytes) -> bytes:
    """A tools/call request around already encoded params, with a %d hole for the id."""
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":' + params.replace(b"%", b"%%") + b"}\n"


def call_outcome(msg: dict) -> str | None:
    """None when a tools/call response is a success, else a short error text (safe to print: escaped)."""
    err = msg.get("error")
    if err is not None:
        if isinstance(err, dict):
            return f"JSON-RPC error {server_text(err.get('code'))}: {server_text(err.get('message'))}"
        return f"JSON-RPC error: {server_text(err)}"
    result = msg.get("result")
    if not isinstance(result, dict):
        return "response has neither result nor error"
    if result.get("isError"):
        content = result.get("content")
        first = content[0] if isinstance(content, list) and content else None
        text = first.get("text", "") if isinstance(first, dict) else ""
        return f"tool error: {server_text(text)}"
    return None


def server_text(value: object, limit: int = 200) -> str:
    """A value the server sent, as a short printable text; a nested list or object is only named (its repr
    could be huge or nested deeper than repr can go)."""
    if isinstance(value, str):
        return printable(value[:limit])
    if value is None or isinstance(value, (bool, int, float)):
        return str(value)[:limit]
    return f"<a JSON {'object' if isinstance(value, dict) else 'array'}>"


def describe_id(msg_id: object) -> str:
    """An id a server sent, for an error message; a float is refused and says why (JSON-RPC: the answer
    carries the request's id; gcbench sends integers and wants them back unchanged)."""
    if isinstance(msg_id, str):
        return repr(msg_id[:100])  # repr escapes control characters
    if isinstance(msg_id, float):
        return f"{msg_id!r} (gcbench sends integer ids and needs them back unchanged, not as a float)"
    return server_text(msg_id)


def _too_deep(line: bytes | bytearray | str) -> CellError:
    return CellError(f"server wrote a message nested deeper than gcbench can parse (about "
                     f"{sys.getrecursionlimit()} levels of arrays or objects): {_snippet(line)!r}")


def _snippet(line: bytes | bytearray | str) -> bytes:
    """The start of a bad line, as bytes (the way the server wrote it)."""
    return bytes(line[:120]) if isinstance(line, (bytes, bytearray)) else line[:120].encode()


class StdioTransport:
    """Newline-delimited JSON-RPC over a child's stdin/stdout pipes.

    With server_pid, the server's own process is watched too (a pidfd in the same poll, Linux 5.3+): a
    server that exits while a child it started still holds its stdout gives no end of file, and would
    otherwise look hung until the call timeout (exit code 0 is taken for a launcher that handed over to
    its child, and watched no more). Measured here (Linux 6.18, Python 3.11): the pidfd turned
    readable 0.05 s after launch of a server that forked a sleeping child and exited with code 4, while
    the pipe gave nothing; a poll() of two fds, one ready, took 438 ns against 395 ns for one (minimum of
    15 x 50,000; medians 536 and 545 ns, within noise).
    """

    kind = "stdio"

    def __init__(self, write_fd: int, read_fd: int, describe_exit: Callable[[], str] = lambda: "",
                 server_pid: int | None = None) -> None:
        self._wfd = write_fd
        self._rfd = read_fd
        os.set_blocking(read_fd, False)
        if write_fd >= 0:
            os.set_blocking(write_fd, False)  # a server that stops reading must not block a send forever
        self.send_timeout_s = 30.0  # Session keeps it equal to its own timeout
        # select.poll, not the selectors module: a third of the per-call cost was selectors' bookkeeping
        self._poller = select.poll()
        self._poller.register(read_fd, select.POLLIN)
        self._pidfd = -1
        if server_pid is not None and hasattr(os, "pidfd_open"):
            try:
                self._pidfd = os.pidfd_open(server_pid)
                self._poller.register(self._pidfd, select.POLLIN)
            except OSError:  # an old kernel: the server's end of file is the only sign of its exit
                self._pidfd = -1
        self._buf = bytearray()
        self._describe_exit = describe_exit
        self._clock = time.monotonic_ns

    def send(self, data: bytes, agent: int = 0) -> None:
        try:
            n = os.write(self._wfd, data)
        except BlockingIOError:
            n = 0
        except OSError as e:
            raise CellError(f"server closed its input ({e.__class__.__name__}){self._describe_exit()}") from None
        if n < len(data):  # a full pipe: finish the rest (never on the hot path with small requests)
            self._send_rest(memoryview(data)[n:])

    def _send_rest(self, view: memoryview) -> None:
        """Wait for room in the pipe; a server that reads nothing for send_timeout_s is hung."""
        poller = select.poll()
        poller.register(self._wfd, select.POLLOUT)
        deadline = time.monotonic() + self.send_timeout_s
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CellError(f"server stopped reading its input (a request could not be sent within "
                                f"{self.send_timeout_s:g} s)")
            if not poller.poll(left * 1000.0):
                continue
            try:
                view = view[os.write(self._wfd, view):]
            except BlockingIOError:
                continue
            except OSError as e:
                raise CellError(f"server closed its input ({e.__class__.__name__}){self._describe_exit()}") from None

    def connect(self, agents: int) -> None:
        """Nothing to open: every agent's requests share the pipe, multiplexed by id."""

    @property
    def buffer(self) -> bytearray:
        return self._buf

    def read_raw(self, timeout_s: float | None) -> bytes:
        """Wait up to timeout_s and append what the server wrote to the buffer; b'' if nothing came."""
        events = self._poller.poll(-1 if timeout_s is None else timeout_s * 1000.0)
        if not events:
            return b""
        try:
            chunk = os.read(self._rfd, READ_CHUNK)
        except BlockingIOError:
            self._check_exited(events)
            return b""
        if not chunk:
            raise CellError(f"server closed its output{self._describe_exit()}")
        self._buf += chunk
        return chunk

    def poll(self, timeout_s: float | None) -> list[tuple[int, dict | RawReply]]:
        """Wait up to timeout_s for output; return (t_recv_ns, message) for each complete message read: a
        response in the usual shape as a RawReply (parsed later, by as_message), anything else as a dict."""
        events = self._poller.poll(-1 if timeout_s is None else timeout_s * 1000.0)
        if not events:
            return []
        try:
            chunk = os.read(self._rfd, READ_CHUNK)
        except BlockingIOError:
            self._check_exited(events)  # woken by the server's exit, nothing left in the pipe
            return []
        t_recv = self._clock()
        if not chunk:
            raise CellError(f"server closed its output{self._describe_exit()}")
        buf = self._buf
        if not buf and chunk.endswith(b"\n") and chunk.count(b"\n") == 1:
            head = _REPLY_HEAD.match(chunk)  # the common case: one whole response
            if head is not None:
                return [(t_recv, RawReply(int(head[1]), chunk))]
            lines = (chunk,)
        else:
            buf += chunk
            if b"\n" not in chunk:
                if len(buf) > MAX_MESSAGE_BYTES:
                    raise CellError(f"server wrote more than {MAX_MESSAGE_BYTES >> 20} MiB without a newline "
                                    f"(the limit of one message)")
                return []
            *lines, rest = buf.split(b"\n")
            self._buf = bytearray(rest)
        out = []
        head_of = _REPLY_HEAD.match
        for line in lines:
            head = head_of(line)
            if head is not None:
                out.append((t_recv, RawReply(int(head[1]), line)))
                continue
            msg = parse_message(line)
            if msg is not None:
                out.append((t_recv, msg))
        return out

    def _check_exited(self, events: list[tuple[int, int]]) -> None:
        """The server's process has exited and its pipe is empty but still open: a child holds it.

        Exit code 0 is a launcher that handed its pipes to a child (the child answers from now on): the
        watch ends there. Any other exit fails the cell at once, with the code.
        """
        if self._pidfd < 0 or not any(fd == self._pidfd for fd, _ in events):
            return
        try:  # WNOWAIT: the status stays for the Popen that reaps it
            info = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except OSError:
            info = None
        if info is None or (info.si_code == os.CLD_EXITED and info.si_status == 0):
            self._poller.unregister(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
            return
        desc = self._describe_exit()  # " (exit code N); its stderr ends: ..."
        code = re.match(r" \(exit code -?\d+\)", desc)
        head, tail = (code.group(), desc[code.end():]) if code else ("", desc)
        raise CellError(f"server exited{head}; a child still holds its output{tail}")

    def close(self) -> None:
        for fd in (self._rfd, self._pidfd):
            try:
                self._poller.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1


class Session:
    """Request/response helpers over a transport for the phases around measurement (not the hot path)."""

    def __init__(self, transport, timeout_s: float) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self._next_id = 1_000_000_000  # far from the ids the chain driver uses

    @property
    def timeout_s(self) -> float:
        return self._timeout_s

    @timeout_s.setter
    def timeout_s(self, value: float) -> None:
        self._timeout_s = value
        if hasattr(self.transport, "send_timeout_s"):  # a send blocked by a full pipe waits no longer than a call
            self.transport.send_timeout_s = value

    def request(self, method: str, params: dict | None = None, timeout_s: float | None = None) -> dict:
        msg_id = self._next_id
        self._next_id += 1
        self.transport.send(encode_request(msg_id, method, params))
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CellError(f"no answer to {method} within {timeout_s or self.timeout_s:g} s")
            for _, reply in self.transport.poll(left):
                msg = as_message(reply)
                got = msg.get("id")
                if type(got) is int and got == msg_id:  # the chains' rule too: 1.0 is not the id 1 sent
                    return msg
                if "id" in msg and "method" not in msg:
                    raise CellError(f"answer to {method} carries unexpected id {describe_id(got)}")

    def notify(self, method: str, params: dict | None = None) -> None:
        self.transport.send(encode_notification(method, params))

    def handshake(self, tool: str | list[str]) -> dict:
        """initialize + initialized + tools/list (every tool the chains call must be listed); returns the
        server's initialize result."""
        reply = self.request(
            "initialize",
            {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "gcbench", "version": "0"}},
        )
        if "result" not in reply:
            raise CellError(f"initialize failed: {reply.get('error')}")
        self.notify("notifications/initialized")
        names = [t.get("name") for t in self.list_tools()]
        for name in [tool] if isinstance(tool, str) else tool:
            if name not in names:
                raise CellError(f"server has no tool {name!r}; it offers: {', '.join(map(str, names)) or 'none'}")
        return reply["result"]

    def list_tools(self, max_pages: int = 100) -> list[dict]:
        """Every tool the server lists (tools/list, following nextCursor)."""
        tools: list[dict] = []
        cursor = None
        for _ in range(max_pages):
            reply = self.request("tools/list", {"cursor": cursor} if cursor else None)
            result = reply.get("result")
            if not isinstance(result, dict):
                raise CellError(f"tools/list failed: {reply.get('error')}")
            tools += [t for t in result.get("tools", []) if isinstance(t, dict)]
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        return tools

    def control(self, method: str) -> dict | None:
        """A gcbench/* control request; None when the server does not know it (a user's server)."""
        reply = self.request(method)
        if "error" in reply:
            if isinstance(reply["error"], dict) and reply["error"].get("code") == -32601:
                return None
            raise CellError(f"{method} failed: {reply['error']}")
        return reply.get("result")
