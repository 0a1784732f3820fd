"""What a run measures: one frozen RunConfig, built from the command line's options and checked once.

`RunConfig.from_options` is the one place `gcbench run` and `gcbench advise` turn options into a config: every
problem is a GcbenchError naming the option (one ERROR line, exit 2, before any run folder exists). The
scheduler (gcbench/scheduler.py) only reads the config; a sweep and calibrate build one directly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from gcbench.backends.base import Backend
from gcbench.errors import GcbenchError
from gcbench.gcmode import GcMode
from gcbench.hiccup import DEFAULT_FLOOR_US
from gcbench.memwatch import INTERVAL_S
from gcbench.scenario import Scenario

MAX_TIMEOUT_S = 86_400.0  # a day: poll() takes at most ~24 days, and no call is meant to take longer
TRANSPORTS = ("stdio", "http")


@dataclass(frozen=True)
class RunConfig:
    scenario: Scenario
    backends: list[Backend]
    gc_modes: list[GcMode]
    out_dir: Path
    reps: int = 1
    transport: str = "stdio"
    call_timeout_s: float = 30.0
    start_timeout_s: float = 60.0
    max_server_memory_bytes: int | None = None  # RSS cap of a server's process tree; None: no cap
    pin: bool = False  # harness on one core, servers on the others
    modes_by_backend: dict[str, list[GcMode]] | None = None  # per-backend modes (a sweep); else gc_modes for all
    run_id: str | None = None  # the run folder's name (a sweep's point); default: date, time and scenario
    hiccup_us: int = 0  # the servers' hiccup meter interval (0: off); with it, a control process beside each cell
    hiccup_floor_us: int = DEFAULT_FLOOR_US  # only wake-ups later than this are recorded
    meter_overhead: bool = False  # every backend twice, meter off and on (`<name>+meter`), to show its cost
    rss_interval_s: float = INTERVAL_S  # the memory watcher's RSS sampling interval
    # what the user should know before the run (a default backend that cannot run here); not recorded
    notes: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_options(cls, *, scenario: str = "default", backends: str | None = None,
                     gc_modes: str | None = "default,disabled", server_cmd: str | None = None, url: str | None = None,
                     server_url: str | None = None, server_events: str | None = None, runtime: str | None = None,
                     tool: str | None = None, tool_args: str | None = None, trace_file: Path | None = None,
                     chains: int | None = None, calls: int | None = None, rate_per_s: float | None = None,
                     reps: int = 1, out_dir: Path = Path("runs"), transport: str = "stdio",
                     call_timeout: float = 30.0, start_timeout: float = 60.0, max_server_memory: str = "50%",
                     pin: bool = False, hiccup_us: int = 0, hiccup_floor_us: int = 200,
                     meter_overhead: bool = False, pythons: tuple[str, ...] = (),
                     require_server: str | None = None) -> RunConfig:
        """The options of `gcbench run` (advise passes its subset, gc_modes None: it picks them, and
        `require_server`: the command that needs a server named). Raises GcbenchError naming the option."""
        from gcbench.backends import select_backends
        from gcbench.gcmode import parse_gc_modes

        if transport not in TRANSPORTS:
            raise GcbenchError(f"--transport: expected one of {', '.join(TRANSPORTS)}, got {transport!r}")
        if url and transport != "http":
            raise GcbenchError("--url: the server --server-cmd starts speaks HTTP only with --transport http")
        if server_url:
            transport = "http"  # what the run records: a running server is driven over Streamable HTTP
        sc = _scenario(scenario, trace_file, tool, tool_args, chains, calls, rate_per_s)
        names = _names(backends)
        if server_cmd is not None and not server_cmd.strip():
            raise GcbenchError("--server-cmd: empty command; leave the option out to run the built-in servers")
        if require_server and not names and not (server_cmd or sc.server.command or server_url or sc.server.real):
            raise GcbenchError(f"{require_server}: give the server to advise on: --server-cmd COMMAND, -b BACKEND, "
                               "or a scenario with a [server] command")
        _check_count("--reps", reps, 1, 1000)
        _check_count("--hiccup-us", hiccup_us, 0)
        _check_count("--hiccup-floor-us", hiccup_floor_us, 0)
        call_timeout = check_seconds("--call-timeout", call_timeout)
        start_timeout = check_seconds("--start-timeout", start_timeout)
        args = parse_tool_args(tool_args) if tool_args is not None else sc.server.tool_args
        memory_cap = _memory_cap(max_server_memory)
        notes = _notes(names, pythons, server_cmd or sc.server.command or server_url or sc.server.real)
        chosen = select_backends(names, server_cmd or sc.server.command, tool or sc.server.tool, args,
                                 runtime=runtime, pythons=pythons, url=url, server_url=server_url,
                                 server_events=server_events, real=sc.server.real)
        return cls(scenario=sc, backends=chosen, gc_modes=parse_gc_modes(gc_modes) if gc_modes is not None else [],
                   out_dir=out_dir, reps=reps, transport=transport, call_timeout_s=call_timeout,
                   start_timeout_s=start_timeout, max_server_memory_bytes=memory_cap, pin=pin,
                   hiccup_us=hiccup_us or (1000 if meter_overhead else 0), hiccup_floor_us=hiccup_floor_us,
                   meter_overhead=meter_overhead, notes=notes)

    def modes_for(self, backend: Backend) -> list[GcMode]:
        if self.modes_by_backend is not None:
            return self.modes_by_backend.get(backend.name, [])
        return self.gc_modes

    def to_dict(self) -> dict:
        return {
            "backends": [b.name for b in self.backends],
            "gc_modes": [str(m) for m in self.gc_modes],
            "reps": self.reps,
            "transport": self.transport,
            "call_timeout_s": self.call_timeout_s,
            "start_timeout_s": self.start_timeout_s,
            "max_server_memory_bytes": self.max_server_memory_bytes,
            "pin": self.pin,
            "modes_by_backend": {b: [str(m) for m in ms] for b, ms in self.modes_by_backend.items()}
            if self.modes_by_backend is not None else None,
            "hiccup_us": self.hiccup_us,
            "hiccup_floor_us": self.hiccup_floor_us,
            "meter_overhead": self.meter_overhead,
            "rss_interval_ms": self.rss_interval_s * 1e3,
        }


def check_seconds(option: str, value: float) -> float:
    """click's FloatRange lets nan through (every comparison with it is false), and inf or 1e308 overflow
    the nanosecond deadlines in every cell: refused here, once."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.001 <= value <= MAX_TIMEOUT_S:
        raise GcbenchError(f"{option}: expected seconds from 0.001 to {MAX_TIMEOUT_S:g}, got {value}")
    return float(value)


