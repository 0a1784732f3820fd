"""The cell's guard and memory meter: a small watcher process beside each server that samples the RSS of the
server's process tree, stops the server when its processes use more than the memory cap, and ends every
process of the cell when gcbench dies without stopping it.

Why a watcher process, polling RSS:
- an address-space limit (RLIMIT_AS) would break Go and Node, which reserve far more virtual memory than
  they use, and says nothing about real memory; RSS of the server's process tree is what can take the
  machine down, and what a reader weighs against GC pauses;
- a separate process does not disturb the measurement: no code in the chain loop, no thread competing for
  the harness's GIL. Each tick (INTERVAL_S, 10 ms) it preads /proc/<pid>/statm of the known processes (the
  tree under the server is re-read about once a second). Measured on this 2-core VM: 0.7-1.0% of one core
  (75-95 us of CPU a tick, mostly the wake-up); every cell's memory record carries what it cost
  (watcher_cpu_ms, watcher_cpu_share).

The harness starts it (`MemoryWatch`) right after the server, with a pipe as its stdin, and waits for its
`ready` line (its first sample). Every tick's (t_ns, rss_bytes) goes into an in-memory buffer (bounded: past
MAX_SAMPLES it keeps every other sample and doubles its stride; the peak is kept exactly over every tick),
written once, when the watcher ends, as a CSV file (`t_ns,rss_bytes`, atomically), and summed up in one
`summary {json}` line on its stdout. When the tree's RSS goes over the cap it prints `over <rss_bytes>` and
SIGKILLs the server's process group and every process of the tree, then writes its samples and exits. At the
end of a cell the harness writes `stop` and closes the pipe: the watcher writes its samples and exits (the
harness stops the server itself). End of file without `stop` means the harness is gone (SIGKILL, OOM
killer): then the watcher SIGKILLs the server's process group, every process it has seen in the server's
tree, and every process whose environment carries this cell's GCBENCH_EVENTS path (a daemon the server
double-forked is in neither the group nor the tree, but inherits that variable), then exits. Every kill
goes through a pidfd opened and checked first, so a pid reused in between is never hit.
With no cap (`--max-server-memory off`) it samples and guards.
This file is also the watcher's script: it runs with `python -I` and imports only the standard library.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from array import array

INTERVAL_S = 0.01  # RSS sampling interval (the cap is checked at every sample)
TREE_EVERY_S = 1.0  # how often the process tree under the server is re-read
READY_TIMEOUT_S = 5.0  # longest wait for the watcher's first sample
MAX_SAMPLES = 200_000  # kept samples (past it: every other one); 33 minutes at 10 ms, 3.2 MB
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
    """Harness side: the watcher of one server process (and its descendants).

    cap_bytes None: sample only, never stop the server. samples_path None: keep no samples file (the
    summary still has the peak). `summary` (after stop) is the watcher's summary line as a dict, or None
    when it gave none (it was killed).
    """

    def __init__(self, pid: int, cap_bytes: int | None, interval_s: float = INTERVAL_S,
                 samples_path: os.PathLike | str | None = None) -> None:
        self.cap_bytes = cap_bytes
        self.interval_s = interval_s
        self.samples_path = samples_path
        self.summary: dict | None = None
        self.ready = False  # the watcher has taken its first sample
        self._verdict: str | None = None
        self._lines: list[bytes] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), str(pid), str(cap_bytes or 0), str(interval_s),
             os.fspath(samples_path) if samples_path is not None else ""],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )

    def _take_line(self, wait_s: float) -> bool:
        """One more line of the watcher's stdout, if there is one within wait_s."""
        out = self.proc.stdout
        if out is None or out.closed:
            return False
        ready, _, _ = select.select([out], [], [], wait_s)
        if not ready:
            return False
        line = out.readline()
        if not line:
            return False
        self._lines.append(line)
        self._parse(line)
        return True

    def _parse(self, raw: bytes) -> None:
        word, _, rest = raw.decode("ascii", "replace").strip().partition(" ")
        if word == "over" and rest.isdigit() and self._verdict is None:
            self._verdict = (
                f"stopped by gcbench: its processes used {int(rest) / MIB:.0f} MiB, over the "
                f"--max-server-memory cap of {(self.cap_bytes or 0) / MIB:.0f} MiB"
            )
        elif word == "ready":
            self.ready = True
        elif word == "summary":
            try:
                doc = json.loads(rest)
            except ValueError:
                return
            if isinstance(doc, dict):
                self.summary = doc

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> bool:
        """Wait until the watcher samples (its interpreter takes 20-100 ms to start): a fast server's warm-up
        and measured window would otherwise be over before the first sample."""
        deadline = time.monotonic() + timeout_s
        while not self.ready and self._take_line(max(0.0, deadline - time.monotonic())):
            pass
        return self.ready

    def verdict(self, wait_s: float = 0.0) -> str | None:
        """Why the watcher stopped the server, or None (it did not)."""
        deadline = time.monotonic() + wait_s
        while self._verdict is None and self._take_line(max(0.0, deadline - time.monotonic())):
            pass  # "ready" comes first
        return self._verdict

    def stop(self) -> dict | None:
        """End the watcher (it writes its samples file first); its summary, or None."""
        proc = self.proc
        try:
            proc.stdin.write(b"stop\n")  # the harness is alive and stops the server itself
            proc.stdin.close()  # EOF: the watcher writes its samples and exits
        except OSError:  # it already exited (over the cap)
            pass
        try:
            proc.wait(timeout=5.0)  # writing 200,000 samples takes about 0.1 s
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        while self._take_line(0.0):  # what it printed before it exited (the pipe is at EOF after)
            pass
        proc.stdout.close()
        return self.summary


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


