"""One renderer per format, each a module with `render(doc, figure_files=None) -> str`, imported when used;
`figure_files` names the PNG saved next to the document for each figure (gcbench.report.export)."""

from __future__ import annotations

import importlib

from gcbench.errors import GcbenchError
from gcbench.report.document import Document

RENDERERS = {"text": "gcbench.report.render.text", "md": "gcbench.report.render.markdown",
             "html": "gcbench.report.render.html", "json": "gcbench.report.render.json"}
FORMATS = tuple(RENDERERS)


def render(doc: Document, fmt: str, figure_files: dict[str, str] | None = None) -> str:
    if fmt not in RENDERERS:
        raise GcbenchError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return importlib.import_module(RENDERERS[fmt]).render(doc, figure_files)
