"""Numbers as text, one way for every report (pyperf's _formatter.py): durations in ms, shares, signed values,
ratios, counts and heap sizes. NaN (not measured) shows as '-' everywhere except fmt_ci, which is empty."""

from __future__ import annotations

import math


def fmt_ms(v: float) -> str:
    """A duration in ms with about three significant digits ('-' for NaN)."""
    if v != v:
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 0.001:
        return f"{v:.3g}"
    return f"{v:.2g}"


def fmt_share(frac: float) -> str:
    """A fraction as a percentage with two significant digits ('-' for NaN)."""
    if frac != frac:
        return "-"
    pct = frac * 100
    if pct == 0:
        return "0%"
    return f"{pct:.0f}%" if abs(pct) >= 100 else f"{pct:.2g}%"


def fmt_pct(frac: float) -> str:
    """fmt_share, with tiny shares as '<0.001%' rather than in scientific notation."""
    return "<0.001%" if 0 < frac < 1e-5 else fmt_share(frac)


def fmt_signed(v: float, fmt=fmt_ms) -> str:
    """A difference or a change: fmt(v) with '+' in front of a positive value ('-' for NaN)."""
    return "-" if v != v else ("+" if v > 0 else "") + fmt(v)


def fmt_ratio(v: float) -> str:
    """A ratio of two measurements, three significant digits below 100 ('-' for NaN, 'inf' over zero)."""
    if v != v:
        return "-"
    if math.isinf(v):
        return "inf"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def fmt_ci(lo: float, hi: float, fmt=fmt_ratio) -> str:
    """A confidence interval as '[lo, hi]' ('' when either bound is NaN: no interval to show)."""
    return "" if lo != lo or hi != hi else f"[{fmt(lo)}, {fmt(hi)}]"


def fmt_mib(v: float) -> str:
    """A memory size in MiB, three significant digits ('-' for NaN: not recorded)."""
    if v != v:
        return "-"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def fmt_count(n: float) -> str:
    """An object count in full, 3 significant digits: 316,000."""
    return f"{float(f'{n:.3g}'):,.0f}" if n == n else "-"


def fmt_heap(n: float) -> str:
    """Live-heap size in objects, short: 0, 100k, 1M, 2.5M."""
    if n != n:
        return "-"
    if n >= 1e6:
        return f"{n / 1e6:.3g}M"
    if n >= 1e3:
        return f"{n / 1e3:.3g}k"
    return f"{n:.0f}"


def fmt_duration(s: float) -> str:
    """A wall time in seconds as s, min or h."""
    if s != s:
        return "-"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"
