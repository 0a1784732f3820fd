"""Malformed scenario files: every one gives exit 2 and one 'ERROR:' line naming the file and the field.

Hypothesis builds 1,000 files from a valid scenario with one thing wrong (wrong types, missing or misplaced
tables, huge and negative numbers, NaN, unicode keys, deep nesting, empty files, binary garbage, an
oversized file) and runs each through the real CLI code path in-process (click's CliRunner), so they take
seconds; a handful go through a real `gcbench run` subprocess. The run names a backend that does not exist:
should a generated file ever be valid, the error would be about the backend, and the field check fails.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcbench.cli import main
from gcbench.errors import GcbenchError
from gcbench.scenario import (
    MAX_AGENTS,
    MAX_CALLS,
    MAX_CALLS_PER_CELL,
    MAX_CHAINS,
    MAX_CPU_ITERS,
    MAX_OBJECTS,
    MAX_PAYLOAD_BYTES,
    MAX_RATE_PER_S,
    MAX_SCENARIO_BYTES,
    MAX_SLEEP_US,
    MAX_THINK_MS,
    MAX_TOOL_ARGS_DEPTH,
    load_scenario,
)

from .conftest import run_cli

EXAMPLES = 1000

BASE = {"name": "fuzz", "chain": {"calls": 5, "chains": 2, "warmup_calls": 0}, "work": {"alloc_objects": 10},
        "server": {"heap_objects": 0}}
INT_FIELDS = {
    "chain.calls": (1, MAX_CALLS), "chain.chains": (1, MAX_CHAINS), "chain.agents": (1, MAX_AGENTS),
    "chain.warmup_calls": (0, MAX_CALLS), "chain.seed": (0, 2**63 - 1),
    "work.alloc_objects": (0, MAX_OBJECTS), "work.retain_objects": (0, MAX_OBJECTS),
    "work.retain_cap": (0, MAX_OBJECTS), "work.payload_bytes": (0, MAX_PAYLOAD_BYTES),
    "work.cpu_iters": (0, MAX_CPU_ITERS), "work.sleep_us": (0, MAX_SLEEP_US), "server.heap_objects": (0, MAX_OBJECTS),
}
FLOAT_FIELDS = {"work.cyclic_fraction": (0.0, 1.0), "chain.rate_per_s": (0.0, MAX_RATE_PER_S),
                "chain.think_ms": (0.0, MAX_THINK_MS)}
STR_FIELDS = ["name", "description", "server.command", "server.tool"]
# think_ms as a table: which distribution reads which key
THINK_KEYS = {"value": "fixed", "mean": "lognormal", "sigma": "exponential", "min": "uniform", "max": "uniform"}


# ------------------------------------------------------------------------------------------ TOML writing


def toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_str(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_doc(doc: dict) -> bytes:
    return "\n".join(f"{toml_str(k)} = {toml_value(v)}" for k, v in doc.items()).encode() + b"\n"


def with_field(field: str, value) -> dict:
    doc = json.loads(json.dumps(BASE))
    *tables, key = field.split(".")
    t = doc
    for name in tables:
        t = t.setdefault(name, {})
    t[key] = value
    return doc


def one_line(text: str) -> str:
    """How the CLI prints a message: one line, non-printable characters escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


# ------------------------------------------------------------------------------------------ strategies
# each draws (file bytes, expected field or None when only the file is named, the kind of damage)

