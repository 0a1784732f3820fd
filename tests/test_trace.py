"""Traces: parsing (one-line errors naming file:line and field), placeholders expanded before the measured
window, replay through the chain driver, the per-tool report, `gcbench tools`, and a real run mixing two tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gcbench.chain import FIRST_CALL_ID, run_chains
from gcbench.errors import GcbenchError
from gcbench.mcp import call_template
from gcbench.report.tools import tools_table
from gcbench.runner import calls_frame
from gcbench.scenario import Chain, load_scenario
from gcbench.store import RunData, load_run
from gcbench.tool_analysis import tool_table
from gcbench.trace import (
    WORDS,
    Step,
    Trace,
    apply_think,
    load_trace,
    request_templates,
    warmup_params,
)

from .conftest import REPO, run_cli

SERVER = Path(__file__).parent / "two_tools_server.py"
SERVER_CMD = f"{sys.executable} {SERVER}"


def _write(tmp_path: Path, text: str, name: str = "t.jsonl") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _requests(trace: Trace, chains: int, seed: int = 1, rep: int = 0) -> list[dict]:
    return [json.loads(t % (FIRST_CALL_ID + i)) for i, t in enumerate(request_templates(trace, chains, seed, rep))]


# ---------------------------------------------------------------------------------------------- parsing


def test_a_trace_file_is_read_line_by_line(tmp_path):
    p = _write(tmp_path, '# a comment\n{"tool": "alloc", "arguments": {"n": 5}}\n\n'
                         '{"tool": "echo", "think_ms": 2.5}\n   \n{"tool":"alloc","arguments":{},"think_ms":0}')
    t = load_trace(p)
    assert t.steps == (Step("alloc", {"n": 5}), Step("echo", {}, 2.5), Step("alloc", {}, 0.0))
    assert t.tools == ["alloc", "echo"] and len(t) == 3


BAD_LINES = [
    ('{"arguments": {}}', "field 'tool': required"),
    ('{"tool": 3}', "field 'tool': expected a tool name, got an integer"),
    ('{"tool": ""}', "field 'tool': expected a tool name, got an empty string"),
    ('{"tool": "a", "arguments": [1]}', "field 'arguments': expected an object, got an array"),
    ('{"tool": "a", "think_ms": -1}', "field 'think_ms': expected a number from 0 to 600000, got -1"),
    ('{"tool": "a", "think_ms": true}', "field 'think_ms': expected a number of ms, got a boolean"),
    ('{"tool": "a", "think_ms": "5"}', "field 'think_ms': expected a number of ms, got a string"),
    ('{"tool": "a", "tihnk_ms": 5}', "field 'tihnk_ms': unknown field; allowed here: tool, arguments, think_ms"),
    ('{"tool": "a", "arguments": {"{chain}": 1}}', "field 'arguments': key '{chain}' holds a placeholder"),
    ('{"tool": "a", "arguments": {"x": NaN}}', "field 'arguments': holds nan, which JSON cannot carry"),
    ('{"tool": "a", "arguments": ' + "[" * 40 + "]" * 40 + "}", "field 'arguments': expected an object"),
    ('{"tool": "a", "arguments": {"x": ' + "[" * 40 + "]" * 40 + "}}", "field 'arguments': nested deeper"),
    ('["tool", "a"]', "expected an object with a 'tool', got an array"),
    ('{"tool": "a",', "not a JSON object (JSONDecodeError"),
]


@pytest.mark.parametrize("line, problem", BAD_LINES)
def test_a_bad_line_is_named_by_file_line_and_field(tmp_path, line, problem):
    p = _write(tmp_path, '{"tool": "ok"}\n# fine\n' + line + "\n")
    with pytest.raises(GcbenchError) as e:
        load_trace(p)
    assert str(e.value).startswith(f"{p}:3: {problem}"), str(e.value)
    assert "\n" not in str(e.value)


def test_an_empty_or_unreadable_trace_is_refused(tmp_path):
    with pytest.raises(GcbenchError, match="the trace has no calls"):
        load_trace(_write(tmp_path, "# nothing\n\n"))
    with pytest.raises(GcbenchError, match="cannot read the trace"):
        load_trace(tmp_path / "missing.jsonl")
    p = tmp_path / "b.jsonl"
    p.write_bytes(b'{"tool": "\xff"}\n')
    with pytest.raises(GcbenchError, match=":1: not UTF-8 text"):
        load_trace(p)


def test_bad_trace_on_the_command_line_is_one_error_line_and_exit_2(tmp_path):
    p = _write(tmp_path, '{"tool": "work"}\n{"tool": "work", "think_ms": "soon"}\n')
    proc = run_cli("run", "-b", "python", "--trace", str(p), "-o", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"ERROR: {p}:2: field 'think_ms': expected a number of ms, got a string"]
    assert not (tmp_path / "runs").exists()  # refused before anything ran
    for args, problem in ((["--tool", "work"], "--trace: the trace names each call's tool and arguments"),
                          (["--calls", "5"], f"--calls: a chain replays the trace ({p}), 2 calls")):
        good = _write(tmp_path, '{"tool": "work"}\n{"tool": "work"}\n', "g.jsonl")
        proc = run_cli("run", "-b", "python", "--trace", str(good), *args, "-o", str(tmp_path / "runs"))
        line = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(line) == 1 and line[0].startswith(f"ERROR: {problem}".replace(str(p), str(good)))


def test_a_scenario_holds_a_trace_inline_or_names_a_file(write_scenario, tmp_path):
    sc = load_scenario(str(write_scenario("""
        [chain]
        chains = 2
        [[trace]]
        tool = "alloc"
        arguments = { n = 10 }
        [[trace]]
        tool = "echo"
        think_ms = 3
        [trace.arguments]
        text = "{word}"
    """)))
    assert sc.chain.calls == 2 and sc.trace.steps == (Step("alloc", {"n": 10}), Step("echo", {"text": "{word}"}, 3.0))
    d = sc.to_dict()
    assert d["trace"] == [{"tool": "alloc", "arguments": {"n": 10}},
                          {"tool": "echo", "arguments": {"text": "{word}"}, "think_ms": 3.0}]
    assert "trace_source" not in d and sc.trace_source == sc.source  # a path in run.json, not in the scenario
    _write(tmp_path, '{"tool": "a"}\n{"tool": "b"}\n{"tool": "a"}\n', "calls.jsonl")
    sc = load_scenario(str(write_scenario('trace = "calls.jsonl"\n', "by_file.toml")))
    assert [s.tool for s in sc.trace.steps] == ["a", "b", "a"] and sc.chain.calls == 3
    assert sc.trace_source == str(tmp_path / "calls.jsonl")
    assert "trace" not in load_scenario("default").to_dict()  # a sweep's grid_hash stays as before traces


@pytest.mark.parametrize("text, problem", [
    ('[chain]\ncalls = 5\n[[trace]]\ntool = "a"\n', "field 'chain.calls': 5 calls, but a chain replays the trace, 1 calls"),
    ('[[trace]]\ntool = "a"\n[[trace]]\ntool = 7\n', "field 'trace[1].tool': expected a tool name, got an integer"),
    ('[[trace]]\ntool = "a"\nthink = 1\n', "field 'trace[0].think': unknown field"),
    ("trace = 3\n", "field 'trace': expected [[trace]] tables or a trace file's path, got an integer"),
    ("trace = []\n", "field 'trace': the trace has no calls"),
])
def test_a_bad_inline_trace_names_the_scenario_file_and_field(write_scenario, text, problem):
    p = write_scenario(text)
    with pytest.raises(GcbenchError) as e:
        load_scenario(str(p))
    assert str(e.value).startswith(f"{p}: {problem}"), str(e.value)


def test_a_trace_file_named_by_a_scenario_reports_its_own_line(write_scenario, tmp_path):
    _write(tmp_path, '{"tool": "a"}\n{"tool": null}\n', "bad.jsonl")
    with pytest.raises(GcbenchError, match=f"^{tmp_path / 'bad.jsonl'}:2: field 'tool': expected a tool name, got null"):
        load_scenario(str(write_scenario('trace = "bad.jsonl"\n')))


# ---------------------------------------------------------------------------------------------- placeholders


def test_placeholders_are_expanded_per_chain_and_call():
    trace = Trace((Step("echo", {"text": "c{chain} k{call} i{index} r{rep}: {word}-{word}", "n": "{index}",
                                 "nested": [{"c": "{chain}"}, "{rep}", "{nope} {"]}),
                   Step("alloc", {"n": "{call}", "pct": "100%"})))
    got = _requests(trace, chains=3, rep=2)
    assert len(got) == 6
    for row, req in enumerate(got):
        chain, call = divmod(row, 2)
        assert req["id"] == FIRST_CALL_ID + row and req["method"] == "tools/call"
        args = req["params"]["arguments"]
        if call == 0:
            head, _, words = args["text"].partition(": ")
            assert head == f"c{chain} k0 i{row} r2"
            assert all(w in WORDS for w in words.split("-")) and len(words.split("-")) == 2
            assert args["n"] == row and args["nested"] == [{"c": chain}, 2, "{nope} {"]  # exact: an integer
        else:
            assert req["params"] == {"name": "alloc", "arguments": {"n": 1, "pct": "100%"}}


def test_words_are_seeded_by_the_scenario_seed_and_the_repetition():
    trace = Trace((Step("echo", {"text": "{word}"}),))

    def words(seed, rep):
        return [r["params"]["arguments"]["text"] for r in _requests(trace, 200, seed, rep)]

    assert words(1, 0) == words(1, 0)
    assert words(1, 0) != words(1, 1) and words(1, 0) != words(2, 0)
    assert len(set(words(1, 0))) > 50  # chains differ


def test_a_step_without_placeholders_is_encoded_once_and_shared():
    trace = Trace((Step("alloc", {"n": 7, "s": "50% {literal}"}), Step("echo", {"text": "{chain}"})))
    reqs = request_templates(trace, chains=4, seed=1, rep=0)
    static = reqs[0::2]
    assert all(r is static[0] for r in static)  # one bytes object for every chain
    assert static[0] == call_template("alloc", {"n": 7, "s": "50% {literal}"})
    assert len({id(r) for r in reqs[1::2]}) == 4


def test_warm_up_replays_the_trace_as_the_chains_after_the_measured_ones():
    trace = Trace((Step("a", {"c": "{chain}"}), Step("b", {}), Step("c", {"k": "{call}"})))
    w = warmup_params(trace, calls=7, chains=5, seed=1, rep=0)
    assert [p["name"] for p in w] == ["a", "b", "c", "a", "b", "c", "a"]
    assert [p["arguments"] for p in w] == [{"c": 5}, {}, {"k": 2}, {"c": 6}, {}, {"k": 2}, {"c": 7}]
    assert warmup_params(trace, 0, 5, 1, 0) == []


def test_the_traces_think_times_replace_the_scenarios():
    trace = Trace((Step("a", {}, think_ms=9.0), Step("b", {}), Step("c", {}, think_ms=2.5)))
    base = np.full((3, 3), 1_000_000, np.int64)
    base[:, 0] = 0
    out = apply_think(base, trace)
    assert out.tolist() == [[0, 1_000_000, 2_500_000]] * 3  # the first call of a chain has none


class EchoTransport:
    """Answers every request at once and keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.queue: list = []

    def send(self, data: bytes, agent: int = 0) -> None:
        self.sent.append(data)
        self.queue.append((len(self.sent), {"jsonrpc": "2.0", "id": json.loads(data)["id"], "result": {}}))

    def poll(self, timeout_s):
        out, self.queue = self.queue, []
        return out


