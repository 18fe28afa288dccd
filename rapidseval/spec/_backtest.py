"""The backtest section: rolling origins, retraining policies and their drift signal."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import Field, field_validator

from ._alarm import AlarmSpec
from ._base import MAX_PERIOD_MONTHS, MAX_ROWS, Section, checked_month, statistic_problem, unique_sorted

__all__ = ["PolicySpec", "DriftSpec", "BacktestSpec"]


class PolicySpec(Section):
    """One retraining policy of a backtest (``kind`` from the policy registry).

    The kind and its ``params`` are checked against the registered policy by
    :func:`rapidseval.jobs.checks.check_job` (the policy binds them).
    """

    kind: str
    name: str | None = Field(None, description="label in the tables (default: the kind)")
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.kind


class DriftSpec(AlarmSpec):
    """The drift signal of drift-triggered policies: the shift engine's window-level alarm of
    each month seen against the model's training months (one window per month; thresholds
    learned from each training day against the rest, weekday-aware, standardised by size,
    and calibrated as a family: a month without change triggers at most at window_alarm_rate).

    The alarm fields are :class:`AlarmSpec`'s; the calculator is built by
    :func:`rapidseval.jobs.checks.drift_calculator`.
    """

    statistics: list[str] = Field(default_factory=lambda: ["ks"],
                                  description="shift statistics watched (each applied to the features of its kinds)")
    features: list[str] | None = Field(None, description="features watched (default: all the model's features)")

    @field_validator("statistics")
    @classmethod
    def _stats(cls, v: list[str]) -> list[str]:
        problem = statistic_problem(v)
        if problem:
            raise ValueError(problem)
        if not v or len(set(v)) != len(v):
            raise ValueError("list at least one statistic, each once")
        return v


def _default_policies() -> list[PolicySpec]:
    return [PolicySpec(kind="static"), PolicySpec(kind="periodic", params={"every": 3}),
            PolicySpec(kind="drift_triggered")]


class BacktestSpec(Section):
    """Rolling-origin backtest with retraining policies (replaces ``evaluation``).

    Its folds are made by :func:`rapidseval.jobs.checks.splitter`.
    """

    origins: list[str] | None = Field(None, description="explicit origins (first evaluation month of each fold)")
    first_origin: str | None = Field(None, description="first generated origin (default: earliest with enough history)")
    every: int = Field(1, ge=1, le=MAX_PERIOD_MONTHS, description="months between generated origins (retraining decision points)")
    train_months: int | None = Field(12, ge=1, le=MAX_PERIOD_MONTHS,
                                     description="sliding training window in months; null: expanding")
    gap: int = Field(0, ge=0, le=MAX_PERIOD_MONTHS, description="months left out between training end and origin")
    horizon: int = Field(3, ge=1, le=MAX_PERIOD_MONTHS, description="months each origin's model is scored for the staleness matrix")
    policies: list[PolicySpec] = Field(default_factory=_default_policies)
    metric: Literal["f1", "accuracy", "precision", "recall"] = Field(
        "f1", description="the metric the floor applies to (months below it are counted; drift_triggered retrains)")
    floor: float = Field(0.6, ge=0, le=1, description="floor of the metric")
    label_delay: int = Field(0, ge=0, le=MAX_PERIOD_MONTHS, description="months after a month ends before its labels are known")
    drift: DriftSpec = DriftSpec()
    daily: bool = Field(False, description="also write per-day metrics per policy (backtest_daily.parquet)")
    max_train_rows: int | None = Field(None, ge=1000, le=10 * MAX_ROWS,
                                       description="sample training months down to this many rows (seeded)")
    cache_dir: str = Field(".rapidseval/features", description="per-month feature cache (Parquet)")

    @field_validator("origins")
    @classmethod
    def _origins(cls, v):
        if v is None:
            return v
        v = unique_sorted([checked_month(m, "origin") for m in v], "backtest.origins")
        if not v:
            raise ValueError("origins is empty; leave it out to generate them")
        return v

    @field_validator("first_origin")
    @classmethod
    def _first(cls, v):
        return v if v is None else checked_month(v, "first_origin")

    @field_validator("policies")
    @classmethod
    def _policies(cls, v):
        if not v:
            raise ValueError("at least one policy is needed")
        labels = [p.label for p in v]
        dup = sorted(x for x, n in Counter(labels).items() if n > 1)
        if dup:
            raise ValueError(f"policy name(s) {', '.join(dup)} used twice; give each a distinct name")
        return v
