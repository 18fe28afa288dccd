"""Cleaning rules, target and features: one function for training and scoring.

:func:`prepare` turns a canonical frame (pandas or cuDF, see
:mod:`rapidseval.io.canonical`) of one month into the model's inputs.
Training and every evaluation path call it, so there is no train/serve skew.

Rows are dropped only by the named rules in :data:`DROP_RULES`; each row is
charged to the first rule it fails and every rule's count is returned, so a
run can account for every row it read.  Some rules take parameters (the
plausibility bounds: speed, duration, distance, fare).  Three are guards that
apply whatever the job lists: ``missing_timestamp``, ``outside_period`` (event
times inside the month, plus the longest trip after it) and
``feature_not_finite``, so that no input value can size a table downstream or
reach the model as an infinity.  Missing feature values are filled
(the study's ``-1``) and counted per feature.

Everything is computed with the backend's array module on int64 microsecond
timestamps, so the same code runs on NumPy and CuPy and gives the same
numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd

from .core.errors import SchemaError
from .core.time import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE, US_PER_SECOND, month_bounds, weekday

__all__ = [
    "DEFAULT_DROP_RULES",
    "DROP_RULES",
    "DropRule",
    "RuleParam",
    "FEATURES",
    "FEATURE_KINDS",
    "STUDY_DROP_RULES",
    "STUDY_FEATURES",
    "TARGETS",
    "Target",
    "FeatureSpec",
    "PartStats",
    "prepare",
    "required_columns",
]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------------------------
# registries
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Feature:
    """A registered feature.

    Attributes
    ----------
    needs : canonical columns it reads.
    compute : ``compute(columns, xp)`` -> its values, from the part's columns (times as
        ``<name>_us`` int64 microseconds) with the array module ``xp``.
    doc : what it is.
    kind : the default kind, one of rapidseval.shift.KINDS (a job's features.kinds overrides it).
    """

    needs: tuple[str, ...]
    compute: Callable[[dict[str, Any], Any], Any]
    doc: str
    kind: str


def _weekday(columns, xp):
    return weekday(columns["pickup_us"] // US_PER_DAY)


def _hour(columns, xp):
    return (columns["pickup_us"] // US_PER_HOUR) % 24


def _minute(columns, xp):
    return (columns["pickup_us"] // US_PER_MINUTE) % 60


def _work_hours(columns, xp):
    return (_weekday(columns, xp) <= 4) & (_hour(columns, xp) >= 8) & (_hour(columns, xp) <= 18)


def _trip_time(columns, xp):
    return (columns["dropoff_us"] - columns["pickup_us"]) / US_PER_SECOND


def _trip_speed(columns, xp):
    return columns["trip_distance"] / (_trip_time(columns, xp) + 1e-7)


def _column(name: str) -> Callable[[dict[str, Any], Any], Any]:
    """A feature that is the canonical column ``name`` itself."""
    return lambda columns, xp: columns[name]


FEATURES: dict[str, _Feature] = {
    "pickup_weekday": _Feature(("pickup_datetime",), _weekday, "day of week of pickup, 0=Monday", "categorical"),
    "pickup_hour": _Feature(("pickup_datetime",), _hour, "hour of pickup, 0-23", "integer"),
    "work_hours": _Feature(
        ("pickup_datetime",), _work_hours, "1 if pickup on Monday-Friday between 08:00 and 18:59", "categorical",
    ),
    "pickup_minute": _Feature(("pickup_datetime",), _minute, "minute of pickup", "integer"),
    "passenger_count": _Feature(("passenger_count",), _column("passenger_count"), "passengers", "integer"),
    "trip_distance": _Feature(("trip_distance",), _column("trip_distance"), "miles", "continuous"),
    "trip_time": _Feature(
        ("pickup_datetime", "dropoff_datetime"), _trip_time, "dropoff - pickup in total seconds (not the wrapping .seconds)",
        "continuous",
    ),
    "trip_speed": _Feature(
        ("trip_distance", "pickup_datetime", "dropoff_datetime"), _trip_speed,
        "miles per second: trip_distance / (trip_time + 1e-7)", "continuous",
    ),
    "PULocationID": _Feature(("pickup_location_id",), _column("pickup_location_id"), "pickup taxi zone", "categorical"),
    "DOLocationID": _Feature(("dropoff_location_id",), _column("dropoff_location_id"), "dropoff taxi zone", "categorical"),
    "RatecodeID": _Feature(("rate_code_id",), _column("rate_code_id"), "rate code", "categorical"),
}

#: feature -> its default kind (from the registry; a job's ``features.kinds`` overrides)
FEATURE_KINDS: dict[str, str] = {name: f.kind for name, f in FEATURES.items()}

STUDY_FEATURES: tuple[str, ...] = (
    "pickup_weekday",
    "pickup_hour",
    "work_hours",
    "pickup_minute",
    "passenger_count",
    "trip_distance",
    "trip_time",
    "trip_speed",
    "PULocationID",
    "DOLocationID",
    "RatecodeID",
)


@dataclass(frozen=True)
class Target:
    """A registered target: the canonical columns it reads, what it is, and
    ``compute(columns)`` -> a boolean array over the kept rows."""

    needs: tuple[str, ...]
    doc: str
    compute: Callable[[dict[str, Any]], Any]


def _high_tip(columns: dict[str, Any]):
    return (columns["tip_amount"] / columns["fare_amount"]) > 0.2


#: target name -> :class:`Target`
TARGETS: dict[str, Target] = {
    "high_tip": Target(("tip_amount", "fare_amount"), "tip_amount / fare_amount > 0.2", _high_tip),
}


@dataclass(frozen=True)
class RuleParam:
    """A rule's numeric parameter: its default, the range a job may set (inclusive), its meaning."""

    default: float
    low: float
    high: float
    doc: str


@dataclass(frozen=True)
class DropRule:
    """A named cleaning rule.

    Attributes
    ----------
    needs : canonical columns the rule reads.
    doc : what a dropped row failed.
    params : parameter name -> :class:`RuleParam` (``features.drop_rules`` may set them).
    always : a guard that holds memory and the model's inputs to what the job declares
        (event times inside the period, finite float32 features); it applies even when
        the job's list leaves it out, so no input value can size a table.
    """

    needs: tuple[str, ...]
    doc: str
    params: dict[str, RuleParam] = field(default_factory=dict)
    always: bool = False

    def defaults(self) -> dict[str, float]:
        return {k: p.default for k, p in self.params.items()}


#: rule name -> rule; order = precedence (a row is charged to the first rule it fails)
DROP_RULES: dict[str, DropRule] = {
    "missing_timestamp": DropRule(
        ("pickup_datetime", "dropoff_datetime"), "pickup or dropoff time missing (NaT)", always=True),
    "pickup_outside_month": DropRule(("pickup_datetime",), "pickup time outside the file's month"),
    "outside_period": DropRule(
        ("pickup_datetime", "dropoff_datetime"),
        "pickup or dropoff outside [month start, month end + max_trip_hours]: the job's period bounds every table",
        {"max_trip_hours": RuleParam(24.0, 1.0, 24.0 * 31, "longest trip the period extends over, hours")},
        always=True),
    "fare_not_positive": DropRule(("fare_amount",), "fare_amount <= 0 or missing (the study's rule)"),
    "missing_label": DropRule(("tip_amount",), "tip_amount missing, so the target is unknown"),
    "non_finite_value": DropRule((), "a numeric input is +/-inf"),
    "dropoff_before_pickup": DropRule(("pickup_datetime", "dropoff_datetime"), "negative trip time"),
    "zero_duration": DropRule(("pickup_datetime", "dropoff_datetime"), "dropoff at the same instant as pickup"),
    "duplicate_row": DropRule((), "an exact copy (in every column the job reads) of an earlier row of the same part"),
    "duration_above_max": DropRule(
        ("pickup_datetime", "dropoff_datetime"), "trip longer than max_hours",
        {"max_hours": RuleParam(10.0, 0.01, 24.0 * 31, "longest plausible trip, hours")}),
    "distance_above_max": DropRule(
        ("trip_distance",), "trip_distance above max_miles (or below 0)",
        {"max_miles": RuleParam(250.0, 0.1, 1e6, "longest plausible trip, miles")}),
    "fare_above_max": DropRule(
        ("fare_amount",), "fare_amount above max_fare",
        {"max_fare": RuleParam(1000.0, 1.0, 1e7, "highest plausible fare, dollars")}),
    "speed_above_max": DropRule(
        ("trip_distance", "pickup_datetime", "dropoff_datetime"),
        "average speed (trip_distance over trip time) above max_mph",
        {"max_mph": RuleParam(100.0, 1.0, 1e6, "fastest plausible average speed, miles per hour")}),
    "feature_not_finite": DropRule(
        (), "a feature is +/-inf or beyond float32 range (the model's input type)", always=True),
}

#: the rules a job applies when it does not say
DEFAULT_DROP_RULES: tuple[str, ...] = tuple(DROP_RULES)

#: the cleaning of the study (Shankar, 2021) and of rapidseval before the plausibility rules
STUDY_DROP_RULES: tuple[str, ...] = (
    "missing_timestamp", "pickup_outside_month", "fare_not_positive", "missing_label", "non_finite_value",
    "dropoff_before_pickup",
)

#: columns the output frame carries besides features and target
EVENT_COLUMNS = ("pickup_datetime", "dropoff_datetime")


@dataclass(frozen=True)
class FeatureSpec:
    """Which target, features and drop rules a job uses."""

    features: tuple[str, ...] = STUDY_FEATURES
    target: str = "high_tip"
    drop_rules: tuple[str, ...] = DEFAULT_DROP_RULES
    fill_value: float = -1.0
    #: rule name -> {parameter: value} for rules whose defaults the job changes
    rule_params: dict[str, dict[str, float]] = field(default_factory=dict, hash=False)

    def active_rules(self) -> dict[str, dict[str, float]]:
        """Rule name -> parameters of every rule applied, in precedence order (guards included)."""
        return {
            name: {**rule.defaults(), **self.rule_params.get(name, {})}
            for name, rule in DROP_RULES.items()
            if rule.always or name in self.drop_rules
        }

    @property
    def max_trip_hours(self) -> float:
        """The longest trip the ``outside_period`` guard keeps: how far past its month a kept
        row's time may fall (the period's windows reach that far)."""
        return self.active_rules()["outside_period"]["max_trip_hours"]


@dataclass
class PartStats:
    """Row accounting of one prepared part (sums across parts by :meth:`merge`)."""

    rows_read: int = 0
    rows_used: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    filled: dict[str, int] = field(default_factory=dict)
    positives: int = 0

    def merge(self, other: "PartStats") -> "PartStats":
        out = PartStats(self.rows_read + other.rows_read, self.rows_used + other.rows_used, positives=self.positives + other.positives)
        for name in set(self.dropped) | set(other.dropped):
            out.dropped[name] = self.dropped.get(name, 0) + other.dropped.get(name, 0)
        for name in set(self.filled) | set(other.filled):
            out.filled[name] = self.filled.get(name, 0) + other.filled.get(name, 0)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_dropped": sum(self.dropped.values()),
            "dropped_by_rule": dict(sorted(self.dropped.items())),
            "rows_used": self.rows_used,
            "filled_missing_by_feature": dict(sorted(self.filled.items())),
            "positives": self.positives,
        }


