"""Open-loop chains: a synthetic stall, a fake transport and a fake clock give wrk2's corrected latency exactly."""

import numpy as np
import pandas as pd

from gcbench.analysis import chain_table
from gcbench.chain import FIRST_CALL_ID, run_chains
from gcbench.scenario import Chain


class FakeClock:
    """Advances only when the fake server works or the driver waits; starts at an odd offset."""

    def __init__(self) -> None:
        self.now = 987_654_321_000

    def __call__(self) -> int:
        return self.now


class StallingServer:
    """Answers each call after `service_ns`; the call with id `stall_id` takes `stall_ns` instead."""

    def __init__(self, clock: FakeClock, service_ns: int, stall_id: int, stall_ns: int) -> None:
        self.clock = clock
        self.service_ns = service_ns
        self.stall_id = stall_id
        self.stall_ns = stall_ns
        self.busy_until = 0
        self.queue: list[tuple[int, dict]] = []

    def send(self, data: bytes, agent: int = 0) -> None:
        import json

        msg_id = json.loads(data)["id"]
        start = max(self.clock.now, self.busy_until)  # one request at a time, like the built-in servers
        self.busy_until = start + (self.stall_ns if msg_id == self.stall_id else self.service_ns)
        self.queue.append((self.busy_until, {"jsonrpc": "2.0", "id": msg_id, "result": {"content": []}}))

    def poll(self, timeout_s):
        ready = sorted(self.queue, key=lambda x: x[0])
        if ready and (timeout_s is None or ready[0][0] <= self.clock.now + timeout_s * 1e9):
            t, msg = ready[0]
            self.queue.remove(ready[0])
            self.clock.now = max(self.clock.now, t)
            return [(t, msg)]
        if timeout_s is not None:
            self.clock.now += max(1, round(timeout_s * 1e9))
        return []


def test_open_loop_measures_from_the_intended_start():
    clock = FakeClock()
    t0 = clock.now
    # 5 chains of 1 call, one chain every 10 ms; each call takes 1 ms but the first stalls for 35 ms
    server = StallingServer(clock, service_ns=1_000_000, stall_id=FIRST_CALL_ID + 0, stall_ns=35_000_000)
    chain = Chain(calls=1, chains=5, agents=1, warmup_calls=0, rate_per_s=100.0)
    rec = run_chains(server, chain, "work", {}, np.zeros((5, 1), np.int64), call_timeout_s=10, clock=clock)
    assert rec.ok.all()
    intended = rec.t_intended_ns - t0
    assert intended.tolist() == [0, 10_000_000, 20_000_000, 30_000_000, 40_000_000]
    calls = pd.DataFrame({
        "backend": "x", "gc_mode": "default", "rep": 0, "chain": np.arange(5), "call": 0,
        "t_send_ns": rec.t_send_ns, "t_recv_ns": rec.t_recv_ns, "t_intended_ns": rec.t_intended_ns,
        "latency_ns": rec.t_recv_ns - rec.t_send_ns, "gc_overlap_ns": 0, "ok": True,
    })
    chains = chain_table(calls)
    # the server is busy until 35 ms; chains due at 10, 20, 30 ms queue behind the stall and finish at 36,
    # 37, 38 ms; the chain due at 40 ms finds the server idle. Hand-computed, in ms:
    corrected = chains["chain_corrected_ns"].to_numpy() / 1e6
    assert corrected.tolist() == [35.0, 26.0, 17.0, 8.0, 1.0]
    # the harness sent every chain on schedule, so here raw (from the actual send) equals corrected
    assert (rec.t_send_ns == rec.t_intended_ns).all()
    assert (chains["chain_ns"] == chains["chain_corrected_ns"]).all()
    # wrk2-style percentiles over the corrected values (numpy's linear interpolation)
    assert np.percentile(corrected, 50) == 17.0 and np.percentile(corrected, 100) == 35.0


def test_a_closed_loop_agent_hides_the_queueing_that_open_loop_shows():
    """Same stall, one closed-loop agent: each chain starts only after the previous one, so the queueing
    delay never shows in per-chain latency (coordinated omission); open loop keeps it."""
    clock = FakeClock()
    server = StallingServer(clock, service_ns=1_000_000, stall_id=FIRST_CALL_ID + 0, stall_ns=35_000_000)
    chain = Chain(calls=1, chains=5, agents=1, warmup_calls=0)
    rec = run_chains(server, chain, "work", {}, np.zeros((5, 1), np.int64), call_timeout_s=10, clock=clock)
    assert ((rec.t_recv_ns - rec.t_send_ns) / 1e6).tolist() == [35.0, 1.0, 1.0, 1.0, 1.0]


def test_closed_loop_intended_start_is_the_previous_reply_plus_think():
    clock = FakeClock()
    server = StallingServer(clock, service_ns=2_000_000, stall_id=-1, stall_ns=0)
    think = np.array([[0, 5_000_000, 5_000_000]], np.int64)
    chain = Chain(calls=3, chains=1, agents=1, warmup_calls=0)
    rec = run_chains(server, chain, "work", {}, think, call_timeout_s=10, clock=clock)
    gaps = rec.t_intended_ns[1:] - rec.t_recv_ns[:-1]
    assert gaps.tolist() == [5_000_000, 5_000_000]
    assert (rec.t_send_ns >= rec.t_intended_ns).all()
