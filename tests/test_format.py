"""gcbench.format: one way to write each kind of number."""

import math

from gcbench.format import (
    fmt_ci,
    fmt_count,
    fmt_duration,
    fmt_heap,
    fmt_ms,
    fmt_pct,
    fmt_ratio,
    fmt_share,
    fmt_signed,
)

NAN = float("nan")


def test_durations_and_shares():
    assert [fmt_ms(v) for v in (NAN, 0, 1234.5, 0.4, 12.345, 0.000123)] == ["-", "0", "1234", "0.4", "12.3", "0.00012"]
    assert [fmt_share(v) for v in (NAN, 0, 0.01, 1.5, 0.12345)] == ["-", "0%", "1%", "150%", "12%"]
    assert fmt_pct(1e-6) == "<0.001%" and fmt_pct(0.5) == "50%"


def test_signed_values_show_a_plus_on_a_gain_only():
    assert [fmt_signed(v) for v in (0.4, -0.4, 0.0, NAN)] == ["+0.4", "-0.4", "0", "-"]
    assert fmt_signed(0.25, fmt_share) == "+25%" and fmt_signed(-0.25, fmt_share) == "-25%"


def test_ratios_counts_and_sizes():
    assert [fmt_ratio(v) for v in (NAN, math.inf, 1.23456, 123.4)] == ["-", "inf", "1.23", "123"]
    assert fmt_ci(1.0, 2.5) == "[1, 2.5]" and fmt_ci(NAN, 1.0) == ""
    assert fmt_count(316_228) == "316,000" and fmt_count(NAN) == "-"
    assert [fmt_heap(v) for v in (0, 100_000, 2_500_000, NAN)] == ["0", "100k", "2.5M", "-"]
    assert [fmt_duration(v) for v in (59, 600, 9000, NAN)] == ["59 s", "10.0 min", "2.50 h", "-"]
