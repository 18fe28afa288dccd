"""Calculator: fit on a reference period, calculate on every window; calibrated alarms.

NannyML's shape (fit -> calculate -> result table) with two differences that
matter at millions of rows:

* **Thresholds come from the reference itself, leaving each day out, and hold for
  the window as a family.**  Every reference day is compared with the reference
  *minus that day* (its counts subtracted), reweighted to the day's weekday; the
  values, standardised by sample size, calibrate a null whose shape comes from
  sampling (multinomial draws from the reference) and whose scale from those days
  (:mod:`._verdict`).  A window of T tests (features x statistics) alarms when one of
  them passes its threshold at level ``window_alarm_rate / T`` (Bonferroni; Holm's
  first step), so a window without shift alarms at most at ``window_alarm_rate``.
  An optional minimum effect per statistic applies on top.
* **Calendar composition is compared like with like** (``calendar="weekday"``):
  for each window, the reference's days are reweighted so that the reference
  has the window's weekday mix (January 2020 has five Fridays, February four;
  a Monday is compared with the reference's Mondays).  Sub-windows are
  compared with their leave-out rest reweighted the same way, so the null
  and the windows are built alike.
"""

from __future__ import annotations

import html
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ..core.arrays import to_numpy
from ..core.errors import SpecError
from ..core.time import US_PER_DAY, parse_window, weekday
from ._counts import DayCounts, unique_inverse
from ._grid import GRID_STATISTICS, Grid, grid_value
from ._ks import MAX_EXACT_N, ks_pvalues
from ._stats import DEFAULT_STATISTICS, STATISTICS, Dist, RefInfo, feature_kind, ref_info
from ._verdict import SAMPLING_DRAWS, NullFit, scores
from ._windows import (BATCH_STATISTICS, Batch, Walk, batch_values, clipped_wasserstein, collapse, walk, walk_values,
                       walked)
from .thresholds import ALARM_METHODS, FamilyThreshold, Threshold, WindowThresholds

__all__ = ["ShiftCalculator", "ShiftResult", "FREQUENCIES", "ALARM_METHODS", "CALENDARS", "alarms",
           "SHIFT_COLUMNS", "WINDOW_COLUMNS", "check_statistics", "window_verdicts", "window_keys"]

FREQUENCIES = {"D": "day", "W": "week starting Monday", "M": "calendar month"}
CALENDARS = {"weekday": "reference reweighted to the window's weekday mix", "none": "reference as is"}

SHIFT_COLUMNS = ["reference", "window", "window_start", "window_end", "feature", "statistic", "value",
                 "p_value", "p_method", "threshold", "alarm", "p_below_alpha", "null_mean", "null_std",
                 "n_null", "n_reference", "n_window", "score", "score_threshold", "p_null", "exceedance",
                 "window_alarm"]

#: the per-window verdicts (:func:`window_verdicts`)
WINDOW_COLUMNS = ["reference", "window", "window_start", "window_end", "window_alarm", "n_tests", "n_alarms",
                  "min_p_null", "top_feature", "top_statistic", "top_exceedance"]

#: the null table's columns (:attr:`ShiftCalculator.null_`)
NULL_COLUMNS = ["feature", "statistic", "null_mean", "null_std", "n_null", "block_days", "threshold", "score_mean",
                "score_std", "overdispersion", "score_threshold", "alpha_test", "n_tests", "block_n_ref",
                "block_n_win"]

#: the columns :meth:`ShiftCalculator.calculate` gathers per row before the table, with their dtypes
_ROW_COLUMNS = {"window_start": "datetime64[us]", "window_end": "datetime64[us]", "feature": object,
                "statistic": object, "value": "float64", "p_value": "float64", "p_method": object,
                "threshold": "float64", "null_mean": "float64", "null_std": "float64", "n_null": "int64",
                "n_reference": "int64", "n_window": "int64", "ks_en": "float64", "score": "float64",
                "score_threshold": "float64", "p_null": "float64", "exceedance": "float64", "test_alarm": bool}


def window_keys(days: np.ndarray, freq: str) -> np.ndarray:
    """The window (``freq``: one of :data:`FREQUENCIES`) of each day since the epoch, as a sortable key."""
    if freq not in FREQUENCIES:
        raise SpecError(f"unknown shift window {freq!r}; choose one of {', '.join(FREQUENCIES)}")
    return parse_window(freq).keys(np.asarray(days, dtype="int64") * US_PER_DAY)


def _weekdays(days) -> np.ndarray:
    return weekday(np.asarray(days, dtype="int64"))


