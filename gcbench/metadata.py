"""What machine and software a run was measured on (stored in run.json), and what "the same machine" means."""

from __future__ import annotations

import gc
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import psutil

import gcbench

# The same machine: these environment fields are equal. Absolute times from two machines are not comparable, so
# compare refuses runs that differ in one of them unless --ratio or --force (pyperf refuses the same). The
# harness's Python version is software, not the machine: comparing two interpreters is what compare is for.
MACHINE_KEYS = ("hostname", "cpu_model", "cpu_count", "machine")
# What the shards of one sweep must share, as sweep.json (format 1) records it under "machine": the machine
# without its architecture field (format 1 never recorded it; cpu_model names the CPU) and the harness's
# Python version, since a sweep's points are one measurement.
SWEEP_MACHINE_KEYS = ("hostname", "cpu_model", "cpu_count", "python_version")


def machine_of(env: dict) -> dict:
    """The machine an environment (run.json "environment") was measured on: its MACHINE_KEYS fields."""
    return {k: env.get(k) for k in MACHINE_KEYS}


def machine_label(machine: dict) -> str:
    """A machine in one line for reports: host, CPU model, CPU count, architecture."""
    return (f"{machine.get('hostname') or '?'} ({machine.get('cpu_model') or '?'}, {machine.get('cpu_count') or '?'} "
            f"CPUs, {machine.get('machine') or '?'})")


def machine_differences(a: dict, b: dict, keys: tuple[str, ...] = MACHINE_KEYS) -> list[tuple[str, object, object]]:
    """(field, value in a, value in b) for every field of `keys` where two environments differ: none on the same
    machine. A field one of them lacks counts as differing (None)."""
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_frequency() -> dict:
    governors = sorted({g for g in (_read(f"/sys/devices/system/cpu/cpu{i}/cpufreq/scaling_governor")
                                    for i in range(os.cpu_count() or 1)) if g})
    freq = psutil.cpu_freq() if hasattr(psutil, "cpu_freq") else None
    return {
        "governor": ",".join(governors) or "unknown (no cpufreq in this machine or VM)",
        "mhz_current": round(freq.current) if freq else None,
        "mhz_max": round(freq.max) if freq and freq.max else None,
    }


def git_commit() -> str | None:
    repo = Path(gcbench.__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def collect_environment() -> dict:
    vm = psutil.virtual_memory()
    try:
        affinity = sorted(psutil.Process().cpu_affinity())
    except (AttributeError, psutil.Error):
        affinity = None
    return {
        "gcbench_version": gcbench.__version__,
        "gcbench_git_commit": git_commit(),
        # exact patch level: CPython's GC changed in 3.12, 3.13, 3.14.0-3.14.4 and again in 3.14.5
        "python_version": sys.version.split()[0],
        "python_full_version": sys.version,
        "python_implementation": sys.implementation.name,
        "python_executable": sys.executable,
        "python_gc_thresholds": list(gc.get_threshold()),
        "python_gc_freeze_count": gc.get_freeze_count(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpu_frequency": cpu_frequency(),
        "memory_total_bytes": vm.total,
        "memory_available_bytes": vm.available,
        "load_average_before": list(os.getloadavg()),
    }
