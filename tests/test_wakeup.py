"""The machine's wake-up floor: the ping-pong's timing logic with a fake clock, and one real measurement."""

import os
import subprocess

import numpy as np
import psutil

from gcbench import wakeup


class FakeClock:
    """Starts at an odd offset and advances exactly: by 1 per read, by `rtt` per answer, by the sleep."""

    def __init__(self, rtt_ns):
        self.t, self.rtt, self.sleeps = 7_777_777_777, list(rtt_ns), []

    def __call__(self):
        return self.t

    def recv(self):
        self.t += self.rtt.pop(0)

    def sleep(self, s):
        self.sleeps.append(s)
        self.t += int(s * 1e9)


def test_each_round_trip_is_timed_from_send_to_answer_and_the_idle_gap_is_left_out():
    clock = FakeClock([5_000, 7_000, 90_000])
    sent = []
    rtt = wakeup.ping_pong(lambda: sent.append(clock.t), clock.recv, 3, gap_s=0.001, clock=clock, sleep=clock.sleep)
    assert rtt.tolist() == [5_000, 7_000, 90_000]
    assert clock.sleeps == [0.001] * 3 and len(sent) == 3
    busy = FakeClock([1, 2])
    assert wakeup.ping_pong(lambda: None, busy.recv, 2, clock=busy, sleep=busy.sleep).tolist() == [1, 2]
    assert busy.sleeps == []  # back to back: no gap


def test_round_trip_stats():
    s = wakeup.round_trip_stats(np.arange(1, 102) * 1_000)
    assert s == {"round_trips": 101, "p50_ns": 51_000, "p99_ns": 100_000, "min_ns": 1_000, "max_ns": 101_000}


def test_an_echo_process_that_cannot_start_gives_a_reason_not_a_failed_run(monkeypatch):
    def refuse(*a, **kw):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    assert wakeup.measure_floor() == {"error": "cannot start the echo process: Too many open files"}


def test_the_floor_is_measured_positive_and_leaves_no_process_behind():
    before = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    f = wakeup.measure_floor(n=200)
    assert "error" not in f, f
    for phase in ("busy", "idle"):
        s = f[phase]
        assert s["round_trips"] == 200
        assert 0 < s["min_ns"] <= s["p50_ns"] <= s["p99_ns"] <= s["max_ns"]
        assert s["p50_ns"] < 1_000_000_000  # a round trip over a pipe, not a timeout
    assert f["idle_gap_us"] == 1000
    after = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
    assert after <= before