texts = st.text(max_size=20)
scalars_not_int = st.one_of(texts, st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
                            st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@st.composite
def wrong_type(draw):
    kind = draw(st.sampled_from(["int", "float", "str", "table", "think"]))
    if kind == "int":
        field = draw(st.sampled_from(sorted(INT_FIELDS)))
        value = draw(scalars_not_int.filter(lambda v: not (isinstance(v, int) and not isinstance(v, bool))))
        return toml_doc(with_field(field, value)), field, "wrong type"
    if kind == "float":
        field = draw(st.sampled_from(sorted(FLOAT_FIELDS)))
        value = draw(st.one_of(texts, st.booleans(), st.lists(st.integers(), max_size=3)))
        return toml_doc(with_field(field, value)), field, "wrong type"
    if kind == "str":
        field = draw(st.sampled_from(STR_FIELDS))
        value = draw(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(texts, max_size=2)))
        return toml_doc(with_field(field, value)), field, "wrong type"
    if kind == "table":
        field = draw(st.sampled_from(["chain", "work", "server", "server.tool_args"]))
        value = draw(st.one_of(st.integers(), texts, st.booleans(), st.lists(st.integers(), max_size=2)))
        return toml_doc(with_field(field, value)), field, "wrong type"
    key = draw(st.sampled_from(sorted(THINK_KEYS)))
    value = draw(st.one_of(texts, st.booleans(), st.lists(st.integers(), max_size=2)))
    think = {"dist": THINK_KEYS[key], key: value}
    if THINK_KEYS[key] in ("lognormal", "exponential") and key != "mean":
        think["mean"] = 2.0
    return toml_doc(with_field("chain.think_ms", think)), f"chain.think_ms.{key}", "wrong type"


@st.composite
def misplaced_table(draw):
    field = draw(st.sampled_from(sorted(INT_FIELDS)))
    table, key = field.split(".")
    doc = json.loads(json.dumps(BASE))
    doc.pop(table, None)
    doc[key] = 3  # the table's key written at the top level: the table header is missing
    return toml_doc(doc), key, "missing table"


