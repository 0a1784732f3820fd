"""The study report rendered as text, Markdown or one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

from gcbench.errors import GcbenchError
from gcbench.report.study import FORMATS, Bullets, Details, Section, Study
from gcbench.report.study_document import facts, sections
from gcbench.report.tables import Table

# ---------------------------------------------------------------------------------------------- rendering


def _figures(study: Study) -> dict[str, tuple]:
    """name -> (FigureSpec, PNG bytes), drawn once per study."""
    if "figures" not in study.cache:
        from gcbench.report.figures import png_bytes
        from gcbench.report.study_figures import FIGURES

        wanted = {i[7:] for sec in sections(study) for i in sec.items if isinstance(i, str) and i.startswith("figure:")}
        specs = [make(study) for make in FIGURES if make.__name__ in wanted]  # only what the document shows
        study.cache["figures"] = {spec.name: (spec, png_bytes(spec.figure)) for spec in specs}
    return study.cache["figures"]


def _save_figures(study: Study, out: Path) -> dict[str, str]:
    from gcbench.atomic import write_output
    from gcbench.report.figures import figure_file_name

    names = {}
    for name, (spec, png) in _figures(study).items():
        names[name] = figure_file_name(out, spec)
        write_output(out.parent / names[name], png)
    return names


def _title(s: Section) -> str:
    return f"{s.number}. {s.title}" if s.number else s.title


def text_table(t: Table) -> list[str]:
    rows = [t.headers, *t.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(t.headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in t.numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    body = [line(r) for r in t.rows] or ["(none)"]
    return [f"{t.title}. {t.caption}", line(t.headers), line(["-" * w for w in widths]), *body, ""]


def render_text(study: Study) -> str:
    lines = [f"gcbench study: {study.name}", "=" * (15 + len(study.name)), ""]
    for s in sections(study):
        lines += [_title(s), "-" * len(_title(s)), ""]
        for item in s.items:
            if isinstance(item, Details):
                item = item.table
            if isinstance(item, Bullets):
                lines += [f"- {b}" for b in item.items] + [""]
            elif isinstance(item, Table):
                lines += text_table(item)
            elif item == "facts":
                width = max(len(k) for k, _ in facts(study))
                lines += [f"{k.ljust(width)}  {v}" for k, v in facts(study)] + [""]
            elif item.startswith("figure:"):
                from gcbench.report.study_figures import TITLES

                lines += [f"[figure: {TITLES[item[7:]]}: in the Markdown and HTML reports]", ""]
            else:
                lines += [item, ""]
    return "\n".join(lines).rstrip() + "\n"


def render_md(study: Study, out: Path | None = None) -> str:
    from gcbench.report.markdown import _cell, md_table

    names = _save_figures(study, out) if out is not None else {}
    lines = [f"# gcbench study: {study.name}", ""]
    for s in sections(study):
        lines += [f"## {_title(s)}", ""]
        for item in s.items:
            if isinstance(item, Details):
                item = item.table
            if isinstance(item, Bullets):
                lines += [f"- {_cell(b)}" for b in item.items] + [""]
            elif isinstance(item, Table):
                lines += md_table(item)
            elif item == "facts":
                lines += [f"- **{k}**: {_cell(v)}" for k, v in facts(study)] + [""]
            elif item.startswith("figure:"):
                spec = _figures(study)[item[7:]][0]
                if item[7:] in names:
                    lines += [f"![{spec.title}]({names[item[7:]]})", ""]
                lines += [f"_{spec.title}. {spec.caption}_", ""]
            else:
                lines += [item, ""]
    if out is None:
        lines += ["_Figures are saved as PNG files next to the document when it is written with `-o FILE.md`._", ""]
    return "\n".join(lines).rstrip() + "\n"


STUDY_CSS = """
ul.headline { background: #f6f8fa; border-left: 4px solid #c0392b; padding: 0.6em 1em 0.6em 2.2em; }
ul.headline li { margin: 0.35em 0; }
nav ul { columns: 2; font-size: 0.92em; list-style: none; padding-left: 0; }
details summary { cursor: pointer; color: #555; margin: 0.5em 0; }
table { display: block; overflow-x: auto; }
"""


def render_html(study: Study, out: Path | None = None) -> str:
    import base64
    from html import escape

    from gcbench.report.html import html_page, html_table

    if out is not None:
        _save_figures(study, out)
    figs = _figures(study)
    secs = sections(study)
    parts = [f"<h1>gcbench study: {escape(study.name)}</h1>", "<nav><ul>"]
    parts += [f'<li><a href="#section-{s.key}">{escape(_title(s))}</a></li>' for s in secs]
    parts.append("</ul></nav>")
    for s in secs:
        parts.append(f'<section id="section-{s.key}"><h2>{escape(_title(s))}</h2>')
        for item in s.items:
            if isinstance(item, Details):
                parts.append(f"<details><summary>{escape(item.table.title)} ({len(item.table.rows)} rows)</summary>"
                             f"{html_table(item.table)}</details>")
            elif isinstance(item, Bullets):
                parts.append(f'<ul class="{"headline" if s.key == "headline" else "findings"}">'
                             + "".join(f"<li>{escape(b)}</li>" for b in item.items) + "</ul>")
            elif isinstance(item, Table):
                parts.append(html_table(item))
            elif item == "facts":
                parts.append('<dl class="facts">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>"
                                                            for k, v in facts(study)) + "</dl>")
            elif item.startswith("figure:"):
                spec, png = figs[item[7:]]
                data = base64.b64encode(png).decode("ascii")
                parts.append(f'<figure id="figure-{escape(spec.name)}"><img alt="{escape(spec.title)}" '
                             f'src="data:image/png;base64,{data}"><figcaption><b>{escape(spec.title)}.</b> '
                             f"{escape(spec.caption)}</figcaption></figure>")
            else:
                parts.append(f"<p>{escape(item)}</p>")
        parts.append("</section>")
    return html_page(f"gcbench study: {study.name}", parts, f"sweep folder {study.folder}", STUDY_CSS)


def study_format(out: Path | None, fmt: str | None) -> str:
    """The explicit format, else the output file's suffix, else text; only text, md and html exist."""
    from gcbench.report import format_for

    f = format_for(out, fmt)
    if f not in FORMATS:
        raise GcbenchError(f"the study report is text, md or html, not {f!r}" + (f" (from {out})" if out else ""))
    return f


def export_study(study: Study, fmt: str, out: Path | None = None) -> str:
    """Render the study as `fmt`; with `out`, also write it there (figures as PNG files next to it)."""
    from gcbench.atomic import is_stream, write_output

    try:
        to = None if is_stream(out) else out  # figures go next to a file, not next to a device or a FIFO
        doc = {"text": lambda: render_text(study), "md": lambda: render_md(study, to),
               "html": lambda: render_html(study, to)}[fmt]()
        if out is not None:
            write_output(out, doc.encode("utf-8"))
    except GcbenchError:
        raise
    except OSError as e:
        raise GcbenchError(f"cannot write the study report to {out}: {e.strerror or e}") from None
    return doc
