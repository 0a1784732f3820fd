"""The gcbench command line: parse, build a config, call a plain function, map errors to exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

import gcbench
from gcbench.errors import GcbenchError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_CELL_FAILED = 3


def _fail(msg: str) -> None:
    # one line whatever the message holds (a scenario key or a path can carry a newline)
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(msg))
    click.echo(f"ERROR: {line}", err=True)
    sys.exit(EXIT_BAD_INPUT)


class _Group(click.Group):
    """Turns every GcbenchError into one 'ERROR: ...' line and exit code 2, in one place."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GcbenchError as e:
            _fail(str(e))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(gcbench.__version__, prog_name="gcbench")
def main() -> None:
    """Measure what garbage-collection pauses cost an AI agent's chain of MCP tool calls.

    gcbench runs simulated agent chains (default: 50 sequential tools/call each) against real MCP tool
    servers, records every GC pause the server's runtime reports with CLOCK_MONOTONIC timestamps, joins the
    pauses to the calls they delayed, and compares the result with the claim that "a 10 ms GC pause during a
    chain of 50 tool calls adds up to half a second of dead time".

    Start with `gcbench run`; `gcbench scenarios` lists the scenarios.
    """


@main.command()
@click.option("--scenario", "-s", default="default", show_default=True, metavar="NAME|PATH",
              help="Scenario name from `gcbench scenarios`, or a path to a TOML file.")
@click.option("--backend", "-b", "backends", default=None, metavar="NAME,...",
              help="Backends to compare (see `gcbench backends`). Default: every available server backend.")
@click.option("--gc-mode", "-g", "gc_modes", default="default,disabled", show_default=True, metavar="MODE,...",
              help="GC settings, each its own cell: default, disabled, freeze, oob, thresholds:T0,T1,T2, "
                   "gogc:N, memlimit:MiB, semi:MiB, old:MiB. A backend skips a mode it cannot apply, with a reason.")
@click.option("--server-cmd", default=None, metavar="COMMAND",
              help="Drive your own MCP stdio server, e.g. \"python my_server.py\" (split like a shell, run without "
                   "one). gcbench detects what it runs (console scripts, uvx, npx, ...): Python and Node servers get the "
                   "GC probe attached automatically.")
@click.option("--runtime", type=click.Choice(["python", "node", "go", "java", "other"]), default=None,
              help="What --server-cmd runs, when gcbench's detection (shebangs, uvx, npx, Go build info, ...) "
                   "gets it wrong; it decides how the GC probe is attached. Default: detected.")
@click.option("--tool", default=None, metavar="NAME", help="Tool to call on --server-cmd's server (default: work).")
@click.option("--tool-args", default=None, metavar="JSON", help="Arguments of --tool as a JSON object.")
@click.option("--trace", "trace_file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Each chain replays this trace: JSON Lines, one call a line ({\"tool\": ..., \"arguments\": "
                   "{...}, \"think_ms\": ...}), with placeholders such as {chain}, {call} and {word} (see "
                   "gcbench/trace.py). `gcbench record` writes one from a real session; `gcbench tools` lists "
                   "a server's tools. Replaces --tool/--tool-args; a chain has as many calls as the trace.")
@click.option("--chains", type=click.IntRange(min=1), default=None, help="Chains per cell (overrides the scenario).")
@click.option("--calls", type=click.IntRange(min=1), default=None, help="Calls per chain (overrides the scenario).")
@click.option("--rate", "rate_per_s", type=click.FloatRange(min=0), default=None, metavar="CHAINS/S",
              help="Open loop: start a new chain every 1/RATE s whatever the server does (wrk2-style; chain "
                   "latency is then also reported from the intended start). 0: closed loop (the default).")
@click.option("--reps", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Repetitions: each is a fresh server process for every (backend, gc mode).")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Folder under which the new run folder is created.")
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True,
              help="MCP transport: stdio (newline-delimited JSON-RPC) or Streamable HTTP on 127.0.0.1.")
@click.option("--call-timeout", type=click.FloatRange(min=0.001), default=30.0, show_default=True,
              help="Seconds to wait for one call's answer before the cell is failed as hung.")