@st.composite
def out_of_range(draw):
    kind = draw(st.sampled_from(["huge-int", "negative-int", "float", "product"]))
    if kind == "huge-int":
        field = draw(st.sampled_from(sorted(INT_FIELDS)))
        hi = INT_FIELDS[field][1]
        value = draw(st.integers(hi + 1, 10**40))
        return toml_doc(with_field(field, value)), field, "huge number"
    if kind == "negative-int":
        field = draw(st.sampled_from(sorted(INT_FIELDS)))
        lo = INT_FIELDS[field][0]
        value = draw(st.integers(-(10**40), lo - 1))
        return toml_doc(with_field(field, value)), field, "negative number"
    if kind == "float":
        field = draw(st.sampled_from(sorted(FLOAT_FIELDS)))
        lo, hi = FLOAT_FIELDS[field]
        value = draw(st.one_of(st.floats(max_value=lo, exclude_max=True), st.floats(min_value=hi, exclude_min=True),
                               st.just(math.nan), st.just(math.inf), st.integers(int(hi) + 1, 10**30)))
        return toml_doc(with_field(field, value)), field, "huge or non-finite number"
    calls = draw(st.integers(3, MAX_CALLS))
    chains = draw(st.integers(MAX_CALLS_PER_CELL // calls + 1, MAX_CHAINS))
    doc = with_field("chain.calls", calls)
    doc["chain"]["chains"] = chains
    return toml_doc(doc), "chain.chains", "calls per cell over the cap"


@st.composite
def unknown_key(draw):
    table = draw(st.sampled_from(["", "chain", "work", "server"]))
    key = draw(st.text(min_size=1, max_size=12))  # unicode, control characters, newlines: all of it
    known = {"": {"name", "description", "chain", "work", "server"}, "chain": {"calls", "chains", "agents",
             "warmup_calls", "seed", "think_ms", "rate_per_s"}, "work": set(BASE["work"]) | {
             "cyclic_fraction", "retain_objects", "retain_cap", "payload_bytes", "cpu_iters", "sleep_us",
             "retain_shape"}, "server": {"heap_objects", "heap_shape", "command", "tool", "tool_args"}}[table]
    if key in known:
        key += "_x"
    doc = json.loads(json.dumps(BASE))
    if table:
        doc[table][key] = 1
    else:
        doc[key] = 1
    return toml_doc(doc), f"{table}.{key}" if table else key, "unknown key"


@st.composite
def deep_nesting(draw):
    kind = draw(st.sampled_from(["tool_args-inline", "tool_args-dotted", "array-in-int", "beyond-parser"]))
    if kind == "tool_args-inline":
        depth = draw(st.integers(MAX_TOOL_ARGS_DEPTH + 1, 120))
        text = "[server]\ntool_args = " + "{a = " * depth + "1" + "}" * depth + "\n"
        return text.encode(), "server.tool_args", "deep nesting"
    if kind == "tool_args-dotted":  # no recursion in the parser, a very deep table
        depth = draw(st.integers(MAX_TOOL_ARGS_DEPTH + 1, 5000))
        return f"[server.tool_args{'.a' * depth}]\nx = 1\n".encode(), "server.tool_args", "deep nesting"
    if kind == "array-in-int":
        depth = draw(st.integers(1, 100))
        return f"[chain]\ncalls = {'[' * depth}1{']' * depth}\n".encode(), "chain.calls", "deep nesting"
    depth = draw(st.integers(2000, 20000))
    opener, closer = draw(st.sampled_from([("[", "]"), ("{a = ", "}")]))
    return f"x = {opener * depth}1{closer * depth}\n".encode(), None, "nested beyond the parser"


@st.composite
def garbage(draw):
    kind = draw(st.sampled_from(["empty", "binary", "text", "huge-file", "rules"]))
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"   \n\t\n", b"# only a comment\n"])), None, "empty file"
    if kind == "binary":
        return b"\xff" + draw(st.binary(max_size=200)), None, "binary garbage"
    if kind == "text":
        body = draw(st.text(min_size=1, max_size=200))
        return ("= " + body).encode("utf-8", "surrogatepass"), None, "invalid TOML"
    if kind == "huge-file":
        size = draw(st.integers(MAX_SCENARIO_BYTES + 1, MAX_SCENARIO_BYTES + 4096))
        return b'description = "' + b"d" * size + b'"\n', None, "oversized file"
    rule = draw(st.sampled_from(["retain-without-cap", "uniform-max-below-min", "lognormal-without-mean",
                                 "unknown-dist"]))
    if rule == "retain-without-cap":
        return toml_doc(with_field("work.retain_objects", draw(st.integers(1, MAX_OBJECTS)))), "work.retain_cap", rule
    if rule == "uniform-max-below-min":
        lo = draw(st.floats(1.0, MAX_THINK_MS))
        think = {"dist": "uniform", "min": lo, "max": draw(st.floats(0.0, lo, exclude_max=True))}
        return toml_doc(with_field("chain.think_ms", think)), "chain.think_ms.max", rule
    if rule == "lognormal-without-mean":
        return toml_doc(with_field("chain.think_ms", {"dist": "lognormal"})), "chain.think_ms.mean", rule
    dist = draw(st.text(min_size=1, max_size=10).filter(lambda d: d not in ("fixed", "exponential", "uniform", "lognormal")))
    return toml_doc(with_field("chain.think_ms", {"dist": dist})), "chain.think_ms.dist", rule


malformed = st.one_of(wrong_type(), misplaced_table(), out_of_range(), unknown_key(), deep_nesting(), garbage())


# ------------------------------------------------------------------------------------------ the tests


