"""How a run stops on SIGINT/SIGTERM, and the processes it must never leave behind.

Every server and helper process runs in its own process group, registered here while it lives. The CLI
installs the signal handlers (library use keeps Python's own behaviour):

- first SIGINT/SIGTERM: inside `raising()` (where the run waits on a server or a build) it raises
  Interrupted at once; anywhere else (stopping a server, saving a cell) it is held and raised by the next
  `check()`, so a cell is saved whole or not at all and the server of the cell is always stopped;
- second signal: every registered process group and every descendant is killed, the run folder is marked
  interrupted and the process exits at once.

With `adopt_orphans()` gcbench is the child subreaper (Linux): a server's grandchild that detaches itself
(double fork, setsid) is re-parented to gcbench instead of init, so `kill_strays()` still finds and ends it.

When gcbench itself dies without a chance to clean up (SIGKILL, the OOM killer), the kernel ends each server
(`die_with_parent`: PR_SET_PDEATHSIG) and the cell's guard process (memwatch.py) ends the rest.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import psutil


class Interrupted(BaseException):
    """The user asked the run to stop (SIGINT / SIGTERM); carries the exit code to use (128 + signal).

    A BaseException, like KeyboardInterrupt: no `except Exception` on the way may swallow it.
    """

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


_installed = False
_pending: int | None = None  # exit code of the first signal, until the run has stopped
_raising = 0  # depth of raising() blocks
_groups: dict[int, str] = {}  # process group id -> what it is (live servers and helpers)
_run_json: Path | None = None  # the run folder's run.json while the run is being written
_subreaper = False


def install_signal_handlers() -> None:
    global _installed, _pending
    _installed, _pending = True, None
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def _handler(signum: int, frame) -> None:
    global _pending
    code = 128 + signum
    if _pending is not None:
        _force_exit(code)
    _pending = code
    if _raising:
        raise Interrupted(code)


def pending() -> int | None:
    """The exit code of a signal received and not acted on yet (None: no signal)."""
    return _pending


def check() -> None:
    """Raise Interrupted if a signal came in while it was held."""
    if _pending is not None:
        raise Interrupted(_pending)


class raising:  # noqa: N801  (used like a function: `with raising():`)
    """A block that waits on something outside (a server, a build): a first signal interrupts it at once."""

    def __enter__(self) -> None:
        global _raising
        _raising += 1
        if _pending is not None:
            _raising -= 1
            raise Interrupted(_pending)

    def __exit__(self, *exc) -> None:
        global _raising
        _raising -= 1


class held:  # noqa: N801
    """A step that must finish once begun (start and register a process, stop one): a first signal is held
    until the next `check()` or `raising()`, even inside a raising() block."""

    def __enter__(self) -> None:
        global _raising
        self._saved = _raising
        _raising = 0

    def __exit__(self, *exc) -> None:
        global _raising
        _raising = self._saved


def register_group(pgid: int, what: str) -> None:
    _groups[pgid] = what


def unregister_group(pgid: int) -> None:
    _groups.pop(pgid, None)


def set_run_json(path: Path | None) -> None:
    """The run.json to mark 'interrupted' on a forced exit (None once the run has its final status)."""
    global _run_json
    _run_json = path


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


PR_SET_PDEATHSIG = 1
_libc = None


def _prctl():
    """libc's prctl, resolved in the parent (a forked child must not dlopen)."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc.prctl


def die_with_parent(cpu_affinity: list[int] | None = None):
    """A preexec_fn for a server: SIGKILL it when gcbench dies, and (--pin) set its cores before exec.

    PR_SET_PDEATHSIG (Linux) survives exec and is not inherited by the server's own children (the guard
    process ends those). It fires when the thread that started the server ends, not only the process:
    gcbench starts servers from its main thread. If gcbench died between fork and prctl, the child exits
    at once. Elsewhere than Linux only the affinity is set.
    """
    parent = os.getpid()
    prctl = _prctl() if sys.platform.startswith("linux") else None

    def setup() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(1)
        if cpu_affinity:
            os.sched_setaffinity(0, cpu_affinity)

    return setup


def adopt_orphans() -> bool:
    """Make this process the subreaper of its descendants (Linux); True when it is."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return _subreaper
    try:
        import ctypes

        pr_set_child_subreaper = 36
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


def kill_strays() -> int:
    """Kill and reap every descendant left once no server or helper is running; return how many.

    Only acts when this process is the subreaper (the CLI), where every child is one of gcbench's own.
    """
    if not _subreaper or _groups:
        return 0
    try:
        strays = psutil.Process().children(recursive=True)
    except psutil.Error:
        return 0
    alive = 0
    for p in strays:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:  # a zombie was already ended, it only needs reaping
                p.kill()
                alive += 1
        except psutil.Error:
            pass
    psutil.wait_procs(strays, timeout=2.0)  # adopted orphans are our children now: this reaps them
    return alive


def _force_exit(code: int) -> None:
    """Second signal: kill everything gcbench started, mark the run folder, exit now."""
    try:
        os.write(2, b"gcbench: second signal: killing the servers and exiting now\n")
        for pgid in list(_groups):
            kill_group(pgid)
        try:
            for p in psutil.Process().children(recursive=True):
                p.kill()
        except psutil.Error:
            pass
        if _run_json is not None:
            _mark_interrupted(_run_json)
    finally:
        os._exit(code)


def _mark_interrupted(run_json: Path) -> None:
    """Rewrite the last complete run.json with status 'interrupted' (the tables on disk match it)."""
    try:
        meta = json.loads(run_json.read_text(encoding="utf-8"))
        meta["status"] = "interrupted"
        tmp = run_json.with_name(f".{run_json.name}.forced{os.getpid()}")
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, run_json)
    except (OSError, ValueError):
        pass