@click.option("--start-timeout", type=click.FloatRange(min=0.001), default=60.0, show_default=True,
              help="Seconds a server may take from launch to answering initialize (start-up heap included).")
@click.option("--max-server-memory", default="50%", show_default=True, metavar="SIZE",
              help="Stop a server whose processes' resident memory exceeds SIZE and fail its cell: a share of "
                   "RAM (50%), 4GiB, 512MiB, or off.")
@click.option("--pin", is_flag=True,
              help="Pin the harness to one core and the servers to the others (recorded in run.json).")
@click.option("--hiccup-us", type=click.IntRange(min=0), default=0, show_default=True, metavar="US",
              help="Hiccup meter: every server runs a thread/timer that wakes every US microseconds and records "
                   "how late it woke, and an idle control process runs the same meter beside each cell (the "
                   "machine's noise). 1000 is a good value; 0: off.")
@click.option("--hiccup-floor-us", type=click.IntRange(min=0), default=200, show_default=True, metavar="US",
              help="Only wake-ups later than this are recorded as hiccups.")
@click.option("--meter-overhead", is_flag=True,
              help="Run every backend twice in the same run, without and with the hiccup meter (`NAME+meter`), "
                   "and report the meter's cost on latency. Implies --hiccup-us 1000 unless given.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout instead of a table.")
def run(scenario, backends, gc_modes, server_cmd, runtime, tool, tool_args, trace_file, chains, calls, rate_per_s, reps, out_dir, transport,
        call_timeout, start_timeout, max_server_memory, pin, hiccup_us, hiccup_floor_us, meter_overhead, as_json):
    """Run a scenario against backends and GC modes; write a run folder and print the summary.

    Every cell (backend x gc mode x repetition) gets a fresh server process. Exit codes: 0 ok, 2 bad input,
    3 a cell failed or some calls were answered with an error (every other cell is still measured and saved;
    the calls of a cell with call errors are kept, marked ok=false), 130/143 interrupted (SIGINT/SIGTERM:
    cells measured so far are saved; a second signal stops at once).
    """
    from gcbench import procs
    from gcbench.analysis import summarize
    from gcbench.backends import all_backends, select_backends
    from gcbench.gcmode import parse_gc_modes
    from gcbench.memwatch import parse_memory_cap, total_memory_bytes
    from gcbench.report.hiccups import hiccup_records, render_hiccups
    from gcbench.report.text import render_summary
    from gcbench.report.tools import render_tools, tools_records
    from gcbench.runner import Interrupted, RunConfig, execute
    from gcbench.scenario import load_scenario
    from gcbench.store import load_run

    sc = load_scenario(scenario)
    if trace_file is not None:
        from gcbench.trace import load_trace

        if tool is not None or tool_args is not None:
            raise GcbenchError("--trace: the trace names each call's tool and arguments; leave out --tool and --tool-args")
        sc = sc.with_trace(load_trace(trace_file), str(trace_file))
    sc = sc.with_overrides(chains=chains, calls=calls, rate_per_s=rate_per_s)
    names = [n.strip() for n in backends.split(",") if n.strip()] if backends else None
    args = sc.server.tool_args
    if tool_args is not None:
        try:
            args = json.loads(tool_args)
        except ValueError as e:
            raise GcbenchError(f"--tool-args: not valid JSON ({e})") from None
        if not isinstance(args, dict):
            raise GcbenchError("--tool-args: must be a JSON object")
    try:
        memory_cap = parse_memory_cap(max_server_memory, total_memory_bytes())
    except ValueError as e:
        raise GcbenchError(f"--max-server-memory: {e}") from None
    if not names and not (server_cmd or sc.server.command):
        for b in all_backends():  # the default set: say which ones cannot run here, and why
            a = b.availability() if b.in_default_run else None
            if a is not None and not a.ok:
                click.echo(f"gcbench: not running backend {b.name}: {a.reason}", err=True)
    config = RunConfig(
        scenario=sc,
        backends=select_backends(names, server_cmd or sc.server.command, tool or sc.server.tool, args, runtime),
        gc_modes=parse_gc_modes(gc_modes),
        out_dir=out_dir,
        reps=reps,
        transport=transport,
        call_timeout_s=call_timeout,
        start_timeout_s=start_timeout,
        max_server_memory_bytes=memory_cap,
        pin=pin,
        hiccup_us=hiccup_us or (1000 if meter_overhead else 0),
        hiccup_floor_us=hiccup_floor_us,
        meter_overhead=meter_overhead,
    )
    _install_signal_handlers(Interrupted)
    try:
        result = execute(config)
        with procs.raising():  # the run folder is complete: a signal now only cuts the summary short
            data = load_run(result.path)
            summary = summarize(data.calls, data.gc_events, sc.chain.calls, cells=data.meta.get("cells"))
            if as_json:
                click.echo(json.dumps({"run": str(result.path), "summary": summary.to_dict(orient="records"),
                                       "failed_cells": result.failed, "call_error_cells": result.call_errors,
                                       "tools": tools_records(data), **hiccup_records(data)},
                                      indent=2, default=str))
            else:
                click.echo(render_summary(summary, sc.chain.calls), nl=False)
                click.echo(render_tools(data), nl=False)
                click.echo(render_hiccups(data), nl=False)
                click.echo(f"Run folder: {result.path}")
    except Interrupted as e:
        click.echo("gcbench: interrupted; cells measured so far are saved", err=True)
        sys.exit(e.exit_code)
    for cell in result.failed:
        click.echo(f"FAILED cell {cell['backend']} gc={cell['gc_mode']} rep={cell['rep']}: {cell['reason']}", err=True)
    for cell in result.call_errors:
        click.echo(f"CALL ERRORS in cell {cell['backend']} gc={cell['gc_mode']} rep={cell['rep']}: "
                   f"{cell['call_errors']} calls answered with an error (first: {cell['first_call_error']}); "
                   f"they are kept with ok=false", err=True)
    sys.exit(EXIT_CELL_FAILED if result.failed or result.call_errors else EXIT_OK)


