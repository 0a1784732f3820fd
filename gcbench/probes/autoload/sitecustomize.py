"""Auto-attached GC probe for a user's Python MCP server (this folder goes first on PYTHONPATH).

Does nothing unless GCBENCH_EVENTS is set. Applies the GC modes that need no cooperation from the server
(default, disabled, thresholds) and writes the recorded collections at exit, including exit by SIGTERM.
"""

import os

if os.environ.get("GCBENCH_EVENTS"):
    import atexit
    import gc
    import signal
    import sys

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from python_gc import GcProbe

    sys.path.pop(0)
    _probe = GcProbe(os.environ["GCBENCH_EVENTS"], runtime="python").install().start_meter_from_env()
    _mode = os.environ.get("GCBENCH_GC_MODE", "default")
    if _mode == "disabled":
        gc.disable()
    elif _mode.startswith("thresholds:"):
        gc.set_threshold(*(int(p) for p in _mode.split(":", 1)[1].split(",")))
    atexit.register(_probe.flush)

    def _on_term(signum, frame):
        _probe.flush()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_term)
