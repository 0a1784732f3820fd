"""The notebooks run top to bottom on a tiny scenario, and are committed without outputs."""

from pathlib import Path

import pytest

from .conftest import REPO
from .synthetic import Pause, noisy_cell, write_run

nbformat = pytest.importorskip("nbformat", reason="nbformat is a dev dependency (pip install -e '.[dev]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is a dev dependency (pip install -e '.[dev]')")
pytest.importorskip("ipykernel", reason="ipykernel is a dev dependency (pip install -e '.[dev]')")

NOTEBOOKS = REPO / "notebooks"
MS = 1_000_000


def _execute(name: str, cwd: Path) -> list[str]:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


@pytest.mark.parametrize("name", ["explore_run.ipynb", "claim_check.ipynb"])
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_explore_run_notebook_executes(tmp_path, monkeypatch):
    young = noisy_cell("python", "default", 1.2 * MS, seed=1, chains=6, calls=8)
    young.pauses = [Pause(0, ch, 2, offset_ns=1_000, duration_ns=300_000) for ch in range(6)]
    run = write_run(tmp_path, [young, noisy_cell("python", "disabled", MS, seed=2, chains=6, calls=8)])
    monkeypatch.setenv("GCBENCH_NOTEBOOK_RUN", str(run))
    text = "".join(_execute("explore_run.ipynb", tmp_path))
    assert f"run folder: {run}" in text
    assert "python/default: 0.3 ms GC dead time per 8-call chain" in text


def test_claim_check_notebook_executes(tmp_path, monkeypatch):
    for k, v in {"BACKEND": "inproc", "CHAINS": "3", "CALLS": "10", "GC_MODES": "default,disabled",
                 "OUT": str(tmp_path / "runs")}.items():
        monkeypatch.setenv(f"GCBENCH_NOTEBOOK_{k}", v)
    text = "".join(_execute("claim_check.ipynb", tmp_path))
    assert "The claim for 10-call chains: 100 ms of GC dead time per chain." in text
    assert "inproc/default: " in text and "inproc/disabled: " in text
    assert len(list((tmp_path / "runs").glob("*/run.json"))) == 1
