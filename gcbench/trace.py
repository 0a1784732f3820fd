"""Traces: a chain as a sequence of different tool calls, replayed by every chain of a cell.

A trace file (`gcbench run --trace FILE`, or `trace = "FILE"` in a scenario) is JSON Lines, one call a line:

    {"tool": "search", "arguments": {"query": "{word} {word}", "page": "{call}"}, "think_ms": 250}

  tool       the tool's name (required)
  arguments  a JSON object (default: {})
  think_ms   think time before this call, in ms (default: the scenario's chain.think_ms); a chain's first call
             has none
Blank lines and lines starting with # are skipped. A scenario can hold the same inline, as [[trace]] tables.

Placeholders, in any string of the arguments (not in keys), so that chains are not identical:
  {chain} the chain's index in the cell   {call} the call's index in the chain   {index} chain x calls + call
  {rep} the repetition                    {word} a random word (seeded by chain.seed and the repetition)
A string that is exactly "{chain}", "{call}", "{index}" or "{rep}" becomes that integer. Other text in braces is
kept as it is. Warm-up calls replay the trace too, numbered as the chains after the measured ones.

Every request is built before the measured window: a step without placeholders is encoded once and shared by
every chain; a step with them is encoded once into literal pieces and holes, and each call only fills its holes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gcbench.errors import GcbenchError
from gcbench.mcp import call_template, request_template

MAX_TRACE_BYTES = 64 * 1024 * 1024
MAX_STEPS = 100_000  # scenario.MAX_CALLS: one chain replays the trace once
MAX_ARGS_DEPTH = 32  # tool arguments nested deeper are refused (scenario.py and traces alike)
MAX_THINK_MS = 600_000.0  # scenario.MAX_THINK_MS
STEP_FIELDS = ("tool", "arguments", "think_ms")
PLACEHOLDER = re.compile(r"\{(chain|call|index|rep|word)\}")
INT_PLACEHOLDERS = ("chain", "call", "index", "rep")
WORD_STREAM = 0x776F7264  # ties {word}'s generator to its job, apart from the think-time stream of the same seed
# {word}'s vocabulary: short, plain ASCII (no JSON escaping), varied enough that a cache keyed on it misses
WORDS = tuple("""
alpha amber anchor apple arrow atlas autumn badge basil beacon birch bloom border branch breeze bridge bronze
cabin canal candle canyon carbon cedar chalk cherry cipher circle cliff cloud cobalt comet copper coral cotton
crane crystal delta desert dune eagle echo ember engine falcon fern fiber flame forest fossil frost galaxy garden
garnet glacier granite harbor hazel helium heron horizon indigo island ivory jasper jungle kernel lagoon lantern
lemon linen lotus lunar magnet maple marble meadow meteor mirror mist monsoon mosaic nectar needle nickel north
oasis ocean olive onyx orbit orchid oxide paper pebble pepper pixel planet plume polar prism pulse quartz quill
radar raven reef ridge river rocket ruby saffron salmon sand signal silver slate solar spark spiral spruce
summit tangent thistle thunder timber topaz tundra valley velvet vertex violet willow winter zenith zephyr
""".split())


@dataclass(frozen=True)
class Step:
    tool: str
    arguments: dict
    think_ms: float | None = None  # None: the scenario's think time

    def to_dict(self) -> dict:
        d = {"tool": self.tool, "arguments": self.arguments}
        if self.think_ms is not None:
            d["think_ms"] = self.think_ms
        return d


@dataclass(frozen=True)
class Trace:
    steps: tuple[Step, ...]

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def tools(self) -> list[str]:
        """The tools the trace calls, in order of first use."""
        return list(dict.fromkeys(s.tool for s in self.steps))

    def to_list(self) -> list[dict]:
        return [s.to_dict() for s in self.steps]


# ---------------------------------------------------------------------------------------------- parsing


def _type_name(v: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "an object",
            list: "an array", type(None): "null"}.get(type(v), type(v).__name__)


def json_depth(value: object, limit: int = MAX_ARGS_DEPTH) -> int:
    """Nesting depth of objects and arrays, without recursion (the value may be nested very deeply); it stops
    counting past `limit`."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            deepest = max(deepest, d)
            if d > limit:
                return d
            todo.extend((x, d + 1) for x in v)
    return deepest


