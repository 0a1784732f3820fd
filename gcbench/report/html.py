"""The HTML report: one self-contained file (styles inline, figures embedded as base64 PNG) that any browser
opens offline; the same figures are also saved as PNG files next to it."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from gcbench.report.base import Exporter, layout
from gcbench.report.model import Report
from gcbench.report.tables import Table, all_tables, run_facts

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; font-size: 0.92em; }
dl.facts dt { font-weight: 600; color: #555; }
dl.facts dd { margin: 0; }
ul.verdicts li { margin: 0.3em 0; }
table { border-collapse: collapse; margin: 0 0 1.5em; font-size: 0.88em; }
p.caption { margin: 0.8em 0 0.3em; font-size: 0.9em; color: #444; }
p.caption b { color: #222; }
th, td { border: 1px solid #d8d8d8; padding: 0.25em 0.6em; }
th { background: #f3f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.88em; color: #444; }
footer { margin-top: 3em; font-size: 0.8em; color: #777; }
"""


def html_table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{escape(c)}</td>' if i in t.numeric else f"<td>{escape(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in t.rows
    ) or f'<tr><td colspan="{len(t.headers)}">(none)</td></tr>'
    # the caption sits above the table, not in <caption>, so a narrow table does not squeeze it into a column
    return (f'<p class="caption"><b>{escape(t.title)}.</b> {escape(t.caption)}</p>'
            f'<table id="table-{escape(t.key)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def html_page(title: str, parts: list[str], source: str, extra_css: str = "") -> str:
    """One self-contained page: the body parts, a footer naming what it was made from, inline CSS."""
    parts = [*parts, f"<footer>Made by gcbench from {escape(source)}. Times are CLOCK_MONOTONIC measurements; GC "
                     "dead time counts each nanosecond of server GC pause inside a call once.</footer>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title>"
            f"<style>{CSS}{extra_css}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


class HtmlExporter(Exporter):
    name = "html"
    suffix = ".html"

    def render(self, report: Report, out: Path | None = None) -> str:
        from gcbench.report.figures import rendered_figures, save_figures

        tables = {t.key: t for t in all_tables(report)}
        figures = {spec.name: (spec, png) for spec, png in rendered_figures(report)}
        if out is not None:
            save_figures(report, out)
        parts = [f"<h1>gcbench report: {escape(report.run_id)}</h1>", '<dl class="facts">']
        parts += [f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in run_facts(report)]
        parts.append("</dl>")
        for title, items in layout(list(tables), list(figures)):
            parts.append(f"<h2>{escape(title)}</h2>")
            for item in items:
                kind, _, key = item.partition(":")
                if item == "verdicts":
                    verdicts = list(report.summary.get("verdict", [])) or ["no measured cells"]
                    parts.append('<ul class="verdicts" id="verdicts">'
                                 + "".join(f"<li>{escape(str(v))}</li>" for v in verdicts) + "</ul>")
                elif kind == "table":
                    parts.append(html_table(tables[key]))
                elif kind == "figure":
                    spec, png = figures[key]
                    data = base64.b64encode(png).decode("ascii")
                    parts.append(f'<figure id="figure-{escape(spec.name)}"><img alt="{escape(spec.title)}" '
                                 f'src="data:image/png;base64,{data}"><figcaption>{escape(spec.caption)}'
                                 "</figcaption></figure>")
        return html_page(f"gcbench report: {report.run_id}", parts, f"run folder {report.run.path.name}")
