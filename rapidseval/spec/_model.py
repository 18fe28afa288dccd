"""The model section: which estimator, its bounded parameters, and its decision threshold."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..core.registry import MODEL_KINDS
from ._base import MAX_ROWS, Section, checked_month, unique_sorted

__all__ = ["ThresholdSpec", "ModelSpec", "MODEL_PARAM_BOUNDS"]


class ThresholdSpec(Section):
    """A threshold learned on validation months, then frozen for every later month."""

    learn: Literal["max_f1", "precision"] = "max_f1"
    target: float | None = Field(None, gt=0, le=1, description="for learn: precision, the precision to reach (max recall)")
    months: list[str] | None = Field(None, description="validation months (default: evaluation.test)")

    @field_validator("months")
    @classmethod
    def _months(cls, v):
        if v is None:
            return v
        if not v:
            raise ValueError("threshold.months needs at least one month")
        return unique_sorted([checked_month(m, "threshold month") for m in v], "threshold.months")

    @model_validator(mode="after")
    def _target(self):
        if self.learn == "precision" and self.target is None:
            raise ValueError("learn: precision needs target (e.g. 0.8)")
        if self.learn == "max_f1" and self.target is not None:
            raise ValueError("target is only for learn: precision")
        return self


#: bounds of the numeric model params that size the work (trees, depth, iterations, bins)
MODEL_PARAM_BOUNDS: dict[str, tuple[float, float]] = {
    "n_estimators": (1, 10_000),
    "max_depth": (1, 1_000),
    "max_iter": (1, 1_000_000),
    "n_bins": (2, 1_024),
    "max_leaves": (-1, 1 << 20),
    "max_features": (0, 1_000),
    "min_samples_leaf": (0, MAX_ROWS),
    "min_samples_split": (0, MAX_ROWS),
    "max_samples": (0, MAX_ROWS),
    "n_jobs": (-1, 1_024),
    "n_streams": (1, 64),
    "C": (0, 1e12),
}


class ModelSpec(Section):
    """One model: its kind (from the model registry), parameters, threshold and training months."""

    name: str | None = Field(None, description="label in the results (default: the kind)")
    kind: str = "random_forest"
    params: dict[str, Any] = Field(default_factory=lambda: {"n_estimators": 100, "max_depth": 10})
    threshold: float | ThresholdSpec = Field(
        0.5, description="predict positive when P(y=1) > threshold (sklearn's predict at 0.5), or {learn: max_f1|precision}"
    )
    train: list[str] | None = Field(None, description="training months (default: evaluation.train)")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        return MODEL_KINDS.check(v)

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name, value in v.items():
            if name not in MODEL_PARAM_BOUNDS or value is None:
                continue
            low, high = MODEL_PARAM_BOUNDS[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue  # a named choice ('sqrt', 'balanced'): the estimator checks it
            if not low <= value <= high:
                raise ValueError(f"{name}={value!r} is outside [{low:g}, {high:g}]")
        return v

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v):
        if isinstance(v, float) and not 0.0 <= v <= 1.0:
            raise ValueError("threshold must be within [0, 1]")
        return v

    @field_validator("train")
    @classmethod
    def _train(cls, v):
        if v is None:
            return v
        if not v:
            raise ValueError("a model needs at least one training month")
        return unique_sorted([checked_month(m) for m in v], "model.train")

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError("model name must be letters, digits, '.', '_' or '-'")
        return v