def required_columns(spec: FeatureSpec) -> dict[str, list[str]]:
    """Canonical column -> the features/target/rules that need it."""
    need: dict[str, list[str]] = {}
    for name in spec.features:
        for col in FEATURES[name].needs:
            need.setdefault(col, []).append(name)
    for col in TARGETS[spec.target].needs:
        need.setdefault(col, []).append(f"target {spec.target}")
    for rule in spec.active_rules():
        for col in DROP_RULES[rule].needs:
            need.setdefault(col, []).append(f"rule {rule}")
    for col in EVENT_COLUMNS:
        need.setdefault(col, []).append("event time")
    return need


_MIX = 0x9E3779B97F4A7C15  # 2^64 / golden ratio (Fibonacci hashing)
#: a copy agrees in every column, so a few telling ones find the candidates; the exact
#: comparison then looks at all of them
_TELLING_COLUMNS = ("pickup_us", "dropoff_us", "trip_distance", "fare_amount")


def _row_hash_keys(cols: dict[str, Any], n: int, *, xp):
    """A 32-bit hash of each row's telling columns (-0.0 hashed as 0.0, every NaN alike)."""
    hashes = xp.zeros(n, dtype=xp.uint64)
    mix = xp.uint64(_MIX)
    for name in [c for c in _TELLING_COLUMNS if c in cols] or sorted(cols):
        values = cols[name]
        if values.dtype.kind == "f":
            values = values + 0.0  # -0.0 -> 0.0
            bits = xp.where(xp.isnan(values), xp.uint64(0x7FF8000000000000), values.view(xp.uint64))
        else:
            bits = values.astype(xp.int64).view(xp.uint64)
        hashes ^= bits
        hashes *= mix
        hashes ^= hashes >> xp.uint64(29)
    return (hashes >> xp.uint64(32)).astype(xp.uint32)  # 32 bits sort faster; collisions only add candidates


