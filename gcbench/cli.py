"""The gcbench command line: parse, build a config, call a plain function, map errors to exit codes."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

import gcbench
from gcbench.errors import GcbenchError

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_CELL_FAILED = 3


def _fail(msg: str) -> None:
    click.echo(f"ERROR: {msg}", err=True)
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
@click.option("--chains", type=click.IntRange(min=1), default=None, help="Chains per cell (overrides the scenario).")
@click.option("--calls", type=click.IntRange(min=1), default=None, help="Calls per chain (overrides the scenario).")
@click.option("--reps", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Repetitions: each is a fresh server process for every (backend, gc mode).")
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
              show_default=True, help="Folder under which the new run folder is created.")
@click.option("--call-timeout", type=click.FloatRange(min=0.001), default=30.0, show_default=True,
              help="Seconds to wait for one call's answer before the cell is failed as hung.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout instead of a table.")
def run(scenario, backends, gc_modes, chains, calls, reps, out_dir, call_timeout, as_json):
    """Run a scenario against backends and GC modes; write a run folder and print the summary.

    Every cell (backend x gc mode x repetition) gets a fresh server process. Exit codes: 0 ok, 2 bad input,
    3 a cell failed (the other cells are still measured and saved), 130/143 interrupted.
    """
    from gcbench.backends import default_backend_names, get_backend
    from gcbench.gcmode import parse_gc_modes
    from gcbench.report.text import render_summary
    from gcbench.runner import Interrupted, RunConfig, execute
    from gcbench.scenario import load_scenario
    from gcbench.store import load_run
    from gcbench.analysis import summarize

    sc = load_scenario(scenario).with_overrides(chains=chains, calls=calls)
    names = [n.strip() for n in backends.split(",") if n.strip()] if backends else default_backend_names()
    config = RunConfig(
        scenario=sc,
        backends=[get_backend(n) for n in dict.fromkeys(names)],
        gc_modes=parse_gc_modes(gc_modes),
        out_dir=out_dir,
        reps=reps,
        call_timeout_s=call_timeout,
    )
    _install_signal_handlers(Interrupted)
    try:
        result = execute(config)
    except Interrupted as e:
        click.echo("gcbench: interrupted; cells measured so far are saved", err=True)
        sys.exit(e.exit_code)
    data = load_run(result.path)
    summary = summarize(data.calls, data.gc_events, sc.chain.calls)
    if as_json:
        click.echo(json.dumps({"run": str(result.path), "summary": summary.to_dict(orient="records"),
                               "failed_cells": result.failed}, indent=2, default=str))
    else:
        click.echo(render_summary(summary, sc.chain.calls), nl=False)
        click.echo(f"Run folder: {result.path}")
    for cell in result.failed:
        click.echo(f"FAILED cell {cell['backend']} gc={cell['gc_mode']} rep={cell['rep']}: {cell['reason']}", err=True)
    sys.exit(EXIT_CELL_FAILED if result.failed else EXIT_OK)


def _install_signal_handlers(interrupted_cls) -> None:
    """First SIGINT/SIGTERM: stop after cleaning up (servers ended, run folder marked); second: same, at once."""

    def handler(signum, frame):
        signal.signal(signum, signal.SIG_DFL) if signum == signal.SIGTERM else None
        raise interrupted_cls(128 + signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


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
