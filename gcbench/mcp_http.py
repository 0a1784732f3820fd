"""MCP Streamable HTTP client transport: POST /mcp on loopback, one keep-alive connection per agent.

Blocking sockets watched by one selector: an agent has at most one request in flight, so a readable
socket always has a response (or part of one) to read. The receive time is stamped on the read that
completes the response, before it is parsed.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time
from collections.abc import Callable

from gcbench.errors import CellError
from gcbench.mcp import MAX_MESSAGE_BYTES, PROTOCOL_VERSION

READ_CHUNK = 1 << 16  # below malloc's mmap threshold: a 1 MiB read buffer cost ~20 us per call


class _Conn:
    __slots__ = ("sock", "buf", "agent")

    def __init__(self, sock: socket.socket, agent: int) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.agent = agent


def parse_response(buf: bytearray) -> tuple[int, dict[str, str], bytes, int] | None:
    """One complete HTTP/1.1 response from the front of buf: (status, headers, body, bytes used), or None."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        if len(buf) > 65536:
            raise CellError("HTTP response headers larger than 64 KiB")
        return None
    head = bytes(buf[:head_end]).decode("latin-1").split("\r\n")
    parts = head[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise CellError(f"server sent something that is not HTTP: {head[0][:80]!r}")
    status = int(parts[1])
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    pos = head_end + 4
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = _number(bytes(buf[pos:line_end]).split(b";")[0].strip() or b"0", 16, "chunk size")
            if size > MAX_MESSAGE_BYTES:
                raise CellError(f"HTTP chunk of {size} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
            if size == 0:
                trailer_end = buf.find(b"\r\n", line_end + 2)
                if trailer_end < 0:
                    return None
                return status, headers, bytes(body), trailer_end + 2
            start = line_end + 2
            if len(buf) < start + size + 2:
                return None
            body += buf[start : start + size]
            pos = start + size + 2
    length = _number(headers.get("content-length", "0") or "0", 10, "Content-Length")
    if length > MAX_MESSAGE_BYTES:
        raise CellError(f"HTTP response of {length} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    if len(buf) < pos + length:
        return None
    return status, headers, bytes(buf[pos : pos + length]), pos + length


def _number(text: str | bytes, base: int, what: str) -> int:
    """A non-negative integer from a response header or chunk line; a CellError when it is not one."""
    try:
        value = int(text, base)
    except ValueError:
        value = -1
    if value < 0:
        raise CellError(f"server sent an HTTP {what} that is not a number: {text[:40]!r}")
    return value


def messages_from_body(headers: dict[str, str], body: bytes) -> list[dict]:
    if not body.strip():
        return []
    if headers.get("content-type", "").startswith("text/event-stream"):
        out = []
        for event in body.replace(b"\r\n", b"\n").split(b"\n\n"):
            data = b"\n".join(line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:"))
            if data:
                out.append(json.loads(data))
        return out
    msg = json.loads(body)
    return msg if isinstance(msg, list) else [msg]


class HttpTransport:
    kind = "http"

    def __init__(self, host: str, port: int, path: str = "/mcp", describe_exit: Callable[[], str] = lambda: "") -> None:
        self.host = host
        self.port = port
        self.path = path
        self._describe_exit = describe_exit  # why the server went away, for the error message
        self._conns: dict[int, _Conn] = {}
        self._sel = selectors.DefaultSelector()
        self._clock = time.monotonic_ns
        self._session_id: str | None = None
        self._head_cache: dict[int, bytes] = {}

    def _connect(self, agent: int) -> _Conn:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=10)
        except OSError as e:
            raise CellError(f"cannot connect to the server on {self.host}:{self.port}: {e}{self._describe_exit()}") from None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(sock, agent)
        self._conns[agent] = conn
        self._sel.register(sock, selectors.EVENT_READ, conn)
        return conn

    def connect(self, agents: int) -> None:
        """Open every agent's connection before measuring: a connect inside the window stalls every agent
        behind it (a server with a short listen backlog made the first calls of 16 agents wait for the
        kernel's 1 s and 2 s SYN retries)."""
        for agent in range(agents):
            if agent not in self._conns:
                self._connect(agent)

    def _head(self, length: int) -> bytes:
        head = self._head_cache.get(length)
        if head is None:
            lines = [
                f"POST {self.path} HTTP/1.1",
                f"Host: {self.host}:{self.port}",
                "Content-Type: application/json",
                "Accept: application/json, text/event-stream",
                f"MCP-Protocol-Version: {PROTOCOL_VERSION}",
                f"Content-Length: {length}",
            ]
            if self._session_id:
                lines.append(f"Mcp-Session-Id: {self._session_id}")
            head = ("\r\n".join(lines) + "\r\n\r\n").encode()
            self._head_cache[length] = head
        return head

    def send(self, data: bytes, agent: int = 0) -> None:
        conn = self._conns.get(agent) or self._connect(agent)
        body = data.rstrip(b"\n")
        try:
            conn.sock.sendall(self._head(len(body)) + body)
        except OSError as e:
            raise CellError(f"HTTP send failed ({e.__class__.__name__}: {e}){self._describe_exit()}") from None

    def poll(self, timeout_s: float | None) -> list[tuple[int, dict]]:
        out: list[tuple[int, dict]] = []
        for key, _ in self._sel.select(timeout_s):
            conn: _Conn = key.data
            try:
                chunk = conn.sock.recv(READ_CHUNK)
            except OSError as e:
                raise CellError(f"HTTP connection failed ({e.__class__.__name__}: {e}){self._describe_exit()}") from None
            t_recv = self._clock()
            if not chunk:
                raise CellError(f"server closed the HTTP connection{self._describe_exit()}")
            conn.buf += chunk
            if len(conn.buf) > MAX_MESSAGE_BYTES + 65536:  # a body that never ends (chunked) or a flood
                raise CellError(f"server sent more than {MAX_MESSAGE_BYTES} bytes without completing a response")
            while True:
                parsed = parse_response(conn.buf)
                if parsed is None:
                    break
                status, headers, body, used = parsed
                del conn.buf[:used]
                if "mcp-session-id" in headers and headers["mcp-session-id"] != self._session_id:
                    self._session_id = headers["mcp-session-id"]
                    self._head_cache.clear()
                if status == 202:
                    continue
                if status != 200:
                    raise CellError(f"server answered HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
                try:
                    msgs = messages_from_body(headers, body)
                except ValueError:
                    raise CellError(f"server sent a body that is not JSON: {body[:120]!r}") from None
                except RecursionError:
                    raise CellError(f"server sent a body nested deeper than gcbench can parse (about "
                                    f"{sys.getrecursionlimit()} levels of arrays or objects): {body[:120]!r}") from None
                out.extend((t_recv, m) for m in msgs if isinstance(m, dict))
        return out

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.sock.close()
            except OSError:
                pass
        self._sel.close()
