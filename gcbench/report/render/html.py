"""One self-contained HTML page: styles inline, figures embedded as base64 PNG; any browser opens it offline."""

from __future__ import annotations

import base64
from html import escape

from gcbench.report.document import (
    Block,
    Bullets,
    Details,
    Document,
    Facts,
    Figure,
    Paragraph,
    Section,
    Table,
)
from gcbench.report.render.markup import Markup, table_lines

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; font-size: 0.92em; }
dl.facts dt { font-weight: 600; color: #555; }
dl.facts dd { margin: 0; }
ul li { margin: 0.3em 0; }
ul.headline { background: #f6f8fa; border-left: 4px solid #c0392b; padding: 0.6em 1em 0.6em 2.2em; }
nav ul { columns: 2; font-size: 0.92em; list-style: none; padding-left: 0; }
details summary { cursor: pointer; color: #555; margin: 0.5em 0; }
table { border-collapse: collapse; margin: 0 0 1.5em; font-size: 0.88em; display: block; overflow-x: auto; }
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


class HtmlMarkup(Markup):
    def escape(self, text: str) -> str:
        return escape(text)

    def row(self, cells: list[str], right: list[bool], widths: list[int]) -> str:
        return "<tr>" + "".join(f'<td class="num">{c}</td>' if r else f"<td>{c}</td>"
                                for c, r in zip(cells, right, strict=True)) + "</tr>"

    def header(self, cells: list[str], right: list[bool], widths: list[int]) -> str:
        return "<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>"

    def divider(self, right: list[bool], widths: list[int]) -> str:
        return "</thead><tbody>"

    def begin(self, t: Table) -> list[str]:
        # the caption sits above the table, not in <caption>, so a narrow table does not squeeze it into a column
        cap = f"<b>{escape(t.title)}.</b> {escape(t.caption)}" if t.title else escape(t.caption)
        return [f'<p class="caption">{cap}</p>' if cap else "", f'<table id="table-{escape(t.key)}"><thead>']

    def end(self, t: Table) -> list[str]:
        return ["</tbody></table>"]


def _attrs(key: str, style: str) -> str:
    return (f' id="{escape(key)}"' if key else "") + (f' class="{escape(style)}"' if style else "")


def _block(b: Block) -> str:
    if isinstance(b, Paragraph):
        return f"<p><b>{escape(b.text)}</b></p>" if b.strong else f"<p>{escape(b.text)}</p>"
    if isinstance(b, Bullets):
        return f"<ul{_attrs(b.key, b.style)}>" + "".join(f"<li>{escape(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Facts):
        return '<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in b.items) + "</dl>"
    if isinstance(b, Details):
        return (f"<details><summary>{escape(b.table.title)} ({len(b.table.rows)} rows)</summary>"
                f"{_block(b.table)}</details>")
    if isinstance(b, Table):
        return "".join(table_lines(b, HtmlMarkup()))
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode("ascii")
        return (f'<figure id="figure-{escape(b.name)}"><img alt="{escape(b.title)}" src="data:image/png;base64,{data}">'
                f"<figcaption><b>{escape(b.title)}.</b> {escape(b.caption)}</figcaption></figure>")
    raise TypeError(f"not a document block: {b!r}")


def _section(s: Section, h: int) -> list[str]:
    head = [f"<h{h}>{escape(s.heading)}</h{h}>"] if s.title else []
    return [f"<section{_attrs(f'section-{s.key}' if s.key else '', '')}>", *head, *map(_block, s.items), "</section>"]


def render(doc: Document, figure_files: dict[str, str] | None = None) -> str:
    h = min(doc.level, 5)
    parts = [f"<h{h}>{escape(doc.title)}</h{h}>"] if doc.title else []
    if doc.toc:
        parts.append("<nav><ul>" + "".join(f'<li><a href="#section-{escape(s.key)}">{escape(s.heading)}</a></li>'
                                           for s in doc.sections if s.title and s.key) + "</ul></nav>")
    for s in doc.sections:
        parts += _section(s, h + 1)
    if doc.footer:
        parts.append(f"<footer>{escape(doc.footer)}</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(doc.title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