def _duplicate_rows(cols: dict[str, Any], n: int, *, xp, backend):
    """True where a row equals an earlier row in every column read (pandas'
    ``duplicated(keep="first")``, NaN equal to NaN, -0.0 to 0.0).

    Rows are hashed to 64 bits on a few telling columns (times, distance, fare) with the
    backend's array module, and only rows whose hash repeats (the copies, and the rare
    trips alike in those) are compared exactly in every column, on the host: about
    twenty times faster than pandas hashing every row.
    """
    keys = _row_hash_keys(cols, n, xp=xp)
    sorted_keys = xp.sort(keys)
    repeats = xp.unique(sorted_keys[1:][sorted_keys[1:] == sorted_keys[:-1]])
    out = xp.zeros(n, dtype=bool)
    if not int(repeats.shape[0]):  # no two rows alike
        return out
    at = xp.minimum(xp.searchsorted(repeats, keys), int(repeats.shape[0]) - 1)
    candidates = xp.nonzero(repeats[at] == keys)[0]  # in row order, so "first" keeps the earliest
    subset = pd.DataFrame({k: backend.to_host(v[candidates]) for k, v in sorted(cols.items())})
    duplicated = xp.asarray(subset.duplicated(keep="first").to_numpy())
    out[candidates[duplicated]] = True
    return out