def parse_tool_args(text: str) -> dict:
    from gcbench.scenario import check_tool_args

    try:
        args = json.loads(text)
    except ValueError as e:
        raise GcbenchError(f"--tool-args: not valid JSON ({e})") from None
    except RecursionError:
        raise GcbenchError("--tool-args: nested too deeply") from None
    if not isinstance(args, dict):
        raise GcbenchError("--tool-args: must be a JSON object")
    check_tool_args("--tool-args", args)
    return args


def _scenario(name: str, trace_file: Path | None, tool: str | None, tool_args: str | None, chains: int | None,
              calls: int | None, rate_per_s: float | None) -> Scenario:
    from gcbench.scenario import load_scenario

    sc = load_scenario(name)
    if trace_file is not None:
        from gcbench.trace import load_trace

        if tool is not None or tool_args is not None:
            raise GcbenchError("--trace: the trace names each call's tool and arguments; leave out --tool and --tool-args")
        sc = sc.with_trace(load_trace(trace_file), str(trace_file))
    return sc.with_overrides(chains=chains, calls=calls, rate_per_s=rate_per_s)


def _names(backends: str | None) -> list[str] | None:
    names = [n.strip() for n in backends.split(",") if n.strip()] if backends is not None else None
    if names == []:  # "" or ",": not "every default backend"
        raise GcbenchError(f"--backend: no backend named in {backends!r}; see `gcbench backends`")
    return names


def _check_count(option: str, value: int, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise GcbenchError(f"{option}: expected a whole number {span}, got {value!r}")


def _memory_cap(text: str) -> int | None:
    from gcbench.memwatch import parse_memory_cap, total_memory_bytes

    try:
        return parse_memory_cap(text, total_memory_bytes())
    except ValueError as e:
        raise GcbenchError(f"--max-server-memory: {e}") from None


def _notes(names: list[str] | None, pythons: tuple[str, ...], users_server: str | None) -> tuple[str, ...]:
    """What `run` says before it starts: a --python nobody selects, default backends that cannot run here."""
    from gcbench.backends import all_backends

    notes = []
    if pythons and not any("@" in n for n in names or ()):
        notes.append("gcbench: --python only makes an interpreter selectable; name it with its version, "
                     "e.g. -b python@3.12 (see `gcbench backends --python PATH`)")
    if not names and not users_server:
        for b in all_backends():  # the default set: say which ones cannot run here, and why
            a = b.availability() if b.in_default_run else None
            if a is not None and not a.ok:
                notes.append(f"gcbench: not running backend {b.name}: {a.reason}")
    return tuple(notes)
