"""GitHub-flavoured Markdown: pipe tables, figures linked as the PNG files saved next to the document."""

from __future__ import annotations

from gcbench.report.document import Block, Bullets, Details, Document, Facts, Figure, Paragraph, Table
from gcbench.report.render.markup import Markup, table_lines

NO_FILES = "_Figures are saved as PNG files next to the document when it is written with `-o FILE.md`._"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class MarkdownMarkup(Markup):
    def escape(self, text: str) -> str:
        return _cell(text)

    def row(self, cells: list[str], right: list[bool], widths: list[int]) -> str:
        return "| " + " | ".join(cells) + " |"

    def divider(self, right: list[bool], widths: list[int]) -> str:
        return "| " + " | ".join("---:" if r else ":---" for r in right) + " |"


def _block(b: Block, files: dict[str, str]) -> list[str]:
    if isinstance(b, Paragraph):
        return [f"**{b.text}**" if b.strong else b.text]
    if isinstance(b, Bullets):
        return [f"- {_cell(i)}" for i in b.items]
    if isinstance(b, Facts):
        return [f"- **{k}**: {_cell(v)}" for k, v in b.items]
    if isinstance(b, Details):
        return _block(b.table, files)
    if isinstance(b, Table):
        head = [f"**{b.title}.** {b.caption}".strip(), ""] if b.title else [b.caption, ""] if b.caption else []
        return [*head, *table_lines(b, MarkdownMarkup())]
    if isinstance(b, Figure):  # without a file to link, only the note at the end
        return [f"![{b.title}]({files[b.name]})", "", f"_{b.title}. {b.caption}_"] if b.name in files else []
    raise TypeError(f"not a document block: {b!r}")


def render(doc: Document, figure_files: dict[str, str] | None = None) -> str:
    files = figure_files or {}
    lines = [f"{'#' * doc.level} {doc.title}", ""] if doc.title else []
    for s in doc.sections:
        if s.title:
            lines += [f"{'#' * (doc.level + 1)} {s.heading}", ""]
        for b in s.items:
            block = _block(b, files)
            lines += [*block, ""] if block else []
    if doc.footer:
        lines += [f"_{doc.footer}_", ""]
    if any(f.name not in files for f in doc.figures()):
        lines += [NO_FILES, ""]
    return "\n".join(lines).rstrip() + "\n"
