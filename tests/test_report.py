"""Reports: the HTML holds every figure and table (images decode as PNG), and everything grows with the run."""

import base64
import io
import json
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from PIL import Image

import gcbench
from gcbench.analysis import decode_histogram, summarize
from gcbench.report import build, export, report_document
from gcbench.report.document import Table
from gcbench.report.figures import FIGURES, all_figures
from gcbench.report.summary import render_summary

from .conftest import run_cli
from .synthetic import Pause, constant_cell, noisy_cell, write_run

MS = 1_000_000
FIGURE_NAMES = {"claim_check", "latency_cdf", "gc_timeline", "dead_time_hist", "pause_sizes"}
TABLE_KEYS = {"claim", "latency", "chains", "gc_cost", "gc_events", "cells"}


def _pauses(chains: int, calls: int, every: int, ns: int, generation: int = 0) -> list[Pause]:
    return [Pause(0, ch, c, offset_ns=10_000, duration_ns=ns * (1 + ch % 3), generation=generation)
            for ch in range(chains) for c in range(0, calls, every)]


def _cells(backends=("python",)) -> list:
    cells = []
    for b in backends:
        young = noisy_cell(b, "default", 1.2 * MS, seed=len(cells))
        young.pauses = _pauses(30, 10, 3, 200_000) + _pauses(30, 10, 7, 2 * MS, generation=2)
        cells.append(young)
        cells.append(noisy_cell(b, "disabled", MS, seed=len(cells) + 10))
    return cells


@pytest.fixture
def run_path(tmp_path):
    return write_run(tmp_path / "runs", _cells())


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: list[str] = []
        self.images: list[tuple[str, str]] = []  # (enclosing figure id, src)
        self.verdicts = 0
        self.external: list[str] = []
        self._figure = None
        self._in_verdicts = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "figure":
            self._figure = a.get("id")
        if tag == "img":
            self.images.append((self._figure, a["src"]))
        if tag == "ul" and a.get("id") == "verdicts":
            self._in_verdicts = True
        if tag == "li" and self._in_verdicts:
            self.verdicts += 1
        for k in ("src", "href"):
            if k in a and not a[k].startswith("data:"):
                self.external.append(a[k])

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None
        if tag == "ul":
            self._in_verdicts = False


