"""Job specification: YAML -> validated pydantic model.

A job file is data: it is read with a strict ``yaml.SafeLoader`` (no
aliases or anchors, so no "billion laughs"; no duplicate keys; at most
:data:`MAX_JOB_BYTES`), every section forbids unknown fields, every number
is bounded, and every error names the field (by its dotted path) and, where
the choices come from a registry, lists them.  ``--set a.b=c`` overrides are
applied to the raw mapping before validation, so they are validated exactly
like the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..core.errors import SpecError
from ..features import DEFAULT_DROP_RULES, DROP_RULES, FEATURE_KINDS, FEATURES, STUDY_FEATURES, TARGETS
from ..core.time import check_month, month_range


def month_index(month: str) -> int:
    """Months since year 0 of a checked ``YYYY-MM``."""
    year, mon = check_month(month)
    return year * 12 + mon - 1

__all__ = ["JobSpec", "load_job", "apply_overrides", "spec_hash", "check_overrides_type", "MAX_PERIOD_MONTHS", "MAX_JOB_BYTES"]

#: longest data period a job may span (50 years): resources are bounded by the period
MAX_PERIOD_MONTHS = 600
#: largest job file read (job files are a few KiB)
MAX_JOB_BYTES = 1 << 20
#: most rows a synthetic month or a partition may ask for
MAX_ROWS = 100_000_000
#: largest seed (scikit-learn's random_state and NumPy's legacy seeding take 32 bits)
MAX_SEED = 2**32 - 1


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases (billion laughs) and without duplicate keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not allowed in a job file; write the value out",
                event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, f"YAML anchors (&{event.anchor}) are not allowed in a job file; write the value out",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let SafeLoader say so
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first}); each key may appear once",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line L, column C: problem`` of a YAML error (its whole text when it has no position)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).split())
    context = getattr(exc, "context", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" + (f" ({context})" if context else "")


def _yaml_load(text: str) -> Any:
    """Parse ``text`` with :class:`_StrictLoader`."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass

def _shift_statistics() -> tuple[str, ...]:
    from ..shift import STATISTICS

    return tuple(STATISTICS)


SHIFT_STATISTICS = _shift_statistics()


def _unique_sorted(months: list[str], where: str) -> list[str]:
    if len(set(months)) != len(months):
        dup = sorted(m for m, n in Counter(months).items() if n > 1)
        raise ValueError(f"{where} lists {', '.join(dup)} more than once")
    if months != sorted(months):
        raise ValueError(f"{where} must be in calendar order, got {', '.join(months)}")
    return months


def _no_secrets(options: dict[str, Any]) -> dict[str, Any]:
    """storage_options carry endpoints and flags, never credentials."""
    from ..io.sources import reject_secrets

    try:
        reject_secrets(options)
    except SpecError as exc:
        raise ValueError(str(exc)) from exc
    return options


def _check_month(value: str, where: str = "month") -> str:
    check_month(value, where)
    return value


def _rule_params(name: str, given: Any) -> dict[str, float]:
    rule = DROP_RULES[name]
    if given is None or given is True:
        given = {}
    if not isinstance(given, dict):
        raise ValueError(f"drop rule {name}: give true, false or a mapping of its parameters, got {given!r}")
    if given and not rule.params:
        raise ValueError(f"drop rule {name} takes no parameters")
    unknown = [k for k in given if k not in rule.params]
    if unknown:
        raise ValueError(f"drop rule {name}: unknown parameter(s) {', '.join(map(str, unknown))}; "
                         f"choose from {', '.join(rule.params)}")
    out = rule.defaults()
    for key, value in given.items():
        p = rule.params[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"drop rule {name}: {key} must be a number, got {value!r}")
        if not p.low <= value <= p.high:
            raise ValueError(f"drop rule {name}: {key} must be within [{p.low:g}, {p.high:g}] ({p.doc}), got {value!r}")
        out[key] = float(value)
    return out


