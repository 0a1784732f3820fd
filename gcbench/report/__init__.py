"""Reports of a run: text (the terminal summary), Markdown, self-contained HTML with figures, and JSON.

`export(report, fmt, out)` is the single entry point; exporters are looked up by format name and imported only
when used (nothing is drawn or imported at package import).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from gcbench.errors import GcbenchError

# format name -> (module, class); the class implements gcbench.report.base.Exporter
EXPORTERS: dict[str, tuple[str, str]] = {
    "text": ("gcbench.report.text", "TextExporter"),
    "md": ("gcbench.report.markdown", "MarkdownExporter"),
    "html": ("gcbench.report.html", "HtmlExporter"),
    "json": ("gcbench.report.json_export", "JsonExporter"),
}
SUFFIXES = {".txt": "text", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".json": "json"}


def get_exporter(fmt: str):
    if fmt not in EXPORTERS:
        raise GcbenchError(f"unknown report format {fmt!r}; valid formats: {', '.join(EXPORTERS)}")
    module, cls = EXPORTERS[fmt]
    return getattr(importlib.import_module(module), cls)()


def format_for(out: Path | None, fmt: str | None) -> str:
    """The explicit format, else the one the output file's suffix names, else text."""
    if fmt:
        return fmt
    if out is not None and out.suffix.lower() in SUFFIXES:
        return SUFFIXES[out.suffix.lower()]
    return "text"


def export(report, fmt: str, out: Path | None = None) -> str:
    """Render `report` as `fmt`; with `out`, also write the document (and its figures) there."""
    exporter = get_exporter(fmt)
    try:
        from gcbench.atomic import is_stream, write_output

        doc = exporter.render(report, None if is_stream(out) else out)  # may save figures next to `out`
        if out is not None:
            write_output(out, doc.encode("utf-8"))
    except GcbenchError:
        raise
    except OSError as e:
        raise GcbenchError(f"cannot write the report to {out}: {e.strerror or e}") from None
    return doc


def build(run_path) -> object:
    """Load a run folder and compute everything a report shows (a gcbench.report.model.Report)."""
    from gcbench.report.model import build_report
    from gcbench.store import load_run

    return build_report(load_run(run_path))


__all__ = ["EXPORTERS", "build", "export", "format_for", "get_exporter"]