# ---------------------------------------------------------------------------------------
# drop rules on the input columns: one test per rule
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _PartColumns:
    """One part's input columns as arrays, what every drop rule looks at.

    Attributes
    ----------
    columns : canonical column -> float64 array; a ``*_datetime`` column becomes
        ``*_us`` (int64 microseconds, 0 where missing) and ``*_valid`` (bool).
    rows : rows in the part.
    month_start_us, month_end_us : the file's month, ``[start, end)`` in microseconds.
    xp : the backend's array module.
    backend : rapidseval.backend.Backend
    """

    columns: dict[str, Any]
    rows: int
    month_start_us: int
    month_end_us: int
    xp: Any
    backend: Any


def _missing_timestamp(part: _PartColumns, params: dict[str, float]):
    return ~(part.columns["pickup_datetime_valid"] & part.columns["dropoff_datetime_valid"])


def _pickup_outside_month(part: _PartColumns, params: dict[str, float]):
    pickup = part.columns["pickup_us"]
    return (pickup < part.month_start_us) | (pickup >= part.month_end_us)


def _outside_period(part: _PartColumns, params: dict[str, float]):
    period_end = part.month_end_us + int(params["max_trip_hours"] * US_PER_HOUR)
    pickup, dropoff = part.columns["pickup_us"], part.columns["dropoff_us"]
    return ((pickup < part.month_start_us) | (pickup >= period_end)
            | (dropoff < part.month_start_us) | (dropoff > period_end))


def _fare_not_positive(part: _PartColumns, params: dict[str, float]):
    return ~(part.columns["fare_amount"] > 0)  # NaN fails too


def _missing_label(part: _PartColumns, params: dict[str, float]):
    return part.xp.isnan(part.columns["tip_amount"])


def _non_finite_value(part: _PartColumns, params: dict[str, float]):
    xp = part.xp
    bad = xp.zeros(part.rows, dtype=bool)
    for values in part.columns.values():
        if values.dtype.kind == "f":
            bad |= xp.isinf(values)
    return bad


def _dropoff_before_pickup(part: _PartColumns, params: dict[str, float]):
    return part.columns["dropoff_us"] < part.columns["pickup_us"]


def _zero_duration(part: _PartColumns, params: dict[str, float]):
    return part.columns["dropoff_us"] == part.columns["pickup_us"]