class Statm:
    """Open /proc/<pid>/statm of each watched process; pread at offset 0 re-reads the current value (checked:
    it follows a process's growth), 1.2 us a read against 9.7 us for open + read + close on this VM. A
    descriptor of a process that has exited reads nothing (ESRCH), never another process's figures."""

    def __init__(self, page: int) -> None:
        self.page = page
        self.fds: dict[int, int] = {}

    def watch(self, pids: list[int]) -> None:
        for pid in [p for p in self.fds if p not in pids]:
            os.close(self.fds.pop(pid))
        for pid in pids:
            if pid not in self.fds:
                try:
                    self.fds[pid] = os.open(f"/proc/{pid}/statm", os.O_RDONLY)
                except OSError:
                    pass

    def rss_bytes(self) -> int:
        total = 0
        for fd in self.fds.values():
            try:
                total += int(os.pread(fd, 128, 0).split()[1]) * self.page
            except (OSError, IndexError, ValueError):
                pass
        return total


class Samples:
    """A bounded (t_ns, rss_bytes) buffer: past `limit` it keeps every other sample and doubles its stride,
    so it always spans the whole cell; the peak is exact over every sample offered."""

    def __init__(self, limit: int = MAX_SAMPLES) -> None:
        self.limit = max(2, limit)
        self.t_ns = array("q")
        self.rss = array("q")
        self.stride = 1
        self.offered = 0
        self.peak_rss = 0
        self.peak_t_ns = 0

    def add(self, t_ns: int, rss: int) -> None:
        if rss > self.peak_rss:
            self.peak_rss, self.peak_t_ns = rss, t_ns
        if self.offered % self.stride == 0:
            self.t_ns.append(t_ns)
            self.rss.append(rss)
            if len(self.t_ns) >= self.limit:
                self.t_ns, self.rss = self.t_ns[::2], self.rss[::2]
                self.stride *= 2
        self.offered += 1

    def csv(self) -> bytes:
        t, r = self.t_ns, self.rss
        return ("t_ns,rss_bytes\n" + "".join(f"{t[i]},{r[i]}\n" for i in range(len(t)))).encode()


def _write_atomic(path: str, data: bytes) -> bool:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


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
    samples_path = argv[3] if len(argv) > 3 else ""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the harness's to handle
    stdin = sys.stdin.buffer.raw
    clock = time.monotonic_ns
    token = next((v for v in _environ(root) if v.startswith(b"GCBENCH_EVENTS=")), None)
    seen: dict[int, int] = {}  # pid -> start time of every process seen in the server's tree
    tree_every = max(1, round(TREE_EVERY_S / interval))
    samples = Samples()
    statm = Statm(os.sysconf("SC_PAGE_SIZE"))
    cpu0_ns, t0_ns = time.process_time_ns(), clock()
    pids = _tree(root)
    _see(pids, seen)
    statm.watch(pids)
    told = b""
    tick = 0
    over = False
    while True:
        if tick > 0:  # the first sample at once: then "ready", which the harness waits for
            ready, _, _ = select.select([stdin], [], [], interval)
            if ready:
                data = os.read(stdin.fileno(), 4096)
                if not data:
                    if b"stop" not in told:  # no goodbye: the harness died (SIGKILL, OOM killer)
                        _end_cell(root, seen, token)
                        return 0
                    break
                told = (told + data)[-16:]
                continue
        tick += 1
        if tick % tree_every == 0:
            pids = _tree(root)
            _see(pids, seen)
            statm.watch(pids)
        rss = statm.rss_bytes()
        if rss > 0:  # 0: no process of the tree left (or a zombie), nothing resident to record
            samples.add(clock(), rss)
        if tick == 1:
            _say(b"ready\n")
        if cap and rss > cap:
            pids = _tree(root)
            _say(f"over {rss}\n".encode())  # the harness may be gone: kill anyway
            try:
                os.killpg(root, signal.SIGKILL)
            except OSError:
                pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            over = True
            break
    cpu_ns, wall_ns = time.process_time_ns() - cpu0_ns, clock() - t0_ns  # the sampling loop's own cost
    written = bool(samples_path) and _write_atomic(samples_path, samples.csv())
    summary = {"interval_s": interval, "ticks": tick, "samples": samples.offered, "kept": len(samples.t_ns),
               "stride": samples.stride, "peak_rss_bytes": samples.peak_rss, "peak_t_ns": samples.peak_t_ns,
               "cpu_ns": cpu_ns, "wall_ns": wall_ns, "samples_file": written, "over_cap": over}
    _say(("summary " + json.dumps(summary, separators=(",", ":")) + "\n").encode())
    return 0


def _say(line: bytes) -> None:
    try:
        os.write(1, line)
    except OSError:  # the harness is gone
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
