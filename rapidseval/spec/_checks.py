"""The ``checks:`` section (the tests production teams run on data, model and system) and
``evaluation.slices`` (windowed metrics per slice of a feature).

Every check has a ``severity``: a ``warn`` check that does not hold is reported; a
``fail`` check that does not hold makes ``rapidseval run`` exit with code 3 after the run
directory is written (so a CI pipeline can gate on a job). The checks are evaluated by
:mod:`rapidseval.checks` inside the job's own passes; their results are ``checks.parquet``.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ._base import MAX_ROWS, Section

__all__ = ["SEVERITIES", "DATA_RULES", "DataCheckSpec", "PredicateSpec", "AssertionsSpec", "BaselineSpec",
           "JumpsSpec", "LeakageSpec", "ConsistencySpec", "ChecksSpec", "SliceSpec", "SlicesSpec",
           "SLICE_MAPPINGS", "MlflowSpec"]

#: what a check that does not hold does: ``warn`` reports it, ``fail`` also makes ``run`` exit 3
SEVERITIES = ("warn", "fail")
Severity = Literal["warn", "fail"]

#: data rules: a *row* rule counts the rows that break it (``tolerance`` is the share allowed);
#: an *aggregate* rule compares one number per month or window with ``[min, max]``
ROW_RULES = ("not_null", "min", "max", "between", "in_set")
AGGREGATE_RULES = ("mean_between", "fraction_between", "unique_fraction")
DATA_RULES = ROW_RULES + AGGREGATE_RULES

#: the mappings that ship with rapidseval (``evaluation.slices[].mapping``): the public TLC
#: taxi-zone lookup, LocationID -> borough or service zone
SLICE_MAPPINGS = ("taxi_zone_borough", "taxi_zone_service_zone")

_METRICS = Literal["f1", "precision", "recall", "accuracy", "roc_auc"]


def _finite(v: float | None, field: str) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError(f"{field} must be a finite number, got {v}")
    return v


class PredicateSpec(Section):
    """Which rows meet a predicate (``fraction_between``'s ``where``): a value in ``[min, max]``
    (either end may be left out), or in ``values``."""

    min: float | None = None
    max: float | None = None
    values: list[float] | None = Field(None, min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _one_kind(self):
        _finite(self.min, "where.min"), _finite(self.max, "where.max")
        if self.values is not None and (self.min is not None or self.max is not None):
            raise ValueError("where: give min/max or values, not both")
        if self.values is None and self.min is None and self.max is None:
            raise ValueError("where: give min, max or values")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"where: min {self.min} is above max {self.max}")
        return self


class DataCheckSpec(Section):
    """An invariant of one column, evaluated per month and per replay window.

    ``column`` is a canonical input column (``fare_amount``, ``passenger_count``, ...: checked
    on every row read, before the drop rules, so a rule sees what arrived), or one of the job's
    features or its target (checked on the rows the job used). Rules:

    - ``not_null``: no missing value;
    - ``min`` / ``max`` / ``between``: every (present) value at least ``min`` / at most ``max``;
    - ``in_set``: every (present) value one of ``values``;
    - ``mean_between``: the mean of the present values in ``[min, max]``;
    - ``fraction_between``: the share of rows meeting ``where`` in ``[min, max]``;
    - ``unique_fraction``: distinct present values / present values in ``[min, max]``.

    A row rule with ``tolerance`` 0 holds when no row breaks it; with a tolerance, when the
    rows breaking it are no more than a ``tolerance`` share gives by chance but for
    ``window_rate`` of the months or windows (the binomial's upper quantile: judged on the
    share alone, one refund in a day of 100 trips fails a 0.5% tolerance). A row rule counts
    the rows breaking it, a missing value only for ``not_null`` (the others do not compare
    it). An aggregate holds when its value is in ``[min, max]``. A month or window with
    nothing to judge (no rows, or no present value) passes with no value.

    ``on`` says which rows: ``read`` (a canonical column, every row as read, before the drop
    rules) or ``used`` (a feature or the target, the rows used). Left out, a canonical column is
    ``read`` and a feature or the target ``used``; set ``on: used`` to check a feature that is
    also a canonical column (``trip_distance``, ``passenger_count``) on the rows used.
    Timestamp and string columns take ``not_null`` only. A feature holds the job's fill value
    where its input was missing: a ``used`` rule on a feature counts that value as missing
    (``not_null`` counts it; the others leave it out), and compares the float32 feature with
    its bounds rounded to float32 (a value read as 0.1 meets ``max: 0.1``).

    Rules are evaluated per month the job reads and, in a study with a replay, per replay window
    (rows of the replay months; a row with no time is in no window). A backtest checks every
    data month it reads.
    """

    column: str = Field(..., min_length=1, max_length=100)
    rule: Literal[DATA_RULES]
    min: float | None = None
    max: float | None = None
    values: list[float] | None = Field(None, min_length=1, max_length=10_000, description="in_set: the allowed values")
    where: PredicateSpec | None = Field(None, description="fraction_between: the predicate")
    tolerance: float = Field(0.0, ge=0, le=1, description="row rules: share of rows allowed to break the rule")
    window_rate: float = Field(0.001, gt=0, lt=1, description="row rules with a tolerance: months or windows that "
                                                               "fail by chance at that share (a binomial test)")
    severity: Severity = "fail"
    name: str | None = Field(None, max_length=200, description="the check's name (default: '<column> <rule>')")
    on: Literal["read", "used"] | None = Field(None, description="read: every row as read (a canonical column); "
                                               "used: the rows used (a feature or the target); default: by column")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data):
        """``on: used`` as YAML 1.1 reads it: the key ``on`` is the boolean true (PyYAML), which
        failed as "checks.data.0.1: Keys should be strings"."""
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _fields_for_rule(self):
        _finite(self.min, "min"), _finite(self.max, "max")
        rule = self.rule
        needs = {"min": ("min",), "max": ("max",), "between": ("min", "max"), "in_set": ("values",),
                 "fraction_between": ("where",)}.get(rule, ())
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"rule {rule} needs {name}")
        if rule in AGGREGATE_RULES and self.min is None and self.max is None:
            raise ValueError(f"rule {rule} needs min, max or both (the range its value must stay in)")
        allowed = {"not_null": (), "min": ("min",), "max": ("max",), "between": ("min", "max"),
                   "in_set": ("values",), "mean_between": ("min", "max"),
                   "fraction_between": ("min", "max", "where"), "unique_fraction": ("min", "max")}[rule]
        for name in ("min", "max", "values", "where"):
            if getattr(self, name) is not None and name not in allowed:
                raise ValueError(f"rule {rule} takes no {name}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if rule in AGGREGATE_RULES and self.tolerance:
            raise ValueError(f"rule {rule} compares one value per window with [min, max]; tolerance is for row rules")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.column} {self.rule}"


class AssertionsSpec(Section):
    """Rows every trained model must get right: a unit test of the model, never fitted on.

    ``path`` is a Parquet or CSV file (local, ``s3://`` or ``builtin:high_tip`` for the set
    that ships with rapidseval) of canonical input columns, ``expected`` (0/1) and optionally
    ``proba_min`` / ``proba_max`` (bounds on P(y=1)) and ``note``. The columns only the target
    reads (``tip_amount``) may be left out. The file is read and checked when the run starts,
    before any training: a missing column, or a row the job's drop rules would drop, is an
    error naming the file and the row (0-based, the header not counted).

    Every trained model scores the rows (a study's models, each backtest fold's model); a row
    fails when ``proba > threshold`` (the model's prediction, as in every table) is not
    ``expected``, or its proba is outside its bounds.
    One check row per model (and fold); the failing rows go to ``assertions.parquet``.
    """

    path: str = Field("builtin:high_tip", min_length=1)
    severity: Severity = "fail"
    max_failures: int = Field(0, ge=0, le=MAX_ROWS, description="rows allowed to fail before the check does")


class BaselineSpec(Section):
    """The primary model against a simpler one, trained on the same months, per window.

    A study scores the baseline as one more model, ``baseline_<kind>`` (default params, the
    primary's training months and threshold rule), in ``monthly.parquet`` and
    ``replay.parquet``; a backtest fits it beside each fold's model. Per evaluated month
    (not a training month) and in-period replay window with ``replay.min_window_rows``, the
    check does not hold when the primary is significantly below the baseline's metric plus
    ``margin``: the upper end of its band (bootstrap; ROC AUC: Hanley-McNeil) is below it.
    """

    kind: Literal["majority", "logistic_regression"] = "logistic_regression"
    metric: _METRICS = "f1"
    margin: float = Field(0.0, ge=-1, le=1, description="the primary must beat the baseline by this much")
    severity: Severity = "fail"


class JumpsSpec(Section):
    """Window-to-window changes of a metric outside the windows' bands, either direction
    ("never trust a big jump in performance without verification").

    Two windows jump when their bands (the replay's, or drawn from their counts) do not
    overlap and a two-sample test on their confusion counts rejects equal metrics at
    ``window_rate``: the false-jump rate per pair of quiet windows (measured on quiet
    generated streams: :mod:`rapidseval.checks.compare`). A study compares each replay
    window with the one ``lag`` windows before: by
    default (``auto``) the same time a week earlier when a week is a whole number of
    windows (daily windows: the same weekday), else the previous window, so a stream's
    weekly rhythm (weekend F1 below weekday F1) is not a jump every Saturday and Monday; a
    change that lasts is reported once, where it starts. Months (``monthly.parquet``, a
    backtest's policy months) are compared with the previous month.
    """

    metric: Literal["f1", "precision", "recall", "accuracy"] = "f1"
    min_rows: int = Field(100, ge=1, le=MAX_ROWS, description="windows with fewer rows are not compared")
    lag: int | Literal["auto"] = Field("auto", description="compare a replay window with the one this many windows "
                                                           "before (auto: a week before when whole, else 1)")
    window_rate: float = Field(0.001, gt=0, le=0.5, description="false jumps per pair of quiet windows "
                                                                 "(the two-sample test's level)")
    severity: Severity = "warn"

    @field_validator("lag")
    @classmethod
    def _lag(cls, v):
        if isinstance(v, int) and not 1 <= v <= 10_000:
            raise ValueError("lag must be within [1, 10000] windows, or auto")
        return v


class LeakageSpec(Section):
    """Information from the future: a single feature that alone nearly predicts the label on
    the training months, and training months that overlap or follow the evaluation months.

    The AUC is exact (ties counted half) on a seeded sample of at most 200,000 training rows,
    either direction (``max(auc, 1 - auc)``); one ``leakage`` row per feature and model (or
    fold). The overlap is a ``time_leakage`` row per model: it can only fail when
    ``evaluation.allow_overlap`` let the job run (a backtest's folds never overlap)."""

    max_feature_auc: float = Field(0.99, gt=0.5, le=1, description="a feature whose AUC (either direction) "
                                                                   "for the label is above this leaks")
    severity: Severity = "fail"


class ConsistencySpec(Section):
    """The model file written to the run directory, reloaded, scores a sample as the model in
    memory does: exactly on the CPU; within ``gpu_cpu_tolerance`` between GPU and CPU.

    With this section a study writes each model to ``models/<model name>.pkl`` (a pickle,
    listed in the completion marker with its sha256) and scores the first ``sample_rows``
    training rows with the model reloaded from those bytes; a backtest reloads each fold's
    model from the file in its work area. On the GPU a model with a CPU twin (cuML's
    ``as_sklearn()``) is also compared with it."""

    sample_rows: int = Field(10_000, ge=1, le=1_000_000)
    gpu_cpu_tolerance: float = Field(1e-5, ge=0, le=1, description="max |P_gpu - P_cpu| where both exist")
    severity: Severity = "fail"


class ChecksSpec(Section):
    """The checks of a job (README, "Checks"): any section left out is not run."""

    data: list[DataCheckSpec] = Field(default_factory=list, max_length=1000)
    assertions: AssertionsSpec | None = None
    baseline: BaselineSpec | None = None
    jumps: JumpsSpec | None = None
    leakage: LeakageSpec | None = None
    consistency: ConsistencySpec | None = None

    @field_validator("data")
    @classmethod
    def _unique_names(cls, v: list[DataCheckSpec]) -> list[DataCheckSpec]:
        seen: set[str] = set()
        for check in v:
            if check.label in seen:
                raise ValueError(f"data: two checks are named {check.label!r}; set name: on one")
            seen.add(check.label)
        return v

    @property
    def any(self) -> bool:
        return bool(self.data) or any(getattr(self, k) is not None
                                      for k in ("assertions", "baseline", "jumps", "leakage", "consistency"))


class SliceSpec(Section):
    """One way to slice the rows: by a feature's values (a categorical or integer feature; the
    fill value is the slice ``missing``), by bins of a numeric feature (``bins``: edges,
    ``[a, b)``; a value in no bin is ``outside bins``), or by a mapping of its values (a shipped
    one, such as ``taxi_zone_borough`` (LocationID -> borough; other values ``unknown``), or
    ``{value: label}``; values it does not name are ``other``)."""

    by: str = Field(..., min_length=1, max_length=100, description="a feature of the job")
    bins: list[Annotated[float, Field(allow_inf_nan=True)]] | None = Field(
        None, min_length=2, max_length=1000,
        description="increasing edges of [a, b) bins; -.inf and .inf may close the ends")
    mapping: str | dict[str, str] | None = None
    name: str | None = Field(None, max_length=100, description="the slice_by label (default: by, or by/mapping)")

    @field_validator("bins")
    @classmethod
    def _bins(cls, v):
        if v is not None and (sorted(set(v)) != v or any(math.isnan(b) for b in v)):
            raise ValueError("bins must be increasing edges (each once); -.inf and .inf may close the ends")
        return v

    @field_validator("mapping", mode="before")
    @classmethod
    def _numbers_as_keys(cls, v):
        """YAML reads ``{132: airport}`` with a number as the key: keep it as its text."""
        if isinstance(v, dict):
            return {k if isinstance(k, str) else str(k): label for k, label in v.items()}
        return v

    @field_validator("mapping")
    @classmethod
    def _mapping(cls, v):
        if isinstance(v, str) and v not in SLICE_MAPPINGS:
            raise ValueError(f"unknown mapping {v!r}; the shipped ones: {', '.join(SLICE_MAPPINGS)} "
                             "(or give {value: label})")
        if isinstance(v, dict):
            if not v:
                raise ValueError("mapping: give at least one value: label")
            values = []
            for key, label in v.items():
                try:
                    values.append(float(key))
                except ValueError:
                    raise ValueError(f"mapping: {key!r} is not a number (the feature's value to map)") from None
                if not math.isfinite(values[-1]):
                    raise ValueError(f"mapping: {key!r} is not a finite number")
                if not label:
                    raise ValueError(f"mapping: {key!r} maps to an empty label")
            if len(set(values)) != len(values):
                raise ValueError("mapping: a value is given twice (e.g. 1 and 1.0)")
        return v

    @model_validator(mode="after")
    def _one_way(self):
        if self.bins is not None and self.mapping is not None:
            raise ValueError("a slice takes bins or a mapping, not both")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if isinstance(self.mapping, str):
            return f"{self.by}/{self.mapping}"
        return self.by


class SlicesSpec(Section):
    """Windowed metrics with bands per slice (``slices.parquet``), over every scored month.

    A supported slice (``min_support`` rows or more in a window) whose ``metric`` is
    significantly below the rest of that window's rows (a one-sided two-sample test on the
    two sets of confusion counts, Bonferroni over the window's judged slices, so that on
    slices of equal quality at most ``window_rate`` of the (slicing, model, window) groups
    warn) is *significantly worse than the whole*: a ``warn`` row of ``checks.parquet``."""

    by: list[SliceSpec] = Field(..., min_length=1, max_length=50)
    window: Literal["D", "W", "M"] = Field("M", description="window of the slice metrics (of the replay's time column)")
    min_support: int = Field(200, ge=1, le=MAX_ROWS, description="slices of fewer rows in a window are not judged")
    metric: Literal["f1", "precision", "recall", "accuracy"] = Field(
        "f1", description="what slices are judged and ranked by (from their confusion counts)")
    worst: int = Field(5, ge=1, le=100, description="the summary and report name this many worst slices")
    window_rate: float = Field(0.01, gt=0, lt=1, description="slice warnings per (slicing, model, window) when "
                                                             "every slice is as good as the rest (family-wise)")

    @field_validator("by")
    @classmethod
    def _unique(cls, v: list[SliceSpec]) -> list[SliceSpec]:
        labels = [s.label for s in v]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"by: slice labels must differ ({', '.join(dup)} repeated; set name:)")
        return v


class MlflowSpec(Section):
    """Log the run to MLflow (``pip install 'rapidseval[mlflow]'``) after its run directory is
    written: params (the resolved job, flattened), tags, metrics per month and model and per
    replay window, the inputs as datasets, and the run directory as artifacts (a backtest: one
    parent run and a child run per policy). :mod:`rapidseval.jobs.tracking` says what goes where.

    Credentials never go in the job: MLflow reads ``MLFLOW_TRACKING_USERNAME`` /
    ``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN`` from the environment.
    """

    tracking_uri: str = Field(..., min_length=1, max_length=2000,
                              description="e.g. sqlite:///mlflow.db or http://host:5000")
    experiment: str = Field("rapidseval", min_length=1, max_length=500)
    run_name: str | None = Field(None, max_length=500, description="default: the job's name")
    artifact_location: str | None = Field(
        None, min_length=1, max_length=2000,
        description="where a NEW experiment keeps its artifacts (an existing one keeps its own); default: the "
                    "server's choice, or for a sqlite:/// store the folder 'mlartifacts' beside the database file")

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, v: str) -> str:
        head, sep, rest = v.partition("://")
        if sep and "@" in rest.split("/", 1)[0]:
            raise ValueError("tracking_uri must not hold credentials (user:password@); set MLFLOW_TRACKING_USERNAME "
                             "and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment")
        if v.strip() != v:
            raise ValueError("tracking_uri has leading or trailing spaces")
        return v