def _duplicate_row(part: _PartColumns, params: dict[str, float]):
    if not part.rows:
        return part.xp.zeros(0, dtype=bool)
    return _duplicate_rows(part.columns, part.rows, xp=part.xp, backend=part.backend)


def _duration_above_max(part: _PartColumns, params: dict[str, float]):
    duration_us = part.columns["dropoff_us"] - part.columns["pickup_us"]
    return duration_us > int(params["max_hours"] * US_PER_HOUR)


def _speed_above_max(part: _PartColumns, params: dict[str, float]):
    # miles > max_mph * hours, without dividing (zero durations are their own rule)
    hours = (part.columns["dropoff_us"] - part.columns["pickup_us"]) / US_PER_HOUR
    return (hours > 0) & (part.columns["trip_distance"] > params["max_mph"] * hours)


def _distance_above_max(part: _PartColumns, params: dict[str, float]):
    distance = part.columns["trip_distance"]
    return (distance > params["max_miles"]) | (distance < 0)


def _fare_above_max(part: _PartColumns, params: dict[str, float]):
    return part.columns["fare_amount"] > params["max_fare"]


#: rule name -> ``test(part, params)``: True for the rows that fail it.  Every rule of
#: :data:`DROP_RULES` but ``feature_not_finite``, which judges the computed features
#: (:func:`_drop_unusable_features`).
_ROW_TESTS: dict[str, Callable[[_PartColumns, dict[str, float]], Any]] = {
    "missing_timestamp": _missing_timestamp,
    "pickup_outside_month": _pickup_outside_month,
    "outside_period": _outside_period,
    "fare_not_positive": _fare_not_positive,
    "missing_label": _missing_label,
    "non_finite_value": _non_finite_value,
    "dropoff_before_pickup": _dropoff_before_pickup,
    "zero_duration": _zero_duration,
    "duplicate_row": _duplicate_row,
    "duration_above_max": _duration_above_max,
    "distance_above_max": _distance_above_max,
    "fare_above_max": _fare_above_max,
    "speed_above_max": _speed_above_max,
}

#: rule name -> its code in a part's per-row rule codes (0: kept)
_RULE_CODES: dict[str, int] = {name: code for code, name in enumerate(DROP_RULES, start=1)}


# ---------------------------------------------------------------------------------------
# prepare, stage by stage
# ---------------------------------------------------------------------------------------
def _check_columns(frame, need: dict[str, list[str]], *, path: str, month: str) -> None:
    """SchemaError naming the file, month and what needs each missing column."""
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{path} ({month}): missing canonical column(s) {', '.join(missing)} needed by "
            + "; ".join(f"{c}: {', '.join(need[c])}" for c in missing)
        )


def _part_columns(frame, need: dict[str, list[str]], *, month: str, backend) -> _PartColumns:
    """The needed columns as arrays: float64 values, times as int64 microseconds plus validity."""
    xp = backend.xp
    rows = len(frame)
    columns: dict[str, Any] = {}
    for col in need:
        series = frame[col]
        if col.endswith("_datetime"):
            valid = ~backend.asarray(series.isna())
            columns[col + "_valid"] = valid
            columns[col.replace("_datetime", "_us")] = xp.where(valid, backend.time_us(series), 0)
        else:
            columns[col] = backend.asarray(series, dtype="float64") if rows else xp.zeros(0, dtype="float64")
    month_start, month_end = (int(bound.astype("int64")) for bound in month_bounds(month))
    return _PartColumns(columns, rows, month_start, month_end, xp, backend)


def _rule_codes(part: _PartColumns, active: dict[str, dict[str, float]]):
    """int8 per row: the code (:data:`_RULE_CODES`) of the first active rule the row fails, 0 if none."""
    xp = part.xp
    codes = xp.zeros(part.rows, dtype="int8")
    for rule, params in active.items():
        test = _ROW_TESTS.get(rule)
        if test is not None:  # feature_not_finite is judged on the features
            codes = xp.where((codes == 0) & test(part, params), xp.int8(_RULE_CODES[rule]), codes)
    return codes


@dataclass(frozen=True)
class _KeptRows:
    """The rows no rule has dropped: their input columns and their features (float64)."""

    columns: dict[str, Any]
    features: dict[str, Any]

    def take(self, mask) -> "_KeptRows":
        return _KeptRows({k: v[mask] for k, v in self.columns.items()}, {k: v[mask] for k, v in self.features.items()})


