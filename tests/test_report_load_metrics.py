"""The run report, the JSON report and the summary show GC amplification, the harness's load and the wake-up
floor; a run from before format 4 says they were not recorded."""

import json
from pathlib import Path

from gcbench.report import build, export, report_document
from gcbench.report.model import build_report
from gcbench.report.summary import summary_document
from gcbench.store import load_run

from .synthetic import Pause, constant_cell, write_run

MS = 1_000_000
DATA = Path(__file__).parent / "data"
FLOOR = {"method": "one byte between two processes over pipes (round trip)", "idle_gap_us": 1000,
         "echo_cores": None, "busy": {"round_trips": 10, "p50_ns": 7_000, "p99_ns": 20_000, "min_ns": 6_000,
                                      "max_ns": 30_000},
         "idle": {"round_trips": 10, "p50_ns": 60_000, "p99_ns": 90_000, "min_ns": 50_000, "max_ns": 99_000}}
HARNESS = {"cpu_s": 0.95, "window_s": 1.0, "cpu_share": 0.95, "send_lag_p50_ns": 30_000,
           "send_lag_p99_ns": 4_000_000, "send_lag_max_ns": 6_000_000, "send_lag_calls": 20, "due_gap_ns": 0}


def _report(tmp_path):
    cell = constant_cell("python", "default", 5 * MS, pauses=[Pause(0, 1, 2, offset_ns=1 * MS, duration_ns=2 * MS)])
    cell.info = {"harness": HARNESS}
    quiet = constant_cell("python", "disabled", 5 * MS)
    quiet.info = {"harness": {**HARNESS, "cpu_share": 0.1, "send_lag_p99_ns": 50_000}}
    run = load_run(write_run(tmp_path, [cell, quiet]))
    run.meta["environment"]["wakeup_floor"] = FLOOR
    return build_report(run, n_boot=20)


def test_the_run_report_has_the_amplification_the_harness_load_and_the_floor(tmp_path):
    md = export(report_document(_report(tmp_path), "md"), "md")
    assert "## GC amplification" in md and "## Harness load" in md
    # one pause inside one call of one chain: 2 ms of GC, 2 ms of dead time, x1; GC off: no figure
    assert "| python | default | 0 | 1 | 2 | 2 | 1 | 1 | 1 |" in md
    assert "| python | disabled | 0 | 0 | 0 | 0 | - | - | - |" in md
    assert "python/disabled: no figure: no server GC time in the measured window" in md
    assert "| python | default | 0 | 0.03 | 4 | 6 | 0 | 95% |" in md
    assert ("**wake-up floor**: round trip between two processes idle 0.06 ms p50 / 0.09 ms p99 (after a 1000 us "
            "sleep), busy 0.007 / 0.02 ms") in md
    assert "the harness may have limited the load: its process used 95% of one core" in md  # Warnings section


def test_the_json_report_has_the_amplification_the_harness_figures_and_the_floor(tmp_path):
    doc = json.loads(export(report_document(_report(tmp_path), "json"), "json"))
    assert doc["environment"]["wakeup_floor"] == FLOOR
    amp = {r["gc_mode"]: r for r in doc["amplification"]}
    assert (amp["default"]["gc_ns"], amp["default"]["dead_ns"], amp["default"]["amplification"]) == (2 * MS, 2 * MS, 1)
    assert amp["disabled"]["amplification"] is None  # no figure, not 0 or inf
    assert amp["default"]["pauses_by_calls_delayed"] == {"1": 1} and amp["disabled"]["pauses_by_calls_delayed"] == {}
    assert doc["harness"][0]["harness"] == HARNESS
    s = {r["gc_mode"]: r for r in doc["summary"]}
    assert s["default"]["amplification"] == 1 and s["default"]["harness_cpu_share_max"] == 0.95


def test_the_summary_run_prints_has_them_too(tmp_path):
    rep = _report(tmp_path)
    text = export(summary_document(rep.summary, rep.calls_per_chain, rep.run), "text")
    assert "GC amplification\n" in text
    assert "- python/default: 1 pause(s), 2 ms of server GC delayed the calls by 2 ms summed over chains: " \
           "amplification x1, 1 call(s) in flight per pause on average" in text
    assert "Wake-up floor: round trip between two processes idle 0.06 ms p50" in text
    assert "- python/default: send lag p50 0.03 ms, p99 4 ms; harness CPU 95% of one core" in text
    assert "python/default: the harness may have limited the load" in text
    assert "python/disabled: the harness may have limited the load" not in text


def test_a_run_before_format_4_says_not_recorded():
    rep = build(DATA / "run-format-3")
    md = export(report_document(rep, "md"), "md")
    assert "**wake-up floor**: not recorded (a run before format 4)" in md
    assert "| python | default | 0 | not recorded | - | - | - | - |" in md
    text = export(report_document(rep, "text"), "text")
    assert "python/default: harness send lag and CPU share not recorded (a run before format 4)" in text
    assert "amplification x" in text  # computed from the calls and GC events every format has
