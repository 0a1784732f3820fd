"""Agent chains: each agent runs its chains one after another, each chain `calls` sequential tools/call.

This loop is the instrument. Per call it formats one integer into a prebuilt request, writes it, and stores
two timestamps into preallocated lists; everything else (DataFrames, attribution) happens after the cell.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gcbench.errors import CellError
from gcbench.mcp import call_outcome, call_template
from gcbench.scenario import Chain, Think

FIRST_CALL_ID = 1


@dataclass
class CallRecords:
    """One row per measured call (row = chain * calls + call)."""

    calls_per_chain: int
    agents: int
    t_send_ns: np.ndarray
    t_recv_ns: np.ndarray
    ok: np.ndarray
    errors: dict[int, str]

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


def run_chains(
    transport,
    chain: Chain,
    tool: str,
    arguments: dict,
    think_ns: np.ndarray,
    call_timeout_s: float,
    clock: Callable[[], int] = time.monotonic_ns,
) -> CallRecords:
    K = chain.calls
    C = chain.chains
    A = min(chain.agents, C)
    total = C * K
    template = call_template(tool, arguments)
    think_flat = think_ns.reshape(-1).tolist()
    t_send = [0] * total
    t_recv = [0] * total
    ok = [False] * total
    errors: dict[int, str] = {}
    timeout_ns = int(call_timeout_s * 1e9)

    # per agent: the row it sends next (or is waiting for), when it may send, and whether it waits for a reply
    row_of = list(range(0, A * K, K))
    next_ns = [clock()] * A
    inflight = [False] * A
    finished = [False] * A
    n_inflight = 0
    done = 0
    send = transport.send
    poll = transport.poll

    while done < total:
        now = clock()
        wake_ns = None
        for a in range(A):
            if inflight[a] or finished[a]:
                continue
            due = next_ns[a]
            if due <= now:
                row = row_of[a]
                data = template % (FIRST_CALL_ID + row)
                t_send[row] = clock()
                send(data, a)
                inflight[a] = True
                n_inflight += 1
            elif wake_ns is None or due < wake_ns:
                wake_ns = due
        if n_inflight:
            oldest = min(t_send[row_of[a]] for a in range(A) if inflight[a])
            deadline = oldest + timeout_ns
            if wake_ns is None or deadline < wake_ns:
                wake_ns = deadline
        timeout_s = None if wake_ns is None else max(0.0, (wake_ns - clock()) / 1e9)
        replies = poll(timeout_s)
        if not replies:
            if n_inflight and clock() >= deadline:
                late = [row_of[a] for a in range(A) if inflight[a]]
                raise CellError(
                    f"no answer within {call_timeout_s:g} s (call {late[0] % K} of chain {late[0] // K})"
                )
            continue
        for t_r, msg in replies:
            msg_id = msg.get("id")
            row = msg_id - FIRST_CALL_ID if type(msg_id) is int else -1
            if not 0 <= row < total:
                raise CellError(f"server answered with an id it was never sent: {msg_id!r}")
            a = (row // K) % A
            if not inflight[a] or row_of[a] != row:
                raise CellError(f"server answered id {msg_id!r} twice or out of turn")
            t_recv[row] = t_r
            outcome = call_outcome(msg)
            if outcome is None:
                ok[row] = True
            else:
                errors[row] = outcome
            inflight[a] = False
            n_inflight -= 1
            done += 1
            call = row % K
            if call + 1 < K:
                row_of[a] = row + 1
                next_ns[a] = t_r + think_flat[row + 1]
            else:
                nxt_chain = row // K + A
                if nxt_chain < C:
                    row_of[a] = nxt_chain * K
                    next_ns[a] = t_r
                else:
                    finished[a] = True

    return CallRecords(
        calls_per_chain=K,
        agents=A,
        t_send_ns=np.array(t_send, dtype=np.int64),
        t_recv_ns=np.array(t_recv, dtype=np.int64),
        ok=np.array(ok, dtype=bool),
        errors=errors,
    )
