"""The chain driver reads a response's id from its head and parses the line after the window (RawReply):
the outcome of every call must be exactly what parsing each response at once gave."""

from __future__ import annotations

import os

import numpy as np
import pytest

from gcbench import chain as chain_mod
from gcbench.chain import drive_chains, run_chains, settle_replies
from gcbench.errors import CellError
from gcbench.mcp import RawReply, StdioTransport
from gcbench.scenario import Chain


class PipeServer:
    """A transport over a real pipe whose 'server' is a function of the request id: what it returns is
    written to the pipe as the response line(s), so StdioTransport's own reading is under test."""

    def __init__(self, answer) -> None:
        self.rfd, self.wfd = os.pipe()
        self.reader = StdioTransport(-1, self.rfd)
        self.answer = answer

    def send(self, data: bytes, agent: int = 0) -> None:
        msg_id = int(data[len(b'{"jsonrpc":"2.0","id":'):data.index(b",", 22)])
        os.write(self.wfd, self.answer(msg_id))

    def poll(self, timeout_s):
        return self.reader.poll(timeout_s)

    def close(self) -> None:
        self.reader.close()
        os.close(self.rfd)
        os.close(self.wfd)


def _drive(answer, calls=4, chains=2, agents=1):
    t = PipeServer(answer)
    try:
        ch = Chain(calls=calls, chains=chains, agents=agents, warmup_calls=0)
        return run_chains(t, ch, "work", {}, np.zeros((chains, calls), np.int64), 5.0)
    finally:
        t.close()


OK = b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"x"}],"isError":false}}\n'


def test_the_usual_response_is_read_unparsed_and_settled_after():
    t = PipeServer(lambda i: OK % i)
    try:
        t.send(b'{"jsonrpc":"2.0","id":7,"method":"tools/call"}\n')
        [(t_recv, reply)] = t.poll(1.0)
        assert type(reply) is RawReply and reply.id == 7 and t_recv > 0
        ch = Chain(calls=3, chains=1, agents=1, warmup_calls=0)
        rec = drive_chains(t, ch, "work", {}, np.zeros((1, 3), np.int64), 5.0)
        assert sum(r is not None for r in rec.replies) == 3 and not rec.ok.any()  # nothing parsed yet
        settle_replies(rec)
        assert rec.ok.all() and rec.errors == {} and rec.replies == []
    finally:
        t.close()


def test_errors_and_tool_errors_are_recorded_per_call():
    def answer(i):
        if i == 2:
            return b'{"jsonrpc":"2.0","id":%d,"error":{"code":-32000,"message":"boom"}}\n' % i
        if i == 3:
            return (b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"bad arg"}],'
                    b'"isError":true}}\n' % i)
        return OK % i
    rec = _drive(answer)
    assert rec.errors == {1: "JSON-RPC error -32000: boom", 2: "tool error: bad arg"}
    assert rec.ok.tolist() == [True, False, False, True, True, True, True, True]


def test_a_head_that_lies_about_the_id_fails_the_cell():
    # the head says 1 (int(b"01")), the JSON has no valid number: parsed later, it is refused
    with pytest.raises(CellError, match="non-JSON"):
        _drive(lambda i: b'{"jsonrpc":"2.0","id":0%d,"result":{}}\n' % i)
    # a duplicate key: json takes the last id, which is not the one sent
    with pytest.raises(CellError, match="id it was never sent: 99"):
        _drive(lambda i: b'{"jsonrpc":"2.0","id":%d,"result":{},"id":99}\n' % i)


def test_a_server_request_with_an_id_is_not_taken_for_an_answer():
    # a server's own request (ping) carries an id in its own numbering; it must be skipped, not matched
    rec = _drive(lambda i: b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % (i + 1) + OK % i)
    assert rec.ok.all()


def test_other_key_orders_and_spacing_still_work():
    rec = _drive(lambda i: b'{"id": %d, "jsonrpc": "2.0", "result": {"content": []}}\n' % i)
    assert rec.ok.all()
    rec = _drive(lambda i: b'{"jsonrpc": "2.0", "id": %d, "result": {"content": []}}\n' % i)
    assert rec.ok.all()


def test_past_the_budget_responses_are_parsed_as_they_come(monkeypatch):
    monkeypatch.setattr(chain_mod, "DEFER_BUDGET_BYTES", 200)  # room for about two responses
    t = PipeServer(lambda i: OK % i)
    try:
        ch = Chain(calls=5, chains=2, agents=1, warmup_calls=0)
        rec = drive_chains(t, ch, "work", {}, np.zeros((2, 5), np.int64), 5.0)
        kept = sum(r is not None for r in rec.replies)
        assert 1 <= kept <= 3 and int(rec.ok.sum()) == 10 - kept  # the rest were settled at once
        assert settle_replies(rec).ok.all()
    finally:
        t.close()


def test_every_request_is_built_before_the_first_send():
    sent = []
    first_send_seen_all = []

    class Recorder(PipeServer):
        def send(self, data, agent=0):
            sent.append(data)
            super().send(data, agent)

    built = []
    real_template = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{}}\n'

    class Counting(bytes):
        def __mod__(self, other):
            built.append(other)
            if not sent:
                first_send_seen_all.append(len(built))
            return bytes.__mod__(self, other)

    t = Recorder(lambda i: OK % i)
    try:
        ch = Chain(calls=3, chains=2, agents=1, warmup_calls=0)
        rec = run_chains(t, ch, "work", {}, np.zeros((2, 3), np.int64), 5.0,
                         requests=[Counting(real_template)] * 6)
    finally:
        t.close()
    assert rec.ok.all() and len(built) == 6 and max(first_send_seen_all) == 6


def test_a_raw_reply_reads_like_the_message_it_stands_for():
    reply = RawReply(3, b'{"jsonrpc":"2.0","id":3,"result":{"isError":false}}\n')
    assert reply["result"]["isError"] is False and reply.get("id") == 3 and "result" in reply
    assert reply.get("error") is None and "method" not in reply
    assert reply.message() is reply.message()  # parsed once