def test_the_chain_driver_sends_each_rows_own_request_and_the_calls_table_names_its_tool():
    trace = Trace((Step("alloc", {"n": "{index}"}), Step("echo", {"text": "{chain}/{call}"})))
    chain = Chain(calls=2, chains=3, agents=1, warmup_calls=0)
    transport = EchoTransport()
    reqs = request_templates(trace, chain.chains, 1, 0)
    rec = run_chains(transport, chain, "ignored", {}, np.zeros((3, 2), np.int64), 10.0, requests=reqs)
    assert rec.ok.all()
    assert transport.sent == [reqs[row] % (FIRST_CALL_ID + row) for row in range(6)]
    df = calls_frame(rec, "custom", "default", 0, [s.tool for s in trace.steps])
    assert df["tool"].tolist() == ["alloc", "echo"] * 3 and df["tool"].dtype == "string"
    with pytest.raises(ValueError, match="5 requests for 6 calls"):
        run_chains(transport, chain, "x", {}, np.zeros((3, 2), np.int64), 10.0, requests=reqs[:5])


# ---------------------------------------------------------------------------------------------- the report


def _calls(rows: list[tuple]) -> pd.DataFrame:
    """(gc mode, chain, tool, latency_ns, gc_overlap_ns) -> a calls table."""
    df = pd.DataFrame(rows, columns=["gc_mode", "chain", "tool", "latency_ns", "gc_overlap_ns"])
    return df.assign(backend="custom", rep=0, call=df.groupby("chain").cumcount(), ok=True,
                     tool=df["tool"].astype("string"))


