"""Job specification: YAML -> validated pydantic model.

A job file is data: it is read with ``yaml.safe_load``, every section forbids
unknown fields, and every error names the field (by its dotted path) and,
where the choices come from a registry, lists them.  ``--set a.b=c``
overrides are applied to the raw mapping before validation, so they are
validated exactly like the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SpecError
from .features import DROP_RULES, FEATURES, STUDY_FEATURES, TARGETS
from .months import check_month, month_range

__all__ = ["JobSpec", "load_job", "apply_overrides", "spec_hash"]

def _shift_statistics() -> tuple[str, ...]:
    from .shift import STATISTICS

    return tuple(STATISTICS)


SHIFT_STATISTICS = _shift_statistics()


def _unique_sorted(months: list[str], where: str) -> list[str]:
    if len(set(months)) != len(months):
        dup = sorted({m for m in months if months.count(m) > 1})
        raise ValueError(f"{where} lists {', '.join(dup)} more than once")
    if months != sorted(months):
        raise ValueError(f"{where} must be in calendar order, got {', '.join(months)}")
    return months


def _no_secrets(options: dict[str, Any]) -> dict[str, Any]:
    """storage_options carry endpoints and flags, never credentials."""
    from .data.sources import reject_secrets

    try:
        reject_secrets(options)
    except SpecError as exc:
        raise ValueError(str(exc)) from exc
    return options


def _check_month(value: str, where: str = "month") -> str:
    check_month(value, where)
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticSpec(_Section):
    """How ``data.source: synthetic`` makes its months (cached by these values)."""

    rows_per_month: int = Field(200_000, ge=1)
    scenario: str = "march2020"
    seed: int = 2020
    scenario_month: str | None = None
    cache_dir: str = ".rapidseval/synthetic"

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, v: str) -> str:
        from .data.synthetic import SCENARIOS

        if v not in SCENARIOS:
            raise ValueError(f"unknown scenario {v!r}; choose one of {', '.join(SCENARIOS)}")
        return v


class DataSpec(_Section):
    source: str | list[str] = Field(
        "synthetic",
        description="'synthetic', a named source ('tlc'), or a URI template with {month} (local, s3://, https://), or a list of URIs",
    )
    start: str = "2020-01"
    end: str = "2020-06"
    format: Literal["auto", "parquet", "csv"] = "auto"
    storage_options: dict[str, Any] = Field(default_factory=dict)
    cache_dir: str | None = Field(None, description="local cache for http(s) inputs, so a re-run downloads nothing")
    partition_rows: int = Field(2_000_000, ge=10_000, description="target rows per partition (Parquet row groups are grouped)")
    synthetic: SyntheticSpec = SyntheticSpec()

    @field_validator("start", "end")
    @classmethod
    def _months(cls, v: str) -> str:
        return _check_month(v)

    @field_validator("source")
    @classmethod
    def _no_user_info(cls, v):
        for uri in [v] if isinstance(v, str) else v:
            if re.search(r"://[^/@\s]+@", uri):
                raise ValueError(
                    "credentials never go in a job file (user:password@ in the URI); "
                    "use the environment or the standard AWS config"
                )
        return v

    _no_secrets = field_validator("storage_options")(classmethod(lambda cls, v: _no_secrets(v)))

    @model_validator(mode="after")
    def _order(self):
        month_range(self.start, self.end)
        return self

    @property
    def months(self) -> list[str]:
        return month_range(self.start, self.end)


class FeaturesSpec(_Section):
    target: str = "high_tip"
    features: list[str] = Field(default_factory=lambda: list(STUDY_FEATURES))
    drop_rules: list[str] = Field(default_factory=lambda: list(DROP_RULES))
    fill_value: float = -1.0

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        if v not in TARGETS:
            raise ValueError(f"unknown target {v!r}; choose one of {', '.join(TARGETS)}")
        return v

    @field_validator("features")
    @classmethod
    def _features(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f not in FEATURES]
        if bad:
            raise ValueError(f"unknown feature(s) {', '.join(bad)}; choose from {', '.join(FEATURES)}")
        if not v:
            raise ValueError("at least one feature is needed")
        if len(set(v)) != len(v):
            raise ValueError("features are listed twice")
        return v

    @field_validator("drop_rules")
    @classmethod
    def _rules(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in DROP_RULES]
        if bad:
            raise ValueError(f"unknown drop rule(s) {', '.join(bad)}; choose from {', '.join(DROP_RULES)}")
        return v


class ThresholdSpec(_Section):
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
        return _unique_sorted([_check_month(m, "threshold month") for m in v], "threshold.months")

    @model_validator(mode="after")
    def _target(self):
        if self.learn == "precision" and self.target is None:
            raise ValueError("learn: precision needs target (e.g. 0.8)")
        if self.learn == "max_f1" and self.target is not None:
            raise ValueError("target is only for learn: precision")
        return self


class ModelSpec(_Section):
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
        from .models import MODELS

        if v not in MODELS:
            raise ValueError(f"unknown model kind {v!r}; choose one of {', '.join(MODELS)}")
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
        return _unique_sorted([_check_month(m) for m in v], "model.train")

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError("model name must be letters, digits, '.', '_' or '-'")
        return v


class BandSpec(_Section):
    level: float = Field(0.95, gt=0, lt=1, description="two-sided confidence level of the bands")
    replicates: int = Field(1000, ge=50, le=20_000, description="bootstrap replicates (count metrics)")


class ReplaySpec(_Section):
    months: list[str] = Field(default_factory=lambda: ["2020-03"])
    window: str = Field("D", description="[k]unit, unit one of h, D, W (weeks from Monday), M; e.g. 6h, D, W, M")
    time_column: Literal["dropoff_datetime", "pickup_datetime"] = "dropoff_datetime"
    timezone: str = Field("America/New_York", description="the data's wall clock (for real window lengths on DST days)")
    trailing: int = Field(7, ge=1, description="trailing_* columns pool the last N windows")
    label_delay: str = Field("0h", description="labels arrive this long after the event (e.g. 7D, 36h); known_* columns")
    auc: Literal["binned", "exact"] = Field("binned", description="ROC AUC from score bins, or exact from all distinct scores")
    score_bins: int = Field(1000, ge=10, le=100_000)
    bands: BandSpec | None = BandSpec()
    floor: float | None = Field(None, ge=0, le=1, description="the summary names the first window whose floor_metric is below")
    floor_metric: Literal["f1", "precision", "recall", "accuracy", "roc_auc"] = "f1"
    min_window_rows: int = Field(100, ge=1, description="windows with fewer rows are not named worst or below the floor")

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        from .replay import parse_window

        return parse_window(v).label

    @field_validator("label_delay")
    @classmethod
    def _delay(cls, v) -> str:
        from .replay import parse_delay_hours

        parse_delay_hours(v)
        return str(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as America/New_York)") from exc
        return v

    @field_validator("months")
    @classmethod
    def _m(cls, v: list[str]) -> list[str]:
        v = _unique_sorted([_check_month(m, "replay month") for m in v], "replay.months")
        if not v:
            raise ValueError("replay needs at least one month")
        if v != month_range(v[0], v[-1]):
            raise ValueError(f"replay months must be consecutive (one stream), got {', '.join(v)}")
        return v


class ShiftSpec(_Section):
    """Per-feature shift of every window of ``compare`` against ``reference`` (see the README's shift section)."""

    reference: str = "2020-01"
    compare: list[str] = Field(default_factory=lambda: ["2020-02", "2020-03"])
    window: Literal["D", "W", "M"] = Field("M", description="evaluation windows: day, week (Monday), calendar month")
    time_column: Literal["pickup_datetime", "dropoff_datetime"] = "pickup_datetime"
    statistics: list[str] | None = Field(None, description="statistics for every feature (default: by feature kind)")
    per_feature: dict[str, list[str]] = Field(default_factory=dict, description="feature -> statistics, overrides")
    calendar: Literal["weekday", "none"] = Field("weekday", description="reweight the reference to each window's weekday mix")
    alarm: Literal["family", "std", "quantile"] = Field(
        "family", description="family: a quiet window alarms at most at window_alarm_rate (all features x statistics "
                              "together); std / quantile: each test on its own, mean + k_std*std or a quantile of the null")
    window_alarm_rate: float = Field(0.01, gt=0, lt=1, description="alarm: family: target share of windows without shift "
                                                                   "that alarm (each test's level: this / tests per window)")
    k_std: float = Field(3.0, gt=0)
    quantile: float = Field(0.99, gt=0, lt=1)
    min_effect: dict[str, float] = Field(default_factory=dict, description="statistic -> minimum value to alarm")
    bins: int = Field(10, ge=2, description="reference-quantile bins of psi / jensen_shannon")
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level shown beside (p < alpha), for contrast")

    @field_validator("statistics")
    @classmethod
    def _stats(cls, v):
        if v is not None:
            bad = [s for s in v if s not in SHIFT_STATISTICS]
            if bad:
                raise ValueError(f"unknown shift statistic(s) {', '.join(bad)}; choose from {', '.join(SHIFT_STATISTICS)}")
        return v

    @field_validator("per_feature")
    @classmethod
    def _per_feature(cls, v):
        from .errors import SpecError as _SpecError
        from .shift import check_statistics

        for feature, names in v.items():
            if feature not in FEATURES:
                raise ValueError(f"per_feature: unknown feature {feature!r}; choose from {', '.join(FEATURES)}")
            try:
                check_statistics(feature, names)
            except _SpecError as exc:
                raise ValueError(str(exc)) from exc
        return v

    @field_validator("min_effect")
    @classmethod
    def _min_effect(cls, v):
        bad = [s for s in v if s not in SHIFT_STATISTICS]
        if bad:
            raise ValueError(f"min_effect: unknown statistic(s) {', '.join(bad)}; choose from {', '.join(SHIFT_STATISTICS)}")
        return v

    @field_validator("reference")
    @classmethod
    def _ref(cls, v: str) -> str:
        return _check_month(v, "reference")

    @field_validator("compare")
    @classmethod
    def _cmp(cls, v: list[str]) -> list[str]:
        return _unique_sorted([_check_month(m, "compare month") for m in v], "shift.compare")

    def calculator(self, features, fill_value: float = -1.0, xp=None):
        """The :class:`rapidseval.shift.ShiftCalculator` this section describes (``xp``: the
        backend's array module for its calibration)."""
        from .shift import ShiftCalculator

        return ShiftCalculator(features, statistics=self.statistics, per_feature=self.per_feature,
                               frequency=self.window, calendar=self.calendar, alarm=self.alarm,
                               window_alarm_rate=self.window_alarm_rate, k_std=self.k_std,
                               quantile=self.quantile, min_effect=self.min_effect, bins=self.bins,
                               fill_value=fill_value, alpha=self.alpha, xp=xp)


class EvaluationSpec(_Section):
    train: list[str] = Field(default_factory=lambda: ["2020-01"])
    test: list[str] = Field(default_factory=lambda: ["2020-02"])
    score: list[str] = Field(default_factory=lambda: ["2020-03", "2020-04", "2020-05", "2020-06"])
    replay: ReplaySpec | None = ReplaySpec()
    shift: ShiftSpec | None = ShiftSpec()

    @field_validator("train", "test", "score")
    @classmethod
    def _months(cls, v: list[str], info) -> list[str]:
        return _unique_sorted([_check_month(m) for m in v], info.field_name)

    @field_validator("train")
    @classmethod
    def _train(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one training month is needed")
        return v


CLUSTER_KINDS = ("local", "local-cuda", "scheduler", "threads")


class TLSSpec(_Section):
    """Paths of the TLS files for ``tls://`` schedulers (paths only: never the keys themselves).

    Left out, TLS comes from Dask's own configuration
    (``distributed.comm.tls.*`` in ``~/.config/dask/*.yaml`` or
    ``DASK_DISTRIBUTED__COMM__TLS__...`` variables), as for any Dask client.
    """

    ca_file: str = Field(..., description="CA certificate that signed the scheduler's certificate")
    cert: str = Field(..., description="this client's certificate (PEM file)")
    key: str | None = Field(None, description="this client's private key (PEM file); may be inside `cert`")

    @field_validator("ca_file", "cert", "key")
    @classmethod
    def _path_not_pem(cls, v: str | None) -> str | None:
        if v is not None and ("-----BEGIN" in v or "\n" in v):
            raise ValueError("give the path of a PEM file; certificates and keys never go in a job file")
        return v


class ClusterSpec(_Section):
    """Where the job's tasks run.

    ``local``: a LocalCluster of worker processes on this machine (a
    LocalCUDACluster, one worker per GPU, on the gpu backend);
    ``local-cuda``: LocalCUDACluster explicitly (needs the gpu backend), with
    an RMM pool and device-to-host spilling; ``scheduler``: an existing Dask
    cluster at ``address``; ``threads``: a thread pool in this process.
    """

    kind: Literal[CLUSTER_KINDS] = "local"
    n_workers: int = Field(2, ge=1, description="local on CPU: worker processes (on GPUs: one worker per visible GPU)")
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "auto"
    address: str | None = Field(None, description="scheduler address: tcp://host:8786 or tls://host:8786")
    timeout: float = Field(30.0, gt=0, description="seconds to wait for a scheduler (and its first worker)")
    tls: TLSSpec | None = None
    rmm_pool_size: str | None = Field(None, description="local-cuda: RMM pool per GPU (e.g. '24GB' or '0.9')")
    device_memory_limit: str | None = Field("0.8", description="local-cuda: spill device memory to host above this (bytes, '20GB' or a fraction)")

    @field_validator("address")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if re.search(r"://[^/@\s]+@", v):
            raise ValueError("a scheduler address carries no credentials (user:password@)")
        if "://" not in v:
            v = f"tcp://{v}"
        scheme = v.split("://", 1)[0]
        if scheme not in ("tcp", "tls", "inproc", "ucx", "ws", "wss"):
            raise ValueError(f"unknown scheduler protocol {scheme!r}; use tcp://host:8786 or tls://host:8786")
        return v

    @model_validator(mode="after")
    def _address(self):
        if self.kind == "scheduler" and not self.address:
            raise ValueError("cluster.kind 'scheduler' needs cluster.address (tcp://host:8786)")
        if self.kind != "scheduler" and self.address:
            raise ValueError(f"cluster.address is only used with kind 'scheduler', not {self.kind!r}")
        if self.tls is not None and not (self.address or "").startswith("tls://"):
            raise ValueError("cluster.tls needs a tls:// scheduler address")
        return self


class OutputSpec(_Section):
    """Where the run directory goes: a local path or an ``s3://`` prefix.

    ``dir`` may use ``{name}`` (the job name) only; the result must stay
    inside the part of ``dir`` before the placeholder.
    """

    dir: str = "runs/{name}"
    report: bool = True
    storage_options: dict[str, Any] = Field(default_factory=dict, description="for s3:// outputs (endpoint_url, ...; never credentials)")

    @field_validator("dir")
    @classmethod
    def _dir(cls, v: str) -> str:
        from .rundir import check_dir_template

        check_dir_template(v)
        return v

    _no_secrets = field_validator("storage_options")(classmethod(lambda cls, v: _no_secrets(v)))


class PolicySpec(_Section):
    """One retraining policy of a backtest (``kind`` from the policy registry)."""

    kind: str
    name: str | None = Field(None, description="label in the tables (default: the kind)")
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self):
        from .backtest import make_policy

        try:
            make_policy(self.kind, self.params)
        except SpecError as exc:
            raise ValueError(str(exc)) from exc
        return self

    @property
    def label(self) -> str:
        return self.name or self.kind


class DriftSpec(_Section):
    """The drift signal of drift-triggered policies: the shift engine's window-level alarm of
    each month seen against the model's training months (one window per month; thresholds
    learned from each training day against the rest, weekday-aware, standardised by size,
    and calibrated as a family: a month without change triggers at most at window_alarm_rate)."""

    statistics: list[str] = Field(default_factory=lambda: ["ks"],
                                  description="shift statistics watched (each applied to the features of its kinds)")
    alarm: Literal["family", "std", "quantile"] = Field(
        "family", description="family: a month without shift triggers at most at window_alarm_rate (all watched "
                              "features x statistics together); std / quantile: per test, mean + k_std*std or a quantile")
    window_alarm_rate: float = Field(0.01, gt=0, lt=1, description="alarm: family: target share of unchanged months "
                                                                   "that trigger")
    k_std: float = Field(3.0, gt=0)
    quantile: float = Field(0.99, gt=0, lt=1)
    min_effect: dict[str, float] = Field(default_factory=dict,
                                         description="alarm only when the statistic is also at least this (e.g. {ks: 0.02})")
    features: list[str] | None = Field(None, description="features watched (default: all the model's features)")

    @field_validator("statistics")
    @classmethod
    def _stats(cls, v: list[str]) -> list[str]:
        from .shift import STATISTICS

        for name in v:
            if name not in STATISTICS:
                raise ValueError(f"unknown shift statistic {name!r}; choose from {', '.join(STATISTICS)}")
        if not v or len(set(v)) != len(v):
            raise ValueError("list at least one statistic, each once")
        return v

    @field_validator("min_effect")
    @classmethod
    def _effects(cls, v: dict[str, float]) -> dict[str, float]:
        from .shift import STATISTICS

        for name in v:
            if name not in STATISTICS:
                raise ValueError(f"unknown shift statistic {name!r}; choose from {', '.join(STATISTICS)}")
        return v

    def calculator(self, features, fill_value: float = -1.0, xp=None, threads: int | None = None):
        """An unfitted :class:`rapidseval.shift.ShiftCalculator` with these settings (monthly windows)."""
        from .shift import ShiftCalculator

        return ShiftCalculator(features, statistics=self.statistics, frequency="M", alarm=self.alarm,
                               window_alarm_rate=self.window_alarm_rate, k_std=self.k_std, quantile=self.quantile, min_effect=self.min_effect,
                               fill_value=fill_value, xp=xp, threads=threads)


class BacktestSpec(_Section):
    """Rolling-origin backtest with retraining policies (replaces ``evaluation``)."""

    origins: list[str] | None = Field(None, description="explicit origins (first evaluation month of each fold)")
    first_origin: str | None = Field(None, description="first generated origin (default: earliest with enough history)")
    every: int = Field(1, ge=1, description="months between generated origins (retraining decision points)")
    train_months: int | None = Field(12, ge=1, description="sliding training window in months; null: expanding")
    gap: int = Field(0, ge=0, description="months left out between training end and origin")
    horizon: int = Field(3, ge=1, description="months each origin's model is scored for the staleness matrix")
    policies: list[PolicySpec] = Field(default_factory=lambda: [
        PolicySpec(kind="static"), PolicySpec(kind="periodic", params={"every": 3}), PolicySpec(kind="drift_triggered"),
    ])
    metric: Literal["f1", "accuracy", "precision", "recall"] = Field(
        "f1", description="the metric the floor applies to (months below it are counted; drift_triggered retrains)")
    floor: float = Field(0.6, ge=0, le=1, description="floor of the metric")
    label_delay: int = Field(0, ge=0, description="months after a month ends before its labels are known")
    drift: DriftSpec = DriftSpec()
    daily: bool = Field(False, description="also write per-day metrics per policy (backtest_daily.parquet)")
    max_train_rows: int | None = Field(None, ge=1000, description="sample training months down to this many rows (seeded)")
    cache_dir: str = Field(".rapidseval/features", description="per-month feature cache (Parquet)")

    @field_validator("origins")
    @classmethod
    def _origins(cls, v):
        if v is None:
            return v
        v = _unique_sorted([_check_month(m, "origin") for m in v], "backtest.origins")
        if not v:
            raise ValueError("origins is empty; leave it out to generate them")
        return v

    @field_validator("first_origin")
    @classmethod
    def _first(cls, v):
        return v if v is None else _check_month(v, "first_origin")

    @field_validator("policies")
    @classmethod
    def _policies(cls, v):
        if not v:
            raise ValueError("at least one policy is needed")
        labels = [p.label for p in v]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"policy name(s) {', '.join(dup)} used twice; give each a distinct name")
        return v

    def splitter(self):
        from .backtest import MonthSplitter

        return MonthSplitter(origins=self.origins, every=self.every, first_origin=self.first_origin,
                             train_months=self.train_months, gap=self.gap, horizon=self.horizon)


