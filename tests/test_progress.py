"""The one time-left estimate of `run` and `sweep` (gcbench/progress.py), on a fake clock."""

import io
import random

from gcbench.progress import Progress


def cell(p, clock, seconds):
    p.start_cell()
    clock.t += seconds
    p.end_cell()


class FakeClock:
    def __init__(self):
        self.t = random.uniform(1e3, 1e6)  # never starts at zero

    def __call__(self):
        return self.t


def test_time_left_is_mean_measured_cell_time_times_cells_left():
    clock = FakeClock()
    p = Progress(5, clock=clock, live=False)
    assert p.seconds_left() is None and p.left_text() == ""
    cell(p, clock, 10)
    assert p.left_text() == " (about 40 s left)"
    cell(p, clock, 30)  # mean 20 s, 3 left
    assert p.seconds_left() == 60.0
    p.end_cell(measured=False)  # a skipped cell: done, no time
    assert p.seconds_left() == 40.0
    clock.t += 7
    assert p.bar_line(10) == "  [######    ] 3/5 cells, 47 s elapsed, about 40 s left"
    cell(p, clock, 20)
    cell(p, clock, 20)
    assert p.seconds_left() is None and p.left_text() == ""


def test_not_a_terminal_no_bar_and_the_text_stays():
    out = io.StringIO()  # isatty() is False
    clock = FakeClock()
    p = Progress(2, stream=out, clock=clock)
    with p:
        cell(p, clock, 1)
    assert not p.live and p._bar is None and out.getvalue() == ""


def test_on_a_terminal_the_bar_carries_the_estimate_not_the_line():
    clock = FakeClock()
    out = io.StringIO()
    p = Progress(3, stream=out, clock=clock, live=True)
    with p:
        cell(p, clock, 4)
        assert p.left_text() == ""  # the bar shows it
        assert p._bar.tasks[0].fields["left"] == "about 8 s left" and p._bar.tasks[0].completed == 1
    assert p._bar is None


def test_install_signal_handlers_takes_no_ignored_argument():
    """It took an `interrupted_cls` it never used: a caller could believe it chose the exception raised."""
    import inspect

    from gcbench import cli

    assert list(inspect.signature(cli._install_signal_handlers).parameters) == []
