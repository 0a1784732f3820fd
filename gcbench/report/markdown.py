"""The Markdown report: GitHub-flavoured tables, figures linked as PNG files saved next to the document."""

from __future__ import annotations

from pathlib import Path

from gcbench.report.base import Exporter, layout
from gcbench.report.model import Report
from gcbench.report.tables import Table, all_tables, run_facts


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def md_table(t: Table) -> list[str]:
    align = ["---:" if i in t.numeric else ":---" for i in range(len(t.headers))]
    lines = ["| " + " | ".join(_cell(h) for h in t.headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    if not t.rows:
        lines = ["_(none)_"]
    return [f"**{t.title}.** {t.caption}", "", *lines, ""]


class MarkdownExporter(Exporter):
    name = "md"
    suffix = ".md"

    def render(self, report: Report, out: Path | None = None) -> str:
        tables = {t.key: t for t in all_tables(report)}
        figures = {}
        if out is not None:
            from gcbench.report.figures import save_figures

            figures = {spec.name: (spec, name) for spec, name in save_figures(report, out)}
        lines = [f"# gcbench report: {report.run_id}", ""]
        lines += [f"- **{k}**: {_cell(v)}" for k, v in run_facts(report)]
        lines.append("")
        for title, items in layout(list(tables), list(figures)):
            lines += [f"## {title}", ""]
            for item in items:
                kind, _, key = item.partition(":")
                if item == "verdicts":
                    lines += [f"- {_cell(str(v))}" for v in report.summary.get("verdict", [])] or ["- no measured cells"]
                    lines.append("")
                elif kind == "table":
                    lines += md_table(tables[key])
                elif kind == "figure":
                    spec, name = figures[key]
                    lines += [f"![{spec.title}]({name})", "", f"_{spec.caption}_" if spec.caption else "", ""]
        if out is None:
            lines += ["_Figures are saved as PNG files next to the document when it is written with `-o FILE.md`._", ""]
        return "\n".join(lines).rstrip() + "\n"