def _png(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format == "PNG" and img.width > 300 and img.height > 100
    return img


def test_html_report_holds_every_figure_and_table(run_path, tmp_path):
    out = tmp_path / "rep" / "report.html"
    proc = run_cli("report", str(run_path), "-o", str(out), "-o", str(tmp_path / "rep" / "report.md"))
    assert proc.returncode == 0, proc.stderr
    page = _Collect()
    page.feed(out.read_text(encoding="utf-8"))
    assert {f"figure-{n}" for n in FIGURE_NAMES} <= set(page.ids)
    assert {f"table-{k}" for k in TABLE_KEYS} <= set(page.ids)
    assert page.verdicts == 2  # one per (backend, gc mode)
    assert page.external == []  # self-contained
    assert {fig for fig, _ in page.images} == {f"figure-{n}" for n in FIGURE_NAMES}
    for _, src in page.images:
        assert src.startswith("data:image/png;base64,")
        _png(base64.b64decode(src.split(",", 1)[1]))
    # the same figures as PNG files next to the page, linked from the Markdown twin
    md = (tmp_path / "rep" / "report.md").read_text()
    for name in FIGURE_NAMES:
        f = tmp_path / "rep" / f"report-{name}.png"
        _png(f.read_bytes())
        assert f"]({f.name})" in md
    assert "| backend | gc mode | chains | dead/chain mean |" in md


def test_text_report_is_what_run_prints(run_path):
    run = gcbench.load(run_path)
    proc = run_cli("report", str(run_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render_summary(summarize(run.calls, run.gc_events, 10), 10)
    assert "python/default: " in proc.stdout and "of the claimed 100 ms" in proc.stdout
    assert "python/default: +" in proc.stdout and "vs python/disabled" in proc.stdout


def test_json_report_has_a_decodable_histogram_per_cell(run_path):
    proc = run_cli("report", str(run_path), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    cells = doc["latency_histograms"]["cells"]
    assert [(c["backend"], c["gc_mode"]) for c in cells] == [("python", "default"), ("python", "disabled")]
    for c in cells:
        assert decode_histogram(c["hdr_histogram"]).get_total_count() == c["calls"] == 300
    assert len(doc["verdicts"]) == 2 and doc["claim_ms"] == 100.0
    assert {r["gc_mode"] for r in doc["claim"]} == {"default", "disabled"}


def test_html_without_output_goes_to_the_reports_folder(run_path, tmp_path):
    proc = run_cli("report", str(run_path), "--format", "html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "reports" / "synthetic" / "report.html").is_file()
    assert (tmp_path / "reports" / "synthetic" / "report-latency_cdf.png").is_file()


def test_every_figure_and_table_grows_with_backends_and_modes(tmp_path):
    cells = _cells(("python", "go"))
    cells.append(noisy_cell("python", "freeze", 1.1 * MS, seed=40))
    node = noisy_cell("node", "default", 1.3 * MS, seed=41)
    node.pauses, node.runtime = _pauses(30, 10, 5, 300_000), "node"
    rust = noisy_cell("rust", "default", 0.8 * MS, seed=42)
    rust.runtime = "rust"
    cells += [node, rust]
    rep = build(write_run(tmp_path, cells))
    assert rep.backends == ["python", "go", "node", "rust"]
    figs = {f.name: f.figure for f in all_figures(rep)}
    assert set(figs) == FIGURE_NAMES and len(FIGURES) == len(FIGURE_NAMES)
    assert len(figs["latency_cdf"].axes) == 4 and len(figs["dead_time_hist"].axes) == 4
    # one timeline panel per (backend, gc mode) that lost time to GC: python/default, go/default, node/default
    assert len(figs["gc_timeline"].axes) == 3
    labels = [t.get_text() for t in figs["pause_sizes"].axes[0].get_yticklabels()]
    assert len(labels) == 5 and any(lbl.startswith("node/default gen0") for lbl in labels)
    lines = figs["latency_cdf"].axes[0].get_legend().get_texts()
    assert [t.get_text().split(":")[0] for t in lines] == ["default", "disabled", "freeze"]
    tables = {b.key: b for b in report_document(rep).blocks() if isinstance(b, Table)}
    assert len(tables["claim"].rows) == len(tables["latency"].rows) == len(tables["gc_cost"].rows) == 7
    cost = {(r[0], r[1]): r[2] for r in tables["gc_cost"].rows}
    assert cost[("go", "default")] == "go/disabled" and cost[("rust", "default")] == "(is the reference)"
    # node has no GC off switch and no GC-quiet cell here: no GC cost, the runtime difference in its own table
    assert cost[("node", "default")] == "-"
    assert [r[:3] for r in tables["runtime_diff"].rows] == [["node", "default", "rust/default"]]


def test_a_run_without_gc_pauses_still_reports(tmp_path):
    rep = build(write_run(tmp_path, [constant_cell("python", "disabled", MS)]))
    html = export(report_document(rep), "html", tmp_path / "r.html")
    assert "no GC pauses measured in this run" not in html  # the message is drawn inside the PNG
    assert "no call delayed by GC" in html
    for name in FIGURE_NAMES:
        _png((tmp_path / f"r-{name}.png").read_bytes())


def test_unknown_run_folder_is_one_error_line(tmp_path):
    proc = run_cli("report", str(tmp_path / "missing"))
    assert proc.returncode == 2 and proc.stderr.startswith("ERROR:") and len(proc.stderr.splitlines()) == 1


def test_importing_the_report_package_draws_nothing():
    code = ("import sys, gcbench.report, gcbench.report.figures, gcbench.report.render.html, gcbench.compare; "
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    code = "import sys, gcbench.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class _EchoTransport:
    """Answers every tools/call at once; keeps `keep` new lists per call (the harness's own allocation) and
    runs an explicit gc.collect() on the call numbered `collect_at`."""

    def __init__(self, keep: int, collect_at: int = -1):
        self.keep, self.collect_at, self.kept, self.pending, self.calls = keep, collect_at, [], [], 0

    def send(self, data: bytes, agent: int) -> None:
        self.pending.append(int(data.split(b'"id":', 1)[1].split(b",", 1)[0]))

    def poll(self, timeout_s):
        import gc
        import time

        out = []
        for msg_id in self.pending:
            self.kept.extend([i] for i in range(self.keep))
            if self.calls == self.collect_at:
                gc.collect()
            self.calls += 1
            out.append((time.monotonic_ns(), {"jsonrpc": "2.0", "id": msg_id, "result": {"content": []}}))
        self.pending = []
        return out


def _measure_with(transport):
    from types import SimpleNamespace

    import numpy as np

    from gcbench.runner import CallPlan, _measure
    from gcbench.scenario import Chain, Scenario

    scenario = Scenario(name="fake", description="", chain=Chain(calls=5, chains=2, agents=1, warmup_calls=0))
    handle = SimpleNamespace(session=SimpleNamespace(transport=transport))
    backend = SimpleNamespace(in_process=False, tool="work")
    plan = CallPlan(["work"] * 5, np.zeros((2, 5), np.int64), None, [])  # every call the same, no trace
    return _measure(handle, scenario, backend, {}, plan, SimpleNamespace(call_timeout_s=5.0))


def _inside(client: list[dict], window: tuple[int, int]) -> list[dict]:
    return [e for e in client if e["end_ns"] >= window[0] and e["start_ns"] <= window[1]]


def test_the_harness_counts_its_own_allocation_and_collections_while_measuring():
    records, client, window, allocs, _ = _measure_with(_EchoTransport(keep=100))
    assert len(records) == 10 and records.ok.all()
    assert _inside(client, window) == []  # (the collection just before the window is recorded too)
    # 10 calls x 100 kept lists on top of what the same chains allocate keeping nothing (the loop's buffers:
    # 27 objects on CPython 3.11.7)
    assert allocs - _measure_with(_EchoTransport(keep=0))[3] == 1_000
    records, client, window, allocs, _ = _measure_with(_EchoTransport(keep=10, collect_at=3))
    inside = _inside(client, window)
    assert len(inside) == 1 and window[0] <= inside[0]["start_ns"] <= inside[0]["end_ns"] <= window[1]
    assert allocs is None  # the collection reset the count: no number rather than a wrong one


def test_reports_show_the_harness_gc(tmp_path):
    cell = constant_cell("python", "default", MS)
    cell.info = {"client_gc_events_in_window": 0, "client_tracked_allocations": 4321}
    rep = build(write_run(tmp_path, [cell]))
    md = export(report_document(rep), "md")
    assert ("**harness GC**: its own GC was disabled while measuring; 0 collection(s) of it inside the measured "
            "windows; it allocated up to 4,321 net GC-tracked objects in one cell's window") in md


def test_the_run_report_shows_the_live_heap_and_ns_per_tracked_object(tmp_path):
    """Memory section: the runtime's own live-heap count beside every "N objects", and what a CPython full
    collection cost per tracked object (two 2 ms full collections over 100,000 tracked objects: 20 ns)."""
    import gcbench
    from gcbench.report.model import build_report
    from gcbench.report.run_document import live_heap_table
    from tests.synthetic import Pause, constant_cell, write_run

    pauses = [Pause(rep=0, chain=c, call=1, offset_ns=10, duration_ns=2_000_000, generation=2) for c in range(2)]
    cell = constant_cell("python", "default", 5_000_000, reps=1, pauses=pauses)
    cell.info = {"stats": {"runtime": "python", "tracked_objects": 100_000, "python_version": "3.11.7"}}
    run = gcbench.load(write_run(tmp_path / "heap", [cell]))
    (table,) = live_heap_table(build_report(run, n_boot=10))
    (row,) = table.rows
    assert row[0:3] == ["python", "default", "0"]
    assert row[5] == "100,000 objects" and row[6] == "2" and row[7] == "2" and row[8] == "20"
