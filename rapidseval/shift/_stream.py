"""Shift inside a run: reduce parts on the workers, compare month by month on the host.

:class:`ShiftReduce` is what a worker runs on each prepared part (exact
counts per day and value, with the backend's array module).
:class:`ShiftAccumulator` receives those reductions as parts finish, merges a
month once all its parts are in, fits the calculator on the reference month,
and compares compared months in calendar order as soon as they are complete,
then forgets them: host memory holds the reference and about one month.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.time import US_PER_DAY, month_from_index, month_index, weekday
from ._calculator import SHIFT_COLUMNS, ShiftCalculator, window_keys
from ._counts import DayCounts, count_days
from ._explain import empty_explanation, explain

__all__ = ["ShiftReduce", "ShiftAccumulator"]


@dataclass(frozen=True)
class ShiftReduce:
    """Per-part reduction: ``{feature: DayCounts}`` keyed by the day of ``time_column``."""

    features: tuple[str, ...]
    time_column: str = "pickup_datetime"
    #: missing values counted as this value (None: the frame has none, e.g. a job's prepared part)
    fill_value: float | None = None
    #: NumPy threads per frame (the counts do not depend on it)
    threads: int = 1

    def __call__(self, frame, backend) -> dict[str, DayCounts]:
        xp = backend.xp
        if len(frame) == 0:
            return {f: DayCounts.empty() for f in self.features}
        day = backend.time_us(frame[self.time_column]) // US_PER_DAY
        columns = {f: frame[f] if self.fill_value is None else frame[f].fillna(self.fill_value) for f in self.features}
        # the day arithmetic (and, for rows out of day order, their day order) once for all features
        return count_days(day, {f: backend.asarray(column) for f, column in columns.items()}, xp,
                          threads=self.threads)


@dataclass
class ShiftAccumulator:
    """Collects part reductions of a run and produces the shift table, month by month."""

    calculator: ShiftCalculator
    reference: str
    compare: list[str]
    parts_per_month: dict[str, int]
    _pending: dict[str, list] = field(default_factory=dict)
    _complete: dict[str, dict[str, DayCounts]] = field(default_factory=dict)
    _carry: dict[str, DayCounts] | None = None
    _next: int = 0
    _fitted: bool = False
    _tables: list[pd.DataFrame] = field(default_factory=list)
    _explained: list[pd.DataFrame] = field(default_factory=list)

    def add(self, month: str, counts: dict[str, DayCounts] | None) -> None:
        if counts is None or (month != self.reference and month not in self.compare):
            return
        self._pending.setdefault(month, []).append(counts)
        if len(self._pending[month]) == self.parts_per_month[month]:
            parts = self._pending.pop(month)
            merged = {f: DayCounts.merge(p[f] for p in parts) for f in parts[0]}
            if month == self.reference:
                self.calculator.fit(merged, label=month)
                self._fitted = True
            if month in self.compare:
                self._complete[month] = merged
            self._advance()

    def _advance(self) -> None:
        while self._fitted and self._next < len(self.compare) and self.compare[self._next] in self._complete:
            month = self.compare[self._next]
            data = self._complete.pop(month)
            if self._carry is not None:
                data = {f: DayCounts.merge([self._carry[f], data[f]]) for f in data}
                self._carry = None
            self._next += 1
            nxt = self.compare[self._next] if self._next < len(self.compare) else None
            data, self._carry = self._split_open_window(data, month, nxt)
            self._compare(data)

    def _compare(self, data: dict[str, DayCounts]) -> None:
        """Compare the windows of ``data`` and explain their alarms while the counts are at hand."""
        table = self.calculator.calculate(data).table
        self._tables.append(table)
        self._explained.append(explain(self.calculator, data, table))

    def _split_open_window(self, data, month, nxt):
        """Weekly windows can run into the next compared month: keep their days for it."""
        if self.calculator.frequency != "W" or nxt is None or _month_after(month) != nxt:
            return data, None
        any_c = next(iter(data.values()))
        days = any_c.days()
        if not len(days):
            return data, None
        keys = window_keys(days, "W")
        last = keys[-1]
        # the last week is open only if it has days after this month
        first = int(days[keys == last][0])
        monday = first - weekday(first)
        if monday + 7 <= _month_end_day(month):
            return data, None
        open_days = days[keys == last]
        keep = days[keys != last]
        return ({f: c.select(keep) for f, c in data.items()}, {f: c.select(open_days) for f, c in data.items()})

    def table(self) -> pd.DataFrame:
        if self._carry is not None:
            self._compare(self._carry)
            self._carry = None
        tables = [t for t in self._tables if len(t)]
        if not tables:
            return pd.DataFrame(columns=SHIFT_COLUMNS)
        return pd.concat(tables, ignore_index=True)

    def explanation(self) -> pd.DataFrame:
        """What moved in every alarmed (window, feature) (:func:`rapidseval.shift.explain`);
        call after :meth:`table`."""
        parts = [t for t in self._explained if len(t)]
        return pd.concat(parts, ignore_index=True) if parts else empty_explanation()


def _month_after(month: str) -> str:
    return month_from_index(month_index(month) + 1)


def _month_end_day(month: str) -> int:
    """Days since the epoch of the first day after ``month``."""
    return int(np.datetime64(_month_after(month), "D").astype("int64"))
