"""Agent chains: each agent runs its chains one after another, each chain `calls` sequential tools/call.

This loop is the instrument. Per call it writes a request built before the first send (each row its own, so
a trace costs nothing more), stores two timestamps into preallocated lists and reads the response's id from
its head; parsing the responses (settle_replies), DataFrames and attribution happen after the window.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gcbench.errors import CellError
from gcbench.mcp import RawReply, call_outcome, call_template, describe_id
from gcbench.scenario import Chain, Think

FIRST_CALL_ID = 1
# Responses kept unparsed until the chains end (RawReply): at most this many bytes of them, the rest are
# parsed as they come (a cell of large payloads must not hold them all).
DEFER_BUDGET_BYTES = 64 * 1024 * 1024


@dataclass
class CallRecords:
    """One row per measured call (row = chain * calls + call)."""

    calls_per_chain: int
    agents: int
    t_send_ns: np.ndarray
    t_recv_ns: np.ndarray
    t_intended_ns: np.ndarray  # when the call was due: open-loop chain start, or previous reply + think
    ok: np.ndarray
    errors: dict[int, str]
    replies: list = field(default_factory=list)  # per row: a RawReply not yet parsed, or None (settle_replies)

    def __len__(self) -> int:
        return len(self.t_send_ns)


def think_schedule_ns(chain: Chain, rng: np.random.Generator) -> np.ndarray:
    """Think time before each call, in ns, shape (chains, calls); the first call of a chain has none."""
    shape = (chain.chains, chain.calls)
    t: Think = chain.think
    if t.dist == "fixed":
        ms = np.full(shape, t.ms)
    elif t.dist == "exponential":
        ms = rng.exponential(t.ms, shape) if t.ms > 0 else np.zeros(shape)
    elif t.dist == "uniform":
        ms = rng.uniform(t.min_ms, t.max_ms, shape)
    elif t.dist == "lognormal":
        # parameterised by its mean: mu = ln(mean) - sigma^2 / 2
        ms = rng.lognormal(np.log(t.ms) - t.sigma**2 / 2, t.sigma, shape) if t.ms > 0 else np.zeros(shape)
    else:  # validated in scenario.py
        raise ValueError(t.dist)
    ms[:, 0] = 0.0
    return (ms * 1e6).astype(np.int64)


def chain_agents(chain: Chain) -> int:
    """How many agents drive the chains: each chain its own in open loop, else `agents` (at most `chains`)."""
    return chain.chains if chain.rate_per_s > 0 else min(chain.agents, chain.chains)


def run_chains(transport, chain: Chain, tool: str, arguments: dict, think_ns: np.ndarray, call_timeout_s: float,
               clock: Callable[[], int] = time.monotonic_ns, requests: Sequence[bytes] | None = None) -> CallRecords:
    """drive_chains, then settle_replies: every call's outcome known."""
    return settle_replies(drive_chains(transport, chain, tool, arguments, think_ns, call_timeout_s, clock, requests))


def settle_replies(rec: CallRecords) -> CallRecords:
    """Parse the responses drive_chains kept unparsed and set each call's outcome (after the measured window).

    A response whose parsed id is not the one its head showed fails the cell as any wrong id does.
    """
    ok = rec.ok
    for row, reply in enumerate(rec.replies):
        if reply is None:
            continue
        msg = reply.message()
        msg_id = msg.get("id")
        if type(msg_id) is not int or msg_id != FIRST_CALL_ID + row:
            raise CellError(f"server answered with an id it was never sent: {describe_id(msg_id)}")
        outcome = call_outcome(msg)
        if outcome is None:
            ok[row] = True
        else:
            rec.errors[row] = outcome
    rec.replies = []
    return rec


