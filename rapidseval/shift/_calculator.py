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

import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ..core.errors import SpecError
from ._counts import DayCounts, _to_host as _host, unique_inverse
from ._grid import GRID_STATISTICS, Grid, grid_value
from ._ks import MAX_EXACT_N, ks_pvalues
from ._stats import DEFAULT_STATISTICS, STATISTICS, Dist, RefInfo, default_statistics, feature_kind, ref_info
from ._verdict import SAMPLING_DRAWS, NullFit, from_score, scores
from ._windows import (BATCH_STATISTICS, Batch, Walk, batch_values, clipped_wasserstein, collapse, walk, walk_values,
                       walked)

__all__ = ["ShiftCalculator", "ShiftResult", "FREQUENCIES", "ALARM_METHODS", "CALENDARS", "alarms",
           "SHIFT_COLUMNS", "WINDOW_COLUMNS", "check_statistics", "window_verdicts"]

FREQUENCIES = {"D": "day", "W": "week starting Monday", "M": "calendar month"}
ALARM_METHODS = {"family": "a window alarms at most at window_alarm_rate when nothing changed (fitted null, Bonferroni over its tests)",
                 "std": "score above mean + k_std * std of the null (per test, not family-calibrated)",
                 "quantile": "score above a quantile of the null (per test, not family-calibrated)"}
CALENDARS = {"weekday": "reference reweighted to the window's weekday mix", "none": "reference as is"}

SHIFT_COLUMNS = ["reference", "window", "window_start", "window_end", "feature", "statistic", "value",
                 "p_value", "p_method", "threshold", "alarm", "p_below_alpha", "null_mean", "null_std",
                 "n_null", "n_reference", "n_window", "score", "score_threshold", "p_null", "exceedance",
                 "window_alarm"]

#: the per-window verdicts (:func:`window_verdicts`)
WINDOW_COLUMNS = ["reference", "window", "window_start", "window_end", "window_alarm", "n_tests", "n_alarms",
                  "min_p_null", "top_feature", "top_statistic", "top_exceedance"]

_US_PER_DAY = 86_400_000_000