def test_a_thousand_malformed_scenarios_each_give_one_line_naming_file_and_field():
    seen: dict[str, int] = {}
    runner = CliRunner()
    with tempfile.TemporaryDirectory(prefix="gcbench-fuzz-") as tmp:
        path = Path(tmp) / "fuzz.toml"
        out = Path(tmp) / "runs"

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
        @given(malformed)
        def check(case):
            data, field, kind = case
            path.write_bytes(data)
            result = runner.invoke(main, ["run", "--scenario", str(path), "--backend", "no-such-backend",
                                          "--out", str(out)])
            seen[kind] = seen.get(kind, 0) + 1
            assert result.exit_code == 2, (kind, data[:200], result.output)
            assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), \
                (kind, result.exception)
            assert result.stdout == ""
            lines = result.stderr.splitlines()
            assert len(lines) == 1, (kind, data[:200], result.stderr)
            line = lines[0]
            assert line.startswith(f"ERROR: {path}: "), (kind, line)
            assert "Traceback" not in result.output
            if field is not None:
                assert one_line(f"field '{field}'") in line, (kind, data[:200], line)

        check()
        assert not out.exists()  # nothing ran
    assert sum(seen.values()) >= EXAMPLES, seen
    assert {"wrong type", "missing table", "huge number", "negative number", "unknown key", "deep nesting",
            "nested beyond the parser", "empty file", "binary garbage", "oversized file"} <= set(seen), seen


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "empty scenario file"),
        (b"\xff\xfe\x00garbage", "not a UTF-8 text file"),
        (b"[chain]\ncalls = 1e99\n", "field 'chain.calls': expected an integer, got a number"),
        (b"x = " + b"[" * 5000 + b"]" * 5000, "invalid TOML: arrays or tables nested too deeply"),
        (b"[chain]\nchains = 1000000\ncalls = 100000\n",
         f"field 'chain.chains': 1000000 chains x 100000 calls = 100000000000 calls per cell is above the cap of "
         f"{MAX_CALLS_PER_CELL}"),
        (b'"ke\\ny" = 1\n', "field 'ke\\ny': unknown field"),
    ],
    ids=["empty", "binary", "float-for-int", "deep", "calls-per-cell", "newline-in-key"],
)
def test_malformed_scenarios_through_a_real_subprocess(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_bytes(body)
    proc = run_cli("run", "--scenario", str(path), "--backend", "python", "--out", str(tmp_path / "runs"), timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.rstrip("\n")]  # exactly one line
    assert proc.stderr.startswith(f"ERROR: {path}: ") and message in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "field, value, cap",
    [
        ("chain.calls", MAX_CALLS + 1, MAX_CALLS),
        ("chain.chains", MAX_CHAINS + 1, MAX_CHAINS),
        ("chain.agents", MAX_AGENTS + 1, MAX_AGENTS),
        ("server.heap_objects", MAX_OBJECTS + 1, MAX_OBJECTS),
        ("work.alloc_objects", MAX_OBJECTS + 1, MAX_OBJECTS),
        ("work.retain_cap", MAX_OBJECTS + 1, MAX_OBJECTS),
        ("work.payload_bytes", MAX_PAYLOAD_BYTES + 1, MAX_PAYLOAD_BYTES),
        ("work.cpu_iters", MAX_CPU_ITERS + 1, MAX_CPU_ITERS),
        ("work.sleep_us", MAX_SLEEP_US + 1, MAX_SLEEP_US),
    ],
)
def test_huge_but_well_typed_values_are_refused_with_the_cap(tmp_path, field, value, cap):
    path = tmp_path / "big.toml"
    path.write_bytes(toml_doc(with_field(field, value)))
    with pytest.raises(GcbenchError) as exc:
        load_scenario(str(path))
    assert f"field '{field}': {value} is above the cap of {cap}" in str(exc.value)


def test_calls_per_cell_cap_applies_to_command_line_overrides_too(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_bytes(toml_doc(BASE))
    result = CliRunner().invoke(main, ["run", "-s", str(path), "--chains", "100000", "--calls", "100",
                                       "-b", "python", "-o", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert f"100000 chains x 100 calls = 10000000 calls per cell is above the cap of {MAX_CALLS_PER_CELL}" \
        in result.stderr


def test_oversized_file_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "huge.toml"
    with open(path, "wb") as f:  # sparse: 4 GiB that costs nothing to make
        f.truncate(4 * 2**30)
    with pytest.raises(GcbenchError, match=f"larger than the cap of {MAX_SCENARIO_BYTES} bytes"):
        load_scenario(str(path))
