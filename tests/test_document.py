"""The document model and its renderers: one table layout for every format, every block in every format,
figures drawn only where they are shown, one export for all outputs."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gcbench.errors import GcbenchError
from gcbench.report import export, format_for
from gcbench.report.document import Bullets, Details, Document, Facts, Figure, Paragraph, Section, Table
from gcbench.report.render import render

PNG = b"\x89PNG\r\n\x1a\n" + b"fake"


def _table(rows=None) -> Table:
    rows = [["python", "1.5", "a|b <c>"], ["go", "12.25", "-"]] if rows is None else rows
    return Table("lat", "Latency", "Per call (ms).", ["backend", "p50", "note"], rows, {1})


class _Drawn:
    """A figure's draw function that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return "Drawn title", "What it shows.", PNG


def _doc(draw) -> Document:
    return Document("A title", [
        Section("", [Facts([("run", "r1"), ("machine", "2 CPUs")])]),
        Section("Findings", [Paragraph("First."), Bullets(["one", "two"], key="verdicts", style="headline"),
                             _table(), Figure("cdf", draw)], key="findings", number="1"),
        Section("Reference", [Details(_table([["rust", "0.5", ""]]))], key="ref"),
    ], footer="Made from a test.", data={"kind": "test", "n": np.int64(3), "x": np.float64(0.5)}, toc=True)


def test_a_table_is_laid_out_once_for_every_format():
    t = _table()
    text = render(Document("", [Section("", [t])]), "text").splitlines()
    head = text.index("backend    p50  note")
    assert text[head - 1] == "Latency. Per call (ms)."
    assert text[head + 1:head + 4] == ["-------  -----  -------", "python     1.5  a|b <c>", "go       12.25  -"]
    md = render(Document("", [Section("", [t])]), "md")
    assert "| backend | p50 | note |\n| :--- | ---: | :--- |\n| python | 1.5 | a\\|b <c> |" in md
    html = render(Document("", [Section("", [t])]), "html")
    assert ('<table id="table-lat"><thead><tr><th>backend</th><th>p50</th><th>note</th></tr></thead><tbody>'
            '<tr><td>python</td><td class="num">1.5</td><td>a|b &lt;c&gt;</td></tr>') in html
    empty = _table([])
    assert "(none)" in render(Document("", [Section("", [empty])]), "text")
    assert "| (none) |  |  |" in render(Document("", [Section("", [empty])]), "md")
    assert "<td>(none)</td>" in render(Document("", [Section("", [empty])]), "html")


def test_every_block_renders_in_every_format_and_figures_are_drawn_only_to_be_shown():
    draw = _Drawn()
    doc = _doc(draw)
    md = render(doc, "md")
    assert md.startswith("# A title\n\n- **run**: r1\n") and "\n## 1. Findings\n" in md and "- two" in md
    assert "Figures are saved as PNG files next to the document" in md and "![" not in md
    with_title = Figure("cdf", draw, known_title="Known")
    assert "[figure: Known: in the Markdown and HTML reports]" in render(Document("", [Section("", [with_title])]),
                                                                         "text")
    assert draw.calls == 0  # md without a file to link skips figures; text names them by a title given up front
    html = (render(doc, "html") + render(doc, "html")).replace("\n", "")
    assert draw.calls == 1  # drawn once, however often it is shown
    assert '<ul id="verdicts" class="headline"><li>one</li>' in html and '<dl class="facts"><dt>run</dt>' in html
    assert '<nav><ul><li><a href="#section-findings">1. Findings</a></li>' in html
    assert '<section id="section-ref"><h2>Reference</h2><details><summary>Latency (1 rows)</summary>' in html
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in html
    assert "<figcaption><b>Drawn title.</b> What it shows.</figcaption>" in html
    assert "<footer>Made from a test.</footer>" in html
    text = render(doc, "text")  # a figure without a title given up front is drawn (once) for its title
    assert text.startswith("A title\n=======\n\nrun      r1\nmachine  2 CPUs\n\n1. Findings\n-----------\n\nFirst.\n\n- one")
    assert "[figure: Drawn title: in the Markdown" in text and "Latency. Per call (ms)." in text and "rust" in text
    assert text.endswith("Made from a test.\n") and draw.calls == 1


def test_export_writes_the_document_and_its_figures_next_to_it(tmp_path):
    draw = _Drawn()
    md = export(_doc(draw), "md", tmp_path / "out" / "doc.md")
    assert (tmp_path / "out" / "doc.md").read_text() == md
    assert (tmp_path / "out" / "doc-cdf.png").read_bytes() == PNG
    assert "![Drawn title](doc-cdf.png)\n\n_Drawn title. What it shows._" in md and "saved as PNG" not in md
    export(_doc(draw), "text", tmp_path / "doc.txt")
    assert not (tmp_path / "doc-cdf.png").exists()  # a format without pictures saves none
    with pytest.raises(GcbenchError, match="cannot write the report to"):
        export(_doc(draw), "text", tmp_path / "out" / "doc.md" / "x.txt")


def test_json_writes_the_documents_data_and_nothing_else():
    out = json.loads(render(_doc(_Drawn()), "json"))
    assert out == {"kind": "test", "n": 3, "x": 0.5}
    with pytest.raises(GcbenchError, match="has no JSON form"):
        render(Document("Study"), "json")
    with pytest.raises(GcbenchError, match="unknown format 'csv'; valid formats: text, md, html, json"):
        render(Document("x"), "csv")


def test_the_format_comes_from_the_option_else_the_suffix_else_text():
    assert format_for(Path("r.HTML"), None) == "html" and format_for(Path("r.md"), "json") == "json"
    assert format_for(Path("r.csv"), None) == "text" and format_for(None, None) == "text"
    with pytest.raises(GcbenchError, match=r"the study report is text, md or html, not 'json' \(from a.json\)"):
        format_for(Path("a.json"), None, ("text", "md", "html"), "study report")


def test_a_document_can_be_a_part_of_a_larger_page():
    doc = Document("gcbench compare: no regression", [Section("Notes", [Paragraph("Verdict.", strong=True)])],
                   level=3)
    assert render(doc, "md") == "### gcbench compare: no regression\n\n#### Notes\n\n**Verdict.**\n"
    assert "<h3>gcbench compare: no regression</h3>" in render(doc, "html")


def test_writing_the_json_report_imports_no_matplotlib(tmp_path):
    """Writing JSON used to import matplotlib: the file writer lived in figures.py."""
    from .synthetic import constant_cell, write_run

    run = write_run(tmp_path, [constant_cell("python", "default", 1_000_000)])
    code = ("import sys; from gcbench.report import build, export, report_document; rep = build(sys.argv[1]); "
            "export(report_document(rep, 'json'), 'json', __import__('pathlib').Path(sys.argv[2])); "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(run), str(tmp_path / "r.json")], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip() == "False"
    assert json.loads((tmp_path / "r.json").read_text())["kind"] == "gcbench-report"
