"""`gcbench compare` on synthetic runs: exit 0 no change, 1 a regression (naming the cell), 2 not comparable."""

import json

import pytest

import gcbench
from gcbench.compare import compare_runs, parse_metrics
from gcbench.errors import GcbenchError

from .conftest import run_cli
from .synthetic import noisy_cell, write_run

MS = 1_000_000


def _run(path, default_scale=1.0, disabled_scale=1.0, **kw):
    cells = [noisy_cell("python", "default", 1.2 * MS, seed=1, scale=default_scale),
             noisy_cell("python", "disabled", MS, seed=2, scale=disabled_scale),
             noisy_cell("node", "default", 1.5 * MS, seed=3)]
    return write_run(path, cells, **kw)


def _rows(stdout: str) -> dict[tuple[str, str], str]:
    """(cell, metric) -> the rest of the text table's row."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith(("python/", "node/")):
            cell, metric, rest = line.split(None, 2)
            out[(cell, metric)] = rest
    return out


@pytest.fixture
def base(tmp_path):
    return _run(tmp_path / "base")


def test_identical_runs_are_no_change(base, tmp_path):
    same = _run(tmp_path / "same")
    proc = run_cli("compare", str(base), str(same))
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("python/", "node/"))]
    assert len(rows) == 3 * 4
    assert all(line.endswith("no change") or "not compared" in line for line in rows)
    assert "no change beyond the threshold" in proc.stdout
    # the runtime without an off switch and no control backend in the run
    assert _rows(proc.stdout)[("node/default", "gc-cost")].endswith("not compared: no GC-off reference in this run")


def test_injected_latency_is_a_regression_naming_the_cell(base, tmp_path):
    slower = _run(tmp_path / "slower", default_scale=1.5)
    proc = run_cli("compare", str(base), str(slower), "--threshold", "5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REGRESSION: python/default chain-p50" in proc.stdout
    verdicts = {tuple(line.split()[:2]): line.split()[-1] for line in proc.stdout.splitlines()
                if line.startswith(("python/", "node/")) and "not compared" not in line}
    assert verdicts[("python/default", "chain-p50")] == "slower"
    assert verdicts[("python/default", "gc-cost")] == "slower"
    assert verdicts[("python/disabled", "chain-p50")] == "change"  # "no change"
    assert verdicts[("node/default", "chain-p99")] == "change"


def test_a_faster_cell_does_not_fail(base, tmp_path):
    faster = _run(tmp_path / "faster", default_scale=0.6)
    proc = run_cli("compare", str(base), str(faster), "--metric", "chain-p50")
    assert proc.returncode == 0
    assert _rows(proc.stdout)[("python/default", "chain-p50")].endswith("faster")


def test_mismatched_scenario_cannot_be_compared(base, tmp_path):
    other = _run(tmp_path / "other", scenario_name="big-heap")
    proc = run_cli("compare", str(base), str(other))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "ERROR: runs cannot be compared: scenario.name differs (BASE 'synthetic', NEW 'big-heap')")
    longer = _run(tmp_path / "longer", scenario_extra={"work": {"alloc_objects": 5}})
    proc = run_cli("compare", str(base), str(longer))
    assert proc.returncode == 2 and "scenario.work differs" in proc.stderr


def test_another_machine_needs_ratio_mode(base, tmp_path):
    # everything 2x slower on the other machine: absolute times differ, mode-vs-GC-off ratios do not
    elsewhere = _run(tmp_path / "elsewhere", default_scale=2.0, disabled_scale=2.0, hostname="host-b")
    proc = run_cli("compare", str(base), str(elsewhere))
    assert proc.returncode == 2
    assert "environment.hostname differs" in proc.stderr and "--ratio" in proc.stderr
    proc = run_cli("compare", str(base), str(elsewhere), "--ratio")
    assert proc.returncode == 0, proc.stdout
    assert "compared as ratios" in proc.stdout
    base_ratio, new_ratio = _rows(proc.stdout)[("python/default", "chain-p50")].split()[:2]
    assert base_ratio == new_ratio and 1.1 < float(base_ratio[1:]) < 1.3
    # --force compares the absolute times anyway, says so, and sees the other machine's 2x as a regression
    proc = run_cli("compare", str(base), str(elsewhere), "--force")
    assert proc.returncode == 1, proc.stdout
    assert "compared anyway (--force)" in proc.stdout


def test_ratio_mode_catches_a_regression_of_the_mode_against_gc_off(base, tmp_path):
    worse = _run(tmp_path / "worse", default_scale=1.5, hostname="host-b")
    proc = run_cli("compare", str(base), str(worse), "--ratio", "--format", "json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["exit_code"] == 1 and out["ratio"] is True
    assert "python/default chain-p50" in out["regressions"]
    rows = {(r["cell"], r["metric"]): r for r in out["rows"]}
    assert rows[("python/disabled", "chain-p50")]["note"] == "is the GC-off reference"
    assert rows[("python/default", "chain-p50")]["verdict"] == "slower"
    assert rows[("python/default", "chain-p50")]["ci_low_pct"] > 10


def test_markdown_is_a_step_summary(base, tmp_path):
    slower = _run(tmp_path / "slower", default_scale=1.5)
    proc = run_cli("compare", str(base), str(slower), "--format", "md")
    assert proc.returncode == 1
    assert proc.stdout.startswith("### gcbench compare: regression")
    assert "| python/default | chain-p50 |" in proc.stdout and "slower" in proc.stdout


def test_bad_metric_and_missing_run_are_input_errors(base, tmp_path):
    proc = run_cli("compare", str(base), str(base), "--metric", "p42")
    assert proc.returncode == 2 and "unknown --metric 'p42'" in proc.stderr and "chain-p99" in proc.stderr
    proc = run_cli("compare", str(base), str(tmp_path / "nope"))
    assert proc.returncode == 2 and proc.stderr.startswith("ERROR:")


def test_no_common_cell_cannot_be_compared(tmp_path):
    a = write_run(tmp_path / "a", [noisy_cell("python", "default", MS, seed=1)])
    b = write_run(tmp_path / "b", [noisy_cell("python", "freeze", MS, seed=1)])
    with pytest.raises(GcbenchError, match="no \\(backend, gc mode\\) cell was measured in both"):
        compare_runs(gcbench.load(a), gcbench.load(b))


def test_metric_parsing():
    assert parse_metrics(None) == ["chain-p50", "chain-p99", "dead-time", "gc-cost"]
    assert parse_metrics(["chain-p99,gc-cost", "chain-p99"]) == ["chain-p99", "gc-cost"]


def test_compare_refuses_exactly_the_fields_that_metadata_calls_the_machine(base):
    """One definition of the same machine (metadata.MACHINE_KEYS): compare kept a list of its own, and the one
    in metadata, which said compare checked it, named the Python version instead of the architecture."""
    import copy
    import dataclasses

    from gcbench.compare import check_comparable
    from gcbench.metadata import MACHINE_KEYS

    run = gcbench.load(base)

    def with_env(**changes):
        meta = copy.deepcopy(run.meta)
        meta["environment"].update(changes)
        return dataclasses.replace(run, meta=meta)

    for key in MACHINE_KEYS:
        other = with_env(**{key: "elsewhere"})
        with pytest.raises(GcbenchError, match=f"environment.{key} differs"):
            check_comparable(run, other, ratio=False)
        assert any(n.startswith(f"environment.{key} differs") for n in check_comparable(run, other, ratio=True))
    # the harness's interpreter is software, not the machine: a run under another Python is compared
    assert not any("python_version" in n for n in check_comparable(run, with_env(python_version="3.12.1"), False))
