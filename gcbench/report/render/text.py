"""Plain text for a terminal: titles underlined, tables in aligned columns, figures only named."""

from __future__ import annotations

from gcbench.report.document import Block, Bullets, Details, Document, Facts, Figure, Paragraph, Table
from gcbench.report.render.markup import Markup, table_lines


class TextMarkup(Markup):
    def row(self, cells: list[str], right: list[bool], widths: list[int]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, r, w in zip(cells, right, widths, strict=True)).rstrip()

    def divider(self, right: list[bool], widths: list[int]) -> str:
        return "  ".join("-" * w for w in widths)


def _block(b: Block) -> list[str]:
    if isinstance(b, Paragraph):
        return [b.text]
    if isinstance(b, Bullets):
        return [f"- {i}" for i in b.items]
    if isinstance(b, Facts):
        width = max((len(k) for k, _ in b.items), default=0)
        return [f"{k.ljust(width)}  {v}" for k, v in b.items]
    if isinstance(b, Details):
        return _block(b.table)
    if isinstance(b, Table):
        head = [f"{b.title}. {b.caption}".strip()] if b.title else [b.caption] if b.caption else []
        return [*head, *table_lines(b, TextMarkup())]
    if isinstance(b, Figure):
        return [f"[figure: {b.title}: in the Markdown and HTML reports]"]
    raise TypeError(f"not a document block: {b!r}")


def render(doc: Document, figure_files: dict[str, str] | None = None) -> str:
    lines = [doc.title, "=" * len(doc.title), ""] if doc.title else []
    for s in doc.sections:
        if s.title:
            lines += [s.heading, "-" * len(s.heading), ""]
        for b in s.items:
            lines += [*_block(b), ""]
    if doc.footer:
        lines.append(doc.footer)
    return "\n".join(lines).rstrip() + "\n"