def _value_problem(value: object) -> str | None:
    """What JSON cannot carry or a placeholder cannot be in: a key with a placeholder, NaN or an infinity."""
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, dict):
            for k, x in v.items():
                if PLACEHOLDER.search(k):
                    return f"key {k[:40]!r} holds a placeholder: placeholders go in values, not keys"
                todo.append(x)
        elif isinstance(v, list):
            todo.extend(v)
        elif isinstance(v, float) and not math.isfinite(v):
            return f"holds {v}, which JSON cannot carry"
    return None


def parse_step(rec: object, where: str, field: str = "") -> Step:
    """One call of a trace; `where` names the file and line (or the scenario file), `field` the step's prefix."""
    def bad(name: str, problem: str) -> GcbenchError:
        return GcbenchError(f"{where}: field '{field}{name}': {problem}")

    if not isinstance(rec, dict):
        raise GcbenchError(f"{where}{': field ' + repr(field.rstrip('.')) if field else ''}: expected an object "
                           f"with a 'tool', got {_type_name(rec)}")
    for k in rec:
        if k not in STEP_FIELDS:
            raise bad(k, f"unknown field; allowed here: {', '.join(STEP_FIELDS)}")
    if "tool" not in rec:
        raise bad("tool", "required (the name of the tool to call)")
    tool = rec["tool"]
    if not isinstance(tool, str) or not tool:
        raise bad("tool", f"expected a tool name, got {_type_name(tool) if tool != '' else 'an empty string'}")
    args = rec.get("arguments", {})
    if not isinstance(args, dict):
        raise bad("arguments", f"expected an object, got {_type_name(args)}")
    if json_depth(args) > MAX_ARGS_DEPTH:
        raise bad("arguments", f"nested deeper than the cap of {MAX_ARGS_DEPTH} levels")
    problem = _value_problem(args)
    if problem is not None:
        raise bad("arguments", problem)
    think = rec.get("think_ms")
    if think is not None:
        if isinstance(think, bool) or not isinstance(think, (int, float)):
            raise bad("think_ms", f"expected a number of ms, got {_type_name(think)}")
        if not math.isfinite(think) or not 0 <= think <= MAX_THINK_MS:
            raise bad("think_ms", f"expected a number from 0 to {MAX_THINK_MS:g}, got {think}")
        think = float(think)
    return Step(tool, args, think)


def _check_length(where: str, n: int) -> None:
    if n == 0:
        raise GcbenchError(f"{where}: the trace has no calls")
    if n > MAX_STEPS:
        raise GcbenchError(f"{where}: {n} calls is above the cap of {MAX_STEPS} calls in a trace")


def load_trace(path: str | Path) -> Trace:
    """A trace file; a bad line is one error naming file:line and the field."""
    src = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TRACE_BYTES + 1)
    except OSError as e:
        raise GcbenchError(f"{src}: cannot read the trace: {e.strerror}") from None
    if len(raw) > MAX_TRACE_BYTES:
        raise GcbenchError(f"{src}: larger than the cap of {MAX_TRACE_BYTES >> 20} MiB for a trace file")
    steps = []
    for n, line in enumerate(raw.split(b"\n"), 1):
        text = line.strip()
        if not text or text.startswith(b"#"):
            continue
        where = f"{src}:{n}"
        try:
            rec = json.loads(text)
        except UnicodeDecodeError:
            raise GcbenchError(f"{where}: not UTF-8 text") from None
        except ValueError as e:
            raise GcbenchError(f"{where}: not a JSON object ({e.__class__.__name__}: {str(e)[:80]})") from None
        except RecursionError:
            raise GcbenchError(f"{where}: field 'arguments': nested too deeply") from None
        steps.append(parse_step(rec, where))
        if len(steps) > MAX_STEPS:
            _check_length(src, len(steps))
    _check_length(src, len(steps))
    return Trace(tuple(steps))


def parse_inline(value: object, src: str, base_dir: Path) -> Trace:
    """A scenario's `trace`: an array of tables ([[trace]]) or the path of a trace file (relative to the scenario)."""
    if isinstance(value, str):
        p = Path(value)
        return load_trace(p if p.is_absolute() else base_dir / p)
    if not isinstance(value, list):
        raise GcbenchError(f"{src}: field 'trace': expected [[trace]] tables or a trace file's path, got "
                           f"{_type_name(value)}")
    _check_length(f"{src}: field 'trace'", len(value))
    return Trace(tuple(parse_step(rec, src, f"trace[{i}].") for i, rec in enumerate(value)))


