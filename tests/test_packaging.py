"""Packaging: the wheel holds every file of the package (backend sources, scenarios, ...) and gcbench runs from
it outside the repository; pytest is a development dependency only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from gcbench.scenario import BUILTIN_DIR

from .conftest import REPO


def test_pytest_is_a_development_dependency_only():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("=")[0].split("<")[0].strip() for d in project["dependencies"]]
    assert "pytest" not in names
    assert any(d.startswith("pytest") for d in project["optional-dependencies"]["dev"])


def test_the_builtin_scenarios_live_inside_the_package():
    import gcbench

    assert BUILTIN_DIR == Path(gcbench.__file__).resolve().parent / "scenarios"
    assert {"default", "big-heap", "no-alloc", "claim-check"} <= {p.stem for p in BUILTIN_DIR.glob("*.toml")}


def _package_files() -> list[str]:
    """Every file of the package in this checkout (git's list: no caches or build outputs)."""
    proc = subprocess.run(["git", "-C", str(REPO), "ls-files", "gcbench"], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.skip("not a git checkout")
    return [f for f in proc.stdout.split() if (REPO / f).is_file()]


@pytest.mark.slow
def test_the_wheel_holds_every_package_file_and_runs_outside_the_repository(tmp_path):
    files = _package_files()
    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info next to pyproject.toml
    for f in files + ["pyproject.toml", "README.md"]:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, src / f)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           str(src), "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("gcbench-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        missing = [f for f in files if f not in names]
        assert not missing, f"not in the wheel: {missing}"
        site = tmp_path / "site"  # what pip install puts in site-packages
        z.extractall(site)

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONUNBUFFERED": "1"}

    def gcbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gcbench", *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=300)

    where = subprocess.run([sys.executable, "-c", "import gcbench; print(gcbench.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True)
    assert where.stdout.strip() == str(site / "gcbench" / "__init__.py")
    listed = gcbench("scenarios")
    assert listed.returncode == 0, listed.stderr
    assert {"default", "big-heap", "no-alloc", "claim-check"} <= {line.split()[0] for line in listed.stdout.splitlines()}
    run = gcbench("run", "-b", "python", "-g", "default", "--chains", "2", "--calls", "3", "-o", str(work / "runs"))
    assert run.returncode == 0, run.stderr
    assert "Run folder:" in run.stdout
