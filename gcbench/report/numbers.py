"""Number formats for report cells that gcbench.analysis does not have."""

from __future__ import annotations

from gcbench.analysis import fmt_ms


def signed(v: float, fmt=fmt_ms) -> str:
    """A change with its sign: +1.5, -0.2, 0; '-' when not measured (NaN)."""
    if v != v:
        return "-"
    return ("+" if v > 0 else "") + fmt(v)
