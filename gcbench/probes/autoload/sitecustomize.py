"""Auto-attached GC probe for a user's Python MCP server (this folder goes first on PYTHONPATH).

Does nothing unless GCBENCH_EVENTS is set. Every Python process of the server's tree loads it (PYTHONPATH
and the GCBENCH_* variables are inherited by subprocesses; gc.callbacks see the collections of every thread),
and each writes its own events, tagged with its pid, to the one side-channel file (O_APPEND: whole lines).

- An `attach` record at start-up says which process loaded the probe and which GC mode it applied, so the
  harness can tell a probe that attached from one that never did.
- GC modes that need no cooperation from the server: default, disabled, thresholds:T0,T1,T2, and freeze. Freeze
  waits for the harness: at the end of warm-up it creates the file GCBENCH_FREEZE_FLAG; a probe thread that
  polls for it every FREEZE_POLL_S runs gc.collect() + gc.freeze() and appends a `freeze` record, which the
  harness waits for before the measured calls. A file, not a signal: it reaches every probed process through
  any wrapper (uv, npx, a shell script) that would die of, or not pass on, a SIGUSR1; it can never kill a
  process where the probe did not load (a signal's default action would); it takes no signal the server may
  use; and Python runs signal handlers only on the main thread, between bytecodes of the server's own code.
  The polling thread exits once it has frozen, so nothing of it is left in the measured window.
- A child made by fork() inherits the parent's unflushed events: it drops them (they are the parent's).
- The site's own sitecustomize, which this file shadows, still runs (last).
"""

import os

FREEZE_POLL_S = 0.002


def _gcbench_probe():
    import atexit
    import gc
    import json
    import signal
    import sys
    import threading
    import time

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.dirname(here))
    try:
        from python_gc import GcProbe
    finally:
        sys.path.pop(0)
    path = os.environ["GCBENCH_EVENTS"]

    def append(record):
        # one write() on an O_APPEND descriptor: lines of several processes never interleave
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(record) + "\n").encode())
        finally:
            os.close(fd)

    probe = GcProbe(path, runtime="python").install().start_meter_from_env()
    mode = os.environ.get("GCBENCH_GC_MODE", "default")
    applied = "default"
    if mode == "disabled":
        gc.disable()
        applied = mode
    elif mode.startswith("thresholds:"):
        gc.set_threshold(*(int(p) for p in mode.split(":", 1)[1].split(",")))
        applied = mode
    elif mode == "freeze" and os.environ.get("GCBENCH_FREEZE_FLAG"):
        applied = "freeze (on the harness's flag file)"
    argv = [a[:200] for a in getattr(sys, "orig_argv", sys.argv)[:4]]
    # a server gcbench did not start (--server-url, environment from `gcbench env`) never exits during the run:
    # SIGUSR1 asks for the flush, which then runs on the main thread after the measured calls
    flush_signal = None
    if os.environ.get("GCBENCH_FLUSH_SIGNAL") == "USR1" and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
        def on_flush_signal(signum, frame):
            probe.flush()
            append({"type": "flushed", "runtime": "python", "pid": os.getpid(), "t_ns": time.monotonic_ns()})

        signal.signal(signal.SIGUSR1, on_flush_signal)
        flush_signal = "USR1"
    append({"type": "attach", "runtime": "python", "pid": os.getpid(), "ppid": os.getppid(),
            "executable": sys.executable, "python_version": sys.version.split()[0], "argv": argv,
            "gc_mode": mode, "applied": applied, "t_ns": time.monotonic_ns(), "flush_signal": flush_signal})

    def freeze_when_flagged(flag):
        while not os.path.exists(flag):
            time.sleep(FREEZE_POLL_S)
        t0 = time.monotonic_ns()
        collected = gc.collect()
        gc.freeze()
        t1 = time.monotonic_ns()
        append({"type": "freeze", "runtime": "python", "pid": os.getpid(), "start_ns": t0, "end_ns": t1,
                "collected": collected, "frozen_objects": gc.get_freeze_count()})

    def start_freezer():
        if applied.startswith("freeze"):
            threading.Thread(target=freeze_when_flagged, args=(os.environ["GCBENCH_FREEZE_FLAG"],),
                             name="gcbench-freeze", daemon=True).start()

    start_freezer()

    def after_fork_in_child():
        probe.drain()  # the parent's events: the parent writes them
        if probe.meter is not None:
            probe.meter.drain()
        if not gc.get_freeze_count():
            start_freezer()  # threads do not survive fork

    os.register_at_fork(after_in_child=after_fork_in_child)
    atexit.register(probe.flush)

    def on_term(signum, frame):
        probe.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, on_term)


def _chain_shadowed_sitecustomize():
    """Run the sitecustomize this one hides (a distribution's or a virtualenv's), as site would have."""
    import importlib.machinery
    import importlib.util
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


if os.environ.get("GCBENCH_EVENTS"):
    _gcbench_probe()
_chain_shadowed_sitecustomize()
