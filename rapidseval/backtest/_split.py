"""Calendar splitter: rolling origins over months, like ``TimeSeriesSplit`` but in months.

An *origin* is the first evaluation month of a fold.  The model of the fold
is trained on the ``train_months`` months that end ``gap`` months before the
origin (or on every month from the first one, ``train_months=None``:
expanding), and evaluated on ``horizon`` months from the origin on.

Horizon past the end of the data is **truncated**, not an error: the last
origins of a history simply have fewer evaluation months (each fold says how
many it has, and :meth:`MonthSplitter.split` never yields a fold without
one).  Too little history for an origin is an error that names the origin
and the months it would need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

from ..core.errors import SpecError
from ..core.time import check_month, month_from_index, month_index

__all__ = ["Fold", "MonthSplitter"]


@dataclass(frozen=True)
class Fold:
    """One rolling-origin fold: ``origin`` is its first evaluation month."""

    origin: str
    train: tuple[str, ...]
    eval: tuple[str, ...]
    truncated: bool = False  # fewer than ``horizon`` evaluation months (data ended)

    @property
    def train_start(self) -> str:
        return self.train[0]

    @property
    def train_end(self) -> str:
        return self.train[-1]


#: parameter -> (check, description); the constructor only stores, :meth:`MonthSplitter._validate` checks
_PARAMETER_CONSTRAINTS = {
    "every": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "train_months": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                     "an integer >= 1, or None (expanding window)"),
    "gap": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "horizon": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "min_train_months": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
}


class MonthSplitter:
    """Rolling-origin folds over calendar months.

    Parameters
    ----------
    origins : list of "YYYY-MM", optional
        The origins (first evaluation month of each fold), in calendar order.
        Default: every ``every`` months from ``first_origin`` (or from the
        earliest month with enough history) to the last month of the data.
    every : int, default 1
        Months between generated origins.
    first_origin : "YYYY-MM", optional
        First generated origin (ignored when ``origins`` is given).
    train_months : int or None, default 12
        Sliding window of this many months; ``None``: expanding (every month
        from the first one of the data up to the training end).
    gap : int, default 0
        Months left out between the training end and the origin (embargo).
    horizon : int, default 3
        Evaluation months per fold, truncated where the data ends.
    min_train_months : int, default 1
        Fewest training months an expanding window may have.

    Examples
    --------
    >>> s = MonthSplitter(train_months=2, horizon=2)
    >>> [(f.train, f.eval) for f in s.folds(["2020-01", "2020-02", "2020-03", "2020-04"])]
    [(('2020-01', '2020-02'), ('2020-03', '2020-04')), (('2020-02', '2020-03'), ('2020-04',))]
    """

    def __init__(self, *, origins: Sequence[str] | None = None, every: int = 1, first_origin: str | None = None,
                 train_months: int | None = 12, gap: int = 0, horizon: int = 3, min_train_months: int = 1):
        self.origins = origins
        self.every = every
        self.first_origin = first_origin
        self.train_months = train_months
        self.gap = gap
        self.horizon = horizon
        self.min_train_months = min_train_months

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in
                         ("origins", "every", "first_origin", "train_months", "gap", "horizon"))
        return f"MonthSplitter({args})"

    def _validate(self) -> None:
        for name, (ok, what) in _PARAMETER_CONSTRAINTS.items():
            value = getattr(self, name)
            if not ok(value):
                raise SpecError(f"MonthSplitter: {name} must be {what}, got {value!r}")
        if self.origins is not None:
            origins = [check_month(o, "origin") and o for o in self.origins]
            if not origins:
                raise SpecError("MonthSplitter: origins is empty")
            if sorted(set(origins)) != list(origins):
                raise SpecError(f"MonthSplitter: origins must be distinct and in calendar order, got {', '.join(origins)}")
        if self.first_origin is not None:
            check_month(self.first_origin, "first_origin")

    def _need(self) -> int:
        """Months of history an origin needs before it (training + gap)."""
        return (self.train_months or self.min_train_months) + self.gap

    def folds(self, months: Sequence[str]) -> list[Fold]:
        """Every fold over ``months`` (consecutive ``YYYY-MM``, calendar order)."""
        return list(self._iter(months))

    def split(self, months: Sequence[str]) -> Iterator[tuple[list[str], list[str]]]:
        """Yield ``(train months, eval months)`` per origin, as lists."""
        for fold in self._iter(months):
            yield list(fold.train), list(fold.eval)

    def get_n_splits(self, months: Sequence[str]) -> int:
        return len(self.folds(months))

    def _iter(self, months: Sequence[str]) -> Iterator[Fold]:
        self._validate()
        months = list(months)
        if not months:
            raise SpecError("MonthSplitter: no months to split")
        idx = [month_index(m) for m in months]
        if idx != list(range(idx[0], idx[0] + len(idx))):
            raise SpecError(f"MonthSplitter: months must be consecutive and in order ({months[0]}..{months[-1]})")
        first, last = idx[0], idx[-1]
        need = self._need()
        if self.origins is not None:
            origins = [month_index(o) for o in self.origins]
        else:
            start = month_index(self.first_origin) if self.first_origin is not None else first + need
            if start - first < need:
                origins = [start]  # reported below as too little history
            else:
                origins = list(range(start, last + 1, self.every))
            if not origins:
                raise SpecError(
                    f"MonthSplitter: too little history: no origin fits in {months[0]}..{months[-1]} "
                    f"({len(months)} months); the first origin would be {month_from_index(start)}"
                    + (f", after {need} month(s) of training and gap" if self.first_origin is None else "")
                )
        for o in origins:
            if o > last or o < first:
                raise SpecError(f"MonthSplitter: origin {month_from_index(o)} is outside the data {months[0]}..{months[-1]}")
            train_end = o - self.gap - 1
            train_start = train_end - self.train_months + 1 if self.train_months is not None else first
            if train_start < first or train_end - train_start + 1 < self.min_train_months:
                window = (f"{self.train_months} training month(s)" if self.train_months is not None
                          else f"at least {self.min_train_months} training month(s) (expanding)")
                raise SpecError(
                    f"MonthSplitter: too little history for origin {month_from_index(o)}: it needs {window}"
                    + (f" and a gap of {self.gap}" if self.gap else "")
                    + f", i.e. data from {month_from_index(min(train_start, train_end - self.min_train_months + 1))}, "
                    f"but the data start at {months[0]}; start the origins at {month_from_index(first + need)} or later"
                )
            end = min(o + self.horizon - 1, last)
            yield Fold(
                origin=month_from_index(o),
                train=tuple(month_from_index(i) for i in range(train_start, train_end + 1)),
                eval=tuple(month_from_index(i) for i in range(o, end + 1)),
                truncated=end < o + self.horizon - 1,
            )
