import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def write_scenario(tmp_path):
    """Write a scenario TOML (dedented) and return its path."""

    def _write(text: str, name: str = "test.toml") -> Path:
        p = tmp_path / name
        p.write_text(textwrap.dedent(text))
        return p

    return _write


TINY = """
name = "tiny"
[chain]
calls = 5
chains = 3
warmup_calls = 2
[work]
alloc_objects = 2000
cyclic_fraction = 0.5
payload_bytes = 100
"""


@pytest.fixture
def tiny_scenario(write_scenario):
    return write_scenario(TINY, "tiny.toml")


def run_cli(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `gcbench` command in a subprocess (what a user or CI runs)."""
    return subprocess.run(
        [sys.executable, "-m", "gcbench", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def ready_backend(name: str):
    """A registered backend, built or installed; the test is skipped with the reason when it is unavailable."""
    from gcbench.backends import all_backends

    backend = next(b for b in all_backends() if b.name == name)
    avail = backend.availability()
    if not avail.ok:
        pytest.skip(f"{name}: {avail.reason}")
    backend.prepare(lambda msg: None)
    return backend
