"""When a shift alarms: the one set of alarm fields of the shift study and the backtest's drift signal."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ._base import Section, statistic_problem

__all__ = ["AlarmSpec"]


class AlarmSpec(Section):
    """How a window (a day, week or month; the backtest's drift: a month) raises an alarm.

    ``alarm: family`` calibrates all of a window's tests together, so that a window without
    shift alarms at most at ``window_alarm_rate``; ``std`` and ``quantile`` judge each test on
    its own, above mean + ``k_std`` * std or the ``quantile`` of the null learned on reference
    days. ``min_effect`` also asks the statistic to reach a size. (The shift engine takes these
    as one threshold object: ``rapidseval.shift.threshold_from_options``.)
    """

    alarm: Literal["family", "std", "quantile"] = Field(
        "family", description="family: a window without shift alarms at most at window_alarm_rate (all features x "
                              "statistics together); std / quantile: each test on its own, mean + k_std*std or a "
                              "quantile of the null")
    window_alarm_rate: float = Field(0.01, gt=0, lt=1, description="alarm: family: target share of windows without "
                                                                   "shift that alarm (each test's level: this / "
                                                                   "tests per window)")
    k_std: float = Field(3.0, gt=0, le=1000)
    quantile: float = Field(0.99, gt=0, lt=1)
    min_effect: dict[str, float] = Field(default_factory=dict,
                                         description="statistic -> minimum value to alarm (e.g. {ks: 0.02})")

    @field_validator("min_effect")
    @classmethod
    def _min_effect(cls, v: dict[str, float]) -> dict[str, float]:
        problem = statistic_problem(v)
        if problem:
            raise ValueError(problem)
        return v
