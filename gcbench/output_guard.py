"""Caps on what a server writes beside MCP: its stderr (head and tail kept) and its GC side channel.

A server writing 1 MiB blocks to stderr filled `cells/<cell>.stderr.log` at about 300 MB/s. A file the server
writes itself cannot be capped from outside (its descriptor's offset moves on), so the server's stderr is a
pipe, drained by a harness thread (`OutputGuard`) into a `HeadTail` log: the first HEAD_BYTES go to the file
as they come, the last TAIL_BYTES are kept in memory and appended with a line counting what was dropped when
the server stops. The tail is also what a failed cell's reason quotes. An HTTP server's stdout, which
nothing else reads after its port line, is drained into the same log.

Why a thread and not another watcher process: while the server is quiet the thread is blocked in select()
without the GIL, waking once per CHECK_EVERY_S to look at the side channel's size (one stat), so the per-call
path sees nothing; a thread also has the tail at hand when the server dies. A server that floods stderr makes
the thread run, which competes for the harness's GIL: the cell's `stderr_dropped_bytes` says it happened.

The side channel is the server's own file (appended; the probes flush it): past SIDE_CHANNEL_MAX_BYTES the
guard kills the server, and the cell fails saying its GC events would be incomplete, rather than reporting
a dead time from part of them. gcbench.side_channel refuses a larger file on reading as well.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import threading
from pathlib import Path

MIB = 1024 * 1024
HEAD_BYTES = 1 * MIB
TAIL_BYTES = 1 * MIB
SIDE_CHANNEL_MAX_BYTES = 256 * MIB  # the Python probe writes about 200 bytes per GC event: over 1M events
CHECK_EVERY_S = 1.0
READ_BYTES = 1 * MIB
_F_SETPIPE_SZ = 1031  # Linux: a 1 MiB pipe makes a flood 16 times fewer wake-ups than the 64 KiB default


class HeadTail:
    """A log file that keeps the first head_bytes and the last tail_bytes written to it, and counts the rest.

    A write that fails (a full disk) stops the file where it is; the count goes on."""

    def __init__(self, path: Path, head_bytes: int = HEAD_BYTES, tail_bytes: int = TAIL_BYTES) -> None:
        self.path = path
        self.head_bytes = head_bytes
        self.tail_bytes = tail_bytes
        self.total = 0  # bytes received
        self.head = 0  # bytes received into the head (in the file unless a write failed)
        self.write_error: str | None = None
        self._tail = bytearray()
        self._lock = threading.Lock()
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115  (closed in close)

    def write(self, data: bytes) -> None:
        with self._lock:
            self.total += len(data)
            room = self.head_bytes - self.head
            if room > 0:
                self.head += len(data[:room])
                self._to_file(data[:room])
                data = data[room:]
            if data:
                self._tail += data
                if len(self._tail) > 2 * self.tail_bytes:  # trimmed in bulk: amortised O(1) per byte
                    del self._tail[: len(self._tail) - self.tail_bytes]

    @property
    def dropped(self) -> int:
        """Bytes received that the log does not keep (the middle of a flood)."""
        with self._lock:
            return self.total - self.head - min(len(self._tail), self.tail_bytes)

    def last_bytes(self, n: int) -> bytes:
        """The last n bytes received (at most the head and the tail kept)."""
        with self._lock:
            if self._tail:
                return bytes(self._tail[-n:])
            try:
                with open(self.path, "rb") as f:
                    f.seek(max(0, self.head - n))
                    return f.read(n)
            except OSError:
                return b""

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            tail = bytes(self._tail[-self.tail_bytes:])
            dropped = self.total - self.head - len(tail)
            if dropped > 0:
                self._to_file(f"\n[gcbench: {dropped} bytes dropped here: the log keeps the first "
                              f"{self.head_bytes} and the last {self.tail_bytes} bytes]\n".encode())
            self._to_file(tail)
            self._tail = bytearray(tail)  # what `dropped` and last_bytes still see
            self._file.close()

    def _to_file(self, data: bytes) -> None:
        if self.write_error is None and data:
            try:
                self._file.write(data)
            except OSError as e:
                self.write_error = e.strerror or str(e)


class OutputGuard:
    """Drains one server's stderr pipe into a HeadTail log and watches the size of its side channel."""

    def __init__(self, stderr_path: Path, events_path: Path | None, side_channel_max_bytes: int | None = None) -> None:
        self.log = HeadTail(stderr_path)
        self.events_path = events_path
        self.side_channel_max_bytes = side_channel_max_bytes or SIDE_CHANNEL_MAX_BYTES
        self.verdict: str | None = None  # why the guard stopped the server
        self._pid: int | None = None
        self._fd: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._stdout_fd: int | None = None  # HTTP servers: their stdout, once the port line is read
        self._eof = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, stderr_pipe, pid: int) -> None:
        """Take over the read end of the server's stderr pipe (a file object from Popen)."""
        self._fd = os.dup(stderr_pipe.fileno())
        stderr_pipe.close()
        try:
            fcntl.fcntl(self._fd, _F_SETPIPE_SZ, READ_BYTES)
        except OSError:
            pass  # a smaller pipe only means more wake-ups
        self._pid = pid
        self._thread = threading.Thread(target=self._run, name=f"gcbench-stderr-{pid}", daemon=True)
        self._thread.start()

    def drain_stdout(self, stdout_fd: int) -> None:
        """HTTP mode: after the port line nothing else reads the server's stdout, so a server that logs there
        would block once the pipe is full and look hung. Its stdout goes into the same capped log."""
        fd = os.dup(stdout_fd)
        os.set_blocking(fd, True)  # the port line was read without blocking; poll() says when to read
        self._stdout_fd = fd
        os.write(self._wake_w, b"o")  # the thread registers it (a poll object is not shared across threads)

    def _run(self) -> None:
        fd = self._fd
        poller = select.poll()  # not select(): it fails on a descriptor number over 1023
        poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        out_fd = None
        try:
            while True:
                ready = {f for f, _ in poller.poll(CHECK_EVERY_S * 1000)}
                if fd in ready:
                    data = os.read(fd, READ_BYTES)
                    if not data:
                        return
                    self.log.write(data)
                if out_fd is not None and out_fd in ready:
                    data = os.read(out_fd, READ_BYTES)
                    if data:
                        self.log.write(data)
                    else:  # its stdout closed: stderr still tells when the server is gone
                        poller.unregister(out_fd)
                        out_fd = None
                if self._wake_r in ready:
                    if b"x" in os.read(self._wake_r, 16):
                        return
                    if self._stdout_fd is not None and out_fd is None:
                        out_fd = self._stdout_fd
                        poller.register(out_fd, select.POLLIN)
                self._check_side_channel()
        except OSError:
            return
        finally:
            self._eof.set()

    def _check_side_channel(self) -> None:
        if self.verdict is not None or self.events_path is None:
            return
        try:
            size = os.stat(self.events_path).st_size
        except OSError:
            return
        if size > self.side_channel_max_bytes:
            self.verdict = (f"stopped by gcbench: its GC side channel reached {size / MIB:.0f} MiB, over the cap of "
                            f"{self.side_channel_max_bytes / MIB:.0f} MiB (its GC events would be incomplete)")
            try:
                os.killpg(self._pid, signal.SIGKILL)
            except OSError:
                pass

    def wait_eof(self, timeout_s: float) -> bool:
        """Wait until the server's stderr is closed (the server and its children are gone)."""
        return self._eof.wait(timeout_s)

    def last_bytes(self, n: int) -> bytes:
        return self.log.last_bytes(n)

    def close(self, timeout_s: float = 1.0) -> None:
        """After the server is stopped: read what is left (until EOF, or timeout_s if a stray process still
        holds the pipe), then finish the log."""
        if self._thread is not None:
            self._eof.wait(timeout_s)
            os.write(self._wake_w, b"x")
            self._thread.join()
            self._thread = None
        for fd in (self._fd, self._stdout_fd, self._wake_r, self._wake_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = self._stdout_fd = self._wake_r = self._wake_w = None
        self.log.close()
