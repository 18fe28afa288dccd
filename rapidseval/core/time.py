"""Time: calendar months (``YYYY-MM``), microsecond units, weekdays and windows.

One place for the time arithmetic that the job spec, the sources, the cleaning
rules, the replay windows and the shift engine all need.  Times are int64
microseconds since the epoch (naive wall clock); days are whole days since
1970-01-01, which was a Thursday.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import SpecError

__all__ = [
    "US_PER_SECOND",
    "US_PER_MINUTE",
    "US_PER_HOUR",
    "US_PER_DAY",
    "EPOCH_WEEKDAY",
    "weekday",
    "check_month",
    "month_index",
    "month_from_index",
    "months_between",
    "month_range",
    "month_bounds",
    "WINDOWS",
    "Window",
    "parse_window",
    "parse_delay_hours",
    "window_key_range",
    "period_window_keys",
    "PeriodWindows",
    "period_windows",
]

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR
#: weekday of 1970-01-01 (a Thursday), Monday = 0
EPOCH_WEEKDAY = 3

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def check_month(month: str, what: str = "month") -> tuple[int, int]:
    """``"YYYY-MM"`` -> ``(year, month)``; :class:`SpecError` (a ValueError) naming ``what`` otherwise."""
    m = _MONTH.match(month) if isinstance(month, str) else None
    if not m:
        raise SpecError(f"{what} must look like YYYY-MM (e.g. 2020-01), got {month!r}")
    return int(m[1]), int(m[2])


def month_index(month: str, what: str = "month") -> int:
    """``"YYYY-MM"`` -> months since year 0 (``year * 12 + month - 1``), for month arithmetic."""
    year, mon = check_month(month, what)
    return year * 12 + mon - 1


def month_from_index(index: int) -> str:
    """The inverse of :func:`month_index`."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(earlier: str, later: str) -> int:
    """``later - earlier`` in calendar months (negative when ``later`` comes first)."""
    return month_index(later, "later month") - month_index(earlier, "earlier month")


def weekday(days):
    """Weekday (Monday = 0) of whole days since the epoch; NumPy, CuPy or a plain int."""
    return (days + EPOCH_WEEKDAY) % 7


def month_range(start: str, end: str) -> list[str]:
    """Months from ``start`` to ``end`` inclusive, as ``YYYY-MM`` strings."""
    first, last = month_index(start, "start"), month_index(end, "end")
    if last < first:
        raise SpecError(f"end {end} is before start {start}")
    return [month_from_index(i) for i in range(first, last + 1)]


def month_bounds(first: str, last: str | None = None) -> tuple[np.datetime64, np.datetime64]:
    """Half-open ``[start, end)`` of the months ``first..last`` as ``datetime64[us]``."""
    start = np.datetime64(first, "M")
    end = np.datetime64(last or first, "M") + 1
    return start.astype("datetime64[us]"), end.astype("datetime64[us]")


# ---------------------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------------------
#: window unit -> description (a window is ``[k]unit``, e.g. ``6h``, ``D``, ``2W``, ``M``)
WINDOWS = {"h": "hour", "D": "day", "W": "week starting Monday", "M": "calendar month"}
_UNIT_ALIASES = {"h": "h", "H": "h", "D": "D", "d": "D", "W": "W", "W-MON": "W", "M": "M", "MS": "M", "ME": "M"}



