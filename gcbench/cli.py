"""The gcbench command line: parse, build a config, call a plain function, map errors to exit codes."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import click

import gcbench
from gcbench.errors import GcbenchError, printable

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_CELL_FAILED = 3


def _fail(msg: str) -> None:
    # one line whatever the message holds (a scenario key or a path can carry a newline)
    click.echo(f"ERROR: {printable(msg)}", err=True)
    sys.exit(EXIT_BAD_INPUT)


# what `-o FILE` does to what is already there (gcbench.atomic.write_output)
_OUT_HELP = ("A regular file is replaced atomically (never left half-written); a symlink is followed and its "
             "target replaced; a character device or FIFO (/dev/stdout, /dev/null, a named pipe) is written "
             "through in place, without figure files; a directory or block device is refused.")
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


def _stdout_failed(e: OSError, run_path: Path) -> GcbenchError:
    """stdout is full or closed (`> /dev/full`, a pipe whose reader left): point it at /dev/null so the
    interpreter's last flush does not fail again, and say so in one line (the run folder is complete)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return GcbenchError(f"cannot write the summary to stdout ({e.strerror or e}); the run folder is complete: "
                        f"{run_path}")


class _Group(click.Group):
    """Turns every GcbenchError into one 'ERROR: ...' line and exit code 2, in one place; so too an OSError that
    says the disk is full, over quota, read-only or failing, wherever it was not caught with its path."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GcbenchError as e:
            _fail(str(e))
        except OSError as e:
            if e.errno not in _ENVIRONMENT_ERRNOS:
                raise
            from gcbench.atomic import os_reason

            _fail(f"{e.filename or 'writing'}: {os_reason(e)}")


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


_python_option = click.option(
    "--python", "pythons", multiple=True, metavar="PATH",
    type=click.Path(dir_okay=False, path_type=str),
    callback=lambda ctx, param, value: tuple(value),
    help="A CPython to run the Python backends under (repeatable), besides those on PATH and in pyenv: "
         "select it by its version, -b python@3.14 (it wins over found ones of the same version).")


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
@click.option("--url", default=None, metavar="URL",
              help="With --server-cmd and --transport http: where the started server listens, e.g. "
                   "http://127.0.0.1:8000/mcp. Default: the first http://127.0.0.1:PORT URL it prints (path /mcp).")
@click.option("--server-url", default=None, metavar="URL",
              help="Drive a Streamable HTTP MCP server that is already running, e.g. http://127.0.0.1:8000/mcp "
                   "(JSON or SSE answers, session ids): latency only, unless it was started with the environment "
                   "`gcbench env` prints (then give --server-events and --runtime).")
@click.option("--server-events", default=None, metavar="FILE",
              help="With --server-url: the file the server's GC probe writes (python), its stderr with gctrace "
                   "(go) or its JVM log (java), as set up by `gcbench env`.")
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
@_python_option
def run(scenario, backends, gc_modes, server_cmd, url, server_url, server_events, runtime, tool, tool_args, trace_file,
        chains, calls, rate_per_s, reps, out_dir, transport, call_timeout, start_timeout, max_server_memory, pin,
        hiccup_us, hiccup_floor_us, meter_overhead, as_json, pythons):
    """Run a scenario against backends and GC modes; write a run folder and print the summary.

    Every cell (backend x gc mode x repetition) gets a fresh server process. Exit codes: 0 ok, 2 bad input,
    3 a cell failed or some calls were answered with an error (every other cell is still measured and saved;
    the calls of a cell with call errors are kept, marked ok=false), 130/143 interrupted (SIGINT/SIGTERM:
    cells measured so far are saved; a second signal stops at once). The summary cannot be written to stdout
    (full, or a closed pipe): one ERROR line, exit 2, the run folder is complete.
    """
    from gcbench.config import RunConfig
    from gcbench.runner import Interrupted, execute

    config = RunConfig.from_options(
        scenario=scenario, backends=backends, gc_modes=gc_modes, server_cmd=server_cmd, url=url,
        server_url=server_url, server_events=server_events, runtime=runtime, tool=tool, tool_args=tool_args,
        trace_file=trace_file, chains=chains, calls=calls, rate_per_s=rate_per_s, reps=reps, out_dir=out_dir,
        transport=transport, call_timeout=call_timeout, start_timeout=start_timeout,
        max_server_memory=max_server_memory, pin=pin, hiccup_us=hiccup_us, hiccup_floor_us=hiccup_floor_us,
        meter_overhead=meter_overhead, pythons=pythons)
    for note in config.notes:
        click.echo(note, err=True)
    _install_signal_handlers()
    try:
        result = execute(config)
        stdout_error = _print_summary(result, config.scenario.chain.calls, as_json)
    except Interrupted as e:
        click.echo("gcbench: interrupted; cells measured so far are saved", err=True)
        sys.exit(e.exit_code)
    _print_failures(result)
    if stdout_error is not None:
        raise stdout_error
    sys.exit(EXIT_CELL_FAILED if result.failed or result.call_errors else EXIT_OK)


def _print_summary(result, calls: int, as_json: bool) -> GcbenchError | None:
    """The run's summary (a Document) on stdout; the error to raise once the failures are listed when stdout
    cannot take it (the run folder is complete)."""
    from gcbench import procs
    from gcbench.analysis import summarize
    from gcbench.report import export
    from gcbench.report.summary import hiccup_records, summary_document
    from gcbench.report.tools import tools_records
    from gcbench.store import load_run

    with procs.raising():  # the run folder is complete: a signal now only cuts the summary short
        data = load_run(result.path)
        summary = summarize(data.calls, data.gc_events, calls, cells=data.meta.get("cells"))
        doc = summary_document(summary, calls, data)
        if as_json:  # the JSON form: the summary's records, the cells that failed, the hiccup tables
            doc.data = {"run": str(result.path), "summary": summary.to_dict(orient="records"), "failed_cells":
                        result.failed, "call_error_cells": result.call_errors, "tools": tools_records(data),
                        **hiccup_records(data)}
        try:
            click.echo(export(doc, "json" if as_json else "text"), nl=False)
            if not as_json:
                click.echo(f"Run folder: {result.path}")
        except OSError as e:
            return _stdout_failed(e, result.path)
    return None


def _print_failures(result) -> None:
    # what a server wrote (reasons, error texts) is escaped: it cannot rewrite these lines on a terminal
    for cell in result.failed:
        click.echo(f"FAILED cell {cell['backend']} gc={cell['gc_mode']} rep={cell['rep']}: "
                   f"{printable(cell['reason'])}", err=True)
    for cell in result.call_errors:
        click.echo(f"CALL ERRORS in cell {cell['backend']} gc={cell['gc_mode']} rep={cell['rep']}: "
                   f"{cell['call_errors']} calls answered with an error (first: {printable(cell['first_call_error'])}); "
                   f"they are kept with ok=false", err=True)


def _install_signal_handlers() -> None:
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
              help="Excess latency (ms) over the median that counts as a stall. Default: from the latencies "
                   "alone, max(10 x MAD, 0.5 ms).")
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
    from gcbench.calibrate import document
    from gcbench.report import export

    try:
        stalls_ms = tuple(float(x) for x in stalls.split(",") if x.strip())
    except ValueError:
        raise GcbenchError(f"--stalls: expected numbers in ms separated by commas, got {stalls!r}") from None
    if not stalls_ms or min(stalls_ms) <= 0:
        raise GcbenchError("--stalls: give at least one positive length in ms")
    res = run_calibration(out_dir, chains=chains, stalls_ms=stalls_ms, per_duration=per_stall, mode=mode,
                          threshold_ms=threshold_ms, transport=transport, log=lambda m: click.echo(m, err=True))
    click.echo(export(document(res), "json" if as_json else "text"), nl=False)


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
    one run folder in the sweep folder; an interrupted sweep resumes where it stopped when run again. One sweep
    or merge at a time writes into a folder: a second one exits 2 naming the first one's pid.
    """
    from gcbench.runner import Interrupted
    from gcbench.sweep import load_sweep, parse_shard, run_sweep

    spec = load_sweep(sweep_file)
    part = parse_shard(shard)
    folder = out_dir or Path("runs") / spec.name
    _install_signal_handlers()
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
    """Join sweep shard folders into OUT_DIR (refuses different grids, gcbench versions or machines).

    Each point is copied into a hidden temp folder and renamed: a merge cut short leaves no partial point.
    """
    from gcbench.sweep import merge as merge_shards

    merge_shards(out_dir, list(shards), log=lambda m: click.echo(m, err=True))


