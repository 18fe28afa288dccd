"""Data invariants: rules on columns and features, counted per part on the workers and merged
per month and per replay window on the client.

- :class:`DataRule`: one resolved rule (the jobs layer builds them from ``checks.data``);
- :class:`DataReduce` (picklable; runs on the workers): ``read_columns()`` names the
  canonical columns it needs read beyond the features; ``reduce(raw, frame, month=, backend=)``
  returns a small host-side :class:`DataCounts` for one part, where ``raw`` is the part's
  canonical frame as read (before the drop rules) and ``frame`` the prepared one;
- :class:`DataAccumulator` (client): ``add(month, counts)``, then ``rows()``: the
  ``checks.parquet`` rows (:func:`rapidseval.checks.check_row`), per rule: per month, then per window.

Semantics
---------
``on="read"`` rules look at a canonical column of every row *as read* (before the drop rules:
a negative fare is seen even though a drop rule later drops its row); ``on="used"`` rules look
at a feature or the target of the rows the job used (the prepared frame).

Row rules (``not_null``, ``min``, ``max``, ``between``, ``in_set``) count the rows that break
them: only ``not_null`` counts a missing value (NaN, NaT, null); the others do not compare it
(as pandas' ``s < x`` is False for NaN). ``n`` is the rows evaluated, the value is
``violations / n``. With tolerance 0 the rule holds when no row breaks it; with a tolerance,
when the violations are at most :func:`tolerance_allows` (the binomial's upper
``window_rate`` quantile of ``n`` rows at the tolerance), so a month or window fails by chance
``window_rate`` of the time at exactly the tolerated share, whatever its size.

A feature of the rows used holds the job's fill value where its input was missing: a rule
with ``missing_value`` (the jobs layer sets it to the fill value for a feature) counts that
value as missing, so ``not_null`` on a feature can fail and the other rules leave it out.
A float32 column (the features) is compared with its bounds and values rounded to float32,
as pandas compares it (a value read as 0.1 meets ``max: 0.1`` and ``in_set: [0.1]``).

Aggregates: ``mean_between`` (the mean of the present values, float64 sums),
``fraction_between`` (the share of *all* rows whose value meets ``where``; NaN never meets it)
and ``unique_fraction`` (distinct present values / present values: exact, each part sends its
distinct values per group and the client unions them). The rule holds when the value is in
``[min, max]``.

A group with nothing to judge (no rows; for ``mean_between`` and ``unique_fraction`` no present
value) is a ``pass`` row with value NaN and a detail that says so.

Groups: every month the pass reads (all rows of its parts), and, when the job replays, every
window of the replay (``window`` of ``time_column``) for the rows of the replay months whose
window lies in ``[window_lo, window_hi]`` (the period plus the longest trip's spill-over, as the
replay bounds its windows). A row with a missing time is in no window but counts in its month.
In-period windows without rows are reported (``no rows``); spill-over windows only where rows
reach them.

Backend neutral: the reduction works on ``backend.xp`` arrays (NumPy or CuPy) and returns host
NumPy numbers and arrays only (a few numbers per rule and window; distinct values for
``unique_fraction``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.stats import binom

from ..core.arrays import to_host
from ..core.time import parse_window
from . import check_row

__all__ = ["DataRule", "DataReduce", "DataCounts", "GroupCounts", "DataAccumulator", "judge_group", "tolerance_allows",
           "ROW_RULES", "AGGREGATE_RULES"]

#: rules that count the rows breaking them (a tolerance is the share allowed)
ROW_RULES = ("not_null", "min", "max", "between", "in_set")
#: rules that compare one number per month or window with [min, max]
AGGREGATE_RULES = ("mean_between", "fraction_between", "unique_fraction")

#: the sums each group keeps (unique_fraction also keeps its distinct values)
_SUMS = ("n", "bad", "present", "total", "meets")


@dataclass(frozen=True)
class DataRule:
    """One data check, resolved: ``on`` is ``read`` (a canonical column, every row read) or
    ``used`` (a feature or the target, the rows the job used)."""

    label: str
    column: str
    rule: str
    on: str
    severity: str
    min: float | None = None
    max: float | None = None
    values: tuple[float, ...] | None = None
    where_min: float | None = None
    where_max: float | None = None
    where_values: tuple[float, ...] | None = None
    tolerance: float = 0.0
    window_rate: float = 0.001  # with a tolerance: false failures per month or window at that share
    numeric: bool = True  # False: a timestamp or string column (not_null only)
    missing_value: float | None = None  # a value standing for a missing one (a used feature's fill value)

    def __post_init__(self):
        if self.rule not in ROW_RULES + AGGREGATE_RULES:
            raise ValueError(f"unknown data rule {self.rule!r}")
        if self.on not in ("read", "used"):
            raise ValueError(f"data rule {self.label!r}: on must be 'read' or 'used', got {self.on!r}")
        if not self.numeric and self.rule != "not_null":
            raise ValueError(f"data rule {self.label!r}: {self.column} is not numeric; only not_null applies")


@dataclass
class GroupCounts:
    """One rule's sums over one group (a month or a window): rows evaluated ``n``, rows breaking
    a row rule ``bad``, present values ``present``, their float64 sum ``total``, rows meeting
    ``where`` ``meets``, and (``unique_fraction``) the sorted distinct present values."""

    n: int = 0
    bad: int = 0
    present: int = 0
    total: float = 0.0
    meets: int = 0
    distinct: np.ndarray | None = None

    def merge(self, other: "GroupCounts") -> "GroupCounts":
        distinct = (self.distinct if other.distinct is None else other.distinct if self.distinct is None
                    else np.union1d(self.distinct, other.distinct))
        return GroupCounts(self.n + other.n, self.bad + other.bad, self.present + other.present,
                           self.total + other.total, self.meets + other.meets, distinct)

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in _SUMS}
        out["distinct"] = None if self.distinct is None else self.distinct.tolist()
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "GroupCounts":
        distinct = None if d["distinct"] is None else np.asarray(d["distinct"], dtype="float64")
        return cls(int(d["n"]), int(d["bad"]), int(d["present"]), float(d["total"]), int(d["meets"]), distinct)


@dataclass
class DataCounts:
    """What one part's (or month's) reduction sends back (host numbers and arrays only):
    rule label -> its month's :class:`GroupCounts` and window key -> :class:`GroupCounts`."""

    per_rule: dict[str, Any] = field(default_factory=dict)  # label -> {"month": GroupCounts, "windows": {k: GC}}

    def merge(self, other: "DataCounts") -> "DataCounts":
        out: dict[str, Any] = {}
        for label in dict.fromkeys([*self.per_rule, *other.per_rule]):
            a, b = self.per_rule.get(label), other.per_rule.get(label)
            if a is None or b is None:
                out[label] = a if b is None else b
                continue
            out[label] = {"month": a["month"].merge(b["month"]), "windows": _merge_windows(a["windows"], b["windows"])}
        return DataCounts(out)

    def to_json(self) -> str:
        """A JSON text (what the backtest keeps beside a cached month)."""
        return json.dumps({label: {"month": c["month"].to_json(),
                                   "windows": [[int(k), g.to_json()] for k, g in sorted(c["windows"].items())]}
                           for label, c in self.per_rule.items()})

    @classmethod
    def from_json(cls, text: str) -> "DataCounts":
        raw = json.loads(text)
        return cls({label: {"month": GroupCounts.from_json(c["month"]),
                            "windows": {int(k): GroupCounts.from_json(g) for k, g in c["windows"]}}
                    for label, c in raw.items()})


