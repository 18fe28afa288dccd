"""The drift signal of drift-triggered retraining, behind one function.

:func:`drift_signal` compares a month's exact feature value counts with the
merged counts of a model's training months.  Today it is the two-sample KS
statistic (:func:`rapidseval.shift.ks_from_counts`) against a fixed
effect-size threshold; swapping in a calibrated calculator means changing
this function only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..shift import ks_from_counts

__all__ = ["DRIFT_STATISTICS", "DriftSignal", "drift_signal"]

#: statistics :func:`drift_signal` computes (the job spec validates against this)
DRIFT_STATISTICS = ("ks",)


@dataclass(frozen=True)
class DriftSignal:
    """Whether ``month`` drifted from the reference, and the most shifted feature."""

    month: str
    alarm: bool
    feature: str | None
    statistic: str
    value: float
    threshold: float
    values: dict[str, float] = field(default_factory=dict)


def drift_signal(reference, current, *, month: str, threshold: float, features=None,
                 statistic: str = "ks") -> DriftSignal:
    """Drift of ``current`` against ``reference``.

    Parameters
    ----------
    reference, current : dict
        feature -> ``(sorted values, counts)`` (exact value counts; host arrays).
    month : str
        The month ``current`` describes (named in the signal).
    threshold : float
        Alarm when a feature's statistic exceeds it.
    features : sequence of str, optional
        Features to watch (default: every feature of ``current``).
    statistic : {"ks"}
    """
    if statistic not in DRIFT_STATISTICS:
        raise ValueError(f"unknown drift statistic {statistic!r}; choose one of {', '.join(DRIFT_STATISTICS)}")
    values: dict[str, float] = {}
    for name in features or list(current):
        v1, c1 = reference[name]
        v2, c2 = current[name]
        if np.sum(c1) == 0 or np.sum(c2) == 0:
            values[name] = float("nan")
            continue
        values[name] = float(ks_from_counts(v1, c1, v2, c2)[0])
    finite = {k: v for k, v in values.items() if not np.isnan(v)}
    if not finite:
        return DriftSignal(month, False, None, statistic, float("nan"), threshold, values)
    top = max(finite, key=lambda k: (finite[k], k))
    return DriftSignal(month, finite[top] > threshold, top, statistic, finite[top], threshold, values)
