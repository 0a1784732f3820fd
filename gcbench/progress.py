"""How far a run or a sweep is, and the time left: one estimate, shown as a bar on a terminal, else as text.

The estimate is the mean time of the cells measured so far times the cells left (a skipped cell counts as done
but adds no time). On a terminal (stderr a TTY) a rich progress bar shows it below the cell lines; elsewhere
(pipes, CI, tests) each cell line ends with " (about N s left)" as before.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


class Progress:
    def __init__(self, total: int, *, clock: Callable[[], float] = time.monotonic, stream=None,
                 live: bool | None = None, label: str = "cells") -> None:
        self.total = total
        self.done = 0
        self.measured = 0
        self.measured_s = 0.0
        self.clock = clock
        self.label = label
        self.t_start = clock()
        self._t_cell = self.t_start
        stream = sys.stderr if stream is None else stream
        self.live = _is_tty(stream) if live is None else live
        self._stream = stream
        self._bar = None
        self._task = None
        self._opened = 0

    # -- the estimate -------------------------------------------------------------------------------------
    def start_cell(self) -> None:
        self._t_cell = self.clock()

    def end_cell(self, measured: bool = True) -> float:
        """One cell done; `measured`: it ran (a skipped cell adds no time). Returns the cell's seconds."""
        now = self.clock()
        dt = now - self._t_cell
        self.done += 1
        if measured:
            self.measured += 1
            self.measured_s += dt
        self._t_cell = now
        self._refresh()
        return dt

    def seconds_left(self) -> float | None:
        """None until a cell was measured, and once every cell is done."""
        left = self.total - self.done
        return left * self.measured_s / self.measured if left > 0 and self.measured else None

    def elapsed_s(self) -> float:
        return self.clock() - self.t_start

    def left_text(self) -> str:
        """What a cell line ends with when no bar is shown: ' (about N s left)', or nothing."""
        if self.live:
            return ""
        s = self.seconds_left()
        return f" (about {s:.0f} s left)" if s is not None else ""

    def bar_line(self, width: int = 30) -> str:
        """The sweep's text line: [####    ] done/total cells, N s elapsed, about N s left."""
        bar = "#" * int(width * self.done / max(self.total, 1))
        return (f"  [{bar:<{width}}] {self.done}/{self.total} {self.label}, {self.elapsed_s():.0f} s elapsed, "
                f"about {self.seconds_left() or 0.0:.0f} s left")

    # -- the terminal bar -----------------------------------------------------------------------------------
    def __enter__(self) -> Progress:
        self._opened += 1
        if self.live and self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.fields[left]}"), console=Console(file=self._stream),
                            transient=True, redirect_stderr=True, redirect_stdout=False)
            self._task = self._bar.add_task(self.label, total=self.total, left="")
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._opened -= 1
        if self._opened == 0 and self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _refresh(self) -> None:
        if self._bar is not None:
            s = self.seconds_left()
            self._bar.update(self._task, completed=self.done, left=f"about {s:.0f} s left" if s is not None else "")


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