def _months_since_epoch(days):
    """Calendar months since 1970-01 from days since the epoch (integer ops only,
    so it runs on CuPy too; H. Hinnant's civil_from_days)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 - 12 * (mp >= 10)
    y = yoe + era * 400 + (m <= 2)
    return (y - 1970) * 12 + (m - 1)


def _unit_index(t_us, unit: str):
    if unit == "h":
        return t_us // US_PER_HOUR
    days = t_us // US_PER_DAY
    if unit == "D":
        return days
    if unit == "W":
        return (days + EPOCH_WEEKDAY) // 7  # week 0 starts Monday 1969-12-29
    return _months_since_epoch(days)


def _unit_start(keys: np.ndarray, unit: str) -> np.ndarray:
    keys = np.asarray(keys, dtype="int64")
    if unit == "h":
        return (keys * US_PER_HOUR).astype("datetime64[us]")
    if unit == "D":
        return (keys * US_PER_DAY).astype("datetime64[us]")
    if unit == "W":
        return ((keys * 7 - 3) * US_PER_DAY).astype("datetime64[us]")
    return keys.astype("datetime64[M]").astype("datetime64[us]")


@dataclass(frozen=True)
class Window:
    """A window length: ``count`` consecutive units (hours, days, Monday weeks, months),
    counted from the epoch."""

    unit: str
    count: int = 1

    @property
    def label(self) -> str:
        return self.unit if self.count == 1 else f"{self.count}{self.unit}"

    def keys(self, t_us, xp=np):
        """int64 window keys of int64 microsecond times."""
        base = _unit_index(t_us, self.unit)
        return base if self.count == 1 else base // self.count

    def bounds(self, keys) -> tuple[np.ndarray, np.ndarray]:
        """``(window_start, window_end)`` as datetime64[us] arrays."""
        keys = np.asarray(keys, dtype="int64")
        return _unit_start(keys * self.count, self.unit), _unit_start((keys + 1) * self.count, self.unit)


def parse_window(freq: str | Window) -> Window:
    """``"h"``, ``"6h"``, ``"D"``, ``"2D"``, ``"W"`` (``"W-MON"``), ``"M"`` (``"MS"``) -> :class:`Window`."""
    if isinstance(freq, Window):
        return freq
    m = re.fullmatch(r"\s*(\d*)\s*([A-Za-z-]+)\s*", str(freq))
    unit = _UNIT_ALIASES.get(m.group(2)) if m else None
    count = int(m.group(1)) if m and m.group(1) else 1
    if unit is None or count < 1:
        raise ValueError(
            f"unknown window {freq!r}; use [k]unit with unit one of "
            + ", ".join(f"{u} ({d})" for u, d in WINDOWS.items())
        )
    return Window(unit, count)


def parse_delay_hours(delay: str | int | float | None) -> int:
    """A label delay (``"7D"``, ``"36h"``, ``0``) as a whole number of hours."""
    if delay in (None, 0, "0", ""):
        return 0
    try:
        td = pd.Timedelta(delay)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"label_delay {delay!r} is not a duration (e.g. 7D, 36h)") from exc
    hours, rest = divmod(td.value, US_PER_HOUR * 1000)
    if rest or hours < 0:
        raise ValueError(f"label_delay {delay!r} must be a non-negative whole number of hours")
    return int(hours)


def window_key_range(month: str, window: str | Window) -> tuple[int, int]:
    """First and last window keys covering a calendar month."""
    w = parse_window(window)
    lo, end = month_bounds(month)
    both = np.array([lo, end - np.timedelta64(1, "us")]).view("int64")
    keys = w.keys(both)
    return int(keys[0]), int(keys[1])


@dataclass(frozen=True)
class PeriodWindows:
    """The window keys of a replayed period, from the period and never from the data: the
    first (``lo``), the last a row may spill to past the period (``hi``) and the last inside
    the period (``last_in_period``)."""

    lo: int
    hi: int
    last_in_period: int


def period_windows(first_month: str, last_month: str, window: str | Window, *,
                   spill_hours: float) -> PeriodWindows:
    """:class:`PeriodWindows` of the months ``first_month..last_month`` in ``window``s, a row's
    time reaching at most ``spill_hours`` past the last month."""
    lo, hi = period_window_keys(first_month, last_month, window, spill_hours=spill_hours)
    return PeriodWindows(lo, hi, period_window_keys(first_month, last_month, window)[1])


def period_window_keys(first_month: str, last_month: str, window: str | Window, *,
                       spill_hours: float = 0.0) -> tuple[int, int]:
    """First and last window keys of a replayed period: its months, extended by
    ``spill_hours`` (the longest trip, whose dropoff may fall after the last month)."""
    w = parse_window(window)
    lo, end = month_bounds(first_month, last_month)
    last = end + np.timedelta64(int(spill_hours * US_PER_HOUR), "us") - np.timedelta64(1, "us")
    keys = w.keys(np.array([lo, last]).astype("datetime64[us]").view("int64"))
    return int(keys[0]), int(keys[1])