def check_statistics(feature: str, names: Iterable[str], kinds: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Validate statistic names for a feature of the kind ``kinds`` declares (default: the
    registry's, see :func:`feature_kind`); registry choices listed in the error."""
    names = tuple(names)
    for name in names:
        if name not in STATISTICS:
            raise SpecError(f"unknown shift statistic {name!r} for {feature}; choose from {', '.join(STATISTICS)}")
        kind = feature_kind(feature, kinds)
        if kind not in STATISTICS[name].kinds:
            ok = [s for s, st in STATISTICS.items() if kind in st.kinds]
            raise SpecError(f"shift statistic {name!r} does not apply to {feature} ({kind}); choose from {', '.join(ok)}")
    if len(set(names)) != len(names):
        raise SpecError(f"shift statistics for {feature} list a name twice")
    return names


@dataclass(frozen=True)
class _FeatureRef:
    """A feature's reference as :meth:`ShiftCalculator.fit` prepares it, once.

    Its ``(day, value)`` entries are those of ``counts``; ``value_index``, ``entry_day``
    and ``entry_weekday`` say, for each entry, which distinct value, reference day and
    weekday it has.
    """

    info: RefInfo
    statistics: tuple[str, ...]
    values: np.ndarray  # distinct reference values (float64)
    value_index: np.ndarray  # for each entry: index into values
    count: np.ndarray  # for each entry: its rows
    counts: DayCounts
    full: Dist
    entry_day: np.ndarray  # for each entry: index into the reference days
    entry_weekday: np.ndarray  # for each entry: its weekday (0 = Monday)
    by_weekday: np.ndarray  # (7, len(values)) int64: counts of the reference's Mondays, Tuesdays, ...
    day_start: np.ndarray  # entries of reference day i are day_start[i]:day_start[i + 1]


@dataclass(frozen=True)
class _Share:
    """Windows of a feature compared together: one weekday mix (so one reference), about
    ``_SHARE_ENTRIES`` entries."""

    windows: np.ndarray  # window positions
    weekday_mix: np.ndarray  # days per weekday in each of these windows
    entries: int


@dataclass(frozen=True)
class _FeatureWindows:
    """One feature's windows in :meth:`ShiftCalculator.calculate`: window ``w``'s entries
    (its distinct values, sorted, and their counts) are ``values[entry_start[w]:entry_end[w]]``."""

    feature: str
    ref: _FeatureRef
    n_windows: int
    window_start: np.ndarray
    window_end: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    entry_start: np.ndarray
    entry_end: np.ndarray
    shares: tuple[_Share, ...]


@dataclass(frozen=True)
class _WindowResults:
    """What the shares of a feature's windows fill in, windows x statistics (``n_reference``
    and ``walk``: per window)."""

    walk: Walk
    value: np.ndarray
    p_value: np.ndarray
    p_method: np.ndarray
    ks_effective_n: np.ndarray  # the KS rows' size for the vectorised p-value (NaN: p-value already known)
    n_reference: np.ndarray

    @classmethod
    def empty(cls, n_windows: int, n_statistics: int, n_bins: int) -> "_WindowResults":
        shape = (n_windows, n_statistics)
        return cls(Walk.empty(n_windows, n_bins), np.full(shape, np.nan), np.full(shape, np.nan),
                   np.full(shape, "", dtype=object), np.full(shape, np.nan), np.zeros(n_windows, "int64"))


@dataclass(frozen=True)
class _FeatureComparison:
    """A feature's windows and their results."""

    windows: _FeatureWindows
    results: _WindowResults


@dataclass(frozen=True)
class _ShareTask:
    """A share of a feature's windows and the reference they are compared with."""

    comparison: _FeatureComparison
    share: _Share
    reference: Dist


@dataclass(frozen=True)
class _CalibrationBlock:
    """Reference days ``start:start + length`` left out, and the weekday multipliers that give
    the rest of the reference their weekday mix (:meth:`ShiftCalculator._mix`)."""

    start: int
    weekday_multipliers: np.ndarray


@dataclass(frozen=True)
class _BlockNull:
    """A feature's statistics on every calibration block against the rest of the reference,
    with the two sides' sizes (the rest's effective size when reweighted)."""

    values: dict[str, list]
    n_reference: list
    n_window: list


@dataclass(frozen=True)
class _Sizes:
    """A reference's and a window's row counts (for the sampling null's draws)."""

    n_reference: int
    n_window: int


@dataclass(frozen=True)
class _SamplingNull:
    """Each statistic under pure sampling at the calibration blocks' sizes and at a compared window's."""

    at_block_sizes: dict[str, np.ndarray]
    at_window_sizes: dict[str, np.ndarray]


@dataclass(frozen=True)
class _TestNull:
    """A (feature, statistic)'s null: its row of the null table (before the threshold), its
    fit, and the reference days' finite scores."""

    row: dict
    fit: NullFit
    null_scores: np.ndarray


@dataclass(frozen=True)
class _TestVerdict:
    """How one (feature, statistic) is judged: its fitted null and score threshold."""

    fit: NullFit
    score_threshold: float


#: a group of windows is compared in shares of about this many entries (threads balance)
_SHARE_ENTRIES = 1 << 20


class _Serial:
    """``ThreadPoolExecutor``'s ``map`` in the calling thread."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, *items):
        return map(fn, *items)


def _pool(threads: int):
    return ThreadPoolExecutor(max_workers=threads) if threads > 1 else _Serial()


class _SlidingBlock:
    """The counts of reference days ``[lo, hi)`` of a feature, by weekday and in total, on the
    reference's value grid (array module ``xp``), moved a day at a time."""

    def __init__(self, ref: _FeatureRef, xp, day_weekday: np.ndarray):
        n_values = len(ref.values)
        self.ref, self.xp, self.day_weekday = ref, xp, day_weekday
        self.value_index, self.count = xp.asarray(ref.value_index), xp.asarray(ref.count, dtype=xp.float64)
        self.by_weekday = xp.zeros((7, n_values), dtype=xp.float64)
        self.total = xp.zeros(n_values, dtype=xp.float64)
        self.lo = self.hi = 0

    def _move(self, day: int, sign: int) -> None:
        lo, hi = int(self.ref.day_start[day]), int(self.ref.day_start[day + 1])
        c = self.xp.bincount(self.value_index[lo:hi], weights=self.count[lo:hi], minlength=len(self.ref.values))
        if sign > 0:
            self.by_weekday[self.day_weekday[day]] += c
            self.total[...] += c
        else:
            self.by_weekday[self.day_weekday[day]] -= c
            self.total[...] -= c

    def slide_to(self, start: int, length: int) -> None:
        """Hold days ``start:start + length``."""
        if start >= self.hi:
            self.by_weekday[...] = 0
            self.total[...] = 0
            self.lo = self.hi = start
        for day in range(self.lo, start):
            self._move(day, -1)
        for day in range(max(self.hi, start), start + length):
            self._move(day, +1)
        self.lo, self.hi = start, start + length


class ShiftCalculator:
    """Per-feature distribution shift of windows against a reference, with calibrated alarms.

    Parameters
    ----------
    features : sequence of str, optional
        Features to compare (default: those given to :meth:`fit`).
    statistics : sequence of str, optional
        Statistics for every feature (default: by the feature's kind, see
        ``DEFAULT_STATISTICS``).
    per_feature : mapping feature -> sequence of str, optional
        Overrides for single features.
    kinds : mapping feature -> {"categorical", "integer", "continuous"}, optional
        Each feature's kind (which statistics apply, how bins are made, how an alarm is
        explained).  Features not named take the feature registry's default
        (:data:`rapidseval.features.FEATURE_KINDS`), else continuous.
    frequency : {"D", "W", "M"}
    calendar : {"weekday", "none"}
    threshold : Threshold
        How each test's null becomes its alarm threshold (:mod:`rapidseval.shift.thresholds`).
        Default :class:`FamilyThreshold`: a window alarms when any of its tests' calibrated
        p-values is at most ``window_alarm_rate / T`` (``T`` tests: features x statistics), so
        a window without shift alarms at most at that rate (see :mod:`._verdict`).
        :class:`StandardDeviationThreshold` / :class:`QuantileThreshold`: each test on its
        own, its score above ``mean + k * std`` or a quantile of the null (not calibrated as
        a family); :class:`ConstantThreshold`: fixed bounds in the statistic's units.  Their
        ``min_effect`` (statistic -> value) alarms only when the value is also that large.
    bins : int
        Reference-quantile bins of PSI / Jensen-Shannon on non-categorical features.
    fill_value : float
        The value missing features were filled with (counted by ``missing_rate``).
    alpha : float
        For the ``p_below_alpha`` column (the uncalibrated test, for contrast).
    max_categories : int
        Integer features with at most this many distinct reference values bin per value.
    exact_p : bool
        True (default): KS p-values are scipy's ``kstwo.sf`` everywhere (to 1e-9; Smirnov's
        series for 140 < n <= 1e6 and p below ~0.025 costs 10-100 ms per value, see
        :func:`kstwo_sf`).  False: Maag & Dicaire's approximation there, marked
        ``p_method="smirnov_approx"`` (see :func:`ks_pvalues`).
    xp : module, optional
        Array module for the calibration's grid arithmetic (``numpy``, default, or
        ``cupy``: the backend's ``xp``); results are the same.
    threads : int, optional
        Threads :meth:`calculate` compares features and groups of windows in, and
        :meth:`fit` calibrates features in (NumPy releases the GIL in its sorts, searches
        and reductions); default: the cores this process may use, at most 4.  Results do
        not depend on it.
    """

    def __init__(self, features=None, *, statistics=None, per_feature=None, kinds=None, frequency: str = "M",
                 calendar: str = "weekday", threshold: Threshold | None = None, bins: int = 10,
                 fill_value: float = -1.0, alpha: float = 0.05, max_categories: int = 64, exact_p: bool = True,
                 xp=None, threads: int | None = None):
        self.features = None if features is None else tuple(features)
        self.statistics = None if statistics is None else tuple(statistics)
        self.per_feature = dict(per_feature or {})
        self.kinds = dict(kinds or {})
        self.frequency = frequency
        self.calendar = calendar
        self.threshold = FamilyThreshold() if threshold is None else threshold
        self.bins = bins
        self.fill_value = fill_value
        self.alpha = alpha
        self.max_categories = max_categories
        self.exact_p = exact_p
        self.xp = np if xp is None else xp
        self.threads = threads
        self._validate()

    def _validate(self):
        for name, table, value in (("frequency", FREQUENCIES, self.frequency), ("calendar", CALENDARS, self.calendar)):
            if value not in table:
                raise SpecError(f"unknown shift {name} {value!r}; choose one of {', '.join(table)}")
        if not isinstance(self.threshold, Threshold):
            raise SpecError(f"shift threshold must be a rapidseval.shift.Threshold, got {type(self.threshold).__name__}")
        for f in self.kinds:
            feature_kind(f, self.kinds)  # an unknown kind names the feature and the choices
        for name in self.statistics or ():  # at construction, not as a KeyError in fit
            if name not in STATISTICS:
                raise SpecError(f"unknown shift statistic {name!r}; choose from {', '.join(STATISTICS)}")
        for f, names in self.per_feature.items():
            check_statistics(f, names, {f: self.kind_of(f)})
        if self.bins < 2:
            raise SpecError(f"shift bins must be at least 2, got {self.bins}")

    def _threads(self) -> int:
        if self.threads is not None:
            return max(1, int(self.threads))
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, min(4, cores))

    def kind_of(self, feature: str) -> str:
        """The feature's kind: declared in ``kinds``, else the registry's default."""
        return feature_kind(feature, self.kinds)

    def statistics_for(self, feature: str) -> tuple[str, ...]:
        kind = self.kind_of(feature)
        if feature in self.per_feature:
            return check_statistics(feature, self.per_feature[feature], {feature: kind})
        if self.statistics is not None:
            return check_statistics(feature, [s for s in self.statistics if kind in STATISTICS[s].kinds], {feature: kind})
        return DEFAULT_STATISTICS[kind]

    # -- fit ------------------------------------------------------------------------------
    def fit(self, reference: Mapping[str, DayCounts], *, label: str = "reference") -> "ShiftCalculator":
        """Count the reference once, prepare it, and learn every threshold from it."""
        feats = self.features or tuple(reference)
        missing = [f for f in feats if f not in reference]
        if missing:
            raise SpecError(f"reference {label} has no counts for {', '.join(missing)}")
        self.label_ = label
        distinct: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # feature -> (distinct values, index of each entry)
        days = None
        for f in feats:
            c = reference[f]
            if not len(c):
                raise SpecError(f"reference {label} has no rows for {f}")
            distinct[f] = unique_inverse(c.value)
            fdays = c.days()
            days = fdays if days is None else np.union1d(days, fdays)
        self.days_ = days
        self.refs_: dict[str, _FeatureRef] = {f: self._feature_ref(f, reference[f], *distinct[f]) for f in feats}
        self._ref_cache: dict = {}
        self.null_ = self._calibrate()
        return self

    def _feature_ref(self, f: str, c: DayCounts, values: np.ndarray, value_index: np.ndarray) -> _FeatureRef:
        """A feature's reference, complete (:attr:`days_` known)."""
        full = Dist(values.astype("float64"), np.bincount(value_index, weights=c.count, minlength=len(values)).astype("int64"))
        info = ref_info(f, full, fill_value=self.fill_value, bins=self.bins, max_categories=self.max_categories,
                        kind=self.kind_of(f))
        entry_day = np.searchsorted(self.days_, c.day)
        entry_weekday = _weekdays(c.day)
        n_values = len(values)
        by_weekday = np.bincount(entry_weekday * n_values + value_index, weights=c.count,
                                 minlength=7 * n_values).reshape(7, n_values)
        return _FeatureRef(info, self.statistics_for(f), values.astype("float64"), value_index, c.count, c, full,
                           entry_day=entry_day, entry_weekday=entry_weekday,
                           by_weekday=np.rint(by_weekday).astype("int64"),
                           day_start=np.searchsorted(entry_day, np.arange(len(self.days_) + 1)))

    def _mix(self, comp: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        """Multiplier per weekday giving the reference the weekday mix ``comp`` (days in
        ``exclude`` left out): int64 ones/zeros when every used day counts once (a plain
        subset of days: integer counts), float64 otherwise."""
        keep = np.ones(len(self.days_), bool)
        if exclude is not None:
            keep[exclude] = False
        if self.calendar == "none":
            return np.ones(7, "int64")
        have = np.bincount(_weekdays(self.days_)[keep], minlength=7)
        if np.any((comp > 0) & (have == 0)):  # the reference lacks a weekday the window has
            return np.ones(7, "int64")
        per_wd = np.where(have > 0, comp / np.maximum(have, 1), 0.0)
        pos = per_wd[per_wd > 0]
        if np.all(pos == pos[0]):
            return (per_wd > 0).astype("int64")
        return per_wd

    def _ref_dist(self, f: str, a: np.ndarray, exclude: slice | None = None) -> Dist:
        """The reference with weekday multipliers ``a``, reference days ``exclude`` left out:
        ``a @ counts_by_weekday`` less the left-out days' entries (O(values), not O(entries))."""
        r = self.refs_[f]
        counts = a @ r.by_weekday
        per_wd = r.by_weekday.sum(axis=1)
        if exclude is not None:
            lo, hi = r.day_start[exclude.start], r.day_start[exclude.stop]
            m = a[r.entry_weekday[lo:hi]]
            counts = counts - np.bincount(r.value_index[lo:hi], weights=r.count[lo:hi] * m,
                                          minlength=len(r.values)).astype(counts.dtype)
            per_wd = per_wd - np.bincount(r.entry_weekday[lo:hi], weights=r.count[lo:hi], minlength=7).astype("int64")
        if a.dtype.kind in "iu":
            return Dist(r.values, counts)
        s1, s2 = float(per_wd @ a), float(per_wd @ (a * a))
        return Dist(r.values, counts, n_eff=s1 * s1 / s2 if s2 > 0 else 0.0)

    def reference_for(self, feature: str, weekday_mix: np.ndarray) -> Dist:
        """The reference a window of ``feature`` with ``weekday_mix`` (days per weekday,
        Monday first) is compared with: reweighted to that mix with ``calendar="weekday"``."""
        key = (feature, tuple(int(c) for c in weekday_mix))
        if key not in self._ref_cache:
            a = self._mix(weekday_mix, None)
            full = np.all(a == 1) and a.dtype.kind in "iu"
            self._ref_cache[key] = self.refs_[feature].full if full else self._ref_dist(feature, a)
        return self._ref_cache[key]

    def _block_len(self) -> int:
        """Days per calibration block: one.  Scores are standardised by sample size
        (:func:`~._verdict.scores`), so the days' null applies to weeks and months too, and a
        one-month reference gives ~30 nearly independent blocks (whole-week or month blocks
        would give 4 or none)."""
        return 1

    def _block_step(self, L: int) -> int:
        return 1

    # -- calibration ------------------------------------------------------------------------
    def _calibrate(self) -> pd.DataFrame:
        """Null distribution of every (feature, statistic): each reference day against the
        reference minus that day, reweighted to the day's weekday (its calendar make-up).
        Both sides are counts on the reference's value grid, kept by weekday and updated a
        day at a time as the block slides (:mod:`._grid`).  Values are standardised by
        sample size (``score``) and fitted (:class:`~._verdict.NullFit`); the table keeps the
        raw values' mean and std beside the scores' fit and threshold."""
        L = self._block_len()
        blocks = self._calibration_blocks(L)
        day_weekday = _weekdays(self.days_)
        with _pool(self._threads() if self.xp is np else 1) as pool:
            nulls = list(pool.map(lambda r: self._null_values(r, L, blocks, day_weekday), self.refs_.values()))
        block_sizes = [_Sizes(_median_size(null.n_reference), _median_size(null.n_window)) for null in nulls]
        window_sizes = [self._window_sizes(r) for r in self.refs_.values()]
        with _pool(self._threads()) as pool:
            sampling = list(pool.map(lambda r, blocks_, window: _SamplingNull(self._sampling_null(r, blocks_),
                                                                                self._sampling_null(r, window)),
                                     self.refs_.values(), block_sizes, window_sizes))
        tests = []
        for (f, r), null, drawn, sizes, window in zip(self.refs_.items(), nulls, sampling, block_sizes, window_sizes):
            tests += [self._test_null(f, s, null, drawn, sizes, window, L) for s in r.statistics]
        return pd.DataFrame(self._judge_tests(tests), columns=NULL_COLUMNS)

    def _calibration_blocks(self, L: int) -> list[_CalibrationBlock]:
        """Every run of ``L`` consecutive reference days, a step apart, with its rest's weekday multipliers."""
        days = self.days_
        starts = [i for i in range(0, len(days) - L + 1, self._block_step(L)) if days[i + L - 1] - days[i] == L - 1]
        return [_CalibrationBlock(i, self._mix(np.bincount(_weekdays(days[i:i + L]), minlength=7), np.arange(i, i + L)))
                for i in starts]

    def _test_null(self, f: str, s: str, null: _BlockNull, drawn: _SamplingNull, sizes: _Sizes, window: _Sizes,
                   L: int) -> _TestNull:
        """A (feature, statistic)'s fitted null and its row of the null table before the threshold."""
        n_ref, n_win = np.asarray(null.n_reference, dtype="float64"), np.asarray(null.n_window, dtype="float64")
        v = np.asarray(null.values[s], dtype="float64")
        z = scores(s, v, n_ref, n_win)
        keep = np.isfinite(v)
        v = v[keep]
        fit = NullFit.of_sampling(z[keep], scores(s, drawn.at_block_sizes[s], sizes.n_reference, sizes.n_window),
                                  scores(s, drawn.at_window_sizes[s], window.n_reference, window.n_window))
        row = {"feature": f, "statistic": s,
               "null_mean": float(v.mean()) if len(v) else np.nan,
               "null_std": float(v.std(ddof=1)) if len(v) > 1 else np.nan,
               "n_null": len(v), "block_days": L,
               "block_n_ref": float(n_ref[keep].mean()) if keep.any() else np.nan,
               "block_n_win": float(n_win[keep].mean()) if keep.any() else np.nan}
        return _TestNull(row, fit, z[keep])

    def _judge_tests(self, tests: list[_TestNull]) -> list[dict]:
        """Each test's score threshold from its null (:attr:`threshold`), kept in
        :attr:`verdict_`; the null table's rows, with the fit's moments and the threshold, as
        a score and in the statistic's units for a typical reference day."""
        n_tests = sum(test.fit.ok for test in tests)
        self.verdict_: dict[tuple[str, str], _TestVerdict] = {}
        self.alpha_test_ = self.threshold.test_level(n_tests)
        rows = []
        for test in tests:
            fit, row, statistic = test.fit, test.row, test.row["statistic"]
            zt = self.threshold.score_threshold(fit, test.null_scores, self.alpha_test_)
            self.verdict_[(row["feature"], statistic)] = _TestVerdict(fit, zt)
            typical = self.threshold.window_thresholds(statistic, zt, row["block_n_ref"], row["block_n_win"])
            thr, floor = float(typical.value), self.threshold.effect_floor(statistic)
            rows.append({**row, "score_mean": fit.mean, "score_std": fit.std, "overdispersion": fit.overdispersion,
                         "score_threshold": float(typical.score), "alpha_test": self.alpha_test_, "n_tests": n_tests,
                         "threshold": max(thr, floor) if np.isfinite(thr) else thr})
        return rows

    def _window_sizes(self, r: _FeatureRef) -> _Sizes:
        """A typical compared window's size and its reference's, for the sampling null's shape:
        a day, a week or a month of the reference's mean rows per day, against the reference
        (for days, with ``calendar="weekday"``: its days of one weekday)."""
        total = float(r.full.total)
        per_day = total / max(len(self.days_), 1)
        days = {"D": 1, "W": 7, "M": 30}[self.frequency]
        n_ref = total / 7 if self.frequency == "D" and self.calendar == "weekday" else total
        return _Sizes(int(round(n_ref)), max(1, int(round(per_day * days))))

    def _sampling_null(self, r: _FeatureRef, sizes: _Sizes) -> dict[str, np.ndarray]:
        """Each statistic under pure sampling: ``SAMPLING_DRAWS`` pairs of multinomial draws
        of a block's and a rest's typical sizes from the whole reference, on its value grid
        (host arrays; a fixed seed per feature, so a fit is reproducible)."""
        n_ref, n_win = sizes.n_reference, sizes.n_window
        out = {s: np.full(SAMPLING_DRAWS, np.nan) for s in r.statistics}
        if n_ref < 1 or n_win < 1:
            return out
        rng = np.random.default_rng([20_141, zlib.crc32(r.info.feature.encode())])
        values, weights = _coarse_grid(r.values, r.full.weights, r.info)
        p = weights / float(weights.sum())
        grid = Grid.build(values, r.info, np)
        for b in range(SAMPLING_DRAWS):
            R = rng.multinomial(n_ref, p).astype("float64")
            W = rng.multinomial(n_win, p).astype("float64")
            for s in r.statistics:
                if s in GRID_STATISTICS:
                    out[s][b] = grid_value(s, grid, R, W, float(n_ref))
                else:
                    nz = np.flatnonzero(W)
                    out[s][b] = STATISTICS[s].value_of(Dist(values, R.astype("int64")),
                                                       Dist(values[nz], W[nz].astype("int64")), r.info)
        return out

    def _null_values(self, r: _FeatureRef, L: int, blocks: list[_CalibrationBlock], day_weekday) -> _BlockNull:
        """A feature's statistics on every calibration block against the rest of the reference
        (reweighted to the block's weekday mix), on the array module :attr:`xp`."""
        xp = self.xp
        grid = Grid.build(r.values, r.info, xp)
        # float64 holds these counts exactly (< 2**53) and lets the weekday mix be one BLAS matvec
        by_wd = xp.asarray(r.by_weekday, dtype=xp.float64)
        per_wd_all = r.by_weekday.sum(axis=1)
        block = _SlidingBlock(r, xp, day_weekday)
        mixed: dict[bytes, object] = {}  # a @ by_wd, per distinct weekday mix
        null = _BlockNull({s: [] for s in r.statistics}, [], [])
        for cb in blocks:
            i, a = cb.start, cb.weekday_multipliers
            block.slide_to(i, L)
            if r.day_start[i + L] == r.day_start[i]:
                continue
            af = xp.asarray(a, dtype=xp.float64)
            key = a.tobytes() + a.dtype.str.encode()
            if key not in mixed:
                mixed[key] = af @ by_wd
            R = mixed[key] - af @ block.by_weekday
            total = float(R.sum())
            if not total > 0:
                continue
            weighted = a.dtype.kind == "f"
            n_eff = total
            if weighted:
                per_wd = per_wd_all - to_numpy(block.by_weekday.sum(axis=1))
                s1, s2 = float(per_wd @ a), float(per_wd @ (a * a))
                n_eff = s1 * s1 / s2 if s2 > 0 else 0.0
            null.n_reference.append(n_eff)
            null.n_window.append(float(block.total.sum()))
            self._block_statistics(null, r, grid, R, block.total, n_eff, weighted)
        return null

    @staticmethod
    def _block_statistics(null: _BlockNull, r: _FeatureRef, grid: Grid, R, W, n_eff: float, weighted: bool) -> None:
        """Append every statistic of a block (counts ``W``) against its rest (``R``) to ``null``."""
        rest = block_dist = None
        for s in r.statistics:
            if s in GRID_STATISTICS:
                null.values[s].append(grid_value(s, grid, R, W, n_eff, weighted=weighted))
                continue
            if rest is None:  # a statistic without a grid form: its Dist form on the two sides
                hr, hw = to_numpy(R), np.rint(to_numpy(W)).astype("int64")
                nz = np.flatnonzero(hw)
                rest = Dist(r.values, hr, n_eff=n_eff) if weighted else Dist(r.values, np.rint(hr).astype("int64"))
                block_dist = Dist(r.values[nz], hw[nz])
            null.values[s].append(STATISTICS[s].value_of(rest, block_dist, r.info))

    # -- calculate --------------------------------------------------------------------------
    def calculate(self, counts: Mapping[str, DayCounts]) -> "ShiftResult":
        """Compare every window of ``counts`` (one :class:`DayCounts` per feature) with the reference.

        The windows of a feature that share a reference (the same weekday mix) are
        compared together, each statistic in a few vectorised passes over their
        ``(window, value)`` counts (:mod:`._windows`).  KS p-values are computed at the
        end, for all rows in one vectorised call (:func:`~rapidseval.shift.ks_pvalues`);
        ``p_method`` says how each was obtained.
        """
        if not hasattr(self, "refs_"):
            raise SpecError("fit the shift calculator on a reference before calculate")
        for f in self.refs_:
            if f not in counts:
                raise SpecError(f"no counts for feature {f} to compare with the reference {self.label_}")
        comparisons = self._compare(counts)
        self.verdict_seconds_ = 0.0
        null = self.null_.set_index(["feature", "statistic"])
        parts = [self._columns(comparison, null) for comparison in comparisons]
        if parts:
            columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        else:
            columns = {k: np.zeros(0, dtype) for k, dtype in _ROW_COLUMNS.items()}
        self._ks_p_values(columns)
        table = self._table(columns)
        t_verdict = time.perf_counter()
        _, win = np.unique(columns["window_start"], return_inverse=True)
        alarmed = np.bincount(win.ravel(), weights=table["alarm"].to_numpy(),
                              minlength=int(win.max()) + 1 if len(win) else 0)
        table["window_alarm"] = alarmed[win.ravel()] > 0
        self.verdict_seconds_ += time.perf_counter() - t_verdict  # the window-level rule's share of calculate
        return ShiftResult(table, self.null_)

    def _compare(self, counts: Mapping[str, DayCounts]) -> list[_FeatureComparison]:
        """Every feature's windows, compared share by share (largest first, so the threads finish together)."""
        todo = [(f, r, counts[f]) for f, r in self.refs_.items() if len(counts[f])]
        with _pool(self._threads()) as pool:
            comparisons = list(pool.map(lambda a: self._prepare_feature(*a), todo))
            tasks = [_ShareTask(comparison, share, self.reference_for(comparison.windows.feature, share.weekday_mix))
                     for comparison in comparisons for share in comparison.windows.shares]
            tasks.sort(key=lambda task: -task.share.entries)
            list(pool.map(lambda task: self._compare_share(task.comparison, task.reference, task.share.windows), tasks))
        return comparisons

    def _ks_p_values(self, columns: dict[str, np.ndarray]) -> None:
        """The KS rows' p-values, in one vectorised call (rows with ``ks_en`` set)."""
        ks = np.isfinite(columns["ks_en"])
        if ks.any():
            idx = np.flatnonzero(ks)
            p, approx = ks_pvalues(columns["value"][idx], columns["ks_en"][idx], exact_tail=self.exact_p)
            columns["p_value"][idx] = p
            columns["p_method"][idx[approx]] = "smirnov_approx"

    def _table(self, columns: dict[str, np.ndarray]) -> pd.DataFrame:
        """The shift table of the gathered rows (without ``window_alarm``): the threshold
        raised to the minimum effect, the alarm the test's and the effect's."""
        value = columns["value"]
        floor = np.asarray([self.threshold.effect_floor(s) for s in columns["statistic"]], dtype="float64")
        threshold = columns["threshold"]
        start = pd.DatetimeIndex(columns["window_start"])
        return pd.DataFrame({
            "reference": self.label_,
            "window": _labels(start, self.frequency),
            "window_start": start, "window_end": pd.DatetimeIndex(columns["window_end"]),
            "feature": columns["feature"], "statistic": columns["statistic"], "value": value,
            "p_value": columns["p_value"], "p_method": columns["p_method"],
            "threshold": np.where(np.isfinite(threshold), np.maximum(threshold, floor), threshold),
            "alarm": columns["test_alarm"] & (value >= floor),
            "p_below_alpha": columns["p_value"] < self.alpha,
            "null_mean": columns["null_mean"], "null_std": columns["null_std"], "n_null": columns["n_null"],
            "n_reference": columns["n_reference"], "n_window": columns["n_window"],
            "score": columns["score"], "score_threshold": columns["score_threshold"], "p_null": columns["p_null"],
            "exceedance": columns["exceedance"],
        }, columns=SHIFT_COLUMNS)

    def _verdicts(self, f: str, statistics, value: np.ndarray, n_ref: np.ndarray, n_win: np.ndarray
                  ) -> dict[str, np.ndarray]:
        """A feature's rows (``value``: windows x statistics): score, its threshold (as a score
        and in the statistic's units for the window's sizes), calibrated p-value, exceedance
        and test-level alarm, each windows x statistics."""
        nw, ns = value.shape
        out = {k: np.full((nw, ns), np.nan) for k in ("score", "score_threshold", "threshold", "p_null", "exceedance")}
        out["test_alarm"] = np.zeros((nw, ns), bool)
        for k, s in enumerate(statistics):
            verdict = self.verdict_[(f, s)]
            z = scores(s, value[:, k], n_ref, n_win)
            bounds = self.threshold.window_thresholds(s, verdict.score_threshold, n_ref, n_win)
            out["score"][:, k] = z
            out["score_threshold"][:, k] = bounds.score
            out["threshold"][:, k] = bounds.value
            out["p_null"][:, k] = self.threshold.p_values(verdict.fit, z, self.alpha_test_)
            out["exceedance"][:, k] = _exceedance(verdict.fit, z, bounds)
            out["test_alarm"][:, k] = self.threshold.alarms(s, value[:, k], z, bounds)
        return {k: v.ravel() for k, v in out.items()}

    def _prepare_feature(self, f: str, r: _FeatureRef, c: DayCounts) -> _FeatureComparison:
        """One feature's windows: their distinct values and counts (a window's entries are
        contiguous), grouped by weekday mix (windows of one group share a reference) and cut
        into shares of about ``_SHARE_ENTRIES`` entries; the result arrays, filled per share."""
        starts, lengths = _runs(c.day)
        days = c.day[starts]
        keys = window_keys(days, self.frequency)
        kstart, klen = _runs(keys)
        nw = len(kstart)
        wstart, wend = parse_window(self.frequency).bounds(np.asarray(keys[kstart]))
        day_win = np.repeat(np.arange(nw), klen)
        if np.all(klen == 1):  # one day per window: its entries are already distinct and sorted
            x, cnt = c.value, c.count
            ws = starts
            we = starts + lengths
        else:
            wid, x, cnt = collapse(np.repeat(day_win, lengths), c.value, c.count)
            ws = np.searchsorted(wid, np.arange(nw))
            we = np.append(ws[1:], len(x))
        weekday_mix = np.bincount(day_win * 7 + _weekdays(days), minlength=nw * 7).reshape(nw, 7)
        windows = _FeatureWindows(f, r, nw, wstart, wend, x, cnt, ws, we, _shares(weekday_mix, we - ws))
        results = _WindowResults.empty(nw, len(r.statistics), len(r.info.edges) + 1)
        return _FeatureComparison(windows, results)

    def _compare_share(self, comparison: _FeatureComparison, ref: Dist, wsel: np.ndarray) -> None:
        """Every statistic of the windows ``wsel`` of a feature against their reference ``ref``."""
        fw, res = comparison.windows, comparison.results
        info, stats = fw.ref.info, fw.ref.statistics
        res.n_reference[wsel] = ref.n
        walk(ref, info, fw.values, fw.counts, fw.entry_start, fw.entry_end, wsel, res.walk, stats)  # n and KS always
        batch = None
        for k, s in enumerate(stats):
            todo = np.zeros(0, "int64")  # windows (positions in wsel) whose value comes from the Dist form
            if walked(s, info):
                res.value[wsel, k] = walk_values(s, ref, info, res.walk, wsel)
                if s == "ks":
                    todo = self._ks_sizes(res, ref, wsel, k)
            elif s == "wasserstein_clipped":
                res.value[wsel, k] = clipped_wasserstein(ref, info, fw.values, fw.counts, fw.entry_start, fw.entry_end,
                                                         wsel)
            elif s in BATCH_STATISTICS:
                if batch is None:
                    batch = _batch(fw, ref, wsel)
                res.value[wsel, k], res.p_value[wsel, k] = batch_values(s, batch, info)
            else:  # a statistic without a batch form: its Dist form, window by window
                todo = np.arange(len(wsel))
            for j in todo:
                w = wsel[j]
                win = Dist(fw.values[fw.entry_start[w]:fw.entry_end[w]], fw.counts[fw.entry_start[w]:fw.entry_end[w]])
                res.value[w, k], res.p_value[w, k] = STATISTICS[s].fn(ref, win, info)
            if STATISTICS[s].p_value:
                res.p_method[wsel, k] = "exact" if ref.exact else "effective_n"

    @staticmethod
    def _ks_sizes(res: _WindowResults, ref: Dist, wsel: np.ndarray, k: int) -> np.ndarray:
        """The KS column ``k`` of windows ``wsel``: the effective size of those whose p-value
        is scipy's asymptotic one (computed later, vectorised); returns the positions (in
        ``wsel``) of those whose p-value is scipy's exact one (which needs the samples)."""
        n = res.walk.rows[wsel]
        exact = np.zeros(len(wsel), bool)  # scipy's method "auto" is exact there
        if ref.exact:
            exact = np.maximum(n, int(ref.total)) <= MAX_EXACT_N
        m_ = float(ref.total) if ref.exact else ref.n_eff
        res.ks_effective_n[wsel[~exact], k] = np.maximum(1.0, np.round(m_ * n[~exact] / (m_ + n[~exact])))
        return np.flatnonzero(exact)

    def _columns(self, comparison: _FeatureComparison, null: pd.DataFrame) -> dict[str, np.ndarray]:
        """A feature's rows of the table, window-major (``ks_en``: the KS rows' effective
        size for the p-value, NaN elsewhere)."""
        fw, res = comparison.windows, comparison.results
        f, stats, nw = fw.feature, fw.ref.statistics, fw.n_windows
        ns = len(stats)
        feature_null = null.loc[[(f, s) for s in stats]]
        rep = lambda a: np.repeat(a, ns)  # noqa: E731 - per window -> per row
        tile = lambda a: np.tile(a, nw)  # noqa: E731 - per statistic -> per row
        t0 = time.perf_counter()
        verdict = self._verdicts(f, stats, res.value, res.n_reference, res.walk.rows)
        self.verdict_seconds_ += time.perf_counter() - t0
        return {**verdict,
            "window_start": rep(fw.window_start), "window_end": rep(fw.window_end),
            "feature": np.full(nw * ns, f, dtype=object), "statistic": tile(np.asarray(stats, dtype=object)),
            "value": res.value.ravel(), "p_value": res.p_value.ravel(), "p_method": res.p_method.ravel(),
            "null_mean": tile(feature_null["null_mean"].to_numpy("float64")),
            "null_std": tile(feature_null["null_std"].to_numpy("float64")),
            "n_null": tile(feature_null["n_null"].to_numpy("float64")).astype("int64"),
            "n_reference": rep(res.n_reference), "n_window": rep(res.walk.rows),
            "ks_en": res.ks_effective_n.ravel(),
        }


def _median_size(sizes: list) -> int:
    sizes = np.asarray(sizes, dtype="float64")
    return int(np.rint(np.median(sizes))) if len(sizes) else 0


def _exceedance(fit: NullFit, score: np.ndarray, bounds: WindowThresholds) -> np.ndarray:
    """Null standard deviations by which ``score`` exceeds its threshold (``-inf`` where there
    is none): :meth:`NullFit.exceedance` for a threshold per window."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(bounds.score), (score - bounds.score) / fit.std, -np.inf)


def _shares(weekday_mix: np.ndarray, entries: np.ndarray) -> tuple[_Share, ...]:
    """Windows grouped by weekday mix (one reference per group), each group cut into shares of
    about ``_SHARE_ENTRIES`` entries (``entries``: per window)."""
    mixes, group = np.unique(weekday_mix, axis=0, return_inverse=True)
    group = group.ravel()
    shares = []
    for g in range(len(mixes)):
        wsel = np.flatnonzero(group == g)
        cum = np.cumsum(entries[wsel])
        cut = np.searchsorted(cum, np.arange(_SHARE_ENTRIES, int(cum[-1]), _SHARE_ENTRIES), side="right")
        for part in np.split(wsel, np.unique(cut)):
            if len(part):
                shares.append(_Share(part, mixes[g], int(entries[part].sum())))
    return tuple(shares)


def _batch(fw: _FeatureWindows, ref: Dist, wsel: np.ndarray) -> Batch:
    """The windows ``wsel`` as one dense batch against ``ref`` (:class:`~._windows.Batch`)."""
    take = np.concatenate([np.arange(fw.entry_start[w], fw.entry_end[w]) for w in wsel])
    wid = np.repeat(np.arange(len(wsel)), fw.entry_end[wsel] - fw.entry_start[wsel])
    return Batch.build(ref, wid, fw.values[take], fw.counts[take], len(wsel))


#: the sampling null draws on at most about this many values (a continuous feature has one
#: distinct value per few rows; multinomial draws cost one binomial per value)
SAMPLING_GRID = 4096
_SAMPLING_TAIL = 256


def _coarse_grid(values: np.ndarray, weights: np.ndarray, info: RefInfo) -> tuple[np.ndarray, np.ndarray]:
    """The reference's values merged into about ``SAMPLING_GRID`` groups of equal weight, each
    represented by its largest value, for the sampling null's draws; the 256 smallest and
    largest values stay single.  Groups never straddle a quantile-bin edge, the fill value or
    the clip range's ends, so the binned, missing and
    clipped statistics see the same bins; KS and Wasserstein on the coarser grid are at most
    slightly smaller, so the overdispersion estimated against them errs high (conservative)."""
    n = len(values)
    if n <= SAMPLING_GRID:
        return values, np.asarray(weights, dtype="float64")
    w = np.asarray(weights, dtype="float64")
    before = np.cumsum(w) - w
    group = np.minimum((before * SAMPLING_GRID / w.sum()).astype("int64"), SAMPLING_GRID - 1)
    tails = np.arange(min(_SAMPLING_TAIL, n // 4))  # the extremes stay single values (out_of_range)
    cuts = [np.flatnonzero(np.diff(group)) + 1, np.searchsorted(values, info.edges, side="left"), tails + 1,
            n - 1 - tails]
    for v in (info.fill_value, info.clip_lo, info.clip_hi):
        i = int(np.searchsorted(values, v)) if np.isfinite(v) else -1
        if 0 <= i < n and values[i] == v:
            cuts.append(np.asarray([i, i + 1]) if v == info.fill_value else np.asarray([i + 1]))
    starts = np.unique(np.concatenate([[0], *cuts]))
    starts = starts[(starts >= 0) & (starts < n)]
    ends = np.append(starts[1:], n)
    return values[ends - 1], np.add.reduceat(w, starts)


def _runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the runs of equal values of a sorted array."""
    n = len(x)
    if n == 0:
        return np.zeros(0, "int64"), np.zeros(0, "int64")
    flag = np.empty(n, bool)
    flag[0] = True
    flag[1:] = x[1:] != x[:-1]
    starts = np.flatnonzero(flag)
    return starts, np.diff(np.append(starts, n))


def _labels(start: pd.DatetimeIndex, freq: str) -> list[str]:
    return list(start.strftime("%Y-%m" if freq == "M" else "%Y-%m-%d"))


def alarms(table: pd.DataFrame) -> pd.DataFrame:
    """The alarm rows of a shift table: feature, window, statistic, value, threshold."""
    cols = ["feature", "window", "statistic", "value", "threshold"]
    if table is None or table.empty or "alarm" not in table:
        return pd.DataFrame(columns=cols)
    out = table[table["alarm"].astype(bool)]
    return out.sort_values(["window", "feature", "statistic"])[cols].reset_index(drop=True)


def window_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per window of a shift table: whether it alarms (any of its tests), how many
    tests it holds and how many alarm, its smallest calibrated p-value, and its most
    exceeded test (the largest ``exceedance``: null standard deviations above threshold)."""
    if table is None or table.empty or "window_alarm" not in table:
        return pd.DataFrame(columns=WINDOW_COLUMNS)
    t = table.reset_index(drop=True)
    ex = pd.to_numeric(t["exceedance"], errors="coerce").fillna(-np.inf)
    top = t.loc[ex.groupby([t["reference"], t["window_start"]], sort=True).idxmax()]
    g = t.groupby(["reference", "window_start"], sort=True)
    out = pd.DataFrame({
        "window": g["window"].first(), "window_end": g["window_end"].first(),
        "window_alarm": g["alarm"].any().astype(bool),
        "n_tests": g["value"].size().astype("int64"), "n_alarms": g["alarm"].sum().astype("int64"),
        "min_p_null": g["p_null"].min(),
    }).reset_index()
    out["top_feature"] = top["feature"].to_numpy()
    out["top_statistic"] = top["statistic"].to_numpy()
    out["top_exceedance"] = top["exceedance"].to_numpy()
    return out[WINDOW_COLUMNS]


@dataclass
class ShiftResult:
    """The tidy shift table (one row per window x feature x statistic) and the null it was judged by."""

    table: pd.DataFrame
    null: pd.DataFrame

    def to_df(self) -> pd.DataFrame:
        return self.table

    def alarms(self) -> pd.DataFrame:
        return alarms(self.table)

    def windows(self) -> pd.DataFrame:
        """One verdict per window (:func:`window_verdicts`)."""
        return window_verdicts(self.table)

    def __repr__(self) -> str:
        """One line (the dataclass repr printed both tables): windows, alarms, tests."""
        t = self.table
        windows = t[["reference", "window"]].drop_duplicates() if {"reference", "window"} <= set(t.columns) else t
        alarmed = int(self.windows()["window_alarm"].sum()) if len(t) else 0
        return f"<ShiftResult: {alarmed:,} of {len(windows):,} windows alarm; {len(t):,} tests (to_df(), windows())>"

    def _repr_html_(self) -> str:
        """In a notebook: the one-line summary and the verdict per window."""
        return f"<p>{html.escape(repr(self))}</p>" + self.windows().to_html(index=False)
