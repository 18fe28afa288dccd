"""Calculator: fit on a reference period, calculate on every window; calibrated alarms.

NannyML's shape (fit -> calculate -> result table) with two differences that
matter at millions of rows:

* **Thresholds come from the reference itself, leaving the sub-window out.**
  The reference is cut into sub-windows of the evaluation frequency (one day
  for daily windows, seven days for weekly ones, 14 days for monthly windows
  over a one-month reference: the largest whole-weeks block that leaves at
  least as much behind); every block is compared with the reference *minus
  that block* (its counts subtracted) and the values form a null
  distribution.  Alarm when a window's value exceeds ``mean + k * std`` of it
  (or a quantile) and an optional minimum effect size.
* **Calendar composition is compared like with like** (``calendar="weekday"``):
  for each window, the reference's days are reweighted so that the reference
  has the window's weekday mix (January 2020 has five Fridays, February four;
  a Monday is compared with the reference's Mondays).  Sub-windows are
  compared with their leave-out rest reweighted the same way, so the null
  and the windows are built alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import SpecError
from ._counts import DayCounts
from ._stats import STATISTICS, Dist, RefInfo, default_statistics, feature_kind, ref_info

__all__ = ["ShiftCalculator", "ShiftResult", "FREQUENCIES", "ALARM_METHODS", "CALENDARS", "alarms",
           "SHIFT_COLUMNS", "check_statistics"]

FREQUENCIES = {"D": "day", "W": "week starting Monday", "M": "calendar month"}
ALARM_METHODS = {"std": "mean + k_std * std of the null", "quantile": "a quantile of the null"}
CALENDARS = {"weekday": "reference reweighted to the window's weekday mix", "none": "reference as is"}

SHIFT_COLUMNS = ["reference", "window", "window_start", "window_end", "feature", "statistic", "value",
                 "p_value", "p_method", "threshold", "alarm", "p_below_alpha", "null_mean", "null_std",
                 "n_null", "n_reference", "n_window"]

_US_PER_DAY = 86_400_000_000


def _weekday(days):
    return (np.asarray(days, dtype="int64") + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday


def _window_keys(days: np.ndarray, freq: str) -> np.ndarray:
    from ..replay import parse_window

    if freq not in FREQUENCIES:
        raise SpecError(f"unknown shift window {freq!r}; choose one of {', '.join(FREQUENCIES)}")
    return parse_window(freq).keys(np.asarray(days, dtype="int64") * _US_PER_DAY)


def _window_bounds(key: int, freq: str):
    from ..replay import parse_window

    start, end = parse_window(freq).bounds(np.asarray([key]))
    return start[0], end[0]


def _label(start, freq: str) -> str:
    return str(start)[:7] if freq == "M" else str(start)[:10]


def check_statistics(feature: str, names: Iterable[str]) -> tuple[str, ...]:
    """Validate statistic names for a feature (registry choices listed in the error)."""
    names = tuple(names)
    for name in names:
        if name not in STATISTICS:
            raise SpecError(f"unknown shift statistic {name!r} for {feature}; choose from {', '.join(STATISTICS)}")
        kind = feature_kind(feature)
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
    frequency : {"D", "W", "M"}
    calendar : {"weekday", "none"}
    alarm : {"std", "quantile"}
    k_std : float
        ``alarm="std"``: threshold = mean + k_std * std of the null.
    quantile : float
        ``alarm="quantile"``: threshold = this quantile of the null.
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
    """

    def __init__(self, features=None, *, statistics=None, per_feature=None, frequency: str = "M",
                 calendar: str = "weekday", alarm: str = "std", k_std: float = 3.0, quantile: float = 0.99,
                 min_effect: Mapping[str, float] | None = None, bins: int = 10, fill_value: float = -1.0,
                 alpha: float = 0.05, max_categories: int = 64):
        self.features = None if features is None else tuple(features)
        self.statistics = None if statistics is None else tuple(statistics)
        self.per_feature = dict(per_feature or {})
        self.frequency = frequency
        self.calendar = calendar
        self.alarm = alarm
        self.k_std = k_std
        self.quantile = quantile
        self.min_effect = dict(min_effect or {})
        self.bins = bins
        self.fill_value = fill_value
        self.alpha = alpha
        self.max_categories = max_categories
        self._validate()

    def _validate(self):
        for name, table, value in (("frequency", FREQUENCIES, self.frequency), ("calendar", CALENDARS, self.calendar),
                                   ("alarm", ALARM_METHODS, self.alarm)):
            if value not in table:
                raise SpecError(f"unknown shift {name} {value!r}; choose one of {', '.join(table)}")
        for name in self.min_effect:
            if name not in STATISTICS:
                raise SpecError(f"min_effect names unknown statistic {name!r}; choose from {', '.join(STATISTICS)}")
        if not 0 < self.quantile < 1:
            raise SpecError(f"shift quantile must be in (0, 1), got {self.quantile}")
        if self.bins < 2:
            raise SpecError(f"shift bins must be at least 2, got {self.bins}")

    def statistics_for(self, feature: str) -> tuple[str, ...]:
        if feature in self.per_feature:
            return check_statistics(feature, self.per_feature[feature])
        if self.statistics is not None:
            return check_statistics(feature, [s for s in self.statistics if feature_kind(feature) in STATISTICS[s].kinds])
        return default_statistics(feature)

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
            values, vidx = np.unique(c.value, return_inverse=True)
            fdays = c.days()
            days = fdays if days is None else np.union1d(days, fdays)
            full = Dist(values.astype("float64"), np.bincount(vidx, weights=c.count, minlength=len(values)).astype("int64"))
            info = ref_info(f, full, fill_value=self.fill_value, bins=self.bins, max_categories=self.max_categories)
            self.refs_[f] = _FeatureRef(info, self.statistics_for(f), values.astype("float64"), vidx, c.count,
                                        None, c, full)
        self.days_ = days
        for r in self.refs_.values():
            r.day_pos = np.searchsorted(days, r.counts.day)
        self._ref_cache: dict = {}
        self.null_ = self._calibrate()
        return self

    def _weights(self, comp: np.ndarray, exclude: np.ndarray | None) -> np.ndarray | None:
        """Per reference day multiplier giving the reference the weekday mix ``comp``
        (days in ``exclude`` left out); None when every day counts once."""
        keep = np.ones(len(self.days_), bool)
        if exclude is not None:
            keep[exclude] = False
        if self.calendar == "none":
            return None if exclude is None else keep.astype("float64")
        wd = _weekday(self.days_)
        have = np.bincount(wd[keep], minlength=7)
        if np.any((comp > 0) & (have == 0)):  # the reference lacks a weekday the window has
            return None if exclude is None else keep.astype("float64")
        per_wd = np.where(have > 0, comp / np.maximum(have, 1), 0.0)
        w = np.where(keep, per_wd[wd], 0.0)
        pos = w[w > 0]
        if exclude is None and np.all(pos == pos[0]) and np.all(keep):
            return None if len(pos) == len(w) else w / pos[0]
        return w

    def _ref_dist(self, f: str, w: np.ndarray | None) -> Dist:
        r = self.refs_[f]
        if w is None:
            return r.full
        if np.all((w == 0) | (w == w[w > 0][0])):  # plain subset of days: integer counts
            keep = w[r.day_pos] > 0
            return Dist(r.values, np.bincount(r.vidx[keep], weights=r.count[keep], minlength=len(r.values)).astype("int64"))
        mult = w[r.day_pos]
        per_day = np.bincount(r.day_pos, weights=r.count, minlength=len(w))
        n_eff = (per_day @ w) ** 2 / (per_day @ (w * w))
        return Dist(r.values, np.bincount(r.vidx, weights=r.count * mult, minlength=len(r.values)), n_eff=n_eff)

    def _reference_for(self, f: str, comp: np.ndarray) -> Dist:
        key = (f, tuple(int(c) for c in comp))
        if key not in self._ref_cache:
            self._ref_cache[key] = self._ref_dist(f, self._weights(comp, None))
        return self._ref_cache[key]

    def _block_len(self) -> int:
        n = len(self.days_)
        if self.frequency == "D":
            return 1
        if self.frequency == "W":
            return min(7, max(1, n // 2))
        half = n // 2
        return half // 7 * 7 if half >= 7 else max(1, half)

    def _calibrate(self) -> pd.DataFrame:
        L = self._block_len()
        days = self.days_
        rows = []
        starts = [i for i in range(len(days) - L + 1) if days[i + L - 1] - days[i] == L - 1]
        for f, r in self.refs_.items():
            slices = r.counts.day_slices()
            values = {s: [] for s in r.stats}
            for i in starts:
                block = np.arange(i, i + L)
                bdays = days[block]
                sl = [slices[int(d)] for d in bdays if int(d) in slices]
                if not sl:
                    continue
                win = _dist_of(r.counts, slice(sl[0].start, sl[-1].stop))
                comp = np.bincount(_weekday(bdays), minlength=7)
                w = self._weights(comp, block)
                if w is not None and not np.any(w > 0):
                    continue
                ref = self._ref_dist(f, w)
                for s in r.stats:
                    values[s].append(STATISTICS[s].fn(ref, win, r.info)[0])
            for s in r.stats:
                v = np.asarray(values[s], dtype="float64")
                v = v[np.isfinite(v)]
                mean = float(v.mean()) if len(v) else np.nan
                std = float(v.std(ddof=1)) if len(v) > 1 else np.nan
                if self.alarm == "std":
                    thr = mean + self.k_std * std
                else:
                    thr = float(np.quantile(v, self.quantile)) if len(v) else np.nan
                thr = max(thr, self.min_effect.get(s, -np.inf)) if np.isfinite(thr) else thr
                rows.append({"feature": f, "statistic": s, "null_mean": mean, "null_std": std, "n_null": len(v),
                             "block_days": L, "threshold": thr})
        return pd.DataFrame(rows)

    # -- calculate --------------------------------------------------------------------------
    def calculate(self, counts: Mapping[str, DayCounts]) -> "ShiftResult":
        """Compare every window of ``counts`` (one :class:`DayCounts` per feature) with the reference."""
        if not hasattr(self, "refs_"):
            raise SpecError("fit the shift calculator on a reference before calculate")
        null = self.null_.set_index(["feature", "statistic"])
        rows = []
        for f, r in self.refs_.items():
            if f not in counts:
                raise SpecError(f"no counts for feature {f} to compare with the reference {self.label_}")
            c = counts[f]
            if not len(c):
                continue
            slices = c.day_slices()
            days = np.fromiter(slices, dtype="int64")
            keys = _window_keys(days, self.frequency)
            for key in np.unique(keys):
                wdays = days[keys == key]
                win = _dist_of(c, slice(slices[int(wdays[0])].start, slices[int(wdays[-1])].stop))
                ref = self._reference_for(f, np.bincount(_weekday(wdays), minlength=7))
                start, end = _window_bounds(int(key), self.frequency)
                for s in r.stats:
                    value, p = STATISTICS[s].fn(ref, win, r.info)
                    nl = null.loc[(f, s)]
                    thr = float(nl["threshold"])
                    floor = self.min_effect.get(s, -np.inf)
                    rows.append({
                        "reference": self.label_, "window": _label(start, self.frequency),
                        "window_start": start, "window_end": end, "feature": f, "statistic": s,
                        "value": float(value), "p_value": float(p),
                        "p_method": ("exact" if ref.exact else "effective_n") if STATISTICS[s].p_value else "",
                        "threshold": thr,
                        "alarm": bool(np.isfinite(thr) and value > thr and value >= floor),
                        "p_below_alpha": bool(p < self.alpha), "null_mean": float(nl["null_mean"]),
                        "null_std": float(nl["null_std"]), "n_null": int(nl["n_null"]),
                        "n_reference": ref.n, "n_window": win.n,
                    })
        return ShiftResult(pd.DataFrame(rows, columns=SHIFT_COLUMNS), self.null_)


def _dist_of(c: DayCounts, sl: slice) -> Dist:
    sub = DayCounts(c.day[sl], c.value[sl], c.count[sl])
    v, w = sub.values()
    return Dist(v, w.astype("int64"))


def alarms(table: pd.DataFrame) -> pd.DataFrame:
    """The alarm rows of a shift table: feature, window, statistic, value, threshold."""
    cols = ["feature", "window", "statistic", "value", "threshold"]
    if table is None or table.empty or "alarm" not in table:
        return pd.DataFrame(columns=cols)
    out = table[table["alarm"].astype(bool)]
    return out.sort_values(["window", "feature", "statistic"])[cols].reset_index(drop=True)


@dataclass
class ShiftResult:
    """The tidy shift table (one row per window x feature x statistic) and the null it was judged by."""

    table: pd.DataFrame
    null: pd.DataFrame

    def to_df(self) -> pd.DataFrame:
        return self.table

    def alarms(self) -> pd.DataFrame:
        return alarms(self.table)
