"""A table is laid out once, here; each format says only how to write a row, the divider under the header and
what goes around the table (hyperfine's src/export/markup.rs does the same)."""

from __future__ import annotations

from gcbench.report.document import Table


class Markup:
    """Defaults suit formats whose rows are lines of cells (text, Markdown)."""

    def escape(self, text: str) -> str:
        return text

    def row(self, cells: list[str], right: list[bool], widths: list[int]) -> str:
        raise NotImplementedError

    def header(self, cells: list[str], right: list[bool], widths: list[int]) -> str:
        return self.row(cells, right, widths)

    def divider(self, right: list[bool], widths: list[int]) -> str:
        raise NotImplementedError

    def begin(self, t: Table) -> list[str]:
        return []

    def end(self, t: Table) -> list[str]:
        return []


def table_lines(t: Table, m: Markup) -> list[str]:
    """Header, divider and one row per table row (a "(none)" row when it has none), cells escaped, column
    widths measured on the escaped cells, numeric columns right-aligned."""
    n = len(t.headers)
    rows = [[m.escape(c) for c in r] for r in t.rows] or [[m.escape("(none)"), *[""] * (n - 1)]]
    head = [m.escape(h) for h in t.headers]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(n)]
    right = [i in t.numeric and bool(t.rows) for i in range(n)]
    return [*m.begin(t), m.header(head, right, widths), m.divider(right, widths),
            *(m.row(r, right, widths) for r in rows), *m.end(t)]
