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
from typing import Any, Callable, Sequence

import numpy as np

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
    needs: tuple[str, ...]
    compute: Callable[[dict[str, Any], Any], Any]
    doc: str
    kind: str  # the default kind, one of rapidseval.shift.KINDS (a job's features.kinds overrides it)


def _weekday(c, xp):
    return weekday(c["pickup_us"] // US_PER_DAY)


def _hour(c, xp):
    return (c["pickup_us"] // US_PER_HOUR) % 24


def _trip_time(c, xp):
    return (c["dropoff_us"] - c["pickup_us"]) / US_PER_SECOND


FEATURES: dict[str, _Feature] = {
    "pickup_weekday": _Feature(("pickup_datetime",), _weekday, "day of week of pickup, 0=Monday", "categorical"),
    "pickup_hour": _Feature(("pickup_datetime",), _hour, "hour of pickup, 0-23", "integer"),
    "work_hours": _Feature(
        ("pickup_datetime",),
        lambda c, xp: (_weekday(c, xp) <= 4) & (_hour(c, xp) >= 8) & (_hour(c, xp) <= 18),
        "1 if pickup on Monday-Friday between 08:00 and 18:59",
        "categorical",
    ),
    "pickup_minute": _Feature(("pickup_datetime",), lambda c, xp: (c["pickup_us"] // US_PER_MINUTE) % 60, "minute of pickup", "integer"),
    "passenger_count": _Feature(("passenger_count",), lambda c, xp: c["passenger_count"], "passengers", "integer"),
    "trip_distance": _Feature(("trip_distance",), lambda c, xp: c["trip_distance"], "miles", "continuous"),
    "trip_time": _Feature(
        ("pickup_datetime", "dropoff_datetime"), _trip_time, "dropoff - pickup in total seconds (not the wrapping .seconds)",
        "continuous",
    ),
    "trip_speed": _Feature(
        ("trip_distance", "pickup_datetime", "dropoff_datetime"),
        lambda c, xp: c["trip_distance"] / (_trip_time(c, xp) + 1e-7),
        "miles per second: trip_distance / (trip_time + 1e-7)",
        "continuous",
    ),
    "PULocationID": _Feature(("pickup_location_id",), lambda c, xp: c["pickup_location_id"], "pickup taxi zone", "categorical"),
    "DOLocationID": _Feature(("dropoff_location_id",), lambda c, xp: c["dropoff_location_id"], "dropoff taxi zone", "categorical"),
    "RatecodeID": _Feature(("rate_code_id",), lambda c, xp: c["rate_code_id"], "rate code", "categorical"),
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

#: target name -> (canonical columns needed, doc)
TARGETS: dict[str, tuple[tuple[str, ...], str]] = {
    "high_tip": (("tip_amount", "fare_amount"), "tip_amount / fare_amount > 0.2"),
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
    for col in TARGETS[spec.target][0]:
        need.setdefault(col, []).append(f"target {spec.target}")
    for rule in spec.active_rules():
        for col in DROP_RULES[rule].needs:
            need.setdefault(col, []).append(f"rule {rule}")
    for col in EVENT_COLUMNS:
        need.setdefault(col, []).append("event time")
    return need


_MIX = 0x9E3779B97F4A7C15  # 2^64 / golden ratio (Fibonacci hashing)


def _duplicate_rows(cols: dict[str, Any], n: int, *, xp, backend):
    """True where a row equals an earlier row in every column read (pandas'
    ``duplicated(keep="first")``, NaN equal to NaN, -0.0 to 0.0).

    Rows are hashed to 64 bits on a few telling columns (times, distance, fare) with the
    backend's array module, and only rows whose hash repeats (the copies, and the rare
    trips alike in those) are compared exactly in every column, on the host: about
    twenty times faster than pandas hashing every row.
    """
    h = xp.zeros(n, dtype=xp.uint64)
    mix = xp.uint64(_MIX)
    # a copy agrees in every column, so a few telling ones find the candidates; the
    # exact comparison below then looks at all of them
    telling = [c for c in ("pickup_us", "dropoff_us", "trip_distance", "fare_amount") if c in cols] or sorted(cols)
    for name in telling:
        a = cols[name]
        if a.dtype.kind == "f":
            a = a + 0.0  # -0.0 -> 0.0
            bits = xp.where(xp.isnan(a), xp.uint64(0x7FF8000000000000), a.view(xp.uint64))
        else:
            bits = a.astype(xp.int64).view(xp.uint64)
        h ^= bits
        h *= mix
        h ^= h >> xp.uint64(29)
    key = (h >> xp.uint64(32)).astype(xp.uint32)  # 32 bits sort faster; collisions only add candidates
    sk = xp.sort(key)
    repeats = xp.unique(sk[1:][sk[1:] == sk[:-1]])
    out = xp.zeros(n, dtype=bool)
    if not int(repeats.shape[0]):  # no two rows alike
        return out
    at = xp.minimum(xp.searchsorted(repeats, key), int(repeats.shape[0]) - 1)
    rows = xp.nonzero(repeats[at] == key)[0]  # candidates in row order, so "first" keeps the earliest
    import pandas as pd

    subset = pd.DataFrame({k: backend.to_host(v[rows]) for k, v in sorted(cols.items())})
    dup = xp.asarray(subset.duplicated(keep="first").to_numpy())
    out[rows[dup]] = True
    return out


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
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{path} ({month}): missing canonical column(s) {', '.join(missing)} needed by "
            + "; ".join(f"{c}: {', '.join(need[c])}" for c in missing)
        )
    n = len(frame)
    cols: dict[str, Any] = {}
    for col in need:
        s = frame[col]
        if col.endswith("_datetime"):
            valid = ~backend.asarray(s.isna())
            cols[col + "_valid"] = valid
            cols[col.replace("_datetime", "_us")] = xp.where(valid, backend.time_us(s), 0)
        else:
            cols[col] = backend.asarray(s, dtype="float64") if n else xp.zeros(0, dtype="float64")

    code = xp.zeros(n, dtype="int8")

    def charge(rule_index: int, bad):
        nonlocal code
        code = xp.where((code == 0) & bad, xp.int8(rule_index), code)

    rules = list(DROP_RULES)
    active = spec.active_rules()
    month_lo, month_hi = (int(b.astype("int64")) for b in month_bounds(month))
    for rule, params in active.items():
        idx = rules.index(rule) + 1
        if rule == "missing_timestamp":
            charge(idx, ~(cols["pickup_datetime_valid"] & cols["dropoff_datetime_valid"]))
        elif rule == "pickup_outside_month":
            p = cols["pickup_us"]
            charge(idx, (p < month_lo) | (p >= month_hi))
        elif rule == "outside_period":
            period_end = month_hi + int(params["max_trip_hours"] * US_PER_HOUR)
            p, d = cols["pickup_us"], cols["dropoff_us"]
            charge(idx, (p < month_lo) | (p >= period_end) | (d < month_lo) | (d > period_end))
        elif rule == "fare_not_positive":
            charge(idx, ~(cols["fare_amount"] > 0))  # NaN fails too
        elif rule == "missing_label":
            charge(idx, xp.isnan(cols["tip_amount"]))
        elif rule == "non_finite_value":
            bad = xp.zeros(n, dtype=bool)
            for col, arr in cols.items():
                if arr.dtype.kind == "f":
                    bad |= xp.isinf(arr)
            charge(idx, bad)
        elif rule == "dropoff_before_pickup":
            charge(idx, cols["dropoff_us"] < cols["pickup_us"])
        elif rule == "zero_duration":
            charge(idx, cols["dropoff_us"] == cols["pickup_us"])
        elif rule == "duplicate_row":
            if n:
                charge(idx, _duplicate_rows(cols, n, xp=xp, backend=backend))
        elif rule == "duration_above_max":
            charge(idx, (cols["dropoff_us"] - cols["pickup_us"]) > int(params["max_hours"] * US_PER_HOUR))
        elif rule == "speed_above_max":
            # miles > max_mph * hours, without dividing (zero durations are their own rule)
            hours = (cols["dropoff_us"] - cols["pickup_us"]) / US_PER_HOUR
            charge(idx, (hours > 0) & (cols["trip_distance"] > params["max_mph"] * hours))
        elif rule == "distance_above_max":
            d = cols["trip_distance"]
            charge(idx, (d > params["max_miles"]) | (d < 0))
        elif rule == "fare_above_max":
            charge(idx, cols["fare_amount"] > params["max_fare"])

    keep = code == 0
    kept = {k: v[keep] for k, v in cols.items()}

    out: dict[str, Any] = {}
    values: dict[str, Any] = {}
    unusable = xp.zeros(int(keep.sum()), dtype=bool)
    for name in spec.features:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # overflow is a counted drop below
            v = xp.asarray(FEATURES[name].compute(kept, xp), dtype="float64")
        values[name] = v
        if "feature_not_finite" in active:  # would reach the model as inf once float32
            unusable |= xp.isinf(v) | (xp.abs(v) > _FLOAT32_MAX)
    if "feature_not_finite" in active and bool(unusable.any()):
        idx = rules.index("feature_not_finite") + 1
        rows = xp.nonzero(keep)[0]
        code[rows[unusable]] = idx
        keep = code == 0
        usable = ~unusable
        kept = {k: v[usable] for k, v in kept.items()}
        values = {k: v[usable] for k, v in values.items()}
    counts = xp.bincount(code.astype("int64"), minlength=len(rules) + 1)
    counts = [int(v) for v in backend.to_host(counts)]

    filled: dict[str, int] = {}
    for name in spec.features:
        v = values[name]
        nan = xp.isnan(v)
        filled[name] = int(nan.sum())
        out[name] = xp.where(nan, spec.fill_value, v).astype("float32")
    if spec.target == "high_tip":
        target = (kept["tip_amount"] / kept["fare_amount"]) > 0.2
    else:  # pragma: no cover - registry and validation keep this unreachable
        raise KeyError(spec.target)
    out[spec.target] = target.astype("int8")
    for col in EVENT_COLUMNS:
        out[col] = kept[col.replace("_datetime", "_us")]

    stats = PartStats(
        rows_read=n,
        rows_used=int(keep.sum()),
        dropped={rule: counts[rules.index(rule) + 1] for rule in active},
        filled=filled,
        positives=int(target.sum()),
    )
    frame = backend.xdf.DataFrame(out)
    for col in EVENT_COLUMNS:  # int64 microseconds -> datetime64[us] (CuPy has no datetimes)
        frame[col] = frame[col].astype("datetime64[us]")
    return frame, stats
