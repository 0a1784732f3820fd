"""What machine and software a run was measured on (stored in run.json, checked by compare)."""

from __future__ import annotations

import os
import platform
import socket
import sys

import psutil

import gcbench


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_environment() -> dict:
    return {
        "gcbench_version": gcbench.__version__,
        "python_version": sys.version.split()[0],
        "python_full_version": sys.version,
        "python_implementation": sys.implementation.name,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": psutil.virtual_memory().total,
        "load_average_before": list(os.getloadavg()),
    }
