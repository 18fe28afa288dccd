"""Thresholds: how a test's null becomes the line its statistic alarms above.

Objects handed to :class:`~rapidseval.shift.ShiftCalculator` (``threshold=...``), in
the manner of NannyML's ``StandardDeviationThreshold`` / ``ConstantThreshold``, in
place of flags repeated in every caller:

* :class:`FamilyThreshold` (the default): a window of ``T`` tests (features x
  statistics) alarms when one of them has a calibrated p-value at most
  ``window_alarm_rate / T``, so a window without shift alarms at most at that rate
  (:mod:`rapidseval.shift._verdict`).
* :class:`StandardDeviationThreshold`: each test on its own, its size-standardised
  score above ``mean + std_multiplier * std`` of the fitted null.
* :class:`QuantileThreshold`: each test on its own, its score above a quantile of the
  reference days' null scores.
* :class:`ConstantThreshold`: fixed bounds in the statistic's own units (no null).

The first three learn on the size-standardised score (see :func:`~._verdict.scores`)
and accept ``min_effect`` (statistic -> value): a test alarms only when its value is
also at least that large.  :func:`threshold_from_options` builds one from a job
file's keys (``alarm``, ``window_alarm_rate``, ``k_std``, ``quantile``, ``min_effect``).
"""

from __future__ import annotations

import abc
from dataclasses import KW_ONLY, dataclass, field
from typing import Mapping

import numpy as np

from ..core.errors import SpecError
from ._stats import STATISTICS
from ._verdict import NullFit, from_score, scores

__all__ = ["Threshold", "FamilyThreshold", "StandardDeviationThreshold", "QuantileThreshold", "ConstantThreshold",
           "WindowThresholds", "ALARM_METHODS", "threshold_from_options"]

#: the job file's ``alarm`` choices, each the threshold :func:`threshold_from_options` builds
ALARM_METHODS = {"family": "a window alarms at most at window_alarm_rate when nothing changed (fitted null, Bonferroni over its tests)",
                 "std": "score above mean + k_std * std of the null (per test, not family-calibrated)",
                 "quantile": "score above a quantile of the null (per test, not family-calibrated)"}


@dataclass(frozen=True)
class WindowThresholds:
    """One statistic's threshold for each of some windows, as a score and in the statistic's units."""

    score: np.ndarray
    value: np.ndarray


def _check_statistic_names(option: str, names) -> None:
    for name in names:
        if name not in STATISTICS:
            raise SpecError(f"{option} names unknown statistic {name!r}; choose from {', '.join(STATISTICS)}")


def _check_rate(option: str, value: float) -> None:
    if not 0 < value < 1:
        raise SpecError(f"shift {option} must be in (0, 1), got {value}")


class Threshold(abc.ABC):
    """How a test's fitted null becomes its alarm threshold.

    Subclasses implement :meth:`score_threshold`; the others have the per-test defaults
    (no calibrated p-value, a score threshold that holds for every window, alarm when the
    score is above it).
    """

    def test_level(self, n_tests: int) -> float:
        """Each test's level when a window holds ``n_tests`` tests (NaN: not family-calibrated)."""
        return np.nan

    @abc.abstractmethod
    def score_threshold(self, fit: NullFit, null_scores: np.ndarray, test_level: float) -> float:
        """The score above which a test alarms, learned from its null.

        Parameters
        ----------
        fit : NullFit
            The test's fitted null (size-standardised scores).
        null_scores : ndarray
            The reference days' own scores (finite where the statistic was).
        test_level : float
            :meth:`test_level` of the window's number of tests.
        """

    def p_values(self, fit: NullFit, score: np.ndarray, test_level: float) -> np.ndarray:
        """Calibrated p-values of ``score`` (NaN where the threshold does not calibrate them)."""
        return np.full(np.shape(score), np.nan)

    def window_thresholds(self, statistic: str, score_threshold: float, n_ref, n_win) -> WindowThresholds:
        """The threshold of windows of ``n_win`` rows against references of ``n_ref``."""
        value = from_score(statistic, score_threshold, n_ref, n_win)
        return WindowThresholds(np.full(np.shape(value), score_threshold), value)

    def alarms(self, statistic: str, value: np.ndarray, score: np.ndarray, bounds: WindowThresholds) -> np.ndarray:
        """Which tests of ``statistic`` pass their threshold (before :meth:`effect_floor`)."""
        return np.isfinite(bounds.score) & np.isfinite(score) & (score > bounds.score)

    def effect_floor(self, statistic: str) -> float:
        """The smallest value of ``statistic`` that may alarm (``-inf``: no floor)."""
        return -np.inf


class _WithMinEffect(Threshold):
    """A threshold on the null's scores with an optional minimum effect per statistic."""

    min_effect: Mapping[str, float]

    def __post_init__(self):
        object.__setattr__(self, "min_effect", dict(self.min_effect or {}))
        _check_statistic_names("min_effect", self.min_effect)

    def effect_floor(self, statistic: str) -> float:
        return self.min_effect.get(statistic, -np.inf)