def _install_signal_handlers(interrupted_cls=None) -> None:
    """First SIGINT/SIGTERM: where the run waits on a server it stops at once, else after the step under way
    (stopping a server, saving a cell); every server is ended and the run folder marked 'interrupted'. A second
    signal kills every server at once and exits. gcbench also adopts what a server detaches (procs.py)."""
    from gcbench import procs

    procs.install_signal_handlers()
    procs.adopt_orphans()


@main.command()
@click.option("--mode", type=click.Choice(["busy", "sleep"]), default="busy", show_default=True,
              help="How the server stalls: spin on the clock (busy) or sleep.")
@click.option("--stalls", default="1,5,10", show_default=True, metavar="MS,...", help="Stall lengths to inject, in ms.")
@click.option("--per-stall", type=click.IntRange(0, 1000), default=10, show_default=True,
              help="How many stalls of each length (at random call positions; 0: a stall-free run).")
@click.option("--chains", type=click.IntRange(min=1), default=10, show_default=True, help="Chains of 50 calls.")
@click.option("--threshold", "threshold_ms", type=click.FloatRange(min=0.001), default=None,
              help="Excess latency (ms) that counts as a stall. Default: half the shortest stall.")
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True)
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Folder under which the calibration run folder is created.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def calibrate(mode, stalls, per_stall, chains, threshold_ms, transport, out_dir, as_json):
    """Check gcbench against ground truth: inject stalls of known length, see how many it finds.

    Runs the GC-free `stall` server (Rust) with stalls of each length at random calls and prints stalls
    found / injected, the error of the durations recovered from client-side latency (against what the
    server recorded), and false stalls on stall-free calls: the accuracy statement to quote.
    """
    from gcbench.calibrate import calibrate as run_calibration
    from gcbench.calibrate import render

    try:
        stalls_ms = tuple(float(x) for x in stalls.split(",") if x.strip())
    except ValueError:
        raise GcbenchError(f"--stalls: expected numbers in ms separated by commas, got {stalls!r}") from None
    if not stalls_ms or min(stalls_ms) <= 0:
        raise GcbenchError("--stalls: give at least one positive length in ms")
    res = run_calibration(out_dir, chains=chains, stalls_ms=stalls_ms, per_duration=per_stall, mode=mode,
                          threshold_ms=threshold_ms, transport=transport, log=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps({
            "run": str(res.run_path), "threshold_ms": res.threshold_ms, "baseline_ms": res.baseline_ms,
            "false_stalls": res.false_stalls, "stall_free_calls": res.stall_free_calls,
            "summary": res.summary.to_dict(orient="records"), "stalls": res.per_stall.to_dict(orient="records"),
        }, indent=2))
    else:
        click.echo(render(res), nl=False)


