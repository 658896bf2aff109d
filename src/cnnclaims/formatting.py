"""How a number is written in the verdict table, the report and figure titles: three
significant digits, scientific below 1e-3, and a mark for a number that is missing; and
how the terminal's lines are fitted to its width (``terminal_width``, ``wrapped``)."""

from __future__ import annotations

import math
import shutil
import textwrap

__all__ = ["number", "terminal_width", "wrapped"]

WIDTH = 110
MIN_WIDTH = 80


def terminal_width() -> int:
    """Columns for the compact table and the lines around it: the terminal's ($COLUMNS,
    else the size of the terminal on stdout), kept within ``MIN_WIDTH``..``WIDTH``;
    ``WIDTH`` where there is no terminal (a CI log), so a log reads the same on every
    machine."""
    return max(MIN_WIDTH, min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns))


def wrapped(line: str, width: int = WIDTH) -> list[str]:
    """``line`` as lines of at most ``width`` columns (continuations indented two
    spaces), broken at spaces only: a path, a pin key or a command stays whole (and
    copyable) even where it is longer than ``width``; a short line as it is."""
    if len(line) <= width:
        return [line]
    return textwrap.wrap(line, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


def number(v: object, missing: str = "-") -> str:
    """``v`` (a float, an int or None) as text: ``missing`` for None or NaN, "inf" or
    "-inf" for an infinity, ``.3g`` from 1e-3 up (and 0), ``.1e`` below."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return missing
    x = float(v)  # type: ignore[arg-type]  # a number: the callers pass verdict fields
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.1e}"