def drive_chains(
    transport,
    chain: Chain,
    tool: str,
    arguments: dict,
    think_ns: np.ndarray,
    call_timeout_s: float,
    clock: Callable[[], int] = time.monotonic_ns,
    requests: Sequence[bytes] | None = None,
) -> CallRecords:
    """Drive every chain of a cell; return one row per call (responses in `replies` still to be settled).

    An id comes back exactly as sent: an integer (1.0 for 1 is refused, as in the handshake and warm-up).

    Closed loop (chain.rate_per_s == 0): `agents` agents each run their chains back to back.
    Open loop: chain i is due at t0 + i / rate whatever happened before (each chain its own agent), so a
    slow server makes chains queue up instead of silently lowering the load (wrk2's lesson); every call
    keeps its intended send time, and chain latency can be read from the intended start.
    `requests`: each row's own request (a trace: trace.request_templates, with a %d hole for the id), built
    before the measured window; default: every row calls `tool` with `arguments`.
    """
    K = chain.calls
    C = chain.chains
    open_loop = chain.rate_per_s > 0
    A = chain_agents(chain)
    total = C * K
    if requests is None:
        requests = [call_template(tool, arguments)] * total
    elif len(requests) != total:
        raise ValueError(f"{len(requests)} requests for {total} calls")
    # every request whole before the first send: the per-call path formats nothing
    wire = [template % (FIRST_CALL_ID + row) for row, template in enumerate(requests)]
    think_flat = think_ns.reshape(-1).tolist()
    t_send = [0] * total
    t_recv = [0] * total
    t_intended = [0] * total
    ok = [False] * total
    errors: dict[int, str] = {}
    replies: list[RawReply | None] = [None] * total
    budget = DEFER_BUDGET_BYTES
    timeout_ns = int(call_timeout_s * 1e9)

    t0 = clock()
    # (due time, agent) of agents waiting to send; per agent the row it sends next or waits for
    if open_loop:
        interval_ns = 1e9 / chain.rate_per_s
        due = [(t0 + int(a * interval_ns), a) for a in range(A)]
    else:
        due = [(t0, a) for a in range(A)]
    heapq.heapify(due)
    row_of = list(range(0, A * K, K))
    inflight: dict[int, int] = {}  # agent -> t_send of its outstanding call
    done = 0
    send = transport.send
    poll = transport.poll
    heappop = heapq.heappop
    heappush = heapq.heappush

    while done < total:
        now = clock()
        while due and due[0][0] <= now:
            intended, a = heappop(due)
            row = row_of[a]
            t_intended[row] = intended
            t = clock()
            t_send[row] = t
            send(wire[row], a)
            inflight[a] = t
        wake_ns = due[0][0] if due else None
        if inflight:
            # checked on every wake-up, not only when poll comes back empty: a server that keeps its pipe
            # full of notifications never lets poll time out (`now` is this wake-up's one clock read; the
            # calls just sent are later than it, so they cannot look late)
            deadline = min(inflight.values()) + timeout_ns
            if now >= deadline:
                late = min(inflight, key=inflight.get)
                row = row_of[late]
                raise CellError(f"no answer within {call_timeout_s:g} s (call {row % K} of chain {row // K})")
            if wake_ns is None or deadline < wake_ns:
                wake_ns = deadline
        timeout_s = None if wake_ns is None else max(0.0, (wake_ns - now) / 1e9)
        polled = poll(timeout_s)
        for t_r, msg in polled:
            if type(msg) is RawReply:
                msg_id = msg.id
            elif "method" in msg:
                continue  # a server's own notification or request (e.g. a log message), not an answer
            else:
                msg_id = msg.get("id")
            row = msg_id - FIRST_CALL_ID if type(msg_id) is int else -1
            if not 0 <= row < total:
                raise CellError(f"server answered with an id it was never sent: {describe_id(msg_id)}")
            a = row // K if open_loop else (row // K) % A
            if a not in inflight or row_of[a] != row:
                raise CellError(f"server answered id {msg_id!r} twice or out of turn")
            del inflight[a]
            t_recv[row] = t_r
            if type(msg) is RawReply and budget > 0:
                replies[row] = msg  # parsed by settle_replies, after the window
                budget -= len(msg.line)
            else:
                if type(msg) is RawReply:
                    msg = msg.message()
                    if msg.get("id") != msg_id or type(msg.get("id")) is not int:
                        raise CellError(f"server answered with an id it was never sent: {describe_id(msg.get('id'))}")
                outcome = call_outcome(msg)
                if outcome is None:
                    ok[row] = True
                else:
                    errors[row] = outcome
            done += 1
            if row % K + 1 < K:
                row_of[a] = row + 1
                heappush(due, (t_r + think_flat[row + 1], a))
            elif not open_loop and row // K + A < C:
                row_of[a] = (row // K + A) * K
                heappush(due, (t_r, a))

    return CallRecords(
        calls_per_chain=K,
        agents=A,
        t_send_ns=np.array(t_send, dtype=np.int64),
        t_recv_ns=np.array(t_recv, dtype=np.int64),
        t_intended_ns=np.array(t_intended, dtype=np.int64),
        ok=np.array(ok, dtype=bool),
        errors=errors,
        replies=replies,
    )