@main.command()
@click.argument("sweep_file", metavar="SWEEP_FILE")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Sweep folder (default: runs/<sweep name>). Re-running into it skips points already measured.")
@click.option("--shard", default=None, metavar="I/N",
              help="Run only every N-th grid point starting at I (1-based), e.g. for a CI matrix; join with `merge`.")
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True)
def sweep(sweep_file, out_dir, shard, transport):
    """Run a grid: live-heap sizes x allocation profiles x backends x their GC modes, in one command.

    SWEEP_FILE is a scenario TOML with a [sweep] table (see gcbench/scenarios/claim-check.toml). Each grid point is
    one run folder in the sweep folder; an interrupted sweep resumes where it stopped when run again.
    """
    from gcbench.runner import Interrupted
    from gcbench.sweep import load_sweep, parse_shard, run_sweep

    spec = load_sweep(sweep_file)
    part = parse_shard(shard)
    folder = out_dir or Path("runs") / spec.name
    _install_signal_handlers(Interrupted)
    try:
        run_sweep(spec, folder, part, transport=transport, log=lambda m: click.echo(m, err=True))
    except Interrupted as e:
        click.echo(f"gcbench: interrupted; measured points are kept in {folder}; run the same command to resume",
                   err=True)
        sys.exit(e.exit_code)
    click.echo(f"Sweep folder: {folder}")


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("shards", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
def merge(out_dir, shards):
    """Join sweep shard folders into OUT_DIR (refuses different grids, gcbench versions or machines)."""
    from gcbench.sweep import merge as merge_shards

    merge_shards(out_dir, list(shards), log=lambda m: click.echo(m, err=True))


@main.command()
@click.argument("sweep_dir", metavar="SWEEP_DIR", type=click.Path(path_type=Path))
@click.option("--out", "-o", "outs", multiple=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the study to FILE (repeatable); figures are saved as PNG files next to it. Without "
                   "--format the suffix picks the format (.txt .md .html). Default: standard output, except html, "
                   "which goes to reports/<sweep name>/study.html.")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "html"]), default=None,
              help="text = tables only; md = Markdown with tables and figures; html = one self-contained page.")
@click.option("--rerun", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              metavar="SWEEP_DIR2", help="The same sweep run again: adds a reproducibility section (which ratios "
                                         "moved by more than 20%).")
def study(sweep_dir, outs, fmt, rerun):
    """The study report of a sweep folder: the claim check across runtimes, GC settings and heap sizes.

    Answers, with confidence intervals: GC dead time per chain against the claim, pause size against the
    live heap (and where a CPython full collection reaches 10 ms), what each GC setting buys, how often a
    chain meets a pause, the no-GC control's own tail, and GC's share of an agent's wall time.
    """
    from gcbench.report.study import build_study
    from gcbench.report.study_render import export_study, study_format

    formats = [study_format(out, fmt) for out in outs]  # a bad suffix fails before the analysis runs
    st = build_study(sweep_dir)
    if rerun is not None:
        from dataclasses import replace

        from gcbench.sweep import check_compatible, read_manifest

        check_compatible(read_manifest(Path(sweep_dir)), read_manifest(rerun), f"{rerun} is not a re-run of {sweep_dir}")
        st = replace(st, rerun=build_study(rerun), cache={})
    if not outs:
        fmt = fmt or "text"
        if fmt != "html":
            click.echo(export_study(st, fmt), nl=False)
            return
        outs, formats = (Path("reports") / st.name / "study.html",), ["html"]
    for out, f in zip(outs, formats, strict=True):
        export_study(st, f, out)
        click.echo(f"wrote {out}", err=True)