def _weekday(days):
    return (np.asarray(days, dtype="int64") + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday


def _window_keys(days: np.ndarray, freq: str) -> np.ndarray:
    from ..core.time import parse_window

    if freq not in FREQUENCIES:
        raise SpecError(f"unknown shift window {freq!r}; choose one of {', '.join(FREQUENCIES)}")
    return parse_window(freq).keys(np.asarray(days, dtype="int64") * _US_PER_DAY)


def _window_bounds(key: int, freq: str):
    from ..core.time import parse_window

    start, end = parse_window(freq).bounds(np.asarray([key]))
    return start[0], end[0]


def _label(start, freq: str) -> str:
    return str(start)[:7] if freq == "M" else str(start)[:10]


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


@dataclass
class _FeatureRef:
    info: RefInfo
    stats: tuple[str, ...]
    values: np.ndarray  # distinct reference values (float64)
    vidx: np.ndarray  # for each (day, value) entry: index into values
    count: np.ndarray
    day_pos: np.ndarray  # for each entry: index into the reference days
    counts: DayCounts
    full: Dist
    by_weekday: np.ndarray  # (7, len(values)) int64: counts of the reference's Mondays, Tuesdays, ...
    entry_wd: np.ndarray  # weekday of every entry
    day_start: np.ndarray  # entries of reference day i are day_start[i]:day_start[i + 1]


@dataclass
class _Pending:
    """One feature's windows in :meth:`ShiftCalculator.calculate`, and their results."""

    f: str
    r: _FeatureRef
    nw: int
    wstart: np.ndarray
    wend: np.ndarray
    x: np.ndarray  # distinct values of every window, window after window, sorted within each
    cnt: np.ndarray
    ws: np.ndarray  # window w's entries are x[ws[w]:we[w]]
    we: np.ndarray
    tasks: list  # (windows, weekday mix, entries) per share of a group of windows with one reference
    walk: Walk
    value: np.ndarray
    p_value: np.ndarray
    method: np.ndarray
    ks_en: np.ndarray
    n_ref: np.ndarray


#: a group of windows is compared in shares of about this many entries (threads balance)
_SHARE_ENTRIES = 1 << 20


class _Serial:
    """``ThreadPoolExecutor``'s ``map`` in the calling thread."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, items):
        return map(fn, items)


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
    alarm : {"family", "std", "quantile"}
        ``"family"`` (default): a window alarms when any of its tests' calibrated p-values
        is at most ``window_alarm_rate / T`` (``T`` tests: features x statistics), so a
        window without shift alarms at most at that rate (see :mod:`._verdict`).
        ``"std"`` / ``"quantile"``: each test on its own, its score above ``mean + k_std *
        std`` or a quantile of the null (not calibrated as a family).
    window_alarm_rate : float
        ``alarm="family"``: the target share of windows without shift that alarm.
    k_std : float
        ``alarm="std"``: threshold = mean + k_std * std of the null scores.
    quantile : float
        ``alarm="quantile"``: threshold = this quantile of the null scores.
    min_effect : mapping statistic -> float, optional
        Alarm only when the value is also at least this large.
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
                 calendar: str = "weekday", alarm: str = "family", window_alarm_rate: float = 0.01,
                 k_std: float = 3.0, quantile: float = 0.99,
                 min_effect: Mapping[str, float] | None = None, bins: int = 10, fill_value: float = -1.0,
                 alpha: float = 0.05, max_categories: int = 64, exact_p: bool = True, xp=None,
                 threads: int | None = None):
        self.features = None if features is None else tuple(features)
        self.statistics = None if statistics is None else tuple(statistics)
        self.per_feature = dict(per_feature or {})
        self.kinds = dict(kinds or {})
        self.frequency = frequency
        self.calendar = calendar
        self.alarm = alarm
        self.window_alarm_rate = window_alarm_rate
        self.k_std = k_std
        self.quantile = quantile
        self.min_effect = dict(min_effect or {})
        self.bins = bins
        self.fill_value = fill_value
        self.alpha = alpha
        self.max_categories = max_categories
        self.exact_p = exact_p
        self.xp = np if xp is None else xp
        self.threads = threads
        self._validate()

    def _validate(self):
        for name, table, value in (("frequency", FREQUENCIES, self.frequency), ("calendar", CALENDARS, self.calendar),
                                   ("alarm", ALARM_METHODS, self.alarm)):
            if value not in table:
                raise SpecError(f"unknown shift {name} {value!r}; choose one of {', '.join(table)}")
        for f in self.kinds:
            feature_kind(f, self.kinds)  # an unknown kind names the feature and the choices
        for name in self.min_effect:
            if name not in STATISTICS:
                raise SpecError(f"min_effect names unknown statistic {name!r}; choose from {', '.join(STATISTICS)}")
        if not 0 < self.window_alarm_rate < 1:
            raise SpecError(f"shift window_alarm_rate must be in (0, 1), got {self.window_alarm_rate}")
        if not 0 < self.quantile < 1:
            raise SpecError(f"shift quantile must be in (0, 1), got {self.quantile}")
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
        self.refs_: dict[str, _FeatureRef] = {}
        days = None
        for f in feats:
            c = reference[f]
            if not len(c):
                raise SpecError(f"reference {label} has no rows for {f}")
            values, vidx = unique_inverse(c.value)
            fdays = c.days()
            days = fdays if days is None else np.union1d(days, fdays)
            full = Dist(values.astype("float64"), np.bincount(vidx, weights=c.count, minlength=len(values)).astype("int64"))
            info = ref_info(f, full, fill_value=self.fill_value, bins=self.bins, max_categories=self.max_categories,
                            kind=self.kind_of(f))
            self.refs_[f] = _FeatureRef(info, self.statistics_for(f), values.astype("float64"), vidx, c.count,
                                        None, c, full, None, None, None)
        self.days_ = days
        nv_days = len(days)
        for r in self.refs_.values():
            r.day_pos = np.searchsorted(days, r.counts.day)
            r.entry_wd = _weekday(r.counts.day)
            nv = len(r.values)
            r.by_weekday = np.bincount(r.entry_wd * nv + r.vidx, weights=r.count, minlength=7 * nv).reshape(7, nv)
            r.by_weekday = np.rint(r.by_weekday).astype("int64")
            r.day_start = np.searchsorted(r.day_pos, np.arange(nv_days + 1))
        self._ref_cache: dict = {}
        self.null_ = self._calibrate()
        return self

    def _mix(self, comp: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
        """Multiplier per weekday giving the reference the weekday mix ``comp`` (days in
        ``exclude`` left out): int64 ones/zeros when every used day counts once (a plain
        subset of days: integer counts), float64 otherwise."""
        keep = np.ones(len(self.days_), bool)
        if exclude is not None:
            keep[exclude] = False
        if self.calendar == "none":
            return np.ones(7, "int64")
        have = np.bincount(_weekday(self.days_)[keep], minlength=7)
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
            m = a[r.entry_wd[lo:hi]]
            counts = counts - np.bincount(r.vidx[lo:hi], weights=r.count[lo:hi] * m, minlength=len(r.values)).astype(counts.dtype)
            per_wd = per_wd - np.bincount(r.entry_wd[lo:hi], weights=r.count[lo:hi], minlength=7).astype("int64")
        if a.dtype.kind in "iu":
            return Dist(r.values, counts)
        s1, s2 = float(per_wd @ a), float(per_wd @ (a * a))
        return Dist(r.values, counts, n_eff=s1 * s1 / s2 if s2 > 0 else 0.0)

    def _reference_for(self, f: str, comp: np.ndarray) -> Dist:
        key = (f, tuple(int(c) for c in comp))
        if key not in self._ref_cache:
            a = self._mix(comp, None)
            self._ref_cache[key] = self.refs_[f].full if np.all(a == 1) and a.dtype.kind in "iu" else self._ref_dist(f, a)
        return self._ref_cache[key]

    def _block_len(self) -> int:
        """Days per calibration block: one.  Scores are standardised by sample size
        (:func:`~._verdict.scores`), so the days' null applies to weeks and months too, and a
        one-month reference gives ~30 nearly independent blocks (whole-week or month blocks
        would give 4 or none)."""
        return 1

    def _block_step(self, L: int) -> int:
        return 1

    def _calibrate(self) -> pd.DataFrame:
        """Null distribution of every (feature, statistic): each reference day against the
        reference minus that day, reweighted to the day's weekday (its calendar make-up).
        Both sides are counts on the reference's value grid, kept by weekday and updated a
        day at a time as the block slides (:mod:`._grid`).  Values are standardised by
        sample size (``score``) and fitted (:class:`~._verdict.NullFit`); the table keeps the
        raw values' mean and std beside the scores' fit and threshold."""
        L = self._block_len()
        days = self.days_
        step = self._block_step(L)
        starts = [i for i in range(0, len(days) - L + 1, step) if days[i + L - 1] - days[i] == L - 1]
        mixes = [(i, self._mix(np.bincount(_weekday(days[i:i + L]), minlength=7), np.arange(i, i + L))) for i in starts]
        day_wd = _weekday(days)
        threads = self._threads() if self.xp is np else 1
        with ThreadPoolExecutor(max_workers=threads) if threads > 1 else _Serial() as pool:
            nulls = list(pool.map(lambda r: self._null_values(r, L, mixes, day_wd), self.refs_.values()))
        sizes = []
        for values in nulls:
            n_ref, n_win = np.asarray(values["_n_ref"], dtype="float64"), np.asarray(values["_n_win"], dtype="float64")
            sizes.append((int(np.rint(np.median(n_ref))) if len(n_ref) else 0,
                          int(np.rint(np.median(n_win))) if len(n_win) else 0))
        windows = [self._window_sizes(r) for r in self.refs_.values()]
        with ThreadPoolExecutor(max_workers=self._threads()) if self._threads() > 1 else _Serial() as pool:
            sampling = list(pool.map(lambda a: (self._sampling_null(a[0], *a[1]), self._sampling_null(a[0], *a[2])),
                                     zip(self.refs_.values(), sizes, windows)))
        rows = []
        for (f, r), values, (drawn, drawn_w), (m_ref, m_win), (w_ref, w_win) in zip(
                self.refs_.items(), nulls, sampling, sizes, windows):
            n_ref, n_win = np.asarray(values["_n_ref"], dtype="float64"), np.asarray(values["_n_win"], dtype="float64")
            for s in r.stats:
                v = np.asarray(values[s], dtype="float64")
                z = scores(s, v, n_ref, n_win)
                keep = np.isfinite(v)
                v = v[keep]
                rows.append({"feature": f, "statistic": s,
                             "null_mean": float(v.mean()) if len(v) else np.nan,
                             "null_std": float(v.std(ddof=1)) if len(v) > 1 else np.nan,
                             "n_null": len(v), "block_days": L, "z": z[keep],
                             "fit": NullFit.of_sampling(z[keep], scores(s, drawn[s], m_ref, m_win),
                                                        scores(s, drawn_w[s], w_ref, w_win)),
                             "block_n_ref": float(n_ref[keep].mean()) if keep.any() else np.nan,
                             "block_n_win": float(n_win[keep].mean()) if keep.any() else np.nan})
        n_tests = sum(row["fit"].ok for row in rows)
        self.verdict_: dict[tuple[str, str], tuple[NullFit, float]] = {}
        alpha = self.window_alarm_rate / max(n_tests, 1)
        self.alpha_test_ = alpha
        for row in rows:
            fit, z = row.pop("fit"), row.pop("z")
            if self.alarm == "family":
                zt = fit.threshold(alpha)
            elif self.alarm == "std":
                zt = fit.mean + self.k_std * fit.std if fit.ok else np.inf
            else:
                zt = float(np.quantile(z[np.isfinite(z)], self.quantile)) if fit.ok else np.inf
            self.verdict_[(row["feature"], row["statistic"])] = (fit, zt)
            row.update(score_mean=fit.mean, score_std=fit.std, overdispersion=fit.overdispersion, score_threshold=zt,
                       alpha_test=alpha if self.alarm == "family" else np.nan, n_tests=n_tests)
            # the threshold a typical reference day faced, in the statistic's own units
            thr = float(from_score(row["statistic"], zt, row["block_n_ref"], row["block_n_win"]))
            row["threshold"] = max(thr, self.min_effect.get(row["statistic"], -np.inf)) if np.isfinite(thr) else thr
        cols = ["feature", "statistic", "null_mean", "null_std", "n_null", "block_days", "threshold", "score_mean",
                "score_std", "overdispersion", "score_threshold", "alpha_test", "n_tests", "block_n_ref", "block_n_win"]
        return pd.DataFrame(rows, columns=cols)

    def _window_sizes(self, r: _FeatureRef) -> tuple[int, int]:
        """A typical compared window's size and its reference's, for the sampling null's shape:
        a day, a week or a month of the reference's mean rows per day, against the reference
        (for days, with ``calendar="weekday"``: its days of one weekday)."""
        total = float(r.full.total)
        per_day = total / max(len(self.days_), 1)
        days = {"D": 1, "W": 7, "M": 30}[self.frequency]
        n_ref = total / 7 if self.frequency == "D" and self.calendar == "weekday" else total
        return int(round(n_ref)), max(1, int(round(per_day * days)))

    def _sampling_null(self, r: _FeatureRef, n_ref: int, n_win: int) -> dict[str, np.ndarray]:
        """Each statistic under pure sampling: ``SAMPLING_DRAWS`` pairs of multinomial draws
        of a block's and a rest's typical sizes from the whole reference, on its value grid
        (host arrays; a fixed seed per feature, so a fit is reproducible)."""
        out = {s: np.full(SAMPLING_DRAWS, np.nan) for s in r.stats}
        if n_ref < 1 or n_win < 1:
            return out
        rng = np.random.default_rng([20_141, zlib.crc32(r.info.feature.encode())])
        values, weights = _coarse_grid(r.values, r.full.weights, r.info)
        p = weights / float(weights.sum())
        grid = Grid.build(values, r.info, np)
        for b in range(SAMPLING_DRAWS):
            R = rng.multinomial(n_ref, p).astype("float64")
            W = rng.multinomial(n_win, p).astype("float64")
            for s in r.stats:
                if s in GRID_STATISTICS:
                    out[s][b] = grid_value(s, grid, R, W, float(n_ref))
                else:
                    nz = np.flatnonzero(W)
                    out[s][b] = STATISTICS[s].value_of(Dist(values, R.astype("int64")),
                                                       Dist(values[nz], W[nz].astype("int64")), r.info)
        return out

    def _null_values(self, r: _FeatureRef, L: int, mixes, day_wd) -> dict[str, list]:
        xp = self.xp
        nv = len(r.values)
        grid = Grid.build(r.values, r.info, xp)
        # float64 holds these counts exactly (< 2**53) and lets the weekday mix be one BLAS matvec
        by_wd = xp.asarray(r.by_weekday, dtype=xp.float64)
        vidx, count = xp.asarray(r.vidx), xp.asarray(r.count, dtype=xp.float64)
        per_wd_all = r.by_weekday.sum(axis=1)
        block = xp.zeros((7, nv), dtype=xp.float64)  # the block's counts by weekday
        W = xp.zeros(nv, dtype=xp.float64)  # the block's counts
        have = [0, 0]  # days [have[0], have[1]) are in ``block``
        mixed: dict[bytes, object] = {}  # a @ by_wd, per distinct weekday mix

        def move(d, sign):
            lo, hi = int(r.day_start[d]), int(r.day_start[d + 1])
            c = xp.bincount(vidx[lo:hi], weights=count[lo:hi], minlength=nv)
            if sign > 0:
                block[day_wd[d]] += c
                W[...] += c
            else:
                block[day_wd[d]] -= c
                W[...] -= c

        values: dict[str, list] = {s: [] for s in (*r.stats, "_n_ref", "_n_win")}
        for i, a in mixes:
            if i >= have[1]:
                block[...] = 0
                W[...] = 0
                have = [i, i]
            for d in range(have[0], i):
                move(d, -1)
            for d in range(max(have[1], i), i + L):
                move(d, +1)
            have = [i, i + L]
            if r.day_start[i + L] == r.day_start[i]:
                continue
            af = xp.asarray(a, dtype=xp.float64)
            key = a.tobytes() + a.dtype.str.encode()
            if key not in mixed:
                mixed[key] = af @ by_wd
            R = mixed[key] - af @ block
            total = float(R.sum())
            if not total > 0:
                continue
            weighted = a.dtype.kind == "f"
            n_eff = total
            if weighted:
                per_wd = per_wd_all - _host(block.sum(axis=1))
                s1, s2 = float(per_wd @ a), float(per_wd @ (a * a))
                n_eff = s1 * s1 / s2 if s2 > 0 else 0.0
            dists = None
            values["_n_ref"].append(n_eff)
            values["_n_win"].append(float(W.sum()))
            for s in r.stats:
                if s in GRID_STATISTICS:
                    values[s].append(grid_value(s, grid, R, W, n_eff, weighted=weighted))
                else:  # a statistic without a grid form: its Dist form on the two sides
                    if dists is None:
                        hr, hw = _host(R), np.rint(_host(W)).astype("int64")
                        nz = np.flatnonzero(hw)
                        ref = Dist(r.values, hr, n_eff=n_eff) if weighted else Dist(r.values, np.rint(hr).astype("int64"))
                        dists = (ref, Dist(r.values[nz], hw[nz]))
                    values[s].append(STATISTICS[s].value_of(dists[0], dists[1], r.info))
        return values

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
        null = {(f, s): row for f, s, row in zip(self.null_["feature"], self.null_["statistic"],
                                                  self.null_[["threshold", "null_mean", "null_std", "n_null"]].to_numpy())}
        for f in self.refs_:
            if f not in counts:
                raise SpecError(f"no counts for feature {f} to compare with the reference {self.label_}")
        todo = [(f, r, counts[f]) for f, r in self.refs_.items() if len(counts[f])]
        threads = self._threads()
        with ThreadPoolExecutor(max_workers=threads) if threads > 1 else _Serial() as pool:
            pending = list(pool.map(lambda a: self._prepare_feature(*a), todo))
            groups = [(size, pf, self._reference_for(pf.f, comp), wsel)
                      for pf in pending for wsel, comp, size in pf.tasks]
            groups.sort(key=lambda t: -t[0])  # largest first: the threads finish together
            list(pool.map(lambda a: self._compare_group(*a[1:]), groups))
        self.verdict_seconds_ = 0.0
        parts = [self._columns(pf, null) for pf in pending]
        if parts:
            cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        else:
            cols = {k: np.zeros(0, dt) for k, dt in (
                ("window_start", "datetime64[us]"), ("window_end", "datetime64[us]"), ("feature", object),
                ("statistic", object), ("value", "float64"), ("p_value", "float64"), ("p_method", object),
                ("threshold", "float64"), ("null_mean", "float64"), ("null_std", "float64"), ("n_null", "int64"),
                ("n_reference", "int64"), ("n_window", "int64"), ("ks_en", "float64"), ("score", "float64"),
                ("score_threshold", "float64"), ("p_null", "float64"), ("exceedance", "float64"), ("valarm", bool))}
        p_value, method = cols["p_value"], cols["p_method"]
        ks = np.isfinite(cols["ks_en"])
        if ks.any():
            idx = np.flatnonzero(ks)
            p, approx = ks_pvalues(cols["value"][idx], cols["ks_en"][idx], exact_tail=self.exact_p)
            p_value[idx] = p
            method[idx[approx]] = "smirnov_approx"
        value = cols["value"]
        floor = np.asarray([self.min_effect.get(s, -np.inf) for s in cols["statistic"]], dtype="float64")
        verdict = cols
        thr = np.where(np.isfinite(verdict["threshold"]), np.maximum(verdict["threshold"], floor), verdict["threshold"])
        start = pd.DatetimeIndex(cols["window_start"])
        table = pd.DataFrame({
            "reference": self.label_,
            "window": _labels(start, self.frequency),
            "window_start": start, "window_end": pd.DatetimeIndex(cols["window_end"]),
            "feature": cols["feature"], "statistic": cols["statistic"], "value": value, "p_value": p_value,
            "p_method": method, "threshold": thr,
            "alarm": verdict["valarm"] & (value >= floor),
            "p_below_alpha": p_value < self.alpha,
            "null_mean": cols["null_mean"], "null_std": cols["null_std"], "n_null": cols["n_null"],
            "n_reference": cols["n_reference"], "n_window": cols["n_window"],
            "score": verdict["score"], "score_threshold": verdict["score_threshold"], "p_null": verdict["p_null"],
            "exceedance": verdict["exceedance"],
        }, columns=SHIFT_COLUMNS)
        t_verdict = time.perf_counter()
        _, win = np.unique(cols["window_start"], return_inverse=True)
        alarmed = np.bincount(win.ravel(), weights=table["alarm"].to_numpy(), minlength=int(win.max()) + 1 if len(win) else 0)
        table["window_alarm"] = alarmed[win.ravel()] > 0
        self.verdict_seconds_ += time.perf_counter() - t_verdict  # the window-level rule's share of calculate
        return ShiftResult(table, self.null_)

    def _verdicts(self, f: str, stats_, value: np.ndarray, n_ref: np.ndarray, n_win: np.ndarray) -> dict[str, np.ndarray]:
        """A feature's rows (``value``: windows x statistics): score, its threshold (as a score
        and in the statistic's units for the window's sizes), calibrated p-value, exceedance
        and test-level alarm, each windows x statistics."""
        nw, ns = value.shape
        out = {k: np.full((nw, ns), np.nan) for k in ("score", "score_threshold", "threshold", "p_null", "exceedance")}
        out["valarm"] = np.zeros((nw, ns), bool)
        for k, s in enumerate(stats_):
            fit, zt = self.verdict_[(f, s)]
            z = scores(s, value[:, k], n_ref, n_win)
            out["score"][:, k] = z
            out["score_threshold"][:, k] = zt
            out["threshold"][:, k] = from_score(s, zt, n_ref, n_win)
            if self.alarm == "family":
                out["p_null"][:, k] = fit.p_value(z, self.alpha_test_)
            out["exceedance"][:, k] = fit.exceedance(z, zt)
            out["valarm"][:, k] = np.isfinite(zt) & np.isfinite(z) & (z > zt)
        return {k: v.ravel() for k, v in out.items()}

    def _prepare_feature(self, f: str, r: _FeatureRef, c: DayCounts) -> "_Pending":
        """One feature's windows: their distinct values and counts (a window's entries are
        contiguous), grouped by weekday mix (windows of one group share a reference) and cut
        into shares of about ``_SHARE_ENTRIES`` entries; the result arrays, filled per share."""
        starts, lengths = _runs(c.day)
        days = c.day[starts]
        keys = _window_keys(days, self.frequency)
        kstart, klen = _runs(keys)
        nw = len(kstart)
        wstart, wend = _window_bounds_many(keys[kstart], self.frequency)
        day_win = np.repeat(np.arange(nw), klen)
        if np.all(klen == 1):  # one day per window: its entries are already distinct and sorted
            x, cnt = c.value, c.count
            ws = starts
            we = starts + lengths
        else:
            wid, x, cnt = collapse(np.repeat(day_win, lengths), c.value, c.count)
            ws = np.searchsorted(wid, np.arange(nw))
            we = np.append(ws[1:], len(x))
        comp = np.bincount(day_win * 7 + _weekday(days), minlength=nw * 7).reshape(nw, 7)
        ucomp, group = np.unique(comp, axis=0, return_inverse=True)
        group = group.ravel()
        sizes = we - ws
        tasks = []
        for g in range(len(ucomp)):
            wsel = np.flatnonzero(group == g)
            cum = np.cumsum(sizes[wsel])
            cut = np.searchsorted(cum, np.arange(_SHARE_ENTRIES, int(cum[-1]), _SHARE_ENTRIES), side="right")
            for part in np.split(wsel, np.unique(cut)):
                if len(part):
                    tasks.append((part, ucomp[g], int(sizes[part].sum())))
        ns = len(r.stats)
        nbins = len(r.info.edges) + 1
        return _Pending(f, r, nw, wstart, wend, x, cnt, ws, we, tasks, Walk.empty(nw, nbins),
                        np.full((nw, ns), np.nan), np.full((nw, ns), np.nan), np.full((nw, ns), "", dtype=object),
                        np.full((nw, ns), np.nan), np.zeros(nw, "int64"))

    def _compare_group(self, pf: "_Pending", ref: Dist, wsel: np.ndarray) -> None:
        """Every statistic of the windows ``wsel`` of a feature against their reference ``ref``."""
        r = pf.r
        pf.n_ref[wsel] = ref.n
        walk(ref, r.info, pf.x, pf.cnt, pf.ws, pf.we, wsel, pf.walk, r.stats)  # n and KS always
        n = pf.walk.n[wsel]
        batch = None
        for k, s in enumerate(r.stats):
            st = STATISTICS[s]
            todo = np.zeros(0, "int64")
            if walked(s, r.info):
                pf.value[wsel, k] = walk_values(s, ref, r.info, pf.walk, wsel)
                if s == "ks":
                    exact = np.zeros(len(wsel), bool)  # scipy's method "auto" is exact there
                    if ref.exact:
                        exact = np.maximum(n, int(ref.total)) <= MAX_EXACT_N
                    m_ = float(ref.total) if ref.exact else ref.n_eff
                    pf.ks_en[wsel[~exact], k] = np.maximum(1.0, np.round(m_ * n[~exact] / (m_ + n[~exact])))
                    todo = np.flatnonzero(exact)  # scipy's exact p-value: needs the samples
            elif s == "wasserstein_clipped":
                pf.value[wsel, k] = clipped_wasserstein(ref, r.info, pf.x, pf.cnt, pf.ws, pf.we, wsel)
            elif s in BATCH_STATISTICS:
                if batch is None:
                    take = np.concatenate([np.arange(pf.ws[w], pf.we[w]) for w in wsel])
                    wid = np.repeat(np.arange(len(wsel)), pf.we[wsel] - pf.ws[wsel])
                    batch = Batch.build(ref, wid, pf.x[take], pf.cnt[take], len(wsel))
                pf.value[wsel, k], pf.p_value[wsel, k] = batch_values(s, batch, r.info)
            else:  # a statistic without a batch form: its Dist form, window by window
                todo = np.arange(len(wsel))
            for j in todo:
                w = wsel[j]
                win = Dist(pf.x[pf.ws[w]:pf.we[w]], pf.cnt[pf.ws[w]:pf.we[w]])
                pf.value[w, k], pf.p_value[w, k] = st.fn(ref, win, r.info)
            if st.p_value:
                pf.method[wsel, k] = "exact" if ref.exact else "effective_n"

    def _columns(self, pf: "_Pending", null) -> dict[str, np.ndarray]:
        """A feature's rows of the table, window-major (``ks_en``: the KS rows' effective
        size for the p-value, NaN elsewhere)."""
        f, stats_, nw = pf.f, pf.r.stats, pf.nw
        ns = len(stats_)
        nl = np.asarray([null[(f, s)] for s in stats_], dtype="float64").reshape(ns, 4)
        rep = lambda a: np.repeat(a, ns)  # noqa: E731 - per window -> per row
        tile = lambda a: np.tile(a, nw)  # noqa: E731 - per statistic -> per row
        t0 = time.perf_counter()
        verdict = self._verdicts(f, stats_, pf.value, pf.n_ref, pf.walk.n)
        self.verdict_seconds_ += time.perf_counter() - t0
        return {**verdict,
            "window_start": rep(pf.wstart), "window_end": rep(pf.wend),
            "feature": np.full(nw * ns, f, dtype=object), "statistic": tile(np.asarray(stats_, dtype=object)),
            "value": pf.value.ravel(), "p_value": pf.p_value.ravel(), "p_method": pf.method.ravel(),
            "null_mean": tile(nl[:, 1]), "null_std": tile(nl[:, 2]),
            "n_null": tile(nl[:, 3]).astype("int64"), "n_reference": rep(pf.n_ref), "n_window": rep(pf.walk.n),
            "ks_en": pf.ks_en.ravel(),
        }


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


def _window_bounds_many(keys: np.ndarray, freq: str):
    from ..core.time import parse_window

    return parse_window(freq).bounds(np.asarray(keys))


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
