"""A user's JVM server: its collector and its pause log through JAVA_TOOL_OPTIONS, nothing else changed.

Every JVM reads JAVA_TOOL_OPTIONS at start-up (and says so on stderr: "Picked up JAVA_TOOL_OPTIONS: ..."), so
it reaches a JVM behind any launcher script. gcbench puts there the same options the built-in Java backend
passes on its command line (gcbench/backends/java: the collector flags, a fixed heap for `MODE:N`, and the
unified-logging options of gcbench/probes/jvm_log.py), after whatever the user's own JAVA_TOOL_OPTIONS holds.

- The log file name carries `%p` (the JVM writes its pid there), so each JVM of the server has its own log.
- The collector that really ran is read back from the log ("Using ..."): a server whose command line picks its
  own collector either fails to start (two collectors) or runs its own, and the cell fails with what ran.
- epsilon without `:N`: gcbench cannot estimate what your tool allocates, so the heap is EPSILON_RAM_SHARE of
  RAM (below the default --max-server-memory of 50%), reserved but not pre-touched; `epsilon:N` fixes and
  pre-touches N MiB like the built-in backend. Epsilon exits the JVM when its heap is full
  (-XX:+ExitOnOutOfMemoryError), and the cell fails with that reason.

JAVA_TOOL_OPTIONS is split on spaces by the JVM, with quotes removed (single or double) around any part of
a word; the -Xlog word is wrapped in single quotes so the double quotes around its file name reach -Xlog.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from gcbench.backends.java import COLLECTOR_FLAGS, heap_flags, java_mode_reason, physical_memory_bytes
from gcbench.errors import CellError
from gcbench.gcmode import GcMode
from gcbench.probes import jvm_log
from gcbench.scenario import Scenario

EPSILON_RAM_SHARE = 0.4
EPSILON_MIN_MIB = 1024


def java_path(interpreter: str | None) -> str:
    return interpreter or shutil.which("java") or ""


def mode_reason(interpreter: str | None, mode: GcMode) -> str | None:
    java = java_path(interpreter)
    if not java:
        return f"{mode}: no java found to check the collector with (name the server's java on PATH)"
    return java_mode_reason(java, mode)


def log_pattern(events_path: Path) -> Path:
    """The JVM log's file name for a cell; `%p` is replaced by each JVM's pid."""
    return events_path.with_name(events_path.name.split(".")[0] + ".jvm.%p.log")


def logs_of(pattern: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(glob.escape(str(pattern)).replace("%p", "*")))


def epsilon_heap_flags() -> list[str]:
    ram = physical_memory_bytes()
    mib = max(EPSILON_MIN_MIB, int(ram * EPSILON_RAM_SHARE) >> 20) if ram else 4096
    return [f"-Xmx{mib}m"]


def tool_options(mode: GcMode, scenario: Scenario, log_file: Path, own: str = "") -> str:
    """JAVA_TOOL_OPTIONS for a cell: the user's own first, then the log, the collector and the heap."""
    path = str(log_file)
    if "'" in path or '"' in path:
        raise CellError(f"the run folder's path {path!r} has a quote, which JAVA_TOOL_OPTIONS cannot carry")
    words = []
    for w in jvm_log.xlog_options(path):
        words.append(f"'{w}'" if " " in w or '"' in w else w)
    words += COLLECTOR_FLAGS[mode.name]
    if mode.name == "epsilon" and mode.arg is None:
        words += epsilon_heap_flags()
    elif mode.arg is not None:  # a size the user gave; otherwise their JVM sizes its heap as it always does
        words += heap_flags(mode, scenario)
    if mode.name == "epsilon":
        words.append("-XX:+ExitOnOutOfMemoryError")
    words.append("-XX:+DisplayVMOutputToStderr")  # the VM's own messages would go to stdout: MCP's channel
    return " ".join(w for w in (own.strip(), *words) if w)


def after_exit(mode: GcMode, pattern: Path, events_path: Path) -> dict:
    """Turn each JVM log of the cell into side-channel events; check the mode's collector is what ran."""
    logs = logs_of(pattern)
    collectors = []
    for log_file in logs:
        pid = log_file.name.rsplit(".", 2)[-2]
        try:
            log = jvm_log.append_to_side_channel(log_file, events_path, runtime="java",
                                                 pid=int(pid) if pid.isdigit() else None)
        except OSError as e:
            raise CellError(f"cannot turn the JVM log {log_file} into events: {e.strerror or e}") from None
        collectors.append(log.collector)
    wanted = mode.name if mode.name in COLLECTOR_FLAGS and COLLECTOR_FLAGS[mode.name] else None
    if wanted and not logs:
        raise CellError(f"gc mode {mode} was not applied: no JVM of the server wrote the log JAVA_TOOL_OPTIONS asked "
                        f"for (a launcher that clears the environment, or -Xlog:disable on its command line?)")
    ran = [c for c in collectors if c]
    if wanted and ran and any(c != wanted for c in ran):
        raise CellError(f"gc mode {mode} was not applied: the server's JVM ran {', '.join(sorted(set(ran)))} "
                        f"(its own command line picks the collector?)")
    return {"jvm_logs": [p.name for p in logs], "jvm_collectors": collectors}


def own_tool_options() -> str:
    return os.environ.get("JAVA_TOOL_OPTIONS", "")
