"""Where a user's Streamable HTTP server listens: a URL given, or the first one it prints.

`--server-cmd ... --transport http` starts the server with its stdout joined to its stderr (the cell's
stderr log: nobody reads a pipe during the calls, and a full pipe would stop the server). gcbench then waits
until the server accepts connections at `--url`, or, without it, at the first loopback URL the server prints
(uvicorn: "Uvicorn running on http://127.0.0.1:8000"), or the port of a `GCBENCH_LISTENING <port>` line; a URL
printed without a path gets the Streamable HTTP default `/mcp`.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from gcbench.errors import CellError, GcbenchError

DEFAULT_PATH = "/mcp"
POLL_S = 0.005
# a URL on this machine, as servers print them
URL_IN_OUTPUT = re.compile(rb"https?://(127\.0\.0\.1|localhost|\[::1\]|0\.0\.0\.0)(?::(\d{1,5}))?(/[^\s\"'<>()]*)?")
ANNOUNCEMENT = re.compile(rb"^GCBENCH_LISTENING (\d{1,5})\r?$", re.M)
# `sh -c` runs this with the user's argv as "$@": exec keeps the pid, stdout goes where stderr goes
STDOUT_TO_STDERR = ["/bin/sh", "-c", 'exec "$@" 1>&2', "sh"]


def parse_url(url: str, option: str) -> tuple[str, int, str]:
    """(host, port, path) of an http:// URL; a GcbenchError naming the option when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise GcbenchError(f"{option}: {url!r} is not a URL ({e})") from None
    if parts.scheme != "http":
        raise GcbenchError(f"{option}: {url!r}: only http:// is supported (plain Streamable HTTP; no TLS)")
    if not parts.hostname:
        raise GcbenchError(f"{option}: {url!r} has no host")
    host = parts.hostname
    if ":" in host:
        raise GcbenchError(f"{option}: {url!r}: IPv6 hosts are not supported; use 127.0.0.1")
    path = parts.path or DEFAULT_PATH
    if parts.query:
        path += "?" + parts.query
    return host, port or 80, path


def url_in_output(data: bytes) -> tuple[str, int, str] | None:
    """The first loopback URL with a port the server printed, or its `GCBENCH_LISTENING <port>` line (the
    built-in servers' announcement, which a user's server may copy)."""
    announced = ANNOUNCEMENT.search(data)
    if announced and 0 < int(announced.group(1)) < 65536:
        return "127.0.0.1", int(announced.group(1)), DEFAULT_PATH
    m = URL_IN_OUTPUT.search(data)
    if not m or not m.group(2):
        return None
    host = m.group(1).decode()
    host = "127.0.0.1" if host in ("0.0.0.0", "[::1]") else host
    path = m.group(3).decode() if m.group(3) and m.group(3) != b"/" else DEFAULT_PATH
    return host, int(m.group(2)), path.rstrip(".,;")


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_endpoint(proc, stderr_path: Path, url: tuple[str, int, str] | None, timeout_s: float,
                      describe_exit=lambda: "") -> tuple[str, int, str]:
    """Wait until the started server accepts connections at `url` (or the URL it prints); CellError if it exits
    or does not within timeout_s."""
    deadline = time.monotonic() + timeout_s
    found = url
    while True:
        if found is None:
            try:
                found = url_in_output(stderr_path.read_bytes()[:1 << 20])
            except OSError:
                pass
        if found is not None and _accepts(found[0], found[1]):
            return found
        if proc.poll() is not None:
            raise CellError(f"the server exited before it accepted HTTP connections{describe_exit()}")
        if time.monotonic() > deadline:
            if found is None:
                raise CellError(f"the server printed no http://127.0.0.1:PORT URL within {timeout_s:g} s "
                                f"(give it with --url){describe_exit()}")
            raise CellError(f"the server did not accept connections at http://{found[0]}:{found[1]} within "
                            f"{timeout_s:g} s{describe_exit()}")
        time.sleep(POLL_S)
