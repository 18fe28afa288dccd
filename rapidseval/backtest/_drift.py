"""The drift signal of drift-triggered retraining: the shift engine's calibrated alarms.

A fold's model was trained on some months; its reference is their per-day value
counts.  :func:`fit_reference` fits a :class:`rapidseval.shift.ShiftCalculator`
on them, which learns every (feature, statistic) threshold from the reference
itself (each training day against the rest, weekday-aware, scores standardised
by sample size).  :func:`drift_signal` compares one month with it: the month
drifted when the window-level rule says so (any watched feature x statistic
above its family-calibrated threshold, and the job's minimum effect), so
months without change trigger at most at ``window_alarm_rate``.  A fixed effect-size threshold would alarm on every month at millions
of rows, or on none at thousands; a calibrated one adapts to both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..shift import DayCounts, ShiftCalculator

__all__ = ["DriftSignal", "drift_signal", "fit_reference"]


@dataclass(frozen=True)
class DriftSignal:
    """Whether ``month`` (one window) drifted from the reference: the shift engine's window-level
    alarm (any watched feature x statistic above its family-calibrated threshold), and its most
    shifted (feature, statistic): the largest ``exceedance`` (null standard deviations above
    the threshold)."""

    month: str
    alarm: bool
    feature: str | None
    statistic: str
    value: float
    threshold: float
    values: dict[str, float] = field(default_factory=dict)  # feature -> value of that statistic


def fit_reference(counts: list[Mapping[str, DayCounts]], calculator: ShiftCalculator, *,
                  label: str = "training months") -> ShiftCalculator:
    """Fit ``calculator`` on the merged per-day counts of the model's training months."""
    features = calculator.features or tuple(counts[0])
    merged = {f: DayCounts.merge([c[f] for c in counts]) for f in features}
    return calculator.fit(merged, label=label)


def drift_signal(calculator: ShiftCalculator, current: Mapping[str, DayCounts], *, month: str) -> DriftSignal:
    """Compare ``current`` (one month's per-day counts) with the fitted reference."""
    table = calculator.calculate(current).table
    table = table[np.isfinite(table["value"]) & np.isfinite(table["threshold"])]
    if table.empty:
        return DriftSignal(month, False, None, "", float("nan"), float("nan"), {})
    alarmed = table[table["alarm"]]
    pick = alarmed if not alarmed.empty else table
    top = pick.loc[pick["exceedance"].fillna(-np.inf).idxmax()]
    values = {f: float(v) for f, v in zip(table.loc[table["statistic"] == top["statistic"], "feature"],
                                           table.loc[table["statistic"] == top["statistic"], "value"])}
    return DriftSignal(month, bool(not alarmed.empty), str(top["feature"]), str(top["statistic"]), float(top["value"]),
                       float(top["threshold"]), values)
