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

MODEL_KINDS = ("random_forest",)


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

    @field_validator("storage_options")
    @classmethod
    def _no_secrets(cls, v: dict[str, Any]) -> dict[str, Any]:
        from .data.sources import reject_secrets

        try:
            reject_secrets(v)
        except SpecError as exc:
            raise ValueError(str(exc)) from exc
        return v

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


class ModelSpec(_Section):
    kind: str = "random_forest"
    params: dict[str, Any] = Field(default_factory=lambda: {"n_estimators": 100, "max_depth": 10})
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="predict positive when P(y=1) > threshold (sklearn's predict at 0.5)")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {v!r}; choose one of {', '.join(MODEL_KINDS)}")
        return v


class ReplaySpec(_Section):
    months: list[str] = Field(default_factory=lambda: ["2020-03"])
    window: Literal["h", "D", "W", "M"] = "D"
    time_column: Literal["dropoff_datetime", "pickup_datetime"] = "dropoff_datetime"

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
    alarm: Literal["std", "quantile"] = Field("std", description="threshold from the reference null: mean + k_std*std, or a quantile")
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

    def calculator(self, features, fill_value: float = -1.0):
        """The :class:`rapidseval.shift.ShiftCalculator` this section describes."""
        from .shift import ShiftCalculator

        return ShiftCalculator(features, statistics=self.statistics, per_feature=self.per_feature,
                               frequency=self.window, calendar=self.calendar, alarm=self.alarm, k_std=self.k_std,
                               quantile=self.quantile, min_effect=self.min_effect, bins=self.bins,
                               fill_value=fill_value, alpha=self.alpha)


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


class ClusterSpec(_Section):
    kind: Literal["local", "threads", "scheduler"] = "local"
    n_workers: int = Field(2, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "auto"
    address: str | None = None
    timeout: float = Field(30.0, gt=0, description="seconds to wait for a scheduler")

    @model_validator(mode="after")
    def _address(self):
        if self.kind == "scheduler" and not self.address:
            raise ValueError("cluster.kind 'scheduler' needs cluster.address (tcp://host:8786)")
        return self


class OutputSpec(_Section):
    dir: str = "runs/{name}"
    report: bool = True


class JobSpec(_Section):
    """A whole job. See ``jobs/*.yaml`` for examples."""

    name: str = "job"
    seed: int = 0
    backend: Literal["auto", "cpu", "gpu"] = "auto"
    data: DataSpec = DataSpec()
    features: FeaturesSpec = FeaturesSpec()
    model: ModelSpec = ModelSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    cluster: ClusterSpec = ClusterSpec()
    output: OutputSpec = OutputSpec()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError("name must be letters, digits, '.', '_' or '-' (it names the run directory)")
        return v

    @model_validator(mode="after")
    def _months_in_range(self):
        months = set(self.data.months)
        ev = self.evaluation
        used = {"evaluation.train": ev.train, "evaluation.test": ev.test, "evaluation.score": ev.score}
        if ev.replay is not None:
            used["evaluation.replay.months"] = ev.replay.months
        if ev.shift is not None:
            used["evaluation.shift.reference"] = [ev.shift.reference]
            used["evaluation.shift.compare"] = ev.shift.compare
        for where, ms in used.items():
            outside = [m for m in ms if m not in months]
            if outside:
                raise ValueError(
                    f"{where}: month(s) {', '.join(outside)} outside data months {self.data.start}..{self.data.end}"
                )
        return self

    def evaluated_months(self) -> list[str]:
        """Months scored by the model, in data order."""
        ev = self.evaluation
        wanted = set(ev.train) | set(ev.test) | set(ev.score)
        if ev.replay is not None:
            wanted |= set(ev.replay.months)
        return [m for m in self.data.months if m in wanted]

    def shift_months(self) -> list[str]:
        sh = self.evaluation.shift
        if sh is None:
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