@dataclass(frozen=True)
class FamilyThreshold(_WithMinEffect):
    """A window without shift alarms at most at ``window_alarm_rate`` (all its tests together).

    Each test's level is ``window_alarm_rate / T`` for ``T`` tests per window (Bonferroni,
    Holm's first step); its threshold is the fitted null's quantile at that level, widened
    for estimation from few reference days (:meth:`NullFit.threshold`).

    Parameters
    ----------
    window_alarm_rate : float
        The target share of windows without shift that alarm, in (0, 1).
    min_effect : mapping statistic -> float, optional
        Alarm only when the value is also at least this large.
    """

    window_alarm_rate: float = 0.01
    _: KW_ONLY
    min_effect: Mapping[str, float] | None = field(default=None)

    def __post_init__(self):
        super().__post_init__()
        _check_rate("window_alarm_rate", self.window_alarm_rate)

    def test_level(self, n_tests: int) -> float:
        return self.window_alarm_rate / max(n_tests, 1)

    def score_threshold(self, fit: NullFit, null_scores: np.ndarray, test_level: float) -> float:
        return fit.threshold(test_level)

    def p_values(self, fit: NullFit, score: np.ndarray, test_level: float) -> np.ndarray:
        return fit.p_value(score, test_level)


@dataclass(frozen=True)
class StandardDeviationThreshold(_WithMinEffect):
    """Each test on its own: its score above ``mean + std_multiplier * std`` of the fitted null.

    Parameters
    ----------
    std_multiplier : float
        Standard deviations above the null's mean (the job file's ``k_std``).
    min_effect : mapping statistic -> float, optional
        Alarm only when the value is also at least this large.
    """

    std_multiplier: float = 3.0
    _: KW_ONLY
    min_effect: Mapping[str, float] | None = field(default=None)

    def score_threshold(self, fit: NullFit, null_scores: np.ndarray, test_level: float) -> float:
        return fit.mean + self.std_multiplier * fit.std if fit.ok else np.inf


@dataclass(frozen=True)
class QuantileThreshold(_WithMinEffect):
    """Each test on its own: its score above a quantile of the reference days' null scores.

    Parameters
    ----------
    quantile : float
        In (0, 1).
    min_effect : mapping statistic -> float, optional
        Alarm only when the value is also at least this large.
    """

    quantile: float = 0.99
    _: KW_ONLY
    min_effect: Mapping[str, float] | None = field(default=None)

    def __post_init__(self):
        super().__post_init__()
        _check_rate("quantile", self.quantile)

    def score_threshold(self, fit: NullFit, null_scores: np.ndarray, test_level: float) -> float:
        return float(np.quantile(null_scores[np.isfinite(null_scores)], self.quantile)) if fit.ok else np.inf


@dataclass(frozen=True)
class ConstantThreshold(Threshold):
    """Fixed bounds in each statistic's own units: alarm when the value is above ``upper``
    or below ``lower`` (the null is still fitted, for the table's scores and p-values).

    Parameters
    ----------
    upper : float or mapping statistic -> float, optional
        One bound for every statistic, or one per statistic (statistics not named have none).
    lower : float or mapping statistic -> float, optional
        The same, below.
    """

    upper: float | Mapping[str, float] | None = None
    _: KW_ONLY
    lower: float | Mapping[str, float] | None = None

    def __post_init__(self):
        for option in ("upper", "lower"):
            if isinstance(getattr(self, option), Mapping):
                object.__setattr__(self, option, dict(getattr(self, option)))
                _check_statistic_names(option, getattr(self, option))
        for name in STATISTICS:
            lo, hi = self._bound(self.lower, name, -np.inf), self._bound(self.upper, name, np.inf)
            if not lo < hi:
                raise SpecError(f"constant threshold of {name}: lower {lo} must be below upper {hi}")

    @staticmethod
    def _bound(bound, statistic: str, missing: float) -> float:
        if bound is None:
            return missing
        if isinstance(bound, Mapping):
            return float(bound.get(statistic, missing))
        return float(bound)

    def score_threshold(self, fit: NullFit, null_scores: np.ndarray, test_level: float) -> float:
        return np.nan  # the bounds are in the statistic's units: see window_thresholds

    def window_thresholds(self, statistic: str, score_threshold: float, n_ref, n_win) -> WindowThresholds:
        upper = self._bound(self.upper, statistic, np.inf)
        score = scores(statistic, upper, n_ref, n_win)
        return WindowThresholds(score, np.full(np.shape(score), upper))

    def alarms(self, statistic: str, value: np.ndarray, score: np.ndarray, bounds: WindowThresholds) -> np.ndarray:
        value = np.asarray(value, dtype="float64")
        return (value > bounds.value) | (value < self._bound(self.lower, statistic, -np.inf))


def threshold_from_options(alarm: str = "family", *, window_alarm_rate: float = 0.01, k_std: float = 3.0,
                           quantile: float = 0.99, min_effect: Mapping[str, float] | None = None) -> Threshold:
    """The threshold a job file's keys describe (``alarm``: one of :data:`ALARM_METHODS`; the
    other keys apply to the method that uses them, and are checked whichever it is)."""
    _check_rate("window_alarm_rate", window_alarm_rate)
    _check_rate("quantile", quantile)
    if alarm == "family":
        return FamilyThreshold(window_alarm_rate=window_alarm_rate, min_effect=min_effect)
    if alarm == "std":
        return StandardDeviationThreshold(std_multiplier=k_std, min_effect=min_effect)
    if alarm == "quantile":
        return QuantileThreshold(quantile=quantile, min_effect=min_effect)
    raise SpecError(f"unknown shift alarm {alarm!r}; choose one of {', '.join(ALARM_METHODS)}")