def _merge_windows(a: dict[int, GroupCounts], b: dict[int, GroupCounts]) -> dict[int, GroupCounts]:
    """Window key -> counts of both (a new dict; a window in one only is taken as it is)."""
    out = dict(a)
    for key, counts in b.items():
        out[key] = out[key].merge(counts) if key in out else counts
    return out


def _in(xp, values, lo: float | None, hi: float | None, allowed: tuple[float, ...] | None):
    """Rows whose (present) value is in [lo, hi] or in ``allowed`` (NaN never is)."""
    if allowed is not None:
        return xp.isin(values, xp.asarray(allowed, dtype="float64"))
    ok = ~xp.isnan(values)
    if lo is not None:
        ok &= values >= lo
    if hi is not None:
        ok &= values <= hi
    return ok


def _float32(col) -> bool:
    try:
        return np.dtype(col.dtype) == np.float32
    except TypeError:  # an extension dtype: not a plain float32 column
        return False


def _as_stored(rule: DataRule, col) -> DataRule:
    """``rule`` with its bounds and values as ``col`` holds them: rounded to float32 for a
    float32 column (as pandas compares one), unchanged otherwise."""
    if not _float32(col):
        return rule

    def r(x):
        return None if x is None else float(np.float32(x))

    def rs(xs):
        return None if xs is None else tuple(r(x) for x in xs)

    return replace(rule, min=r(rule.min), max=r(rule.max), values=rs(rule.values), where_min=r(rule.where_min),
                   where_max=r(rule.where_max), where_values=rs(rule.where_values),
                   missing_value=r(rule.missing_value))