def _normalise_drop_rules(value: Any) -> list[Any]:
    """Every accepted form of ``features.drop_rules`` -> the list form, in precedence order,
    guards included, each rule with parameters as ``{name: {parameter: value}}`` (all given).

    * a list of names (the original form), where an item may also be ``{name: {param: value}}``:
      exactly these rules (and the guards);
    * a mapping ``name -> true | false | {param: value}``: the default rules, changed only
      where named.
    """
    chosen: dict[str, Any] = {}
    if isinstance(value, dict):
        chosen = {name: None for name in DEFAULT_DROP_RULES}
        for name, setting in value.items():
            if name not in DROP_RULES:
                raise ValueError(f"unknown drop rule {name!r}; choose from {', '.join(DROP_RULES)}")
            if setting is False:
                if DROP_RULES[name].always:
                    raise ValueError(f"drop rule {name} is a guard that bounds the run and cannot be switched off"
                                     + (f"; set its {', '.join(DROP_RULES[name].params)} instead" if DROP_RULES[name].params else ""))
                chosen.pop(name, None)
            else:
                chosen[name] = setting
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, str):
                name, setting = item, None
            elif isinstance(item, dict) and len(item) == 1:
                name, setting = next(iter(item.items()))
            else:
                raise ValueError(f"drop_rules: each item is a rule name or {{name: {{parameter: value}}}}, got {item!r}")
            if name not in DROP_RULES:
                raise ValueError(f"unknown drop rule {name!r}; choose from {', '.join(DROP_RULES)}")
            if name in chosen:
                raise ValueError(f"drop rule {name} is listed twice")
            chosen[name] = setting
    else:
        raise ValueError("drop_rules: a list of rule names or a mapping name -> true | false | {parameter: value}")
    out: list[Any] = []
    for name, rule in DROP_RULES.items():  # precedence order; guards always
        if name not in chosen and not rule.always:
            continue
        params = _rule_params(name, chosen.get(name))
        out.append({name: params} if params else name)
    return out


class _Section(BaseModel):
    # no NaN or infinity in any number of a job (a threshold of nan compares false everywhere)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SyntheticSpec(_Section):
    """How ``data.source: synthetic`` makes its months (cached by these values)."""

    rows_per_month: int = Field(200_000, ge=1, le=MAX_ROWS)
    scenario: str = "march2020"
    seed: int = Field(2020, ge=0, le=MAX_SEED)
    scenario_month: str | None = None
    cache_dir: str = ".rapidseval/synthetic"

    @field_validator("scenario")
    @classmethod
    def _known_scenario(cls, v: str) -> str:
        from ..data.synthetic import SCENARIOS

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
    partition_rows: int = Field(2_000_000, ge=10_000, le=MAX_ROWS,
                                description="target rows per partition (Parquet row groups are grouped)")
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
        first, last = (month_index(m) for m in (self.start, self.end))
        if last < first:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if last - first + 1 > MAX_PERIOD_MONTHS:
            raise ValueError(f"{self.start}..{self.end} spans {last - first + 1:,} months; a job spans at most "
                             f"{MAX_PERIOD_MONTHS} (split a longer history into several jobs)")
        months = month_range(self.start, self.end)
        if isinstance(self.source, list):
            twice = sorted({u for u in self.source if self.source.count(u) > 1})
            if twice:
                where = {u: [m for m, v in zip(months, self.source) if v == u] for u in twice}
                raise ValueError("lists " + "; ".join(f"{u} more than once (for {', '.join(where[u]) or 'no month'})"
                                                      for u in twice) + ": give each month its own input, in month order")
        return self

    @property
    def months(self) -> list[str]:
        return month_range(self.start, self.end)