# ---------------------------------------------------------------------------------------------- requests


class _Hole:
    """A string of the arguments that holds placeholders: filled per call."""

    __slots__ = ("text", "as_int", "words")

    def __init__(self, text: str) -> None:
        self.text = text
        m = PLACEHOLDER.fullmatch(text)
        self.as_int = m.group(1) if m and m.group(1) in INT_PLACEHOLDERS else None
        self.words = sum(1 for m in PLACEHOLDER.finditer(text) if m.group(1) == "word")


def _pieces(value: object, out: list) -> None:
    """Encode `value` like json.dumps(separators=(',', ':')) into out: literal str pieces and _Holes."""
    if isinstance(value, str) and PLACEHOLDER.search(value):
        out.append(_Hole(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            out.append(("," if i else "") + json.dumps(k) + ":")
            _pieces(v, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _pieces(v, out)
        out.append("]")
    else:
        out.append(json.dumps(value, separators=(",", ":")))


def _compile(step: Step) -> list | None:
    """The params of a step as literal pieces and holes; None when it has no placeholder."""
    out: list = []
    _pieces({"name": step.tool, "arguments": step.arguments}, out)
    if not any(isinstance(p, _Hole) for p in out):
        return None
    merged: list = []
    for p in out:  # adjacent literals joined: a call then joins only a few pieces
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return merged


def _fill(pieces: list, values: dict, words) -> str:
    parts = []
    for p in pieces:
        if isinstance(p, str):
            parts.append(p)
        elif p.as_int is not None:
            parts.append(str(values[p.as_int]))
        else:
            text = PLACEHOLDER.sub(lambda m: next(words) if m.group(1) == "word" else str(values[m.group(1)]), p.text)
            parts.append(json.dumps(text))
    return "".join(parts)


def _params(trace: Trace, first_chain: int, chains: int, seed: int, rep: int, warmup: bool):
    """Yield (step index, params JSON text or None when the step has no placeholder) for chains x steps calls.

    The {word}s come in order (chain, call, occurrence) from one generator per cell (and one for warm-up)."""
    compiled = [_compile(s) for s in trace.steps]
    per_chain = sum(p.words for c in compiled if c for p in c if isinstance(p, _Hole))
    rng = np.random.default_rng([seed, rep, WORD_STREAM, int(warmup)])
    words = iter([WORDS[i] for i in rng.integers(0, len(WORDS), chains * per_chain)] if per_chain else ())
    k = len(trace)
    for c in range(first_chain, first_chain + chains):
        for i, pieces in enumerate(compiled):
            if pieces is None:
                yield i, None
            else:
                yield i, _fill(pieces, {"chain": c, "call": i, "index": c * k + i, "rep": rep}, words)


def request_templates(trace: Trace, chains: int, seed: int, rep: int) -> list[bytes]:
    """Every measured call's tools/call request, row = chain x len(trace) + call, each with a %d hole for the id
    (what chain.run_chains sends). Steps without placeholders share one bytes object."""
    shared = [call_template(s.tool, s.arguments) for s in trace.steps]
    return [shared[i] if text is None else request_template(text.encode())
            for i, text in _params(trace, 0, chains, seed, rep, warmup=False)]


def warmup_params(trace: Trace, calls: int, chains: int, seed: int, rep: int) -> list[dict]:
    """The params of `calls` warm-up calls: the trace replayed as the chains numbered after the measured ones."""
    if calls == 0:
        return []
    k = len(trace)
    extra = -(-calls // k)
    out = []
    for i, text in _params(trace, chains, extra, seed, rep, warmup=True):
        if len(out) == calls:
            break
        s = trace.steps[i]
        out.append({"name": s.tool, "arguments": s.arguments} if text is None else json.loads(text))
    return out


def apply_think(think_ns: np.ndarray, trace: Trace) -> np.ndarray:
    """The think schedule (chains, calls) with the trace's own think times in place of the scenario's."""
    out = think_ns.copy()
    for i, s in enumerate(trace.steps):
        if i and s.think_ms is not None:
            out[:, i] = int(round(s.think_ms * 1e6))
    return out