def _row_quantities(rule: DataRule, frame, backend) -> tuple[dict[str, Any], Any]:
    """Per-row quantities of ``rule`` on ``frame`` (backend arrays) and its present values (or None)."""
    xp, col = backend.xp, frame[rule.column]
    if not rule.numeric:
        return {"bad": backend.asarray(col.isna()).astype("int64")}, None
    rule = _as_stored(rule, col)
    values = backend.asarray(col, dtype="float64")
    missing = xp.isnan(values)
    if rule.missing_value is not None:  # a used feature's fill value: its input was missing
        missing |= values == rule.missing_value
        values = xp.where(missing, xp.nan, values)
    if rule.rule == "not_null":
        return {"bad": missing.astype("int64")}, None
    if rule.rule in ("min", "max", "between", "in_set"):
        lo = rule.min if rule.rule in ("min", "between") else None
        hi = rule.max if rule.rule in ("max", "between") else None
        bad = ~missing & ~_in(xp, values, lo, hi, rule.values)
        return {"bad": bad.astype("int64")}, None
    present = (~missing).astype("int64")
    if rule.rule == "mean_between":
        return {"present": present, "total": xp.where(missing, 0.0, values)}, None
    if rule.rule == "fraction_between":
        return {"meets": _in(xp, values, rule.where_min, rule.where_max, rule.where_values).astype("int64")}, None
    return {"present": present}, values  # unique_fraction


def _group(quantities: dict[str, Any], values, n: int, xp) -> GroupCounts:
    out = GroupCounts(n=n)
    for name, q in quantities.items():
        total = q.sum()
        setattr(out, name, float(total) if name == "total" else int(total))
    if values is not None:
        out.distinct = np.asarray(to_host(xp.unique(values[~xp.isnan(values)])), dtype="float64")
    return out


@dataclass(frozen=True)
class _Windowed:
    """The rows of a part that fall in a counted window: ``mask`` over the part's rows, the
    distinct window keys ``uniq`` (host) and each selected row's index into them ``inverse``."""

    mask: Any
    uniq: np.ndarray
    inverse: Any


def _windows(quantities: dict[str, Any], values, windowed: _Windowed, xp) -> dict[int, GroupCounts]:
    """Window key -> :class:`GroupCounts` of the rows ``windowed`` selects (quantities already masked)."""
    uniq_h, inverse = windowed.uniq, windowed.inverse
    m = len(uniq_h)
    if m == 0:
        return {}
    n = xp.bincount(inverse, minlength=m)
    sums = {name: xp.bincount(inverse, weights=q.astype("float64"), minlength=m) for name, q in quantities.items()}
    n_h = to_host(n)
    sums_h = {name: to_host(s) for name, s in sums.items()}
    distinct = None
    if values is not None:  # distinct (window, value) pairs of present values, one sort
        ok = ~xp.isnan(values)
        w, v = inverse[ok], values[ok]
        order = xp.lexsort(xp.stack([v, w.astype("float64")]))  # by window, then value
        w, v = w[order], v[order]
        first = xp.ones(len(v), dtype=bool)
        if len(v) > 1:
            first[1:] = (w[1:] != w[:-1]) | (v[1:] != v[:-1])
        w, v = to_host(w[first]).astype("int64"), to_host(v[first])
        bounds = np.searchsorted(w, np.arange(m + 1))
        distinct = [v[bounds[i]:bounds[i + 1]] for i in range(m)]
    out = {}
    for i, key in enumerate(uniq_h.tolist()):
        g = GroupCounts(n=int(n_h[i]))
        for name, s in sums_h.items():
            setattr(g, name, float(s[i]) if name == "total" else int(round(s[i])))
        if distinct is not None:
            g.distinct = np.asarray(distinct[i], dtype="float64")
        out[int(key)] = g
    return out


