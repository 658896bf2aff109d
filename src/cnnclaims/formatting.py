"""How a number is written in the verdict table, the report and figure titles: three
significant digits, scientific below 1e-3, and a mark for a number that is missing."""

from __future__ import annotations

import math

__all__ = ["number"]


def number(v: object, missing: str = "-") -> str:
    """``v`` (a float, an int or None) as text: ``missing`` for None or NaN, "inf" or
    "-inf" for an infinity, ``.3g`` from 1e-3 up (and 0), ``.1e`` below."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return missing
    x = float(v)  # type: ignore[arg-type]  # a number: the callers pass verdict fields
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"
