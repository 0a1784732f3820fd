"""Scenario files: TOML, validated once into a frozen dataclass with messages that name file and field."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from gcbench.errors import GcbenchError
from gcbench.trace import MAX_ARGS_DEPTH, Trace, json_depth, parse_inline

BUILTIN_DIR = Path(__file__).resolve().parent / "scenarios"  # package data: in a wheel too

# Caps keep a typo from exhausting the machine before anything is measured.
MAX_CALLS = 100_000
MAX_CHAINS = 1_000_000
MAX_AGENTS = 256
MAX_OBJECTS = 50_000_000
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
MAX_CPU_ITERS = 1_000_000_000
MAX_SLEEP_US = 10_000_000
MAX_THINK_MS = 600_000.0
MAX_RATE_PER_S = 100_000.0
MIN_RATE_PER_S = 0.001  # one chain every 1000 s; a smaller rate overflows the driver's nanosecond schedule
MAX_CALLS_PER_CELL = 2_000_000  # chains x calls: the driver preallocates a few lists of this length
MAX_TOOL_ARGS_DEPTH = MAX_ARGS_DEPTH
MAX_SCENARIO_BYTES = 1024 * 1024  # a scenario is a few lines; a bigger file is a mistake
THINK_DISTS = ("fixed", "exponential", "uniform", "lognormal")
# What the start-up heap and the retained cache are made of (backends/PROTOCOL.md, "Heap shapes"): `lists` the
# two-field objects of the tool's garbage, `records` five-field maps, `instances` the same record as a class or
# struct, `json` a parsed JSON document of records. A scenario that does not say gets DEFAULT_SHAPE.
HEAP_SHAPES = ("lists", "records", "instances", "json")
DEFAULT_SHAPE = "records"


@dataclass(frozen=True)
class Think:
    """Think time between two calls of a chain (the LLM's turn), in milliseconds."""

    dist: str = "fixed"
    ms: float = 0.0  # fixed value, or the mean (exponential, lognormal)
    min_ms: float = 0.0  # uniform
    max_ms: float = 0.0  # uniform
    sigma: float = 0.5  # lognormal shape


@dataclass(frozen=True)
class Chain:
    calls: int = 50
    chains: int = 20
    agents: int = 1
    warmup_calls: int = 20
    seed: int = 1
    think: Think = field(default_factory=Think)
    rate_per_s: float = 0.0  # > 0: open loop, a new chain starts every 1/rate s whatever the server does


@dataclass(frozen=True)
class Work:
    """Arguments of the simulated `work` tool, identical in every runtime (see backends/PROTOCOL.md)."""

    alloc_objects: int = 0
    cyclic_fraction: float = 0.0
    retain_objects: int = 0
    retain_cap: int = 0
    payload_bytes: int = 0
    cpu_iters: int = 0
    sleep_us: int = 0
    retain_shape: str = DEFAULT_SHAPE  # what the retained objects are (HEAP_SHAPES)

    def as_arguments(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Server:
    heap_objects: int = 0  # long-lived objects built at server start-up
    heap_shape: str = DEFAULT_SHAPE  # what they are (HEAP_SHAPES); heap_objects counts records, not sub-objects
    command: str = ""  # a user's own MCP stdio server (run without a shell); empty: the built-in servers
    tool: str = "work"  # the tool a user's server is driven with
    tool_args: dict | None = None  # its arguments (None: the [work] table)
    real: str = ""  # a real registry server (gcbench/real: "memory", "git", ...) instead; empty: none


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    chain: Chain = field(default_factory=Chain)
    work: Work = field(default_factory=Work)
    server: Server = field(default_factory=Server)
    trace: Trace | None = None  # each chain replays it (chain.calls is its length); None: `calls` calls of server.tool
    source: str = "<built-in>"
    trace_source: str = ""  # where the trace came from (a file, or the scenario file itself)

    def with_overrides(self, *, chains: int | None = None, calls: int | None = None,
                       rate_per_s: float | None = None) -> Scenario:
        from dataclasses import replace

        ch = self.chain
        if rate_per_s is not None:
            ch = replace(ch, rate_per_s=_check_rate(self.source, "chain.rate_per_s", rate_per_s))
        if chains is not None:
            ch = replace(ch, chains=_check_int(self.source, "chain.chains", chains, 1, MAX_CHAINS))
        if calls is not None:
            if self.trace is not None and calls != len(self.trace):
                raise GcbenchError(f"--calls: a chain replays the trace ({self.trace_source}), {len(self.trace)} "
                                   f"calls; leave --calls out")
            ch = replace(ch, calls=_check_int(self.source, "chain.calls", calls, 1, MAX_CALLS))
        _check_total_calls(self.source, ch)
        return replace(self, chain=ch)

    def with_trace(self, trace: Trace, source: str) -> Scenario:
        """Each chain replays `trace` (it replaces the scenario's own): chain.calls becomes its length."""
        ch = replace(self.chain, calls=len(trace))
        _check_total_calls(source, ch)
        return replace(self, chain=ch, trace=trace, trace_source=source)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        d.pop("trace_source")
        d.pop("trace")
        if not self.server.real:  # absent otherwise: a sweep's grid_hash and compare stay as before real servers
            d["server"].pop("real")
        if self.trace is not None:  # absent otherwise: a sweep's grid_hash and compare stay as before traces
            d["trace"] = self.trace.to_list()
        return d


# ---------------------------------------------------------------------------------------------- loading


def list_builtin() -> list[tuple[str, str]]:
    """(name, description) of every scenario shipped in gcbench/scenarios/."""
    out = []
    for path in sorted(BUILTIN_DIR.glob("*.toml")):
        try:
            out.append((path.stem, load_scenario(str(path)).description))
        except GcbenchError as e:
            if "is a sweep file" in str(e):
                desc = read_toml(path).get("description", "")
                out.append((path.stem, f"{desc} [a sweep: gcbench sweep {path.stem}]"))
            else:
                out.append((path.stem, f"(invalid: {e})"))
    return out


def resolve_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    # a bare name is a path only when such a file exists: a run or sweep folder of the same name in the current
    # directory (`gcbench sweep claim-check-v2 -o claim-check-v2`, then again from there) is no scenario file
    if p.suffix == ".toml" or p.is_file() or "/" in name_or_path:
        if not p.is_file():
            raise GcbenchError(f"scenario file not found: {name_or_path}")
        return p
    for candidate in (Path("scenarios") / f"{name_or_path}.toml", BUILTIN_DIR / f"{name_or_path}.toml"):
        if candidate.is_file():
            return candidate
    names = ", ".join(n for n, _ in list_builtin())
    raise GcbenchError(f"unknown scenario {name_or_path!r}; built-in scenarios: {names} (or give a path to a .toml file)")


def load_scenario(name_or_path: str) -> Scenario:
    path = resolve_path(name_or_path)
    data = read_toml(path)
    if not data:
        raise GcbenchError(f"{path}: empty scenario file (no field set); `--scenario default` runs the defaults")
    if "sweep" in data:
        raise GcbenchError(f"{path} is a sweep file (it has a [sweep] table): run it with `gcbench sweep {name_or_path}`")
    return parse_scenario(data, str(path), default_name=path.stem)


def read_toml(path: Path) -> dict:
    """A TOML file as data (never code); every failure is a GcbenchError naming the file."""
    src = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)
    except OSError as e:
        raise GcbenchError(f"{src}: cannot read: {e.strerror}") from None
    if len(raw) > MAX_SCENARIO_BYTES:
        raise GcbenchError(f"{src}: larger than the cap of {MAX_SCENARIO_BYTES} bytes for a scenario file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise GcbenchError(f"{src}: not a UTF-8 text file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise GcbenchError(f"{src}: invalid TOML: {e}") from None
    except RecursionError:
        raise GcbenchError(f"{src}: invalid TOML: arrays or tables nested too deeply") from None


def parse_scenario(data: dict, src: str, default_name: str = "scenario") -> Scenario:
    _only_keys(src, "", data, {"name", "description", "chain", "work", "server", "trace"})
    name = _check_str(src, "name", data.get("name", default_name))
    description = _check_str(src, "description", data.get("description", ""))
    chain_t = _table(src, "chain", data)
    _only_keys(src, "chain.", chain_t, {"calls", "chains", "agents", "warmup_calls", "seed", "think_ms", "rate_per_s"})
    chain = Chain(
        calls=_check_int(src, "chain.calls", chain_t.get("calls", 50), 1, MAX_CALLS),
        chains=_check_int(src, "chain.chains", chain_t.get("chains", 20), 1, MAX_CHAINS),
        agents=_check_int(src, "chain.agents", chain_t.get("agents", 1), 1, MAX_AGENTS),
        warmup_calls=_check_int(src, "chain.warmup_calls", chain_t.get("warmup_calls", 20), 0, MAX_CALLS),
        seed=_check_int(src, "chain.seed", chain_t.get("seed", 1), 0, 2**63 - 1),
        think=_parse_think(src, chain_t.get("think_ms", 0)),
        rate_per_s=_check_rate(src, "chain.rate_per_s", chain_t.get("rate_per_s", 0.0)),
    )
    trace = None
    if "trace" in data:
        trace = parse_inline(data["trace"], src, Path(src).parent)
        if "calls" in chain_t and chain.calls != len(trace):
            raise GcbenchError(f"{src}: field 'chain.calls': {chain.calls} calls, but a chain replays the trace, "
                               f"{len(trace)} calls; leave chain.calls out")
        chain = replace(chain, calls=len(trace))
    _check_total_calls(src, chain)
    work_t = _table(src, "work", data)
    _only_keys(src, "work.", work_t, set(Work.__dataclass_fields__))
    work = Work(
        alloc_objects=_check_int(src, "work.alloc_objects", work_t.get("alloc_objects", 0), 0, MAX_OBJECTS),
        cyclic_fraction=_check_float(src, "work.cyclic_fraction", work_t.get("cyclic_fraction", 0.0), 0.0, 1.0),
        retain_objects=_check_int(src, "work.retain_objects", work_t.get("retain_objects", 0), 0, MAX_OBJECTS),
        retain_cap=_check_int(src, "work.retain_cap", work_t.get("retain_cap", 0), 0, MAX_OBJECTS),
        payload_bytes=_check_int(src, "work.payload_bytes", work_t.get("payload_bytes", 0), 0, MAX_PAYLOAD_BYTES),
        cpu_iters=_check_int(src, "work.cpu_iters", work_t.get("cpu_iters", 0), 0, MAX_CPU_ITERS),
        sleep_us=_check_int(src, "work.sleep_us", work_t.get("sleep_us", 0), 0, MAX_SLEEP_US),
        retain_shape=_check_shape(src, "work.retain_shape", work_t.get("retain_shape", DEFAULT_SHAPE)),
    )
    if work.retain_objects and not work.retain_cap:
        raise GcbenchError(f"{src}: field 'work.retain_cap': required when work.retain_objects > 0 (caps live-heap growth)")
    server_t = _table(src, "server", data)
    _only_keys(src, "server.", server_t, {"heap_objects", "heap_shape", "command", "tool", "tool_args", "real"})
    tool_args = server_t.get("tool_args")
    if tool_args is not None and not isinstance(tool_args, dict):
        raise GcbenchError(f"{src}: field 'server.tool_args': expected a table, got {_type_name(tool_args)}")
    if tool_args is not None:
        check_tool_args(f"{src}: field 'server.tool_args'", tool_args)
    if "command" in server_t and isinstance(server_t["command"], str) and not server_t["command"].strip():
        raise GcbenchError(f"{src}: field 'server.command': empty command; leave it out to run the built-in servers")
    server = Server(
        heap_objects=_check_int(src, "server.heap_objects", server_t.get("heap_objects", 0), 0, MAX_OBJECTS),
        heap_shape=_check_shape(src, "server.heap_shape", server_t.get("heap_shape", DEFAULT_SHAPE)),
        command=_check_str(src, "server.command", server_t.get("command", "")),
        tool=_check_str(src, "server.tool", server_t.get("tool", "work")),
        tool_args=tool_args,
        real=_check_real(src, server_t, trace is not None),
    )
    trace_source = (str(Path(src).parent / data["trace"]) if isinstance(data.get("trace"), str) else src) \
        if trace is not None else ""
    return Scenario(name=name, description=description, chain=chain, work=work, server=server, trace=trace,
                    source=src, trace_source=trace_source)


def _check_real(src: str, server_t: dict, has_trace: bool) -> str:
    """`[server] real = NAME`: one of gcbench/real's servers, driven by the scenario's trace, alone."""
    if "real" not in server_t:
        return ""
    from gcbench.real import SERVERS

    name = _check_str(src, "server.real", server_t["real"])
    if name not in SERVERS:
        raise GcbenchError(f"{src}: field 'server.real': unknown real server {name[:40]!r}; choose one of "
                           f"{', '.join(SERVERS)}")
    for other in ("command", "tool", "tool_args"):
        if other in server_t:
            raise GcbenchError(f"{src}: field 'server.{other}': a scenario with server.real runs that server with "
                               f"its trace; leave server.{other} out")
    if not has_trace:
        raise GcbenchError(f"{src}: field 'server.real': needs a trace ([[trace]] tables or trace = \"FILE\") "
                           f"of the {name} server's tools")
    return name


def _parse_think(src: str, value: object) -> Think:
    f = "chain.think_ms"
    if not isinstance(value, dict):
        return Think(dist="fixed", ms=_check_float(src, f, value, 0.0, MAX_THINK_MS))
    _only_keys(src, f + ".", value, {"dist", "mean", "min", "max", "sigma", "value"})
    dist = _check_str(src, f + ".dist", value.get("dist", "fixed"))
    if dist not in THINK_DISTS:
        raise GcbenchError(f"{src}: field '{f}.dist': unknown distribution {dist!r}; choose one of {', '.join(THINK_DISTS)}")
    if dist == "fixed":
        return Think(dist, ms=_check_float(src, f + ".value", value.get("value", 0.0), 0.0, MAX_THINK_MS))
    if dist == "uniform":
        lo = _check_float(src, f + ".min", value.get("min", 0.0), 0.0, MAX_THINK_MS)
        hi = _check_float(src, f + ".max", value.get("max", lo), 0.0, MAX_THINK_MS)
        if hi < lo:
            raise GcbenchError(f"{src}: field '{f}.max': must be >= {f}.min ({lo})")
        return Think(dist, ms=(lo + hi) / 2, min_ms=lo, max_ms=hi)
    if "mean" not in value:
        raise GcbenchError(f"{src}: field '{f}.mean': required for the {dist} distribution")
    mean = _check_float(src, f + ".mean", value["mean"], 0.0, MAX_THINK_MS)
    sigma = _check_float(src, f + ".sigma", value.get("sigma", 0.5), 0.0, 5.0)
    return Think(dist, ms=mean, sigma=sigma)


def _check_total_calls(src: str, chain: Chain) -> None:
    total = chain.chains * chain.calls
    if total > MAX_CALLS_PER_CELL:
        raise GcbenchError(
            f"{src}: field 'chain.chains': {chain.chains} chains x {chain.calls} calls = {total} calls per cell "
            f"is above the cap of {MAX_CALLS_PER_CELL}"
        )


def check_tool_args(where: str, args: dict) -> None:
    """Tool arguments that can go on the wire: nested at most MAX_TOOL_ARGS_DEPTH levels, every number
    finite (TOML's nan and inf, JSON's NaN and 1e999 would be written as NaN or Infinity: not JSON)."""
    if json_depth(args) > MAX_TOOL_ARGS_DEPTH:
        raise GcbenchError(f"{where}: nested deeper than the cap of {MAX_TOOL_ARGS_DEPTH} levels")
    todo: list[tuple[object, str]] = [(args, "")]
    while todo:
        v, path = todo.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise GcbenchError(f"{where}: {path[1:] or 'value'} is {v}, which JSON cannot carry")
        if isinstance(v, dict):
            todo.extend((x, f"{path}.{k}") for k, x in v.items())
        elif isinstance(v, list):
            todo.extend((x, f"{path}[{i}]") for i, x in enumerate(v))


def _check_rate(src: str, f: str, v: object) -> float:
    rate = _check_float(src, f, v, 0.0, MAX_RATE_PER_S)
    if 0 < rate < MIN_RATE_PER_S:
        raise GcbenchError(f"{src}: field '{f}': expected 0 (closed loop) or a rate from {MIN_RATE_PER_S:g} to "
                           f"{MAX_RATE_PER_S:g} chains/s, got {v}")
    return rate


def _table(src: str, key: str, data: dict) -> dict:
    t = data.get(key, {})
    if not isinstance(t, dict):
        raise GcbenchError(f"{src}: field '{key}': expected a table, got {_type_name(t)}")
    return t


def _only_keys(src: str, prefix: str, table: dict, allowed: set[str]) -> None:
    for k in table:
        if k not in allowed:
            raise GcbenchError(
                f"{src}: field '{prefix}{k}': unknown field; allowed here: {', '.join(sorted(allowed))}"
            )


def _type_name(v: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", dict: "a table",
            list: "an array"}.get(type(v), type(v).__name__)


def _check_int(src: str, f: str, v: object, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise GcbenchError(f"{src}: field '{f}': expected an integer, got {_type_name(v)}")
    if v < lo:
        what = "a non-negative integer" if lo == 0 else f"an integer >= {lo}"
        raise GcbenchError(f"{src}: field '{f}': expected {what}, got {v}")
    if v > hi:
        raise GcbenchError(f"{src}: field '{f}': {v} is above the cap of {hi}")
    return v


def _check_float(src: str, f: str, v: object, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise GcbenchError(f"{src}: field '{f}': expected a number, got {_type_name(v)}")
    if not math.isfinite(v) or v < lo or v > hi:
        raise GcbenchError(f"{src}: field '{f}': expected a number from {lo:g} to {hi:g}, got {v}")
    return float(v)


def _check_shape(src: str, f: str, v: object) -> str:
    if _check_str(src, f, v) not in HEAP_SHAPES:
        raise GcbenchError(f"{src}: field '{f}': unknown shape {v[:40]!r}; choose one of {', '.join(HEAP_SHAPES)}")
    return v


def _check_str(src: str, f: str, v: object) -> str:
    if not isinstance(v, str):
        raise GcbenchError(f"{src}: field '{f}': expected a string, got {_type_name(v)}")
    return v