@main.group()
def bench():
    """Benchmarks of gcbench itself: its overhead and its analysis speed (not tests; numbers to quote)."""


@bench.command("overhead")
@click.option("--backend", default="rust", show_default=True, help="Server to measure against.")
@click.option("--blocks", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Interleaved blocks of (gcbench driver, raw ping-pong), to cancel drift.")
@click.option("--calls", type=click.IntRange(50, 1_000_000), default=2000, show_default=True, help="Calls per block.")
@click.option("--json", "as_json", is_flag=True)
def bench_overhead(backend, blocks, calls, as_json):
    """gcbench's per-call latency through its MCP client vs a raw blocking ping-pong on the same server.

    Both talk to one server process over stdio, in interleaved blocks; prints both latencies, their ratio
    (target <= 1.2) and calls/s (target >= 20,000 against `rust`).
    """
    from dataclasses import asdict

    from gcbench.bench import overhead, render_overhead

    r = overhead(backend, blocks, calls)
    click.echo(json.dumps({**asdict(r), "ratio_p50": r.ratio_p50}, indent=2) if as_json else render_overhead(r))


@bench.command("analysis")
@click.option("--calls", type=click.IntRange(1000, 50_000_000), default=1_000_000, show_default=True)
@click.option("--events", type=click.IntRange(1000, 50_000_000), default=1_000_000, show_default=True)
def bench_analysis(calls, events):
    """Attribution + summary on synthetic data: seconds and peak memory (target: 1M + 1M in <= 5 s, <= 2 GiB)."""
    from gcbench.bench import analysis_at_scale

    r = analysis_at_scale(calls, events)
    click.echo(f"{r['calls']:,} calls, {r['gc_events']:,} GC events: attribution {r['attribution_s']:.2f} s, "
               f"attribution + summary {r['total_s']:.2f} s, peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB "
               f"(of which {r['peak_rss_before_bytes'] / 2**30:.2f} GiB is the synthetic data)")


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="The trace to write (JSON Lines; replaced when the session ends).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
def record(out, command):
    """Record a real session as a trace: a transparent stdio proxy between an agent host and a server.

    Configure the agent host (Claude Desktop, an IDE, an SDK client) to launch `gcbench record -o FILE -- CMD
    ARGS...` instead of `CMD ARGS...`. Every byte is forwarded both ways unchanged; each tools/call (tool,
    arguments, think time before it) is written to FILE, which `gcbench run --trace FILE` replays. Exits with
    the server's exit code.
    """
    from gcbench.record import record as run_proxy

    sys.exit(run_proxy(list(command), out, lambda m: click.echo(m, err=True)))


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--server-cmd", default=None, metavar="COMMAND", help="The server command (split like a shell), "
                                                                    "instead of -- CMD ARGS...")
@click.option("--backend", "-b", "backend", default=None, metavar="NAME", help="A built-in backend's server instead.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.001), default=30.0, show_default=True,
              help="Seconds the server may take to start and answer.")
@click.option("--json", "as_json", is_flag=True, help="Print the initialize result and the tools as JSON.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD [ARGS]...]")
def tools(server_cmd, backend, timeout_s, as_json, command):
    """List a server's tools with their input schemas and a trace line for each: the first step of a trace."""
    from gcbench.toollist import list_backend_tools, list_command_tools, render

    given = [x for x in (server_cmd, backend, command) if x]
    if len(given) != 1:
        raise GcbenchError("tools: give one server: -- CMD ARGS..., --server-cmd COMMAND or --backend NAME")
    if backend:
        init, items = list_backend_tools(backend, timeout_s)
    else:
        init, items = list_command_tools(server_cmd or list(command), timeout_s)
    click.echo(json.dumps({"initialize": init, "tools": items}, indent=2) if as_json else render(init, items), nl=False)


@main.command()
def scenarios():
    """List the built-in scenarios with a one-line description."""
    from gcbench.scenario import list_builtin

    items = list_builtin()
    width = max(len(n) for n, _ in items)
    for name, desc in items:
        click.echo(f"{name.ljust(width)}  {desc}")