class JobSpec(_Section):
    """A whole job. See ``jobs/*.yaml`` for examples."""

    name: str = "job"
    seed: int = 0
    backend: Literal["auto", "cpu", "gpu"] = "auto"
    data: DataSpec = DataSpec()
    features: FeaturesSpec = FeaturesSpec()
    model: ModelSpec = ModelSpec()
    models: list[ModelSpec] | None = Field(
        None, description="several models on the same stream (the first is the primary); instead of model"
    )
    evaluation: EvaluationSpec = EvaluationSpec()
    cluster: ClusterSpec = ClusterSpec()
    output: OutputSpec = OutputSpec()
    backtest: BacktestSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError("name must be letters, digits, '.', '_' or '-' (it names the run directory)")
        return v

    @model_validator(mode="after")
    def _months_in_range(self):
        if self.backtest is not None:
            return self._backtest_months()
        months = set(self.data.months)
        ev = self.evaluation
        used = {"evaluation.train": ev.train, "evaluation.test": ev.test, "evaluation.score": ev.score}
        if ev.replay is not None:
            used["evaluation.replay.months"] = ev.replay.months
        if ev.shift is not None:
            used["evaluation.shift.reference"] = [ev.shift.reference]
            used["evaluation.shift.compare"] = ev.shift.compare
        for i, m in enumerate(self.model_specs()):
            where = "model" if self.models is None else f"models.{i}"
            used[f"{where}.train"] = self.train_months(m)
            if not isinstance(m.threshold, float):
                used[f"{where}.threshold.months"] = self.threshold_months(m)
        for where, ms in used.items():
            outside = [m for m in ms if m not in months]
            if outside:
                raise ValueError(
                    f"{where}: month(s) {', '.join(outside)} outside data months {self.data.start}..{self.data.end}"
                )
        return self

    def _backtest_months(self):
        if "evaluation" in self.model_fields_set:
            raise ValueError("a job with a backtest section has no evaluation section (the backtest replaces it)")
        if self.models is not None:
            raise ValueError("a backtest compares retraining policies of one model: give model, not models")
        if not isinstance(self.model.threshold, float):
            raise ValueError("model.threshold: a backtest takes a fixed threshold (a number), not a learned one")
        try:
            self.backtest.splitter().folds(self.data.months)
        except SpecError as exc:
            raise ValueError(f"backtest: {exc}") from exc
        unknown = [f for f in self.backtest.drift.features or () if f not in self.features.features]
        if unknown:
            raise ValueError(f"backtest.drift.features: {', '.join(unknown)} not among the job's features "
                             f"({', '.join(self.features.features)})")
        return self

    @model_validator(mode="after")
    def _models(self):
        if self.models is not None:
            if "model" in self.model_fields_set:
                raise ValueError("give either model or models, not both")
            if not self.models:
                raise ValueError("models: at least one model is needed")
            names = [m.name or m.kind for m in self.models]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"models: names must differ ({', '.join(dup)} repeated; set name:)")
        for i, m in enumerate(self.model_specs()):
            if not isinstance(m.threshold, float) and not self.threshold_months(m):
                where = "model" if self.models is None else f"models.{i}"
                raise ValueError(f"{where}.threshold: learning a threshold needs months (threshold.months or evaluation.test)")
        return self

    def model_specs(self) -> list[ModelSpec]:
        """Every model of the job, named (the first is the primary)."""
        specs = self.models if self.models is not None else [self.model]
        return [m if m.name else m.model_copy(update={"name": m.kind}) for m in specs]

    def train_months(self, m: ModelSpec) -> list[str]:
        return list(m.train) if m.train is not None else list(self.evaluation.train)

    def threshold_months(self, m: ModelSpec) -> list[str]:
        if isinstance(m.threshold, float):
            return []
        return list(m.threshold.months) if m.threshold.months is not None else list(self.evaluation.test)

    def evaluated_months(self) -> list[str]:
        """Months scored by the models, in data order."""
        if self.backtest is not None:
            return list(self.data.months)
        ev = self.evaluation
        wanted = set(ev.train) | set(ev.test) | set(ev.score)
        for m in self.model_specs():
            wanted |= set(self.train_months(m)) | set(self.threshold_months(m))
        if ev.replay is not None:
            wanted |= set(ev.replay.months)
        return [m for m in self.data.months if m in wanted]

    def shift_months(self) -> list[str]:
        sh = self.evaluation.shift
        if sh is None or self.backtest is not None:
            return []
        wanted = {sh.reference, *sh.compare}
        return [m for m in self.data.months if m in wanted]


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(job)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{origin}: {where}: {msg}")
    return "\n".join(lines)


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Apply ``{"a.b": value}`` or ``["a.b=value", ...]`` to a raw job mapping (a copy)."""
    out = json.loads(json.dumps(raw or {}))
    if not overrides:
        return out
    if isinstance(overrides, (list, tuple)):
        pairs = []
        for item in overrides:
            if "=" not in item:
                raise SpecError(f"--set {item!r}: expected key=value (e.g. model.params.n_estimators=50)")
            key, _, value = item.partition("=")
            pairs.append((key.strip(), _parse_value(value)))
    else:
        pairs = list(overrides.items())
    for key, value in pairs:
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise SpecError(f"--set {key}: {p} is not a section")
            node = nxt
        node[parts[-1]] = value
    return out


def load_job(job: str | Path | dict[str, Any] | JobSpec, overrides=None) -> JobSpec:
    """Load and validate a job from a YAML path, a mapping or a JobSpec."""
    if isinstance(job, JobSpec):
        if not overrides:
            return job
        raw, origin = job.model_dump(mode="json"), "job"
    elif isinstance(job, dict):
        raw, origin = job, "job"
    else:
        path = Path(job)
        origin = str(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise SpecError(f"{path}: cannot read job file: {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {exc}") from exc
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise SpecError(f"{path}: a job file must be a mapping of sections, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides)
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_errors(exc, origin)) from exc


def spec_hash(spec: JobSpec) -> str:
    """sha256 of the resolved spec (canonical JSON)."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
