"""Distribution shift statistics: exact, fast, calibrated against false alarms.

* :func:`ks_2samp` — the two-sample KS test with the meaning of
  ``scipy.stats.ks_2samp(a, b)`` (two-sided, ``method="auto"``), on NumPy or CuPy
  arrays; :func:`value_counts`, :func:`merge_counts`, :func:`ks_from_counts` give
  the same from exact value counts, which merge across partitions by addition.
* :func:`day_value_counts` / :class:`DayCounts` — the reduction a worker sends
  back: exact counts per ``(day, value)`` of one feature, computed with the
  backend's array module; windows (day, week, month) are unions of days.
* :data:`STATISTICS` — statistics by name (KS, Wasserstein, Jensen-Shannon, PSI,
  chi-square, Cramér's V, total variation, missing and out-of-range rates).
* :class:`ShiftCalculator` — ``fit`` on a reference (counted once; nulls learned
  from leave-one-out reference days, weekday-matched, on size-standardised
  scores), then ``calculate`` on any windows; :func:`alarms` lists the alarms of a
  table, :func:`window_verdicts` one verdict per window.
* Thresholds (:mod:`rapidseval.shift.thresholds`), handed to the calculator:
  :class:`FamilyThreshold` (default: a window without shift alarms at most at
  ``window_alarm_rate``), :class:`StandardDeviationThreshold`,
  :class:`QuantileThreshold`, :class:`ConstantThreshold`;
  :func:`threshold_from_options` builds one from a job file's keys.
* :func:`explain` — what moved in each alarmed (window, feature), with an effect
  size (category shares, percentiles, out-of-range share); :func:`alarmed_pairs`
  decides which pairs are alarmed.
* :func:`attribute` — ranks features by how their shift tracks a metric's drop.
"""

from __future__ import annotations

from ._attribution import attribute, metric_windows
from ._calculator import (CALENDARS, FREQUENCIES, SHIFT_COLUMNS, WINDOW_COLUMNS, ShiftCalculator, ShiftResult, alarms,
                          check_statistics, window_keys, window_verdicts)
from ._counts import DayCounts, count_days, day_value_counts
from ._explain import EXPLAIN_COLUMNS, alarmed_pairs, explain, explanation_lines
from ._ks import (MAX_EXACT_N, KSResult, ks_2samp, ks_from_counts, ks_pvalue, ks_pvalues, kstwo_sf, merge_counts,
                  smirnov_sf, value_counts)
from ._stats import (DEFAULT_STATISTICS, KINDS, PSI_EPS, STATISTICS, Dist, chi2_test, contingency,
                     default_statistics, feature_kind)
from ._stream import ShiftAccumulator, ShiftReduce
from .thresholds import (ALARM_METHODS, ConstantThreshold, FamilyThreshold, QuantileThreshold,
                         StandardDeviationThreshold, Threshold, threshold_from_options)

__all__ = [
    "KSResult", "ks_2samp", "ks_from_counts", "ks_pvalue", "ks_pvalues", "kstwo_sf", "smirnov_sf", "merge_counts", "value_counts",
    "MAX_EXACT_N",
    "DayCounts", "day_value_counts", "count_days", "Dist", "STATISTICS", "KINDS", "DEFAULT_STATISTICS", "PSI_EPS",
    "default_statistics", "feature_kind", "chi2_test", "contingency",
    "ShiftCalculator", "ShiftResult", "alarms", "check_statistics", "FREQUENCIES", "CALENDARS", "ALARM_METHODS",
    "SHIFT_COLUMNS", "WINDOW_COLUMNS", "window_verdicts", "EXPLAIN_COLUMNS", "alarmed_pairs", "explain",
    "explanation_lines", "ShiftAccumulator", "ShiftReduce", "attribute", "metric_windows", "window_keys",
    "Threshold", "FamilyThreshold", "StandardDeviationThreshold", "QuantileThreshold", "ConstantThreshold",
    "threshold_from_options",
]
