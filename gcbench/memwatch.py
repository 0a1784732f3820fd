"""The cell's guard: a small watcher process beside each server that stops it when its processes use more
than the memory cap, and ends every process of the cell when gcbench dies without stopping it.

Why a watcher process, polling RSS:
- an address-space limit (RLIMIT_AS) would break Go and Node, which reserve far more virtual memory than
  they use, and says nothing about real memory; RSS of the server's process tree is what can take the
  machine down;
- a separate process does not disturb the measurement: no code in the chain loop, no thread competing for
  the harness's GIL. Each tick it reads only /proc/<pid>/statm of the known processes (the tree under the
  server is re-read every second), a few tens of microseconds of CPU every 100 ms.

The harness starts it (`MemoryWatch`) right after the server, with a pipe as its stdin. When the tree's RSS
goes over the cap it prints `over <rss_bytes>` and SIGKILLs the server's process group and every process of
the tree, then exits. At the end of a cell the harness writes `stop` and closes the pipe: the watcher exits
(the harness stops the server itself). End of file without `stop` means the harness is gone (SIGKILL, OOM
killer): then the watcher SIGKILLs the server's process group, every process it has seen in the server's
tree, and every process whose environment carries this cell's GCBENCH_EVENTS path (a daemon the server
double-forked is in neither the group nor the tree, but inherits that variable), then exits. Every kill
goes through a pidfd opened and checked first, so a pid reused in between is never hit.
With no cap (`--max-server-memory off`) it only guards.
This file is also the watcher's script: it runs with `python -I` and imports only the standard library.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

INTERVAL_S = 0.1
TREE_EVERY_TICKS = 10
MIB = 1024 * 1024


def parse_memory_cap(text: str, total_bytes: int) -> int | None:
    """'50%' of total_bytes, '512MiB', '8GiB', '4G', a plain number of MiB, or 'off' (None)."""
    t = text.strip().lower().replace(" ", "")
    if t in ("off", "none", "0"):
        return None
    units = {"%": None, "gib": 1024**3, "gb": 1024**3, "g": 1024**3, "mib": MIB, "mb": MIB, "m": MIB,
             "kib": 1024, "kb": 1024, "k": 1024, "b": 1}
    unit = next((u for u in units if t.endswith(u)), "")
    number, mult = (t[: -len(unit)], units[unit]) if unit else (t, MIB)
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"expected a size such as 50%, 4GiB or 512MiB, or off; got {text!r}")
    if unit == "%":
        if value > 100:
            raise ValueError(f"{text!r} is more than 100% of the memory")
        return int(total_bytes * value / 100)
    if value * mult < MIB:
        raise ValueError(f"{text!r} is below 1 MiB")
    return int(value * mult)


def total_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class MemoryWatch:
    """Harness side: the watcher of one server process (and its descendants)."""

    def __init__(self, pid: int, cap_bytes: int | None, interval_s: float = INTERVAL_S) -> None:
        self.cap_bytes = cap_bytes
        self._verdict: str | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), str(pid), str(cap_bytes or 0), str(interval_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )

    def verdict(self, wait_s: float = 0.0) -> str | None:
        """Why the watcher stopped the server, or None (it did not)."""
        if self._verdict is None and self.proc.stdout is not None:
            ready, _, _ = select.select([self.proc.stdout], [], [], wait_s)
            if ready:
                line = self.proc.stdout.readline().decode("ascii", "replace").split()
                if len(line) == 2 and line[0] == "over" and line[1].isdigit():
                    self._verdict = (
                        f"stopped by gcbench: its processes used {int(line[1]) / MIB:.0f} MiB, over the "
                        f"--max-server-memory cap of {self.cap_bytes / MIB:.0f} MiB"
                    )
        return self._verdict

    def stop(self) -> None:
        proc = self.proc
        try:
            proc.stdin.write(b"stop\n")  # the harness is alive and stops the server itself
            proc.stdin.close()  # EOF: the watcher exits
        except OSError:  # it already exited (over the cap)
            pass
        self.verdict(0.0)
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ----------------------------------------------------------------------------------------- the watcher


def _tree(root: int) -> list[int]:
    """root and every descendant, from /proc/<pid>/task/<tid>/children."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return out


def _rss_bytes(pids: list[int], page: int) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot): with the pid, it names one process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _environ(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _kill_if(pid: int, still_it) -> bool:
    """SIGKILL pid if still_it(pid) holds once a pidfd pins the process (no pid reuse in between)."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return False
    try:
        if not still_it(pid):
            return False
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _end_cell(root: int, seen: dict[int, int], token: bytes | None) -> None:
    """The harness is gone: end the server's group, every process seen in its tree, and every process
    carrying the cell's token in its environment (a few passes: one may fork while the others die)."""
    me = os.getpid()
    for _ in range(5):
        try:
            os.killpg(root, signal.SIGKILL)
        except OSError:
            pass
        hits = 0
        for pid, started in list(seen.items()):
            hits += _kill_if(pid, lambda p, s=started: _start_time(p) == s)
        if token is not None:
            for name in os.listdir("/proc"):
                if name.isdigit() and int(name) != me:
                    hits += _kill_if(int(name), lambda p: token in _environ(p))
        if not hits:
            return
        time.sleep(0.05)


def _see(pids: list[int], seen: dict[int, int]) -> None:
    for pid in pids:
        if pid not in seen:
            started = _start_time(pid)
            if started is not None:
                seen[pid] = started


def main(argv: list[str]) -> int:
    root, cap, interval = int(argv[0]), int(argv[1]), float(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the harness's to handle
    page = os.sysconf("SC_PAGE_SIZE")
    stdin = sys.stdin.buffer.raw
    token = next((v for v in _environ(root) if v.startswith(b"GCBENCH_EVENTS=")), None)
    seen: dict[int, int] = {}  # pid -> start time of every process seen in the server's tree
    pids = _tree(root)
    _see(pids, seen)
    told = b""
    tick = 0
    while True:
        ready, _, _ = select.select([stdin], [], [], interval if cap else interval * TREE_EVERY_TICKS)
        if ready:
            data = os.read(stdin.fileno(), 4096)
            if not data:
                if b"stop" not in told:  # no goodbye: the harness died (SIGKILL, OOM killer)
                    _end_cell(root, seen, token)
                return 0
            told = (told + data)[-16:]
            continue
        tick += 1
        if not cap or tick % TREE_EVERY_TICKS == 0:
            pids = _tree(root)
            _see(pids, seen)
        if not cap:
            continue
        rss = _rss_bytes(pids, page)
        if rss > cap:
            pids = _tree(root)
            try:
                os.write(1, f"over {rss}\n".encode())
            except OSError:  # the harness is gone: kill anyway
                pass
            try:
                os.killpg(root, signal.SIGKILL)
            except OSError:
                pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
