"""Helpers for the fault, interruption and security tests.

Every process a test run starts carries an environment marker (servers inherit gcbench's environment), so
after the run the process table can be searched for anything left behind, whatever its parent or process
group became.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil

from .conftest import REPO

MARKER_VAR = "GCBENCH_TEST_MARKER"
FAULT_SERVER = Path(__file__).resolve().parent / "fault_servers" / "fault_server.py"

# warm-up 0: the fault server's call index K counts the measured calls from the first
FAULT_SCENARIO = """
name = "faults"
[chain]
calls = 5
chains = 3
warmup_calls = 0
[work]
alloc_objects = 100
"""


def fault_cmd(mode: str, k: int | None = None) -> str:
    return shlex.join([sys.executable, str(FAULT_SERVER), mode, *([str(k)] if k is not None else [])])


def new_marker() -> str:
    return uuid.uuid4().hex


def marked_processes(marker: str) -> list[psutil.Process]:
    """Live processes (not zombies) whose environment carries the marker."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get(MARKER_VAR) == marker:
                out.append(p)
        except psutil.Error:
            pass
    return out


def assert_no_orphans(marker: str, settle_s: float = 3.0) -> None:
    """Nothing started by the run is still alive (a SIGKILLed process may take a moment to go)."""
    deadline = time.monotonic() + settle_s
    while True:
        left = marked_processes(marker)
        if not left:
            return
        if time.monotonic() > deadline:
            desc = []
            for p in left:
                try:
                    desc.append(f"{p.pid} {p.cmdline()}")
                except psutil.Error:
                    pass
            for p in left:  # do not leak them into the next test
                try:
                    p.kill()
                except psutil.Error:
                    pass
            raise AssertionError(f"processes left running: {desc}")
        time.sleep(0.05)


def gcbench_env(marker: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", MARKER_VAR: marker, **extra}


def run_gcbench(args: list[str], marker: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`gcbench ARGS` as a real subprocess, every process it starts marked."""
    return subprocess.run([sys.executable, "-m", "gcbench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=gcbench_env(marker, **env))


class LiveGcbench:
    """A `gcbench` subprocess in its own session (like a terminal's foreground job), stderr read as it comes."""

    def __init__(self, args: list[str], marker: str, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gcbench", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=REPO, env=gcbench_env(marker, **env), start_new_session=True,
        )
        self.lines: list[str] = []
        self._out: list[str] = []
        self._cond = threading.Condition()
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=lambda: self._out.extend(self.proc.stdout), daemon=True)]
        for t in self._readers:
            t.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"gcbench never printed {text!r}; stderr so far: {self.lines}")
                self._cond.wait(min(left, 0.2))

    def signal_terminal(self, sig: int) -> None:
        """What Ctrl-C does: the signal goes to the whole foreground process group."""
        os.killpg(self.proc.pid, sig)

    def signal_process(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 30) -> int:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"gcbench did not exit within {timeout} s; stderr: {self.lines}") from None
        for t in self._readers:
            t.join(5)
        return self.proc.returncode

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


def only_run_folder(out: Path) -> Path:
    runs = [p for p in out.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]