@dataclass(frozen=True)
class DataReduce:
    """The workers' half: every rule over one part, per month and per window of the replay.

    ``window_lo`` / ``window_hi`` bound the window keys counted (the replay period and its
    spill-over); rows outside them, or with a missing time, are in no window.
    """

    rules: tuple[DataRule, ...]
    window: str | None = None          # the replay's window ('D', '6h', ...), None: months only
    time_column: str = "dropoff_datetime"
    window_months: tuple[str, ...] = ()  # windows are counted for rows of these months only
    window_lo: int | None = None
    window_hi: int | None = None
    window_last_in_period: int | None = None  # in-period windows up to this key are reported even when empty

    def read_columns(self) -> tuple[str, ...]:
        cols = [r.column for r in self.rules if r.on == "read"]
        if cols and self.window is not None:
            cols.append(self.time_column)
        return tuple(dict.fromkeys(cols))

    def _windowed(self, frame, month: str, backend) -> _Windowed | None:
        """The rows of ``frame`` that fall in a counted window (None: windows not counted here)."""
        if self.window is None or month not in self.window_months or len(frame) == 0:
            return None
        col = frame[self.time_column]
        t_us = backend.time_us(col)
        ok = ~backend.asarray(col.isna()).astype(bool)
        keys = parse_window(self.window).keys(t_us, backend.xp)
        if self.window_lo is not None:
            ok &= keys >= self.window_lo
        if self.window_hi is not None:
            ok &= keys <= self.window_hi
        uniq, inverse = backend.xp.unique(keys[ok], return_inverse=True)
        return _Windowed(ok, np.asarray(to_host(uniq), dtype="int64"), inverse.ravel())

    def reduce(self, raw, frame, *, month: str, backend) -> DataCounts:
        """Every rule's counts over one part: ``raw`` for ``read`` rules, ``frame`` for ``used`` ones."""
        xp = backend.xp
        per_rule: dict[str, Any] = {}
        keyed: dict[str, Any] = {}
        for rule in self.rules:
            source = raw if rule.on == "read" else frame
            if rule.on not in keyed:  # one window grouping per frame, shared by its rules
                keyed[rule.on] = self._windowed(source, month, backend)
            quantities, values = _row_quantities(rule, source, backend)
            windows, windowed = {}, keyed[rule.on]
            if windowed is not None:
                ok = windowed.mask
                windows = _windows({k: q[ok] for k, q in quantities.items()},
                                   None if values is None else values[ok], windowed, xp)
            per_rule[rule.label] = {"month": _group(quantities, values, int(len(source)), xp), "windows": windows}
        return DataCounts(per_rule)


def _fmt(x: float) -> str:
    return f"{x:g}"


def tolerance_allows(n: int, tolerance: float, window_rate: float) -> int:
    """The most rows of ``n`` a ``tolerance`` share of bad rows gives by chance but for
    ``window_rate`` of the months or windows: the binomial's upper ``window_rate`` quantile.
    A tolerance judged by the share alone fails small windows for one row (one refund in a
    day of 100 trips is 1%), and a large one for a share a hair above it."""
    return int(binom.isf(window_rate, n, tolerance))


