"""The evaluation section of a study job: months to train, test and score, the replay and the shift study."""

from __future__ import annotations

import zoneinfo
from typing import Literal

from pydantic import Field, field_validator

from ..core.registry import FEATURES
from ..core.time import month_range, parse_delay_hours, parse_window
from ._alarm import AlarmSpec
from ._base import MAX_ROWS, Section, checked_month, statistic_problem, unique_sorted
from ._checks import SlicesSpec

__all__ = ["BandSpec", "ReplaySpec", "ShiftSpec", "EvaluationSpec"]


class BandSpec(Section):
    level: float = Field(0.95, gt=0, lt=1, description="two-sided confidence level of the bands")
    replicates: int = Field(1000, ge=50, le=20_000, description="bootstrap replicates (count metrics)")


#: longest replay window per unit: a year
_MAX_WINDOW_UNITS = {"h": 366 * 24, "D": 366, "W": 53, "M": 12}


class ReplaySpec(Section):
    months: list[str] = Field(default_factory=lambda: ["2020-03"])
    window: str = Field("D", description="[k]unit, unit one of h, D, W (weeks from Monday), M; e.g. 6h, D, W, M")
    time_column: Literal["dropoff_datetime", "pickup_datetime"] = "dropoff_datetime"
    timezone: str = Field("America/New_York", description="the data's wall clock (for real window lengths on DST days)")
    trailing: int = Field(7, ge=1, le=10_000, description="trailing_* columns pool the last N windows")
    label_delay: str = Field("0h", description="labels arrive this long after the event (e.g. 7D, 36h); known_* columns")
    auc: Literal["binned", "exact"] = Field("binned", description="ROC AUC from score bins, or exact from all distinct scores")
    score_bins: int = Field(1000, ge=10, le=100_000)
    bands: BandSpec | None = BandSpec()
    floor: float | None = Field(None, ge=0, le=1, description="the summary names the first window whose floor_metric is below")
    floor_metric: Literal["f1", "precision", "recall", "accuracy", "roc_auc"] = "f1"
    min_window_rows: int = Field(100, ge=1, le=MAX_ROWS,
                                 description="windows with fewer rows are not named worst or below the floor")

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        window = parse_window(v)
        if window.count > _MAX_WINDOW_UNITS[window.unit]:
            raise ValueError(f"window {v!r} is longer than a year; at most {_MAX_WINDOW_UNITS[window.unit]}{window.unit}")
        return window.label

    @field_validator("label_delay")
    @classmethod
    def _delay(cls, v) -> str:
        if parse_delay_hours(v) > 366 * 24:
            raise ValueError(f"label_delay {v!r} is longer than a year (366D)")
        return str(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as America/New_York)") from exc
        return v

    @field_validator("months")
    @classmethod
    def _m(cls, v: list[str]) -> list[str]:
        v = unique_sorted([checked_month(m, "replay month") for m in v], "replay.months")
        if not v:
            raise ValueError("replay needs at least one month")
        if v != month_range(v[0], v[-1]):
            raise ValueError(f"replay months must be consecutive (one stream), got {', '.join(v)}")
        return v


class ShiftSpec(AlarmSpec):
    """Per-feature shift of every window of ``compare`` against ``reference`` (see the README's shift section).

    The alarm fields (``alarm``, ``window_alarm_rate``, ``k_std``, ``quantile``,
    ``min_effect``) are :class:`AlarmSpec`'s; the calculator is built by
    :func:`rapidseval.jobs.checks.shift_calculator`.
    """

    reference: str = "2020-01"
    compare: list[str] = Field(default_factory=lambda: ["2020-02", "2020-03"])
    window: Literal["D", "W", "M"] = Field("M", description="evaluation windows: day, week (Monday), calendar month")
    time_column: Literal["pickup_datetime", "dropoff_datetime"] = "pickup_datetime"
    statistics: list[str] | None = Field(None, description="statistics for every feature (default: by feature kind)")
    per_feature: dict[str, list[str]] = Field(default_factory=dict, description="feature -> statistics, overrides")
    calendar: Literal["weekday", "none"] = Field("weekday", description="reweight the reference to each window's weekday mix")
    bins: int = Field(10, ge=2, le=1000, description="reference-quantile bins of psi / jensen_shannon")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level shown beside (p < alpha), for contrast")

    @field_validator("statistics")
    @classmethod
    def _stats(cls, v):
        problem = statistic_problem(v) if v is not None else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("per_feature")
    @classmethod
    def _per_feature(cls, v):
        for feature, names in v.items():
            if feature not in FEATURES:
                raise ValueError(f"per_feature: unknown feature {feature!r}; choose from {FEATURES.choices()}")
            problem = statistic_problem(names, feature)
            if problem:
                raise ValueError(problem)
            if len(set(names)) != len(names):
                raise ValueError(f"per_feature: shift statistics for {feature} list a name twice")
        return v  # whether they suit the feature's kind (features.kinds): StudyJob._shift_kinds

    @field_validator("reference")
    @classmethod
    def _ref(cls, v: str) -> str:
        return checked_month(v, "reference")

    @field_validator("compare")
    @classmethod
    def _cmp(cls, v: list[str]) -> list[str]:
        return unique_sorted([checked_month(m, "compare month") for m in v], "shift.compare")


class EvaluationSpec(Section):
    train: list[str] = Field(default_factory=lambda: ["2020-01"])
    test: list[str] = Field(default_factory=lambda: ["2020-02"])
    score: list[str] = Field(default_factory=lambda: ["2020-03", "2020-04", "2020-05", "2020-06"])
    replay: ReplaySpec | None = ReplaySpec()
    shift: ShiftSpec | None = ShiftSpec()
    slices: SlicesSpec | None = Field(None, description="windowed metrics per slice of a feature (slices.parquet)")
    allow_overlap: bool = Field(
        False, description="let a model's training months overlap or follow the months it is evaluated on "
                           "(test, score, replay); recorded in the manifest as train_eval_overlap")

    @field_validator("train", "test", "score")
    @classmethod
    def _months(cls, v: list[str], info) -> list[str]:
        return unique_sorted([checked_month(m) for m in v], info.field_name)

    @field_validator("train")
    @classmethod
    def _train(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one training month is needed")
        return v
