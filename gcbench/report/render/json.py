"""JSON: the document's machine-readable form (Document.data), as its builder made it."""

from __future__ import annotations

import json

import numpy as np

from gcbench.errors import GcbenchError
from gcbench.report.document import Document


def _plain(v):
    """numpy scalars as numbers; anything else json cannot write (timestamps, paths) as its string."""
    return v.item() if isinstance(v, np.generic) else str(v)


def render(doc: Document, figure_files: dict[str, str] | None = None) -> str:
    if doc.data is None:
        raise GcbenchError(f"{doc.title or 'this output'} has no JSON form")
    return json.dumps(doc.data, indent=2, default=_plain) + "\n"