@main.command()
def backends():
    """List every backend: available or not (and why), and its runtime version."""
    from gcbench.backends import all_backends

    items = all_backends()
    width = max(len(b.name) for b in items)
    for b in items:
        a = b.availability()
        state = f"available  {a.version}" if a.ok else f"unavailable: {a.reason}"
        click.echo(f"{b.name.ljust(width)}  {state}  - {b.description}")


@main.command()
@click.argument("run_folder", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--out", "-o", "outs", multiple=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the report to FILE (repeatable); figures are saved as PNG files next to it. Without "
                   "--format the suffix picks the format (.txt .md .html .json). Default: standard output, "
                   "except html, which goes to reports/<run id>/report.html.")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "html", "json"]), default=None,
              help="text = what `gcbench run` prints; md = Markdown with tables and figures; html = one "
                   "self-contained page; json = every table plus one HdrHistogram of latency per cell.")
def report(run_folder, outs, fmt):
    """Report on a run folder: the claim check, latency, GC dead time, counterfactual GC cost and figures."""
    from gcbench.report import build, export, format_for

    rep = build(run_folder)
    if not outs:
        fmt = fmt or "text"
        if fmt != "html":
            click.echo(export(rep, fmt), nl=False)
            return
        outs = (Path("reports") / rep.run_id / "report.html",)
    for out in outs:
        export(rep, format_for(out, fmt), out)
        click.echo(f"wrote {out}", err=True)


@main.command()
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option("--metric", "metrics", multiple=True, metavar="NAME[,NAME]",
              help="chain-p50, chain-p99, dead-time, gc-cost (repeatable or comma-separated). Default: all.")
@click.option("--threshold", type=click.FloatRange(min=0), default=10.0, show_default=True, metavar="PCT",
              help="Smallest change, in percent, that counts as slower or faster (it must also be significant).")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "json"]), default="text", show_default=True,
              help="md suits a CI step summary.")
@click.option("--ratio", is_flag=True,
              help="Compare each mode's ratio to the GC-off reference of its own run instead of absolute times "
                   "(runs from different machines can then be compared).")
@click.option("--force", is_flag=True,
              help="Compare absolute times even when the runs come from different machines (noted in the output).")
def compare(base, new, metrics, threshold, fmt, ratio, force):
    """Compare the same (backend, gc mode) cells of two runs, for CI.

    Exit codes: 0 no cell regressed, 1 a cell is slower beyond the threshold with significance (bootstrap over
    chains), 2 the runs cannot be compared (the message names the differing field: scenario, machine).
    """
    from gcbench.compare import compare_runs, render
    from gcbench.store import load_run

    result = compare_runs(load_run(base), load_run(new), list(metrics), threshold, ratio, force=force)
    click.echo(render(result, fmt), nl=False)
    sys.exit(result.exit_code)


@main.command()
@click.argument("folders", nargs=-1, required=True, metavar="RUN...", type=click.Path(path_type=Path))
def upgrade(folders):
    """Rewrite run folders (or sweep folders: the manifest and every point) in this gcbench's format.

    Every command already reads older folders by upgrading them in memory; this makes it permanent, e.g. for
    a baseline kept in a CI cache. A folder written by a newer gcbench is refused (upgrade gcbench).
    """
    from gcbench.formats import RUN_FORMAT, SWEEP_FORMAT
    from gcbench.store import RUN_JSON, upgrade_folder
    from gcbench.sweep import MANIFEST, upgrade_sweep

    def say(path: Path, what: str, stored: int, rewritten: bool, latest: int) -> None:
        state = f"schema_version {stored} -> {latest}, rewritten" if rewritten else f"already schema_version {latest}"
        click.echo(f"{path}: {what} {state}")

    for folder in folders:
        if (folder / MANIFEST).is_file():
            say(folder, "sweep manifest", *upgrade_sweep(folder), SWEEP_FORMAT)
            points = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")
                      and (p / RUN_JSON).is_file()]
            for point in points:
                say(point, "run folder", *upgrade_folder(point), RUN_FORMAT)
        else:
            say(folder, "run folder", *upgrade_folder(folder), RUN_FORMAT)