@main.command()
@click.argument("sweep_dir", metavar="SWEEP_DIR", type=click.Path(path_type=Path))
@click.option("--out", "-o", "outs", multiple=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the study to FILE (repeatable); figures are saved as PNG files next to it. Without "
                   "--format the suffix picks the format (.txt .md .html). Default: standard output, except html, "
                   "which goes to reports/<sweep name>/study.html. " + _OUT_HELP)
@click.option("--format", "fmt", type=click.Choice(["text", "md", "html"]), default=None,
              help="text = tables only; md = Markdown with tables and figures; html = one self-contained page.")
@click.option("--rerun", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              metavar="SWEEP_DIR2", help="The same sweep run again: adds a reproducibility section (the share of "
                                         "setting-vs-default ratios that agree within 20%, against an 85% target, "
                                         "and each one that did not, with why).")
@click.option("--p99-target-ms", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MS",
              help="Latency under load: the corrected p99 call latency an offered rate must hold (default: the "
                   "sweep file's sweep.p99_target_ms, else 50).")
@click.option("--with", "companions", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
              help="A companion sweep folder whose points have several agents or a think time (repeatable): adds "
                   "the 'Many agents' and 'Think time' sections.")
@click.option("--real", "real_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="A folder of run folders measured from the real-* scenarios (`gcbench advise -s "
                                  "real-NAME --runs-dir DIR`): adds the 'Real servers from the registries' section.")
def study(sweep_dir, outs, fmt, rerun, p99_target_ms, companions, real_dir):
    """The study report of a sweep folder: the claim check across runtimes, GC settings and heap sizes.

    Answers, with confidence intervals: GC dead time per chain against the claim, pause size against the
    live heap (and where a CPython full collection reaches 10 ms), what each GC setting buys, how often a
    chain meets a pause, the no-GC control's own tail, and GC's share of an agent's wall time.
    """
    from gcbench.report import export, format_for
    from gcbench.report.study import FORMATS, build_study
    from gcbench.report.study_document import study_document

    # a bad suffix fails before the analysis runs
    formats = [format_for(out, fmt, FORMATS, "study report") for out in outs]
    st = build_study(sweep_dir, p99_target_ms=p99_target_ms)
    if companions:
        from dataclasses import replace

        from gcbench.report.study import build_companion

        st = replace(st, companions=[build_companion(c) for c in companions], cache={})
    if real_dir is not None:
        from dataclasses import replace

        from gcbench.report.study_real import build_real

        st = replace(st, real=build_real(real_dir), cache={})
    if rerun is not None:
        from dataclasses import replace

        from gcbench.sweep import check_compatible, read_manifest

        check_compatible(read_manifest(Path(sweep_dir)), read_manifest(rerun), f"{rerun} is not a re-run of {sweep_dir}")
        st = replace(st, rerun=build_study(rerun, p99_target_ms=p99_target_ms), cache={})
        from gcbench.report.study import rerun_comparison
        from gcbench.report.study_document import rerun_verdict

        comparison = rerun_comparison(st, st.rerun)
        if len(comparison):
            click.echo(f"reproducibility: {rerun_verdict(comparison)}", err=True)
    if not outs:
        fmt = fmt or "text"
        if fmt != "html":
            click.echo(export(study_document(st), fmt), nl=False)
            return
        outs, formats = (Path("reports") / st.name / "study.html",), ["html"]
    for out, f in zip(outs, formats, strict=True):
        export(study_document(st), f, out)
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

    Both talk to one server process over stdio, in interleaved blocks. Prints both latencies and calls/s,
    what the driver adds per call at p50 (target: at most 1.0 us) and its share of the floor's calls/s
    (target: at least 60%). The driver's calls/s counts first send to last answer of each block; the floor
    itself moves with the machine's state (an idle vCPU wakes in tens of us, a busy one in a few).
    """
    from dataclasses import asdict

    from gcbench.bench import overhead, render_overhead

    r = overhead(backend, blocks, calls)
    click.echo(json.dumps({**asdict(r), "ratio_p50": r.ratio_p50, "added_p50_us": r.added_p50_us,
                                   "calls_share": r.calls_share}, indent=2) if as_json else render_overhead(r))


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


@main.command("env")
@click.option("--runtime", required=True, type=click.Choice(["python", "go", "java", "node"]),
              help="What your server runs.")
@click.option("--events", "events", required=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Where the server's GC record goes: the probe's events (python), its stderr (go), its JVM log "
                   "(java). Give the same FILE to `gcbench run --server-events`.")
@click.option("--gc-mode", "gc_mode", default="default", show_default=True, metavar="MODE",
              help="The GC setting to start it with (python: default, disabled, thresholds:T0,T1,T2; go: "
                   "default, disabled, gogc:N, memlimit:MiB; java: a collector, e.g. zgc or epsilon:N).")
@click.option("--json", "as_json", is_flag=True, help="Print the variables as a JSON object.")
def env_command(runtime, events, gc_mode, as_json):
    """Print the environment to start your own server with, so `gcbench run --server-url` records its GC.

    For a server gcbench does not start (a long-running HTTP server): `eval "$(gcbench env --runtime python
    --events /tmp/gc.jsonl)"`, start the server, then `gcbench run --server-url URL --runtime python
    --server-events /tmp/gc.jsonl`.
    """
    from gcbench.backends.custom.env import render_shell, server_environment
    from gcbench.gcmode import parse_gc_mode

    variables, notes = server_environment(runtime, events, parse_gc_mode(gc_mode))
    click.echo(json.dumps(variables, indent=2) if as_json else render_shell(variables, notes), nl=not not as_json)


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
@_python_option
def backends(pythons):
    """List every backend: available or not (and why), and its runtime version.

    The Python backends are listed once more for every CPython found (PATH, pyenv, --python), by the name
    that selects it: python@3.12, python-sdk@3.13, python@3.11.2 when two 3.11 releases are found.
    """
    from gcbench.backends import all_backends, interpreter_backends

    items = all_backends() + interpreter_backends(pythons)
    width = max(len(b.name) for b in items)
    for b in items:
        a = b.availability()
        where = f" ({b.interpreter.executable}, {b.interpreter.source})" if getattr(b, "interpreter", None) else ""
        state = f"available  {a.version}{where}" if a.ok else f"unavailable: {a.reason}"
        note = f"; {a.reason}" if a.ok and a.reason else ""
        click.echo(f"{b.name.ljust(width)}  {state}{note}  - {b.description}")


@main.command()
@click.argument("run_folder", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--out", "-o", "outs", multiple=True, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the report to FILE (repeatable); figures are saved as PNG files next to it. Without "
                   "--format the suffix picks the format (.txt .md .html .json). Default: standard output, "
                   "except html, which goes to reports/<run id>/report.html. " + _OUT_HELP)
@click.option("--format", "fmt", type=click.Choice(["text", "md", "html", "json"]), default=None,
              help="text = what `gcbench run` prints; md = Markdown with tables and figures; html = one "
                   "self-contained page; json = every table plus one HdrHistogram of latency per cell.")
def report(run_folder, outs, fmt):
    """Report on a run folder: the claim check, latency, GC dead time, counterfactual GC cost and figures."""
    from gcbench.report import build, export, format_for, report_document

    rep = build(run_folder)
    if not outs:
        fmt = fmt or "text"
        if fmt != "html":
            click.echo(export(report_document(rep, fmt), fmt), nl=False)
            return
        outs = (Path("reports") / rep.run_id / "report.html",)
    for out in outs:
        f = format_for(out, fmt)
        export(report_document(rep, f), f, out)
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
    from gcbench.compare import compare_runs, document
    from gcbench.report import export
    from gcbench.store import load_run

    result = compare_runs(load_run(base), load_run(new), list(metrics), threshold, ratio, force=force)
    click.echo(export(document(result), fmt), nl=False)
    sys.exit(result.exit_code)


@main.command()
@click.option("--server-cmd", default=None, metavar="COMMAND",
              help="Your MCP stdio server, as for `gcbench run --server-cmd` (its runtime is detected).")
@click.option("--backend", "-b", "backends", default=None, metavar="NAME,...",
              help="Built-in backends instead (see `gcbench backends`).")
@click.option("--scenario", "-s", default="default", show_default=True, metavar="NAME|PATH",
              help="Scenario name or TOML file; one with a [server] command needs neither option above.")
@click.option("--gc-mode", "-g", "gc_modes", default=None, metavar="MODE,...",
              help="The modes to compare with default (default: the runtime's own, e.g. python: freeze, "
                   "thresholds:10000,20,20, oob, disabled; go: gogc:200, gogc:400, disabled; node: semi:16, "
                   "semi:64; java: g1, parallel, zgc, shenandoah, epsilon; each backend drops what it cannot apply).")
@click.option("--runtime", type=click.Choice(["python", "node", "go", "java", "other"]), default=None,
              help="What --server-cmd runs, when detection gets it wrong.")
@click.option("--tool", default=None, metavar="NAME", help="Tool to call on --server-cmd's server (default: work).")
@click.option("--tool-args", default=None, metavar="JSON", help="Arguments of --tool as a JSON object.")
@click.option("--chains", type=click.IntRange(min=2), default=40, show_default=True,
              help="Chains per cell: the bootstrap resamples them.")
@click.option("--calls", type=click.IntRange(min=1), default=None, help="Calls per chain (overrides the scenario).")
@click.option("--reps", type=click.IntRange(1, 1000), default=3, show_default=True,
              help="Repetitions, each a fresh server process per mode (their spread enters the intervals).")
@click.option("--run", "run_folder", default=None, type=click.Path(path_type=Path), metavar="RUN",
              help="Decide from a run folder already measured (needs its default cell) instead of running.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Folder under which the run folder is created.")
@click.option("--format", "fmt", type=click.Choice(["text", "md", "markdown", "json"]), default=None,
              help="text (default on a terminal); md/markdown for a PR comment; json. Default: from -o's suffix.")
@click.option("--out", "-o", "out", default=None, type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write the recommendation to FILE instead of standard output. " + _OUT_HELP)
@click.option("--min-cut-ms", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Smallest cut in mean GC dead time per chain (ms) worth a change.")
@click.option("--min-cut", "min_cut_pct", type=click.FloatRange(0, 100), default=10.0, show_default=True,
              metavar="PCT", help="Smallest cut worth a change, in % of default's dead time per chain.")
@click.option("--max-rss-increase", "max_rss_pct", type=click.FloatRange(min=0), default=50.0, show_default=True,
              metavar="PCT", help="A mode whose peak RSS is more than PCT% above default's is flagged, not recommended.")
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True)
@click.option("--call-timeout", type=click.FloatRange(min=0.001), default=30.0, show_default=True,
              help="Seconds to wait for one call's answer before the cell is failed as hung.")
@click.option("--start-timeout", type=click.FloatRange(min=0.001), default=60.0, show_default=True,
              help="Seconds a server may take from launch to answering initialize.")
@click.option("--max-server-memory", default="50%", show_default=True, metavar="SIZE",
              help="Stop a server whose resident memory exceeds SIZE and fail its cell (50%, 4GiB, off).")
@_python_option
def advise(server_cmd, backends, scenario, gc_modes, runtime, tool, tool_args, chains, calls, reps, run_folder,
           runs_dir, fmt, out, min_cut_ms, min_cut_pct, max_rss_pct, transport, call_timeout, start_timeout,
           max_server_memory, pythons):
    """Which GC setting to run a server with: runs it under its runtime's GC modes and recommends one.

    Every mode is a cell (fresh server per repetition, through the same runner as `gcbench run`), written to a
    run folder, then compared with the same backend's default cell. A mode is recommended when the 95%
    bootstrap interval of its cut in GC dead time per chain excludes zero, the cut is at least --min-cut-ms
    and --min-cut % of default's, and its peak RSS stays within --max-rss-increase of default's. GC off
    (disabled; epsilon on the JVM) is shown as the GC's whole cost and recommended only when it also passes
    that and its RSS grew at most 10% over the measured window (no collector: garbage is never freed). Of the
    modes that pass, the largest cut wins; else: "no change worth making". Each mode's p99 call latency,
    peak RSS and calls/s are shown against default. Exit codes: 0 advice given, 2 bad input, 3 advice given
    but a cell failed, 130/143 interrupted.
    """
    from gcbench import procs
    from gcbench.advise import Rule, document, server_commands
    from gcbench.advise import advise as decide
    from gcbench.report import export, format_for
    from gcbench.store import load_run

    fmt = format_for(out, {"markdown": "md"}.get(fmt, fmt), ("text", "md", "json"), "advice")
    rule = Rule(min_cut_ms=min_cut_ms, min_cut_share=min_cut_pct / 100, max_rss_increase=max_rss_pct / 100)
    notes: list[str] = []
    failed: list[dict] = []
    if run_folder is not None:
        if server_cmd or backends or gc_modes:
            raise GcbenchError("--run: decides from a measured run; leave out --server-cmd, --backend and --gc-mode")
        data = load_run(run_folder)
    else:
        data, notes, failed = _advise_measure(server_cmd, backends, scenario, gc_modes, runtime, tool, tool_args,
                                              chains, calls, reps, runs_dir, transport, call_timeout,
                                              start_timeout, max_server_memory, pythons)
    with procs.raising():
        advice = decide(data.calls, data.meta.get("cells", []), rule, run=str(data.path),
                        commands=server_commands(data.meta))
        advice.notes += notes
        text = export(document(advice), fmt, out)
    if out is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {out}", err=True)
    for cell in failed:
        click.echo(f"FAILED cell {cell['backend']} gc={cell['gc_mode']} rep={cell['rep']}: "
                   f"{printable(cell['reason'])}", err=True)
    sys.exit(EXIT_CELL_FAILED if failed else EXIT_OK)


def _advise_measure(server_cmd, backends, scenario, gc_modes, runtime, tool, tool_args, chains, calls, reps,
                    runs_dir, transport, call_timeout, start_timeout, max_server_memory, pythons):
    """advise's run: the same RunConfig and runner.execute as `gcbench run`, with the modes advise picks."""
    import dataclasses

    from gcbench import procs
    from gcbench.advise import modes_by_backend
    from gcbench.config import RunConfig
    from gcbench.gcmode import parse_gc_modes
    from gcbench.runner import Interrupted, execute
    from gcbench.store import load_run

    config = RunConfig.from_options(
        scenario=scenario, backends=backends, gc_modes=None, server_cmd=server_cmd, runtime=runtime, tool=tool,
        tool_args=tool_args, chains=chains, calls=calls, reps=reps, out_dir=runs_dir, transport=transport,
        call_timeout=call_timeout, start_timeout=start_timeout, max_server_memory=max_server_memory,
        pythons=pythons, require_server="advise")
    by_backend, notes = modes_by_backend(config.backends, parse_gc_modes(gc_modes) if gc_modes is not None else None)
    config = dataclasses.replace(config, modes_by_backend=by_backend,
                                 gc_modes=list(dict.fromkeys(m for ms in by_backend.values() for m in ms)))
    _install_signal_handlers()
    try:
        result = execute(config)
        with procs.raising():
            return load_run(result.path), notes, result.failed
    except Interrupted as e:
        click.echo("gcbench: interrupted; cells measured so far are saved", err=True)
        sys.exit(e.exit_code)


@main.command()
@click.argument("folders", nargs=-1, required=True, metavar="RUN...", type=click.Path(path_type=Path))
def upgrade(folders):
    """Rewrite run folders (or sweep folders: the manifest and every point) in this gcbench's format.

    Every command already reads older folders by upgrading them in memory; this makes it permanent, e.g. for
    a baseline kept in a CI cache. A folder written by a newer gcbench is refused (upgrade gcbench).
    """
    from gcbench.formats import RUN_FORMAT, SWEEP_FORMAT
    from gcbench.store import RUN_JSON, upgrade_folder
    from gcbench.sweep import MANIFEST, folder_lock, upgrade_sweep

    def say(path: Path, what: str, stored: int, rewritten: bool, latest: int) -> None:
        state = f"schema_version {stored} -> {latest}, rewritten" if rewritten else f"already schema_version {latest}"
        click.echo(f"{path}: {what} {state}")

    for folder in folders:
        if (folder / MANIFEST).is_file():
            with folder_lock(folder):  # not under a sweep or merge still writing into it
                say(folder, "sweep manifest", *upgrade_sweep(folder), SWEEP_FORMAT)
                points = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")
                          and (p / RUN_JSON).is_file()]
                for point in points:
                    say(point, "run folder", *upgrade_folder(point), RUN_FORMAT)
        else:
            say(folder, "run folder", *upgrade_folder(folder), RUN_FORMAT)
