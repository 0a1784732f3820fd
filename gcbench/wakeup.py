"""The machine's wake-up floor: the round trip of one byte between two processes over pipes, measured once at
the start of every run (run.json environment["wakeup_floor"]). A call's latency cannot be shorter than it: a
latency near the floor is the machine's (scheduler, a halted vCPU waking), not the server's.

Two phases of the same ping-pong: `busy`, round trips back to back (both processes stay awake), and `idle`, a
short sleep before each round trip so an idle vCPU halts as it does between the calls of a real run; on a VM
the idle floor can be ten times the busy one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from gcbench import procs

ROUND_TRIPS = 1000  # per phase
WARMUP_ROUND_TRIPS = 20  # discarded: the child's first reads page in its code
IDLE_GAP_S = 0.001  # the sleep before each idle round trip
# the echo side: one byte in, the same byte out, until EOF (unbuffered, no Python object per round trip kept)
_ECHO = ("import os\nwhile True:\n    b = os.read(0, 1)\n    if not b:\n        break\n    os.write(1, b)\n")


def ping_pong(send: Callable[[], None], recv: Callable[[], None], n: int, gap_s: float = 0.0,
              clock: Callable[[], int] = time.monotonic_ns, sleep: Callable[[float], None] = time.sleep) -> np.ndarray:
    """n round trips (send, then wait for the answer), each timed by `clock` in ns; `gap_s` > 0 sleeps before
    each one, outside the timed interval."""
    out = [0] * n
    for i in range(n):
        if gap_s > 0:
            sleep(gap_s)
        t0 = clock()
        send()
        recv()
        out[i] = clock() - t0
    return np.array(out, dtype=np.int64)


def round_trip_stats(rtt_ns: np.ndarray) -> dict:
    """p50, p99, min and max of the round trips, in ns."""
    r = np.asarray(rtt_ns, np.int64)
    p50, p99 = np.percentile(r, [50, 99])
    return {"round_trips": int(len(r)), "p50_ns": int(round(p50)), "p99_ns": int(round(p99)),
            "min_ns": int(r.min()), "max_ns": int(r.max())}


def measure_floor(pinning: dict | None = None, n: int = ROUND_TRIPS, gap_s: float = IDLE_GAP_S) -> dict:
    """The wake-up floor as run.json records it: method, both phases' stats, and the echo process's cores
    (with --pin, the servers' cores: the same hop a call makes). Never fails a run: a machine where the echo
    process cannot run gets {"error": why}."""
    cores = (pinning or {}).get("server_cores") if (pinning or {}).get("pinned") else None
    try:
        with procs.held():  # a process that exists is registered before a signal can act
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _ECHO], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, bufsize=0, start_new_session=True, close_fds=True,
                                    preexec_fn=procs.die_with_parent(cores))
            procs.register_group(proc.pid, "wake-up floor echo process")
    except OSError as e:
        return {"error": f"cannot start the echo process: {e.strerror or e}"}
    try:
        wfd, rfd = proc.stdin.fileno(), proc.stdout.fileno()

        def send() -> None:
            os.write(wfd, b"x")

        def recv() -> None:
            if not os.read(rfd, 1):
                raise OSError("the echo process closed its pipe")

        ping_pong(send, recv, WARMUP_ROUND_TRIPS)
        busy = ping_pong(send, recv, n)
        idle = ping_pong(send, recv, n, gap_s)
    except OSError as e:
        return {"error": f"the ping-pong failed: {e.strerror or e}"}
    finally:
        _stop(proc)
    return {"method": "one byte between two processes over pipes (round trip)", "idle_gap_us": round(gap_s * 1e6),
            "echo_cores": cores, "busy": round_trip_stats(busy), "idle": round_trip_stats(idle)}


def _stop(proc: subprocess.Popen) -> None:
    with procs.held():
        try:
            for f in (proc.stdin, proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                procs.kill_group(proc.pid)
                proc.wait()
        finally:
            procs.unregister_group(proc.pid)

