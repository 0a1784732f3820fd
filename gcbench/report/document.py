"""The one document model every gcbench output is built as: the run report, the study, compare, calibrate and
the summary `gcbench run` prints. Builders make a Document; a renderer per format (gcbench.report.render) turns
it into text, Markdown, HTML or JSON. All text in it is final: numbers are formatted by the builders.
"""

from __future__ import annotations

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


class Figure:
    """A chart drawn only when a format shows pictures: `draw()` -> (title, caption, PNG bytes), called at most
    once. `title` given up front lets a format without pictures name the figure without drawing it."""

    def __init__(self, name: str, draw: Callable[[], tuple[str, str, bytes]], title: str = ""):
        self.name, self._draw, self._title = name, draw, title

    @cached_property
    def _drawn(self) -> tuple[str, str, bytes]:
        return self._draw()

    @property
    def title(self) -> str:
        return self._title or self._drawn[0]

    @property
    def caption(self) -> str:
        return self._drawn[1]

    @property
    def png(self) -> bytes:
        return self._drawn[2]

    def __repr__(self) -> str:
        return f"Figure({self.name!r})"


Block = Paragraph | Bullets | Facts | Table | Details | Figure


@dataclass
class Section:
    title: str  # "" for an untitled section
    items: list[Block] = field(default_factory=list)
    key: str = ""  # HTML id
    number: str = ""  # "1".."6", or "" for the unnumbered ones

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

    def tables(self) -> dict[str, Table]:
        """Every table, folded ones included, by key."""
        out = {}
        for b in self.blocks():
            t = b.table if isinstance(b, Details) else b
            if isinstance(t, Table):
                out[t.key] = t
        return out
