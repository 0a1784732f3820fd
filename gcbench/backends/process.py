"""One child process gcbench starts and must never leave behind: a server, the hiccup control process."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil

from gcbench import procs

FAILED_STOP_GRACE_S = 1.0  # once the user has asked to stop: do not wait long for anything


class ManagedProcess:
    """A child in its own process group, killed with gcbench (PR_SET_PDEATHSIG) and registered so that a
    forced exit ends its group; stopped by EOF on stdin, then SIGTERM, then SIGKILL to the group and to every
    descendant seen.

    Start it inside `procs.held()`, so that it is registered before a signal can act; OSError from the launch
    reaches the caller (nothing was started then).
    """

    def __init__(self, argv: list[str], env: dict[str, str], what: str, *, cwd: str | None = None,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cpu_affinity: list[int] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            # before exec: the cores (inherited by every thread and child), death with gcbench
            preexec_fn=procs.die_with_parent(cpu_affinity),
        )
        self.pid = self.proc.pid
        procs.register_group(self.pid, what)

    def terminate(self, grace_s: float) -> int:
        """Ask it to exit (stdin EOF), wait grace_s, SIGTERM, wait grace_s, then SIGKILL whatever is left of
        its group and descendants; return its exit code. Stays registered until release()."""
        proc = self.proc
        # descendants that left the process group (setsid) are found through the process tree
        try:
            strays = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            strays = []
        if proc.stdin and not proc.stdin.closed:
            try:
                proc.stdin.close()  # EOF: the polite way to ask an MCP stdio server to exit
            except OSError:
                pass
        if not self.wait(grace_s):
            self.signal_group(signal.SIGTERM)
            self.wait(grace_s)
        # whatever it started is ended too, even if it exited itself
        self.signal_group(signal.SIGKILL)
        for p in strays:
            try:
                p.kill()  # checks the process is still the one seen (pid reuse)
            except psutil.Error:
                pass
        if proc.poll() is None:
            proc.wait()
        return proc.returncode

    def release(self) -> None:
        procs.unregister_group(self.pid)

    def wait(self, timeout_s: float) -> bool:
        """Wait for it to exit; cut short to FAILED_STOP_GRACE_S once the user has asked to stop."""
        t0 = time.monotonic()
        while True:
            try:
                self.proc.wait(timeout=0.05)
                return True
            except subprocess.TimeoutExpired:
                waited = time.monotonic() - t0
                if waited >= timeout_s or (procs.pending() is not None and waited >= FAILED_STOP_GRACE_S):
                    return False

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
