"""gcbench's outputs as documents: builders make a gcbench.report.document.Document (the run report, the study,
compare, calibrate, the summary `gcbench run` prints); `export(doc, fmt, out)` renders it as text, Markdown,
HTML or JSON and writes it. Nothing is drawn or imported at package import: renderers are imported when used
and figures drawn only by the formats that show them.
"""

from __future__ import annotations

from pathlib import Path

from gcbench.errors import GcbenchError
from gcbench.report.document import Document
from gcbench.report.render import FORMATS
from gcbench.report.render import render as render_doc  # gcbench.report.render stays the package

SUFFIXES = {".txt": "text", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".json": "json"}
PICTURE_FORMATS = ("md", "html")  # written with -o FILE, these save every figure as a PNG next to FILE


def format_for(out: Path | None, fmt: str | None, formats: tuple[str, ...] = FORMATS, what: str = "report") -> str:
    """The explicit format, else the one the output file's suffix names, else text; one of `formats`."""
    f = fmt or (SUFFIXES.get(out.suffix.lower(), "text") if out is not None else "text")
    if f not in formats:
        valid = ", ".join(formats[:-1]) + f" or {formats[-1]}" if len(formats) > 1 else formats[0]
        raise GcbenchError(f"the {what} is {valid}, not {f!r}" + (f" (from {out})" if out else ""))
    return f


def _write(path: Path, data: bytes) -> None:
    """A regular file atomically; a symlink's target; a device or FIFO written through (gcbench.atomic)."""
    from gcbench.atomic import write_output

    path.parent.mkdir(parents=True, exist_ok=True)
    write_output(path, data)


def export(doc: Document, fmt: str, out: Path | None = None) -> str:
    """Render `doc` as `fmt`; with `out`, also write it there (and its figures as PNG files next to it)."""
    try:
        from gcbench.atomic import is_stream

        files = None
        # figures go next to a file, never next to a device or a FIFO (written through, see gcbench.atomic)
        if out is not None and fmt in PICTURE_FORMATS and not is_stream(out):
            files = {f.name: f"{out.stem}-{f.name}.png" for f in doc.figures()}
            for f in doc.figures():
                _write(out.parent / files[f.name], f.png)
        text = render_doc(doc, fmt, files)
        if out is not None:
            _write(out, text.encode("utf-8"))
    except GcbenchError:
        raise
    except OSError as e:
        raise GcbenchError(f"cannot write the report to {out}: {e.strerror or e}") from None
    return text


def build(run_path) -> object:
    """Load a run folder and compute everything a report shows (a gcbench.report.model.Report)."""
    from gcbench.report.model import build_report
    from gcbench.store import load_run

    return build_report(load_run(run_path))


def report_document(report, fmt: str = "html") -> Document:
    """The run report as a Document; for text, the summary `gcbench run` prints."""
    from gcbench.report.run_document import document

    return document(report, fmt)


__all__ = ["FORMATS", "build", "export", "format_for", "report_document"]
