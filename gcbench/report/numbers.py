"""Number formats for report cells: gcbench.format has them all; `signed` is the name the builders use."""

from __future__ import annotations

from gcbench.format import fmt_signed as signed

__all__ = ["signed"]