def test_the_tool_table_gives_each_tool_its_own_latency_and_dead_time():
    rows = []
    for c in range(10):  # alloc: 4 ms with 2 ms of GC in even chains; echo: 1 ms, never GC
        rows += [("default", c, "alloc", 4_000_000, 2_000_000 if c % 2 == 0 else 0), ("default", c, "echo", 1_000_000, 0)]
    t = tool_table(_calls(rows), n_boot=500)
    assert t["tool"].tolist() == ["alloc", "echo"] and t["calls"].tolist() == [10, 10]
    a, e = t.iloc[0], t.iloc[1]
    assert (a.latency_p50_ms, a.gc_calls_share, a.dead_per_call_ms, a.dead_share) == (4.0, 0.5, 1.0, 0.25)
    assert a.dead_per_call_lo_ms < 1.0 < a.dead_per_call_hi_ms and 0 <= a.dead_per_call_lo_ms
    assert (e.latency_p50_ms, e.dead_per_call_ms, e.dead_per_call_lo_ms, e.dead_per_call_hi_ms) == (1.0, 0, 0, 0)
    assert tool_table(_calls(rows), n_boot=500).equals(t)  # seeded: the same run gives the same interval


def test_the_tool_section_is_shown_only_when_a_run_called_more_than_one_tool():
    two = _calls([("default", 0, "alloc", 4_000_000, 1_000_000), ("default", 0, "echo", 1_000_000, 0)])
    (table,) = tools_table(RunData(Path("r"), {}, two, pd.DataFrame()))
    assert table.title == "Latency and GC dead time by tool"
    assert [row[2] for row in table.rows] == ["alloc", "echo"]
    one = two.assign(tool=pd.Series(["work", "work"], dtype="string"))
    assert tools_table(RunData(Path("r"), {}, one, pd.DataFrame())) == []


