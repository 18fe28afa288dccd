"""Calendar months as ``YYYY-MM`` strings: parsing, ranges and bounds.

One place for the month arithmetic that the job spec, the sources, the
cleaning rules and the replay windows all need.
"""

from __future__ import annotations

import re

import numpy as np

from .errors import SpecError

__all__ = ["check_month", "month_range", "month_bounds"]

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def check_month(month: str, what: str = "month") -> tuple[int, int]:
    """``"YYYY-MM"`` -> ``(year, month)``; :class:`SpecError` (a ValueError) naming ``what`` otherwise."""
    m = _MONTH.match(month) if isinstance(month, str) else None
    if not m:
        raise SpecError(f"{what} must look like YYYY-MM (e.g. 2020-01), got {month!r}")
    return int(m[1]), int(m[2])


def month_range(start: str, end: str) -> list[str]:
    """Months from ``start`` to ``end`` inclusive, as ``YYYY-MM`` strings."""
    y0, m0 = check_month(start, "start")
    y1, m1 = check_month(end, "end")
    first, last = y0 * 12 + m0 - 1, y1 * 12 + m1 - 1
    if last < first:
        raise SpecError(f"end {end} is before start {start}")
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(first, last + 1)]


def month_bounds(first: str, last: str | None = None) -> tuple[np.datetime64, np.datetime64]:
    """Half-open ``[start, end)`` of the months ``first..last`` as ``datetime64[us]``."""
    start = np.datetime64(first, "M")
    end = np.datetime64(last or first, "M") + 1
    return start.astype("datetime64[us]"), end.astype("datetime64[us]")