def judge_group(rule: DataRule, g: GroupCounts) -> tuple[bool, float | None, float | None, str]:
    """(held, value, threshold, detail) of ``rule`` over one group."""
    if rule.rule in ROW_RULES:
        if g.n == 0:
            return True, None, rule.tolerance, "no rows"
        value = g.bad / g.n
        what = {"not_null": "missing", "min": f"below {_fmt(rule.min or 0)}",
                "max": f"above {_fmt(rule.max or 0)}",
                "between": f"outside [{_fmt(rule.min or 0)}, {_fmt(rule.max or 0)}]",
                "in_set": "not in the set"}[rule.rule]
        detail = f"{g.bad:,} of {g.n:,} rows ({value:.2%}) {what}"
        if rule.tolerance == 0:
            return g.bad == 0, value, 0.0, detail
        allowed = tolerance_allows(g.n, rule.tolerance, rule.window_rate)
        return (g.bad <= allowed, value, rule.tolerance,
                f"{detail}; a {rule.tolerance:.2%} share explains up to {allowed:,} at {rule.window_rate:g}")
    if rule.rule == "fraction_between":
        if g.n == 0:
            return True, None, None, "no rows"
        value, detail = g.meets / g.n, f"{g.meets:,} of {g.n:,} rows meet where"
    elif g.present == 0:
        return True, None, None, "no rows" if g.n == 0 else f"no present values in {g.n:,} rows"
    elif rule.rule == "mean_between":
        value, detail = g.total / g.present, f"mean of {g.present:,} present values"
    else:
        distinct = 0 if g.distinct is None else len(g.distinct)
        value, detail = distinct / g.present, f"{distinct:,} distinct of {g.present:,} present values"
    if rule.min is not None and value < rule.min:
        return False, value, rule.min, f"{detail}: {value:.6g} below {_fmt(rule.min)}"
    if rule.max is not None and value > rule.max:
        return False, value, rule.max, f"{detail}: {value:.6g} above {_fmt(rule.max)}"
    bound = rule.min if rule.min is not None else rule.max
    return True, value, bound, f"{detail}: {value:.6g}"


class DataAccumulator:
    """The client's half: parts merged per month and window, then one check row each."""

    def __init__(self, reduce: DataReduce):
        self.reduce = reduce
        self.months: dict[str, DataCounts] = {}

    def add(self, month: str, counts: DataCounts) -> None:
        """Merge one part's (or a whole month's) counts into ``month`` (order-free)."""
        self.months[month] = self.months[month].merge(counts) if month in self.months else counts

    def window_counts(self) -> dict[str, dict[int, GroupCounts]]:
        """rule label -> window key -> counts, merged over every month (spill-over joins its window)."""
        out: dict[str, dict[int, GroupCounts]] = {r.label: {} for r in self.reduce.rules}
        for counts in self.months.values():
            for label, c in counts.per_rule.items():
                out[label] = _merge_windows(out[label], c["windows"])
        return out

    def rows(self) -> list[dict[str, Any]]:
        """The ``checks.parquet`` rows: per rule, each month (in month order), then each window."""
        rd = self.reduce
        windows = self.window_counts() if rd.window is not None else {}
        out: list[dict[str, Any]] = []
        for rule in rd.rules:
            for month in sorted(self.months):
                g = self.months[month].per_rule.get(rule.label, {}).get("month", GroupCounts())
                out.append(self._row(rule, g, month=month))
            if rd.window is None or not any(m in self.months for m in rd.window_months):
                continue
            by_key = windows.get(rule.label, {})
            keys = set(by_key)
            if rd.window_lo is not None and rd.window_last_in_period is not None:
                keys |= set(range(rd.window_lo, rd.window_last_in_period + 1))
            w = parse_window(rd.window)
            for key in sorted(keys):
                start = w.bounds(np.array([key]))[0][0]
                out.append(self._row(rule, by_key.get(key, GroupCounts()), window_start=start))
        return out

    @staticmethod
    def _row(rule: DataRule, g: GroupCounts, *, month=None, window_start=None) -> dict[str, Any]:
        held, value, threshold, detail = judge_group(rule, g)
        return check_row(rule.label, "data", rule.severity, held=held, month=month, window_start=window_start,
                         value=value, threshold=threshold, detail=detail)