# ---------------------------------------------------------------------------------------------- real servers


def test_gcbench_tools_lists_a_servers_tools_with_schemas_and_trace_lines(tmp_path):
    proc = run_cli("tools", "--", sys.executable, str(SERVER), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("server: two-tools 1 (protocol 2025-06-18), 2 tool(s)")
    lines = [ln.split("trace line:", 1)[1].strip() for ln in proc.stdout.splitlines() if "trace line:" in ln]
    assert [json.loads(ln) for ln in lines] == [{"tool": "alloc", "arguments": {"n": 1000}},
                                                {"tool": "echo", "arguments": {"text": "{word}"}}]
    trace = load_trace(_write(tmp_path, "\n".join(lines)))  # the lines are a trace as they are
    assert trace.tools == ["alloc", "echo"]
    proc = run_cli("tools", "--server-cmd", SERVER_CMD, "--json", timeout=60)
    doc = json.loads(proc.stdout)
    assert [t["name"] for t in doc["tools"]] == ["alloc", "echo"] and doc["initialize"]["serverInfo"]["name"] == "two-tools"
    proc = run_cli("tools")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "ERROR: tools: give one server: -- CMD ARGS..., --server-cmd COMMAND or --backend NAME"]


def test_a_trace_mixing_two_tools_is_replayed_and_reported_by_tool(tmp_path, monkeypatch):
    """A real run: a Python server with two tools (GC probe attached), a trace mixing them with placeholders."""
    log = tmp_path / "calls.log"
    trace = _write(tmp_path, '{"tool": "alloc", "arguments": {"n": 20000}}\n'
                             '{"tool": "echo", "arguments": {"text": "chain {chain} call {call}: {word}"}}\n'
                             '{"tool": "alloc", "arguments": {"n": 20000}}\n'
                             '{"tool": "echo", "arguments": {"text": "{index}"}, "think_ms": 1}\n')
    scenario = _write(tmp_path, "[chain]\nchains = 6\nwarmup_calls = 3\n", "s.toml")
    monkeypatch.setenv("TWO_TOOLS_LOG", str(log))  # the server inherits it
    proc = run_cli("run", "-s", str(scenario), "--server-cmd", SERVER_CMD, "--trace", str(trace), "-g", "default",
                   "-o", str(tmp_path / "runs"), "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    run = load_run(out["run"])
    assert run.meta["trace_source"] == str(trace) and len(run.meta["scenario"]["trace"]) == 4
    assert run.calls["tool"].tolist() == ["alloc", "echo", "alloc", "echo"] * 6
    # what the server received: 3 warm-up calls (chain 6), then every chain's calls with its placeholders filled
    sent = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert [p["name"] for p in sent] == ["alloc", "echo", "alloc"] + ["alloc", "echo", "alloc", "echo"] * 6
    texts = [p["arguments"]["text"] for p in sent[3:] if p["name"] == "echo"]
    assert [t.rsplit(" ", 1)[0] for t in texts[0::2]] == [f"chain {c} call 1:" for c in range(6)]
    assert all(t.rsplit(" ", 1)[1] in WORDS for t in texts[0::2])
    assert texts[1::2] == [4 * c + 3 for c in range(6)]  # exactly "{index}": sent as an integer
    # each tool its own row: 12 calls, latency and dead time (20000 cycles a call: CPython collects inside alloc)
    tools = {r["tool"]: r for r in out["tools"]}
    assert set(tools) == {"alloc", "echo"} and tools["alloc"]["calls"] == tools["echo"]["calls"] == 12
    assert tools["alloc"]["gc_calls_share"] > 0.9 and tools["alloc"]["dead_per_call_ms"] > tools["echo"]["dead_per_call_ms"]
    assert all(r["latency_p50_ms"] > 0 for r in out["tools"])
    report = run_cli("report", out["run"], cwd=REPO)
    assert "Latency and GC dead time by tool" in report.stdout and " echo " in report.stdout


def test_a_trace_calling_a_tool_the_server_lacks_fails_the_cell_with_the_reason(tmp_path):
    trace = _write(tmp_path, '{"tool": "work", "arguments": {"alloc_objects": 10}}\n{"tool": "search"}\n')
    proc = run_cli("run", "-b", "python", "-g", "default", "--trace", str(trace), "--chains", "2",
                   "-o", str(tmp_path / "runs"))
    assert proc.returncode == 3
    assert "server has no tool 'search'; it offers: work" in proc.stderr


def test_a_scenario_without_a_trace_keeps_the_grid_hash_of_sweeps_made_before_traces():
    """A sweep folder written before traces existed is resumed and merged by its grid_hash."""
    from gcbench.sweep import load_sweep

    data = Path(__file__).parent / "data"
    manifest = json.loads((data / "sweep-format-1" / "sweep.json").read_text())
    assert load_sweep(str(data / "golden-sweep.toml")).grid_hash() == manifest["grid_hash"]
    # heap shapes came later: a grid that pins `lists` (what it built then) keeps its hash; `records` does not
    assert load_sweep(str(data / "golden-sweep.toml")).base.server.heap_shape == "lists"