class FeaturesSpec(_Section):
    target: str = "high_tip"
    features: list[str] = Field(default_factory=lambda: list(STUDY_FEATURES))
    drop_rules: list[str | dict[str, dict[str, float]]] = Field(
        default_factory=lambda: _normalise_drop_rules(list(DEFAULT_DROP_RULES)),
        description="rules that drop (and count) rows: a list of names, where an item may be "
                    "{name: {parameter: value}}; or a mapping name -> true | false | {parameter: value} "
                    "that changes only the rules it names",
    )
    fill_value: float = -1.0
    kinds: dict[str, str] = Field(
        default_factory=dict,
        description="feature -> categorical | integer | continuous, overriding the feature's default kind "
                    "(which shift statistics apply and how alarms are explained)")

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

    @field_validator("drop_rules", mode="before")
    @classmethod
    def _rules(cls, v):
        return _normalise_drop_rules(v)

    def rule_names(self) -> tuple[str, ...]:
        """The rules applied, in precedence order (guards included)."""
        return tuple(next(iter(r)) if isinstance(r, dict) else r for r in self.drop_rules)

    def rule_params(self) -> dict[str, dict[str, float]]:
        """Rule name -> parameters, for the rules that have any."""
        return {k: dict(p) for r in self.drop_rules if isinstance(r, dict) for k, p in r.items()}

    @field_validator("kinds")
    @classmethod
    def _kind_names(cls, v: dict[str, str]) -> dict[str, str]:
        from ..shift import KINDS

        for feature, kind in v.items():
            if kind not in KINDS:
                raise ValueError(f"{feature}: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        return v

    @model_validator(mode="after")
    def _kinds_of_features(self):
        unknown = [f for f in self.kinds if f not in self.features]
        if unknown:
            raise ValueError(f"kinds: {', '.join(unknown)} not among the job's features; "
                             f"choose from {', '.join(self.features)}")
        return self

    def feature_kinds(self) -> dict[str, str]:
        """Every feature of the job -> its kind: declared in ``kinds``, else the feature's default."""
        return {f: self.kinds.get(f, FEATURE_KINDS[f]) for f in self.features}


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
        from ..models import MODELS

        if v not in MODELS:
            raise ValueError(f"unknown model kind {v!r}; choose one of {', '.join(MODELS)}")
        return v

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


#: longest replay window per unit: a year
_MAX_WINDOW_UNITS = {"h": 366 * 24, "D": 366, "W": 53, "M": 12}


class ReplaySpec(_Section):
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
        from ..core.time import parse_window

        window = parse_window(v)
        if window.k > _MAX_WINDOW_UNITS[window.unit]:
            raise ValueError(f"window {v!r} is longer than a year; at most {_MAX_WINDOW_UNITS[window.unit]}{window.unit}")
        return window.label

    @field_validator("label_delay")
    @classmethod
    def _delay(cls, v) -> str:
        from ..core.time import parse_delay_hours

        if parse_delay_hours(v) > 366 * 24:
            raise ValueError(f"label_delay {v!r} is longer than a year (366D)")
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
    k_std: float = Field(3.0, gt=0, le=1000)
    quantile: float = Field(0.99, gt=0, lt=1)
    min_effect: dict[str, float] = Field(default_factory=dict, description="statistic -> minimum value to alarm")
    bins: int = Field(10, ge=2, le=1000, description="reference-quantile bins of psi / jensen_shannon")
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
        for feature, names in v.items():
            if feature not in FEATURES:
                raise ValueError(f"per_feature: unknown feature {feature!r}; choose from {', '.join(FEATURES)}")
            bad = [s for s in names if s not in SHIFT_STATISTICS]
            if bad:
                raise ValueError(f"per_feature: unknown shift statistic(s) {', '.join(bad)} for {feature}; "
                                 f"choose from {', '.join(SHIFT_STATISTICS)}")
            if len(set(names)) != len(names):
                raise ValueError(f"per_feature: shift statistics for {feature} list a name twice")
        return v  # whether they suit the feature's kind (features.kinds): JobSpec._shift_kinds

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

    def calculator(self, features, fill_value: float = -1.0, xp=None, kinds=None):
        """The :class:`rapidseval.shift.ShiftCalculator` this section describes (``xp``: the
        backend's array module for its calibration; ``kinds``: the job's feature kinds,
        :meth:`FeaturesSpec.feature_kinds`)."""
        from ..shift import ShiftCalculator, threshold_from_options

        threshold = threshold_from_options(self.alarm, window_alarm_rate=self.window_alarm_rate, k_std=self.k_std,
                                           quantile=self.quantile, min_effect=self.min_effect)
        return ShiftCalculator(features, statistics=self.statistics, per_feature=self.per_feature, kinds=kinds,
                               frequency=self.window, calendar=self.calendar, threshold=threshold, bins=self.bins,
                               fill_value=fill_value, alpha=self.alpha, xp=xp)


class EvaluationSpec(_Section):
    train: list[str] = Field(default_factory=lambda: ["2020-01"])
    test: list[str] = Field(default_factory=lambda: ["2020-02"])
    score: list[str] = Field(default_factory=lambda: ["2020-03", "2020-04", "2020-05", "2020-06"])
    replay: ReplaySpec | None = ReplaySpec()
    shift: ShiftSpec | None = ShiftSpec()
    allow_overlap: bool = Field(
        False, description="let a model's training months overlap or follow the months it is evaluated on "
                           "(test, score, replay); recorded in the manifest as train_eval_overlap")

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


def _memory_size(v, field: str, *, allow_auto: bool) -> str:
    """A memory size as Dask reads it: ``'auto'``, bytes (``'4GB'``, ``4e9``) or a fraction ``(0, 1]``."""
    from dask.utils import parse_bytes

    text = str(v).strip() if isinstance(v, (str, int, float)) and not isinstance(v, bool) else None
    if text is None:
        raise ValueError(f"{field} must be a size such as '4GB' or a fraction such as '0.5', got {v!r}")
    if allow_auto and text == "auto":
        return text
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None and 0 < number <= 1:
        return text
    try:
        size = parse_bytes(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{field} {v!r} is not a size ('4GB', '512MiB', bytes) or a fraction in (0, 1]"
                         + (" or 'auto'" if allow_auto else "")) from exc
    if not 1 << 20 <= size <= 1 << 50:
        raise ValueError(f"{field} {v!r} is {size:,} bytes; give between 1 MiB and 1 PiB")
    return text


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
    n_workers: int = Field(2, ge=1, le=1024,
                           description="local on CPU: worker processes (on GPUs: one worker per visible GPU)")
    threads_per_worker: int = Field(1, ge=1, le=1024)
    memory_limit: str = Field("auto", description="per worker: 'auto', bytes ('4GB', 4e9) or a fraction of the RAM ('0.5')")
    address: str | None = Field(None, description="scheduler address: tcp://host:8786 or tls://host:8786")
    timeout: float = Field(30.0, gt=0, le=86_400, description="seconds to wait for a scheduler (and its first worker)")
    tls: TLSSpec | None = None
    rmm_pool_size: str | None = Field(None, description="local-cuda: RMM pool per GPU (e.g. '24GB' or '0.9')")
    device_memory_limit: str | None = Field("0.8", description="local-cuda: spill device memory to host above this (bytes, '20GB' or a fraction)")

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _memory_limit(cls, v):
        return _memory_size(v, "memory_limit", allow_auto=True)

    @field_validator("rmm_pool_size", "device_memory_limit", mode="before")
    @classmethod
    def _device_memory(cls, v, info):
        return None if v is None else _memory_size(v, info.field_name, allow_auto=False)

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
        from ..io.rundir import check_dir_template

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
        from ..backtest import make_policy

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
    k_std: float = Field(3.0, gt=0, le=1000)
    quantile: float = Field(0.99, gt=0, lt=1)
    min_effect: dict[str, float] = Field(default_factory=dict,
                                         description="alarm only when the statistic is also at least this (e.g. {ks: 0.02})")
    features: list[str] | None = Field(None, description="features watched (default: all the model's features)")

    @field_validator("statistics")
    @classmethod
    def _stats(cls, v: list[str]) -> list[str]:
        from ..shift import STATISTICS

        for name in v:
            if name not in STATISTICS:
                raise ValueError(f"unknown shift statistic {name!r}; choose from {', '.join(STATISTICS)}")
        if not v or len(set(v)) != len(v):
            raise ValueError("list at least one statistic, each once")
        return v

    @field_validator("min_effect")
    @classmethod
    def _effects(cls, v: dict[str, float]) -> dict[str, float]:
        from ..shift import STATISTICS

        for name in v:
            if name not in STATISTICS:
                raise ValueError(f"unknown shift statistic {name!r}; choose from {', '.join(STATISTICS)}")
        return v

    def calculator(self, features, fill_value: float = -1.0, xp=None, threads: int | None = None, kinds=None):
        """An unfitted :class:`rapidseval.shift.ShiftCalculator` with these settings (monthly windows;
        ``kinds``: the job's feature kinds, :meth:`FeaturesSpec.feature_kinds`)."""
        from ..shift import ShiftCalculator, threshold_from_options

        threshold = threshold_from_options(self.alarm, window_alarm_rate=self.window_alarm_rate, k_std=self.k_std,
                                           quantile=self.quantile, min_effect=self.min_effect)
        return ShiftCalculator(features, statistics=self.statistics, kinds=kinds, frequency="M", threshold=threshold,
                               fill_value=fill_value, xp=xp, threads=threads)


class BacktestSpec(_Section):
    """Rolling-origin backtest with retraining policies (replaces ``evaluation``)."""

    origins: list[str] | None = Field(None, description="explicit origins (first evaluation month of each fold)")
    first_origin: str | None = Field(None, description="first generated origin (default: earliest with enough history)")
    every: int = Field(1, ge=1, le=MAX_PERIOD_MONTHS, description="months between generated origins (retraining decision points)")
    train_months: int | None = Field(12, ge=1, le=MAX_PERIOD_MONTHS,
                                     description="sliding training window in months; null: expanding")
    gap: int = Field(0, ge=0, le=MAX_PERIOD_MONTHS, description="months left out between training end and origin")
    horizon: int = Field(3, ge=1, le=MAX_PERIOD_MONTHS, description="months each origin's model is scored for the staleness matrix")
    policies: list[PolicySpec] = Field(default_factory=lambda: [
        PolicySpec(kind="static"), PolicySpec(kind="periodic", params={"every": 3}), PolicySpec(kind="drift_triggered"),
    ])
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
        dup = sorted(x for x, n in Counter(labels).items() if n > 1)
        if dup:
            raise ValueError(f"policy name(s) {', '.join(dup)} used twice; give each a distinct name")
        return v

    def splitter(self):
        from ..backtest import MonthSplitter

        return MonthSplitter(origins=self.origins, every=self.every, first_origin=self.first_origin,
                             train_months=self.train_months, gap=self.gap, horizon=self.horizon)


class JobSpec(_Section):
    """A whole job. See ``jobs/*.yaml`` for examples."""

    name: str = "job"
    seed: int = Field(0, ge=0, le=MAX_SEED)
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
        leaks = self.train_eval_overlap()
        if leaks and not ev.allow_overlap:
            name, leak = next(iter(leaks.items()))
            where = "model" if self.models is None else f"models.{[m.name for m in self.model_specs()].index(name)}"
            raise ValueError(
                f"{where}.train: time leakage: model {name} trains on {', '.join(leak['train_months'])}, "
                f"not before the month(s) it is evaluated on ({', '.join(leak['eval_months'])}); train on earlier "
                "months, or set evaluation.allow_overlap: true to accept (the manifest then records it)")
        return self

    def eval_months(self) -> list[str]:
        """Months the models are judged on: evaluation.test, score and replay months, in data order."""
        ev = self.evaluation
        wanted = set(ev.test) | set(ev.score) | set(ev.replay.months if ev.replay is not None else ())
        return [m for m in self.data.months if m in wanted] if wanted else []

    def train_eval_overlap(self) -> dict[str, dict[str, list[str]]]:
        """Per model name, its training months that overlap or follow the first evaluation month
        (and the evaluation months they leak into); empty when every model trains strictly before."""
        if self.backtest is not None:
            return {}
        evals = self.eval_months()
        if not evals:
            return {}
        first = month_index(evals[0])
        out = {}
        for m in self.model_specs():
            late = [t for t in self.train_months(m) if month_index(t) >= first]
            if late:
                last = max(month_index(t) for t in late)
                out[m.name] = {"train_months": late, "eval_months": [e for e in evals if month_index(e) <= last]}
        return out

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
    def _shift_kinds(self):
        """Statistics named per feature must apply to the feature's kind as the job declares it."""
        from ..shift import check_statistics

        sh = self.evaluation.shift if self.backtest is None else None
        if sh is None:
            return self
        kinds = self.features.feature_kinds()
        for feature, names in sh.per_feature.items():
            try:
                check_statistics(feature, names, kinds)
            except SpecError as exc:
                raise ValueError(f"evaluation.shift.per_feature: {exc}") from exc
        return self

    @model_validator(mode="after")
    def _models(self):
        if self.models is not None:
            if "model" in self.model_fields_set:
                raise ValueError("give either model or models, not both")
            if not self.models:
                raise ValueError("models: at least one model is needed")
            names = [m.name or m.kind for m in self.models]
            dup = sorted(x for x, k in Counter(names).items() if k > 1)
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
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{origin}: {where}: {msg}" if where else f"{origin}: {msg}")  # a whole-job check names its fields
    return "\n".join(lines)


def _parse_value(text: str) -> Any:
    try:
        return _yaml_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Apply ``{"a.b": value}`` or ``["a.b=value", ...]`` to a raw job mapping (a copy).

    Raises
    ------
    TypeError
        ``overrides`` is neither a mapping nor a list of strings (a single
        ``"a.b=value"`` string must be wrapped in a list).
    SpecError
        An item without ``=``, an empty key or key part.
    """
    check_overrides_type(overrides)
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
        if not key or any(not p.strip() for p in parts):
            raise SpecError(f"--set {key}={value!r}: the key {key!r} is empty or has an empty part; "
                            "name a job field by its dotted path (e.g. model.params.n_estimators=50)")
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


def check_overrides_type(overrides) -> None:
    """TypeError unless ``overrides`` is None, a mapping of dotted paths, or a list of ``"a.b=value"`` strings."""
    if overrides is None or isinstance(overrides, dict):
        if overrides and not all(isinstance(k, str) for k in overrides):
            raise TypeError("overrides: every key must be a dotted field path (str), e.g. {'model.params.n_estimators': 50}")
        return
    if isinstance(overrides, (list, tuple)) and all(isinstance(item, str) for item in overrides):
        return
    hint = (f"; wrap one in a list: [{overrides!r}]" if isinstance(overrides, str) else "")
    raise TypeError("overrides must be a mapping {'a.b': value} or a list of 'a.b=value' strings, "
                    f"got {type(overrides).__name__}{hint}")


def load_job(job: str | Path | dict[str, Any] | JobSpec, overrides=None) -> JobSpec:
    """Load and validate a job from a YAML path, a mapping or a JobSpec.

    Raises
    ------
    TypeError
        ``job`` or ``overrides`` of a type that cannot be a job or overrides.
    SpecError
        The file cannot be read, is empty, is not strict YAML (aliases,
        duplicate keys), or the job is invalid; the message names the file,
        line or field.
    """
    check_overrides_type(overrides)
    if not isinstance(job, (str, Path, dict, JobSpec)) and not hasattr(job, "__fspath__"):
        raise TypeError(f"job must be a path to a YAML file, a mapping or a JobSpec, got {type(job).__name__}")
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
            if not path.exists():
                raise SpecError(f"{path}: no such job file")
            if path.is_dir():
                raise SpecError(f"{path}: is a directory, not a job file (YAML)")
            if path.stat().st_size > MAX_JOB_BYTES:
                raise SpecError(f"{path}: {path.stat().st_size:,} bytes; a job file is at most {MAX_JOB_BYTES:,} bytes")
            text = path.read_text()
        except OSError as exc:
            raise SpecError(f"{path}: cannot read job file: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise SpecError(f"{path}: not a text file (UTF-8): {exc.reason} at byte {exc.start}") from exc
        try:
            raw = _yaml_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from exc
        if raw is None:
            raise SpecError(f"{path}: the job file is empty; a job needs at least its sections "
                            "(see jobs/smoke.yaml for a complete example)")
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
