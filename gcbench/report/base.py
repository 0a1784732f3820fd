"""The one interface every report format implements, and the sections every document format follows."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from gcbench.report.model import Report


class Exporter(ABC):
    """Renders a Report as one document. Exporters that show figures save them as PNG files next to `out`."""

    name: str  # the --format value
    suffix: str  # file suffix that selects this format when --format is not given

    @abstractmethod
    def render(self, report: Report, out: Path | None = None) -> str:
        """The document text; `out` is the file it will be written to (None: standard output)."""


# Section title -> items: "verdicts", "table:<key>", "figure:<name>". Tables and figures not listed here are
# appended in a last section, so a new figure or table shows up without editing every exporter.
SECTIONS: list[tuple[str, list[str]]] = [
    ("Claim check", ["verdicts", "table:claim", "figure:claim_check", "figure:dead_time_hist"]),
    ("Counterfactual GC cost", ["table:gc_cost"]),
    ("Call latency", ["table:latency", "table:tools", "figure:latency_cdf"]),
    ("Chains and GC dead time", ["table:chains", "figure:gc_timeline"]),
    ("GC events", ["table:gc_events", "figure:pause_sizes"]),
    ("Cells", ["table:cells"]),
]


def layout(table_keys: list[str], figure_names: list[str]) -> list[tuple[str, list[str]]]:
    """SECTIONS restricted to what exists, plus a section for anything SECTIONS does not place."""
    have = {"verdicts", *(f"table:{k}" for k in table_keys), *(f"figure:{n}" for n in figure_names)}
    out = [(title, [i for i in items if i in have]) for title, items in SECTIONS]
    placed = {i for _, items in SECTIONS for i in items}
    rest = [i for i in (*(f"table:{k}" for k in table_keys), *(f"figure:{n}" for n in figure_names)) if i not in placed]
    if rest:
        out.append(("More", rest))
    return [(t, items) for t, items in out if items]