def _kept_rows(part: _PartColumns, codes, feature_names: Sequence[str]) -> _KeptRows:
    """Input columns of the rows kept so far, and their features."""
    xp = part.xp
    keep = codes == 0
    kept = {k: v[keep] for k, v in part.columns.items()}
    features: dict[str, Any] = {}
    for name in feature_names:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # overflow is a counted drop
            features[name] = xp.asarray(FEATURES[name].compute(kept, xp), dtype="float64")
    return _KeptRows(kept, features)


def _drop_unusable_features(kept: _KeptRows, codes, *, xp) -> _KeptRows:
    """Charge ``feature_not_finite`` (in ``codes``, in place) for kept rows with a feature
    that would reach the model as inf once float32; the rows still kept after it."""
    unusable = xp.zeros(int((codes == 0).sum()), dtype=bool)
    for values in kept.features.values():
        unusable |= xp.isinf(values) | (xp.abs(values) > _FLOAT32_MAX)
    if not bool(unusable.any()):
        return kept
    positions = xp.nonzero(codes == 0)[0]
    codes[positions[unusable]] = _RULE_CODES["feature_not_finite"]
    return kept.take(~unusable)


class _FilledFeatures(NamedTuple):
    """The model's feature columns (float32, missing values filled) and how many were filled."""

    columns: dict[str, Any]
    filled: dict[str, int]


def _filled_features(features: dict[str, Any], fill_value: float, *, xp) -> _FilledFeatures:
    """float32 feature columns with missing values filled with ``fill_value``, and the count per feature."""
    out = _FilledFeatures({}, {})
    for name, values in features.items():
        missing = xp.isnan(values)
        out.filled[name] = int(missing.sum())
        out.columns[name] = xp.where(missing, fill_value, values).astype("float32")
    return out


def _output_frame(columns: dict[str, Any], *, backend):
    """The backend's DataFrame of ``columns``, event times as datetime64[us]."""
    frame = backend.xdf.DataFrame(columns)
    for col in EVENT_COLUMNS:  # int64 microseconds -> datetime64[us] (CuPy has no datetimes)
        frame[col] = frame[col].astype("datetime64[us]")
    return frame


def prepare(frame, spec: FeatureSpec, *, month: str, backend, path: str = "<frame>") -> tuple[Any, PartStats]:
    """Clean one month's canonical frame and compute target and features.

    Parameters
    ----------
    frame : pandas.DataFrame or cudf.DataFrame
        Canonical columns (at least :func:`required_columns`).
    spec : FeatureSpec
    month : str
        ``YYYY-MM`` of the file the rows came from (for ``pickup_outside_month``).
    backend : rapidseval.backend.Backend
    path : str
        Named in errors.

    Returns
    -------
    frame : same frame type
        One float32 column per feature (missing filled with ``spec.fill_value``),
        the int8 target column and the event-time columns, for the rows kept.
    stats : PartStats
    """
    xp = backend.xp
    need = required_columns(spec)
    _check_columns(frame, need, path=path, month=month)
    part = _part_columns(frame, need, month=month, backend=backend)
    active = spec.active_rules()
    codes = _rule_codes(part, active)
    kept = _kept_rows(part, codes, spec.features)
    if "feature_not_finite" in active:
        kept = _drop_unusable_features(kept, codes, xp=xp)
    per_code = xp.bincount(codes.astype("int64"), minlength=len(DROP_RULES) + 1)
    per_code = [int(count) for count in backend.to_host(per_code)]

    features = _filled_features(kept.features, spec.fill_value, xp=xp)
    columns = dict(features.columns)
    target = TARGETS[spec.target].compute(kept.columns)
    columns[spec.target] = target.astype("int8")
    for col in EVENT_COLUMNS:
        columns[col] = kept.columns[col.replace("_datetime", "_us")]
    stats = PartStats(
        rows_read=part.rows,
        rows_used=int((codes == 0).sum()),
        dropped={rule: per_code[_RULE_CODES[rule]] for rule in active},
        filled=features.filled,
        positives=int(target.sum()),
    )
    return _output_frame(columns, backend=backend), stats
