"""The one document model every gcbench output is built as: the run report, the study, compare, calibrate and
the summary `gcbench run` prints. Builders make a Document; a renderer per format (gcbench.report.render) turns
it into text, Markdown, HTML or JSON. All text in it is final: numbers are formatted by the builders.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property


@dataclass
class Paragraph:
    text: str
    strong: bool = False  # the one sentence to read first (compare's verdict)


@dataclass
class Bullets:
    items: list[str]
    key: str = ""  # HTML id
    style: str = ""  # HTML class (headline, verdicts)


@dataclass
class Facts:
    """What was measured, where and how: (name, value) pairs."""

    items: list[tuple[str, str]]


@dataclass
class Table:
    key: str  # HTML id, stable for tests and links
    title: str
    caption: str
    headers: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # right-aligned column indexes


@dataclass
class Details:
    """A long table shown folded in HTML (it is the reference, not the reading)."""

    table: Table


@dataclass(eq=False)
class Figure:
    """A chart drawn only when a format shows pictures: `draw()` -> (title, caption, PNG bytes), called at most
    once. A title given up front lets a format without pictures name the figure without drawing it."""

    name: str
    draw: Callable[[], tuple[str, str, bytes]] = field(repr=False)
    known_title: str = ""

    @cached_property
    def drawn(self) -> tuple[str, str, bytes]:
        return self.draw()

    title = property(lambda self: self.known_title or self.drawn[0])
    caption = property(lambda self: self.drawn[1])
    png = property(lambda self: self.drawn[2])

    @classmethod
    def of(cls, model, module: str, name: str, title: str = "") -> Figure:
        """The figure that function `name` of `module` draws from `model` (a Report, a Study), kept in
        model.cache: every document built from one model draws it once."""
        def draw() -> tuple[str, str, bytes]:
            drawn = model.cache.setdefault("drawn", {})
            if name not in drawn:
                from gcbench.report.figures import png_bytes

                spec = getattr(importlib.import_module(module), name)(model)
                drawn[name] = (spec.title, spec.caption, png_bytes(spec.figure))
            return drawn[name]

        return cls(name, draw, title)


Block = Paragraph | Bullets | Facts | Table | Details | Figure


@dataclass
class Section:
    title: str  # "" for an untitled section
    items: list[Block | str] = field(default_factory=list)  # a str is a Paragraph
    key: str = ""  # HTML id
    number: str = ""  # "1".."6", or "" for the unnumbered ones

    def __post_init__(self):
        self.items = [Paragraph(b) if isinstance(b, str) else b for b in self.items]

    @property
    def heading(self) -> str:
        return f"{self.number}. {self.title}" if self.number else self.title


@dataclass
class Document:
    title: str  # "" for none (the summary `gcbench run` prints)
    sections: list[Section] = field(default_factory=list)
    footer: str = ""  # what it was made from
    data: dict | None = None  # the machine-readable form: what the JSON format writes
    toc: bool = False  # a table of contents where the format can link (HTML)
    level: int = 1  # heading level of the title: a part of a larger page (a CI step summary) starts lower

    def blocks(self) -> Iterator[Block]:
        for s in self.sections:
            yield from s.items

    def figures(self) -> list[Figure]:
        return [b for b in self.blocks() if isinstance(b, Figure)]
