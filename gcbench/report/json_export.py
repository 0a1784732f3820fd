"""The JSON report: every table of the report plus one HdrHistogram of call latency per cell (standard
base64 encoding, ns), and one per (backend, gc mode) merged over repetitions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from gcbench.analysis import HDR_HIGHEST_NS, HDR_LOWEST_NS, HDR_SIGNIFICANT_DIGITS, merge_histograms
from gcbench.formats import REPORT_FORMAT, REPORT_KIND
from gcbench.report.base import Exporter
from gcbench.report.model import Report
from gcbench.report.tools import tools_records


def _records(df: pd.DataFrame) -> list[dict]:
    # to_json turns NaN into null and numpy scalars into plain numbers
    return json.loads(df.to_json(orient="records")) if len(df) else []


def report_dict(report: Report) -> dict:
    h = report.histograms
    merged = []
    for (b, m), g in h.groupby(["backend", "gc_mode"], sort=False):
        merged.append({"backend": b, "gc_mode": m, "reps": len(g), "calls": int(g["calls"].sum()),
                       "hdr_histogram": merge_histograms(list(g["hdr_histogram"])).encode().decode("ascii")})
    env = report.run.meta.get("environment", {})
    return {
        "kind": REPORT_KIND,
        "schema_version": REPORT_FORMAT,  # formats.py has the history
        "run_schema_version": report.run.meta.get("schema_version"),
        "run_id": report.run_id,
        "scenario": report.run.scenario,
        "environment": {k: env.get(k) for k in ("hostname", "cpu_model", "cpu_count", "platform", "python_version",
                                                "gcbench_version", "backend_versions")},
        "calls_per_chain": report.calls_per_chain,
        "claim_ms": report.claim_ms,
        "verdicts": list(report.summary.get("verdict", [])),
        "summary": _records(report.summary),
        "claim": _records(report.claim),
        "latency": _records(report.latency),
        "gc_events": _records(report.gc_events),
        "tools": tools_records(report.run),  # latency and GC dead time by tool (report/tools.py)
        "latency_histograms": {
            "unit": "ns", "lowest_trackable": HDR_LOWEST_NS, "highest_trackable": HDR_HIGHEST_NS,
            "significant_digits": HDR_SIGNIFICANT_DIGITS, "encoding": "HdrHistogram V2 compressed, base64",
            "cells": _records(h), "merged": merged,
        },
    }


class JsonExporter(Exporter):
    name = "json"
    suffix = ".json"

    def render(self, report: Report, out: Path | None = None) -> str:
        return json.dumps(report_dict(report), indent=2) + "\n"
