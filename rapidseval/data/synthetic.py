"""Synthetic NYC TLC yellow-taxi trip records, calibrated on real samples.

:func:`generate` writes one TLC-like file per month
(``yellow_tripdata_YYYY-MM.parquet`` or ``.csv``) in the TLC 2016-07+ zone
schema, plus ``ground_truth.json`` describing any change a scenario injected
(a March-2020-like regime change, a units bug, a renamed column).  Every
constant comes from ``calibration.json``, derived from real samples by
``tools/calibrate.py``.

Determinism: the per-(day, hour) trip counts of a month are drawn from
``SeedSequence([seed, year*12+month, 0])``; rows are then generated in fixed
blocks of :data:`BLOCK_ROWS` rows, block ``b`` seeded with
``SeedSequence([seed, year*12+month, 1, b])``.  Write chunks (one Parquet row
group each) are cut from that stream, so ``chunk_rows`` changes the row groups
but never a value.  Rows are sorted by pickup time within a month.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..core.errors import SpecError
from ..core.time import US_PER_SECOND, month_from_index, month_index, weekday

__all__ = [
    "BLOCK_ROWS",
    "FORMATS",
    "SCENARIOS",
    "Effects",
    "EffectsFrom",
    "GenerateResult",
    "Scenario",
    "generate",
    "load_calibration",
    "missing_code_rate",
    "MISSING_CODE_FEATURES",
    "calendar_changes",
]

#: Rows per generation block (the unit of seeding; independent of chunk_rows).
BLOCK_ROWS = 1 << 16
FORMATS = ("parquet", "csv")
CALIBRATION_PATH = Path(__file__).with_name("calibration.json")
_MILES_TO_KM = 1.609344
_S_PER_HOUR = 3_600
_S_PER_DAY = 86_400

_FLOAT_COLS = (
    "fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount",
    "improvement_surcharge", "total_amount", "congestion_surcharge",
)
#: Output column -> Arrow type (TLC 2020 Parquet; airport_fee from 2022-01).
OUTPUT_SCHEMA: dict[str, pa.DataType] = {
    "VendorID": pa.float64(),
    "tpep_pickup_datetime": pa.timestamp("us"),
    "tpep_dropoff_datetime": pa.timestamp("us"),
    "passenger_count": pa.float64(),
    "trip_distance": pa.float64(),
    "RatecodeID": pa.float64(),
    "store_and_fwd_flag": pa.string(),
    "PULocationID": pa.int64(),
    "DOLocationID": pa.int64(),
    "payment_type": pa.int64(),
    **{c: pa.float64() for c in _FLOAT_COLS},
    "airport_fee": pa.float64(),
}


# --------------------------------------------------------------------------- months


def _month_start_s(index: int) -> int:
    """Seconds since the epoch (naive wall clock) of the month's first instant."""
    return int(np.datetime64(month_from_index(index), "s").astype(np.int64))


def _yearly(anchors: list[list[Any]], index: int) -> float:
    """Anchored trend read at July of the month's year: constant within a calendar year."""
    xs = [month_index(m) for m, _ in anchors]
    return float(np.interp(index - index % 12 + 6, xs, [v for _, v in anchors]))


def missing_code_rate(month: str) -> float:
    """Share of a month's rows whose codes (vendor, passenger count, rate code, ...) are
    missing: none before the calibration's ``codes.missing_from`` (mid-2019, as in the real
    files), then a yearly level.  A change of every scenario, ``none`` included, that
    ``ground_truth.json`` does not list (it is the calendar, not the story)."""
    codes = load_calibration()["codes"]
    index = month_index(month)
    return _yearly(codes["missing_rate"], index) if index >= month_index(codes["missing_from"]) else 0.0


#: features the missing codes show in (:func:`missing_code_rate`)
MISSING_CODE_FEATURES = ("passenger_count", "RatecodeID")


def calendar_changes(months: list[str]) -> list[dict[str, Any]]:
    """The changes every scenario (``none`` included) makes over ``months``, as the calendar
    of the real files does: each step of :func:`missing_code_rate` (``ground_truth.json``'s
    ``calendar_changes``, beside the scenario's ``changes``), with the months at that level."""
    out: list[dict[str, Any]] = []
    rates = [missing_code_rate(m) for m in months]
    for i in range(1, len(months)):
        if round(rates[i], 9) != round(rates[i - 1], 9):
            same = []
            for m, r in zip(months[i:], rates[i:]):
                if round(r, 9) != round(rates[i], 9):
                    break
                same.append(m)
            out.append({"kind": "missing_codes", "months": same, "from": f"{months[i]}-01T00:00:00",
                        "features": list(MISSING_CODE_FEATURES), "rate_before": rates[i - 1], "rate": rates[i],
                        "how": f"from {months[i]} a share {rates[i]:.4g} of rows (was {rates[i - 1]:.4g}) have missing "
                               "codes (passenger count, rate code, ...)"})
    return out


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Effects:
    """Changes to the trip process from a change time on (neutral by default).

    Attributes
    ----------
    pickup_group_weight, dropoff_group_weight
        Multipliers of the zone groups' weights (calibration ``zones.groups``).
    distance_log_shift
        Added to the log of every trip distance.
    duration_factor
        Multiplies trip durations (< 1: faster streets).
    card_logit_shift
        Added to the log-odds of paying by card.
    zero_tip_share
        Share of card trips without a tip (``None``: calibrated value).
    preset_scale
        Multiplies the shares of the 20/25/30 % tip presets.
    """

    pickup_group_weight: tuple[float, ...] | None = None
    dropoff_group_weight: tuple[float, ...] | None = None
    distance_log_shift: float = 0.0
    duration_factor: float = 1.0
    card_logit_shift: float = 0.0
    zero_tip_share: float | None = None
    preset_scale: float = 1.0


class EffectsFrom(NamedTuple):
    """Process changes for the rows picked up from ``start_s`` (epoch seconds) on."""

    start_s: int
    effects: Effects


@dataclass(frozen=True)
class Scenario:
    """A named data-generating story; the base class is stationary.

    Subclasses override the hooks: :meth:`changes` (ground truth),
    :meth:`volume` (per-hour volume multipliers), :meth:`effects` (process
    changes from a time on) and :meth:`apply` (edits to generated columns).
    """

    name: str
    description: str

    def default_month(self, months: list[str]) -> str:
        """Month changed when `scenario_month` is not given: the middle one."""
        return months[len(months) // 2]

    def changes(self, months: list[str], scenario_month: str | None) -> list[dict[str, Any]]:
        """Ground-truth entries (plain words plus machine-readable fields)."""
        return []

    def volume(self, month: str, cell_start_s: np.ndarray,
               changes: list[dict[str, Any]]) -> np.ndarray | None:
        """Multiplier of each hourly cell's expected volume (``None``: unchanged)."""
        return None

    def effects(self, month: str, changes: list[dict[str, Any]]) -> EffectsFrom | None:
        """The change time and :class:`Effects` for rows picked up from then on (``None``: none)."""
        return None

    def apply(self, month: str, columns: dict[str, np.ndarray],
              changes: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Edit a block's finished columns (values or names) before writing."""
        return columns


def _change_start(month: str) -> str:
    return f"{month}-01T00:00:00"


@dataclass(frozen=True)
class _UnitsBug(Scenario):
    factor: float = _MILES_TO_KM

    def changes(self, months, scenario_month):
        month = scenario_month or self.default_month(months)
        return [{
            "kind": "unit_change", "months": [month], "from": _change_start(month),
            "columns": ["trip_distance"], "features": ["trip_distance", "trip_speed"],
            "factor": self.factor, "unit": "km",
            "how": f"trip_distance of every {month} row is in kilometres instead of miles "
                   f"(x{self.factor}); nothing else changes",
        }]

    def apply(self, month, columns, changes):
        if month in changes[0]["months"]:
            columns["trip_distance"] = np.round(columns["trip_distance"] * self.factor, 2)
        return columns


@dataclass(frozen=True)
class _SchemaChange(Scenario):
    # not "fare_amt": that is TLC's own 2009 name (Fare_Amt), which the schema
    # layer rightly maps to fare_amount; this rename must be one it does not know
    column: str = "fare_amount"
    renamed_to: str = "fare_amount_usd"

    def changes(self, months, scenario_month):
        month = scenario_month or self.default_month(months)
        return [{
            "kind": "column_rename", "months": [month], "from": _change_start(month),
            "columns": [self.column], "renamed_to": self.renamed_to, "features": [],
            "how": f"the {month} file names column {self.column!r} {self.renamed_to!r} "
                   f"(values unchanged); reading it must fail naming the file and the column",
        }]

    def apply(self, month, columns, changes):
        if month in changes[0]["months"]:
            columns = {self.renamed_to if k == self.column else k: v for k, v in columns.items()}
        return columns


#: Zone-group multipliers after the March-2020-like change, in calibration
#: group order: core, north Manhattan, Brooklyn, Queens, Bronx, Staten Island,
#: JFK, LaGuardia, Newark, unknown.
_LOCKDOWN_GROUPS = (0.6, 1.6, 2.4, 2.2, 2.6, 2.0, 0.2, 0.2, 0.3, 1.0)


@dataclass(frozen=True)
class _March2020(Scenario):
    day: int = 14
    floor: float = 0.15
    ramp_days: float = 4.0
    lockdown: Effects = field(default_factory=lambda: Effects(
        pickup_group_weight=_LOCKDOWN_GROUPS,
        dropoff_group_weight=_LOCKDOWN_GROUPS,
        distance_log_shift=-0.15,
        duration_factor=0.8,
        card_logit_shift=-0.45,
        zero_tip_share=0.08,
        preset_scale=0.85,
    ))

    def changes(self, months, scenario_month):
        month = scenario_month or "2020-03"
        start = f"{month}-{self.day:02d}T00:00:00"
        hit = [m for m in months if month_index(m) >= month_index(month)]
        lockdown = self.lockdown
        groups = load_calibration()["zones"]["groups"]
        return [
            {"kind": "volume_drop", "months": hit, "from": start, "columns": [], "features": [],
             "floor": self.floor, "ramp_days": self.ramp_days,
             "how": f"trip volume falls linearly to {self.floor:.0%} of normal over "
                    f"{self.ramp_days:g} days from {start[:10]} and stays there in later months"},
            {"kind": "trip_mix", "months": hit, "from": start,
             "columns": ["PULocationID", "DOLocationID", "trip_distance", "tpep_dropoff_datetime",
                         "fare_amount", "total_amount"],
             "features": ["PULocationID", "DOLocationID", "trip_distance", "trip_time", "trip_speed"],
             "pickup_group_weight": dict(zip(groups, lockdown.pickup_group_weight or ())),
             "dropoff_group_weight": dict(zip(groups, lockdown.dropoff_group_weight or ())),
             "distance_log_shift": lockdown.distance_log_shift, "duration_factor": lockdown.duration_factor,
             "how": "fewer airport and Manhattan-core trips, more outer-borough ones; trips "
                    f"shorter (log distance {lockdown.distance_log_shift:+g}) and faster "
                    f"(duration x{lockdown.duration_factor:g})"},
            {"kind": "payment_and_tips", "months": hit, "from": start,
             "columns": ["payment_type", "tip_amount", "total_amount"], "features": [],
             "label_affected": True, "card_logit_shift": lockdown.card_logit_shift,
             "zero_tip_share": lockdown.zero_tip_share, "preset_scale": lockdown.preset_scale,
             "how": f"card share falls (log-odds {lockdown.card_logit_shift:+g}), more card trips "
                    f"without tip ({lockdown.zero_tip_share:.0%}) and fewer preset tips "
                    f"(x{lockdown.preset_scale:g}): the high-tip rate drops, so a model trained "
                    "before the change loses F1"},
        ]

    def _t0(self, changes) -> int:
        return int(np.datetime64(changes[0]["from"], "s").astype(np.int64))

    def volume(self, month, cell_start_s, changes):
        if month not in changes[0]["months"]:
            return None
        ramp = np.clip((cell_start_s + 1800 - self._t0(changes)) / (self.ramp_days * _S_PER_DAY), 0.0, 1.0)
        return 1.0 - (1.0 - self.floor) * ramp

    def effects(self, month, changes):
        return EffectsFrom(self._t0(changes), self.lockdown) if month in changes[0]["months"] else None


#: Registry of scenarios by name.
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("none", "stationary: only the natural calendar varies (hours, weekdays; "
                 "tariff eras and yearly card-share and missing-code levels as in real data)"),
        _March2020("march2020", "a March-2020-like regime change: volume collapses from 2020-03-14 "
                   "(or the 14th of scenario_month), trip mix shifts, card share and tips drop"),
        _UnitsBug("units_bug", "one month (scenario_month, default the middle one) has "
                  "trip_distance in kilometres"),
        _SchemaChange("schema_change", "one month (scenario_month, default the middle one) "
                      "has fare_amount renamed to fare_amount_usd, a name no TLC schema uses"),
    )
}


# --------------------------------------------------------------------------- model


@lru_cache(maxsize=1)
def load_calibration() -> dict[str, Any]:
    """The embedded calibration constants (``calibration.json``)."""
    return json.loads(CALIBRATION_PATH.read_text())


def _cdf(weights: np.ndarray) -> np.ndarray:
    c = np.cumsum(weights, dtype=np.float64)
    return c / c[-1]


def _stack(cdfs: np.ndarray) -> np.ndarray:
    """Row ``g`` of a cdf matrix shifted to ``(g, g+1]``: searching ``g + u`` samples row ``g``."""
    return (np.arange(len(cdfs))[:, None] + cdfs).ravel()


class _Lookup:
    """``np.searchsorted(edges, key, side="right")`` for keys in ``[0, top)``, faster.

    A guide table gives the answer for the start of each of `bins` equal
    slices of ``[0, top)``; the few keys beyond a boundary inside their
    slice are stepped forward (exact, not an approximation).
    """

    def __init__(self, edges: np.ndarray, top: float | None = None, bins: int = 4096) -> None:
        edges = np.asarray(edges, dtype=np.float64)
        top = float(edges[-1]) if top is None else top
        self.edges = np.append(edges, np.inf)
        self.scale = bins / top
        self.last = bins - 1
        self.guide = np.searchsorted(edges, np.arange(bins) / self.scale, side="right")

    def __call__(self, key: np.ndarray) -> np.ndarray:
        slot = np.minimum(key * self.scale, self.last).astype(np.intp)
        idx = self.guide[slot]
        todo = np.flatnonzero(self.edges[idx] <= key)
        while todo.size:
            idx[todo] += 1
            todo = todo[self.edges[idx[todo]] <= key[todo]]
        return idx


class _Model:
    """Calibration turned into sampling tables (built once).

    Arrays are indexed by zone id (0 unused), by group pair (``pickup group * n_groups +
    dropoff group``) or by day-hour (``weekend * 24 + hour``); samplers (:class:`_Lookup`)
    map a uniform draw to a zone, group, passenger count or tip kind.  The samplers that
    scenario :class:`Effects` change are cached per effect (``None``: unchanged).
    """

    def __init__(self, cal: dict[str, Any]) -> None:
        self.cal = cal
        self._zone_tables(cal["zones"], cal["tariff"])
        self._dropoff_tables(cal["zones"])
        self._trip_tables(cal)
        self._payment_tables(cal)

    def _zone_tables(self, zones: dict[str, Any], tariff: dict[str, Any]) -> None:
        self.group = np.asarray(zones["group_of_zone"], dtype=np.int64)
        self.n_groups = len(zones["groups"])
        self.pickup_weight = np.asarray(zones["pickup_weight"])
        self.group_transition = np.asarray(zones["group_transition"])
        self.core_zone = np.zeros(266, dtype=bool)
        self.core_zone[zones["core_zones"]] = True
        self.special_zone = np.zeros(266, dtype=bool)  # trip ends with their own rate codes
        self.special_zone[[zones["jfk"], zones["newark"], 265]] = True
        self.airport_fee_by_zone = np.zeros(266)
        self.airport_fee_by_zone[[zones["jfk"], zones["laguardia"]]] = tariff["airport_fee"]
        self._pickup_zone = {None: _Lookup(_cdf(self.pickup_weight))}
        self._dropoff_group = {None: _Lookup(_stack(self._transition_cdf(None)))}

    def _dropoff_tables(self, zones: dict[str, Any]) -> None:
        # zones ordered by group: searching g + u in g + (within-group cdf) samples a zone of group g
        self.zones_by_group = np.argsort(self.group, kind="stable")
        sorted_groups = self.group[self.zones_by_group]
        weight = np.asarray(zones["dropoff_weight"])[self.zones_by_group]
        within = np.empty_like(weight)
        for g in range(self.n_groups):
            within[sorted_groups == g] = _cdf(weight[sorted_groups == g])
        self.dropoff_zone_in_group = _Lookup(sorted_groups + within)
        # a dropoff drawn by group can land on the pickup zone by chance: lower the
        # explicit same-zone probability so that the total matches the calibration
        dropoff_weight = np.asarray(zones["dropoff_weight"])
        dropoff_in_group = dropoff_weight / np.bincount(self.group, weights=dropoff_weight)[self.group]
        pickup_in_group = self.pickup_weight / np.bincount(self.group, weights=self.pickup_weight)[self.group]
        chance = np.bincount(self.group, weights=pickup_in_group * dropoff_in_group, minlength=self.n_groups)
        chance *= np.diag(self.group_transition)
        target = np.asarray(zones["same_zone_prob"])
        self.same_zone_prob = np.clip((target - chance) / (1.0 - chance), 0.0, 1.0)

    def _trip_tables(self, cal: dict[str, Any]) -> None:
        distance, duration, tariff = cal["distance"], cal["duration"], cal["tariff"]
        self.distance_mu, self.distance_sigma = np.ravel(distance["mu"]), np.ravel(distance["sigma"])
        self.toll_prob = np.ravel(cal["fares"]["toll_prob"])
        hour = np.arange(48) % 24
        night = (hour >= 20) | (hour < 6)
        self.rush_hour = (np.arange(48) < 24) & (hour >= 16) & (hour < 20)
        self.extra_by_dayhour = np.where(night, tariff["night_surcharge"],
                                         np.where(self.rush_hour, tariff["rush_surcharge"], 0.0))
        self.duration_log_a = np.ravel(duration["log_a"])
        self.duration_sigma = np.asarray(duration["sigma"])
        edges = duration["sigma_distance_edges"]
        self.duration_sigma_bin = _Lookup(np.asarray(edges), top=2 * edges[-1])

    def _payment_tables(self, cal: dict[str, Any]) -> None:
        payment = cal["payment"]
        hour = np.arange(48) % 24
        self.card_logit_dayhour = (payment["intercept"] + np.asarray(payment["hour"])[hour]
                                   + payment["weekend"] * (np.arange(48) >= 24))
        self.card_logit_pickup = np.asarray([0.0] + payment["pickup_zone"])
        self.card_logit_dropoff = np.asarray([0.0] + payment["dropoff_zone"])
        self.card_logit_distance = np.asarray(payment["distance_bin"])
        self.card_distance_bin = _Lookup(np.asarray(payment["distance_edges"]), top=2 * payment["distance_edges"][-1])
        self.card_logit_passengers = np.asarray(payment["passengers"])
        self.passenger_code = _Lookup(_cdf(np.asarray(cal["codes"]["passenger_weight"])))
        # tip kinds: 0 none, 1.. presets, last custom
        self.tip_share = np.asarray([0.0] + cal["tips"]["presets"] + [0.0])
        self._tip_kind = {None: self._tip_lookup(None)}

    def _transition_cdf(self, effects: Effects | None) -> np.ndarray:
        transition = self.group_transition
        if effects is not None and effects.dropoff_group_weight is not None:
            transition = transition * np.asarray(effects.dropoff_group_weight)[None, :]
        cdf = np.cumsum(transition, axis=1)
        return cdf / cdf[:, -1:]

    def _tip_lookup(self, effects: Effects | None) -> _Lookup:
        tips = self.cal["tips"]
        zero = tips["zero_share"] if effects is None or effects.zero_tip_share is None else effects.zero_tip_share
        scale = 1.0 if effects is None else effects.preset_scale
        return _Lookup(np.cumsum([zero] + [s * scale for s in tips["preset_share"]]), top=1.0)

    def pickup_zone(self, effects: Effects | None) -> _Lookup:
        """Pickup-zone sampler (index of the zone id - 1) under `effects` (cached)."""
        if effects not in self._pickup_zone:
            weight = self.pickup_weight
            if effects.pickup_group_weight is not None:
                weight = weight * np.asarray(effects.pickup_group_weight)[self.group]
            self._pickup_zone[effects] = _Lookup(_cdf(weight))
        return self._pickup_zone[effects]

    def dropoff_group(self, effects: Effects | None) -> _Lookup:
        """Dropoff-group sampler under `effects` (cached): key ``pickup group + u`` ->
        ``pickup group * n_groups + dropoff group``."""
        if effects not in self._dropoff_group:
            self._dropoff_group[effects] = _Lookup(_stack(self._transition_cdf(effects)))
        return self._dropoff_group[effects]

    def tip_kind(self, effects: Effects | None) -> _Lookup:
        """Tip-kind sampler under `effects` (cached): 0 none, 1.. presets, last custom."""
        if effects not in self._tip_kind:
            self._tip_kind[effects] = self._tip_lookup(effects)
        return self._tip_kind[effects]


@lru_cache(maxsize=1)
def _model() -> _Model:
    return _Model(load_calibration())


def _rng(entropy: list[int]) -> np.random.Generator:
    # PCG64DXSM: numpy's recommended successor of PCG64, and ~2x faster for doubles
    return np.random.Generator(np.random.PCG64DXSM(np.random.SeedSequence(entropy)))


@dataclass
class _MonthPlan:
    """Everything about one month that does not depend on the block."""

    name: str
    index: int
    n_rows: int
    cell_start_s: np.ndarray  # hourly cells, the stray pseudo-cell first
    cell_step_s: np.ndarray  # cell length / rows in the cell
    cell_dayhour: np.ndarray  # weekend * 24 + hour
    counts: np.ndarray
    ends: np.ndarray
    change_s: int | None
    effects: Effects | None
    congestion: float  # NaN before 2019, 0 in 2019-01, the surcharge after
    airport_fee: bool
    toll: float
    card_offset: float
    missing_rate: float


def _hour_cells(index: int, stray_window_s: int) -> np.ndarray:
    """Start (epoch seconds) of each hour of month `index`, after the stray pseudo-cell
    (the `stray_window_s` before the month, where a few trips of the file fall)."""
    start = _month_start_s(index)
    n_days = (_month_start_s(index + 1) - start) // _S_PER_DAY
    hours = start + _S_PER_HOUR * np.arange(n_days * 24, dtype=np.int64)
    return np.concatenate([[start - stray_window_s], hours])


def _congestion_surcharge(tariff: dict[str, Any], index: int) -> float:
    """NaN before 2019 (no such column), 0 until it started, then the surcharge."""
    if index < month_index("2019-01"):
        return np.nan
    if index < month_index(tariff["congestion_from"]):
        return 0.0
    return float(tariff["congestion_surcharge"])


def _toll(tariff: dict[str, Any], index: int) -> float:
    """The bridge-and-tunnel toll in force in month `index`."""
    tolls = [v for m, v in tariff["tolls"] if month_index(m) <= index] or [tariff["tolls"][0][1]]
    return float(tolls[-1])


def _plan_month(model: _Model, index: int, rows_per_month: int, seed: int,
                scenario: Scenario, changes: list[dict[str, Any]]) -> _MonthPlan:
    """The month's rows per hourly cell (seeded by month), its tariff era and the scenario's change."""
    cal, calendar = model.cal, model.cal["calendar"]
    name = month_from_index(index)
    window = int(calendar["stray_window_s"])
    cell_start = _hour_cells(index, window)
    day_weekday = weekday(cell_start // _S_PER_DAY)
    weekend = day_weekday >= 5
    hour = (cell_start // _S_PER_HOUR) % 24
    profile = calendar["hour_profile"]
    hourly = np.where(weekend, np.asarray(profile["weekend"])[hour], np.asarray(profile["weekday"])[hour])
    base = (np.asarray(calendar["weekday_factor"])[day_weekday] * hourly)[1:]
    multiplier = scenario.volume(name, cell_start[1:], changes)
    weight = base if multiplier is None else base * multiplier
    n = int(round(rows_per_month * weight.sum() / base.sum()))
    rng = _rng([seed, index + 1, 0])
    n_stray = int(rng.binomial(n, calendar["stray_rate"])) if n else 0
    counts = np.concatenate([[n_stray], rng.multinomial(n - n_stray, weight / weight.sum())])
    cell_seconds = np.full(len(cell_start), float(_S_PER_HOUR))
    cell_seconds[0] = window
    tariff = cal["tariff"]
    change = scenario.effects(name, changes)
    return _MonthPlan(
        name=name, index=index, n_rows=n,
        cell_start_s=cell_start,
        cell_step_s=cell_seconds / np.maximum(counts, 1),
        cell_dayhour=weekend * 24 + hour,
        counts=counts, ends=np.cumsum(counts),
        change_s=None if change is None else change.start_s, effects=None if change is None else change.effects,
        congestion=_congestion_surcharge(tariff, index),
        airport_fee=index >= month_index(tariff["airport_fee_from"]),
        toll=_toll(tariff, index),
        card_offset=_yearly(cal["payment"]["year_offset"], index),
        missing_rate=missing_code_rate(name),
    )


class _Uniform(IntEnum):
    """Rows of a block's uniform draws, one per use (the order is part of the seeded output)."""

    PICKUP_JITTER = 0
    PICKUP_ZONE = 1
    SAME_ZONE = 2
    DROPOFF_GROUP = 3
    DROPOFF_ZONE = 4
    ZERO_DISTANCE = 5
    RATE_CODE = 6
    LONG_TRIP = 7
    LONG_HOURS = 8
    TOLL = 9
    PASSENGERS = 10
    CARD = 11
    CASH_OUTCOME = 12  # paid, no charge or dispute
    TIP_KIND = 13
    VENDOR = 14
    MISSING_CODES = 15
    MISSING_CODE_CARD = 16
    REFUND_OR_ZERO_FARE = 17
    REFUND_PAYMENT = 18


_N_UNIFORMS = len(_Uniform)
_DISTANCE_NORMAL, _DURATION_NORMAL = 0, 1


class _PickupTimes(NamedTuple):
    seconds: np.ndarray  # epoch seconds (naive wall clock), sorted
    dayhour: np.ndarray  # weekend * 24 + hour


@dataclass(frozen=True)
class _Block:
    """One block of a month's rows: its random numbers, pickup times and where a change starts.

    Attributes
    ----------
    uniform
        ``(_N_UNIFORMS, rows)`` uniform draws; row :class:`_Uniform` ``X`` serves use ``X``.
    normal
        ``(2, rows)`` standard normal draws: distance, duration.
    rng
        The block's generator, for the draws that follow (negotiated fares, custom tips).
    changed_from
        Rows from here on are picked up after the scenario's change (``rows`` if none is).
    """

    model: _Model
    plan: _MonthPlan
    rows: int
    uniform: np.ndarray
    normal: np.ndarray
    rng: np.random.Generator
    pickup: _PickupTimes
    changed_from: int

    @property
    def effects(self) -> Effects:
        return self.plan.effects

    @property
    def changed(self) -> bool:
        """Whether some rows are picked up after the change (then :attr:`effects` is set)."""
        return self.changed_from < self.rows


def _pickup_times(plan: _MonthPlan, first_row: int, rows: int, jitter: np.ndarray) -> _PickupTimes:
    """Row j of a cell with k rows falls in the j-th of k equal slices of the hour
    (jittered stratification), so rows come out sorted."""
    c0, c1 = np.searchsorted(plan.ends, [first_row, first_row + max(rows - 1, 0)], side="right")
    cells = slice(c0, c1 + 1)
    cell_first_row = plan.ends[cells] - plan.counts[cells]
    in_block = np.minimum(plan.ends[cells], first_row + rows) - np.maximum(cell_first_row, first_row)
    slot = np.arange(first_row, first_row + rows) - np.repeat(cell_first_row, in_block) + jitter
    seconds = np.repeat(plan.cell_start_s[cells], in_block) + (
        slot * np.repeat(plan.cell_step_s[cells], in_block)).astype(np.int64)
    return _PickupTimes(seconds, np.repeat(plan.cell_dayhour[cells], in_block))


def _draw_block(model: _Model, plan: _MonthPlan, seed: int, block_index: int) -> _Block:
    """The block's random numbers (seeded by month and block) and pickup times."""
    first_row = block_index * BLOCK_ROWS
    rows = max(min(plan.n_rows, first_row + BLOCK_ROWS) - first_row, 0)
    rng = _rng([seed, plan.index + 1, 1, block_index])
    uniform = rng.random((_N_UNIFORMS, rows))
    normal = rng.standard_normal((2, rows))
    pickup = _pickup_times(plan, first_row, rows, uniform[_Uniform.PICKUP_JITTER])
    changed_from = rows if plan.effects is None else int(np.searchsorted(pickup.seconds, plan.change_s))
    return _Block(model, plan, rows, uniform, normal, rng, pickup, changed_from)


@dataclass(frozen=True)
class _Zones:
    """Pickup and dropoff zone ids (1..265), their zone groups, and the group pair."""

    pickup: np.ndarray
    dropoff: np.ndarray
    pickup_group: np.ndarray
    dropoff_group: np.ndarray
    pair: np.ndarray  # pickup group * n_groups + dropoff group
    same: np.ndarray  # bool: the dropoff was drawn as the pickup zone itself

    def take(self, rows: np.ndarray) -> _Zones:
        """The zones of `rows` only."""
        return _Zones(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


def _zones(block: _Block) -> _Zones:
    """Pickup from the zone marginal; dropoff the same zone, or a group given the pickup
    group and then a zone in it."""
    model, u, k = block.model, block.uniform, block.changed_from
    pickup = model.pickup_zone(None)(u[_Uniform.PICKUP_ZONE])
    if block.changed:
        pickup[k:] = model.pickup_zone(block.effects)(u[_Uniform.PICKUP_ZONE, k:])
    pickup += 1
    pickup_group = model.group[pickup - 1]
    group_key = u[_Uniform.DROPOFF_GROUP] + pickup_group
    drawn_group = model.dropoff_group(None)(group_key)
    if block.changed:
        drawn_group[k:] = model.dropoff_group(block.effects)(group_key[k:])
    drawn_group -= pickup_group * model.n_groups
    dropoff = model.zones_by_group[model.dropoff_zone_in_group(drawn_group + u[_Uniform.DROPOFF_ZONE])] + 1
    same = u[_Uniform.SAME_ZONE] < model.same_zone_prob[pickup_group]
    dropoff[same] = pickup[same]
    dropoff_group = model.group[dropoff - 1]
    return _Zones(pickup, dropoff, pickup_group, dropoff_group, pickup_group * model.n_groups + dropoff_group, same)


def _distances(block: _Block, zones: _Zones) -> np.ndarray:
    """Trip miles: log-normal by group pair (own parameters within a zone), some zero."""
    model, calibration = block.model, block.model.cal["distance"]
    mu = np.where(zones.same, calibration["same_zone_mu"], model.distance_mu[zones.pair])
    if block.changed:
        mu[block.changed_from:] += block.effects.distance_log_shift
    sigma = np.where(zones.same, calibration["same_zone_sigma"], model.distance_sigma[zones.pair])
    miles = np.exp(mu + sigma * block.normal[_DISTANCE_NORMAL])
    miles = np.minimum(np.round(miles, 2), calibration["max_miles"])
    miles[block.uniform[_Uniform.ZERO_DISTANCE] < calibration["zero_rate"]] = 0.0
    return miles


def _durations(block: _Block, miles: np.ndarray) -> np.ndarray:
    """Whole trip seconds (at least 1): log duration quadratic in log distance, hour-dependent speed."""
    model, calibration = block.model, block.model.cal["duration"]
    noise = block.normal[_DURATION_NORMAL]
    log_miles = np.log(np.maximum(miles, 0.01))
    log_seconds = (model.duration_log_a[block.pickup.dayhour]
                   + log_miles * (calibration["log_b"][0] + calibration["log_b"][1] * log_miles)
                   + model.duration_sigma[model.duration_sigma_bin(miles)] * noise)
    zero = np.flatnonzero(miles == 0.0)
    log_seconds[zero] = calibration["zero_distance_log_mu"] + calibration["zero_distance_log_sigma"] * noise[zero]
    seconds = np.exp(log_seconds)
    if block.changed:
        seconds[block.changed_from:] *= block.effects.duration_factor
    return np.maximum(np.rint(seconds), 1.0)


class _Fares(NamedTuple):
    fare: np.ndarray
    rate_code: np.ndarray


def _fares(block: _Block, zones: _Zones, miles: np.ndarray, seconds: np.ndarray) -> _Fares:
    """The meter (1/5 mile when fast, a minute when slow), then the other rate codes."""
    model, tariff, calibration = block.model, block.model.cal["tariff"], block.model.cal["fares"]
    slow_minutes = np.maximum(seconds * (1.0 / 60.0) - miles * (60.0 / calibration["meter_cruise_mph"]), 0.0)
    units = np.floor(miles * tariff["units_per_mile"]) + np.floor(slow_minutes)
    fare = tariff["initial"] + tariff["per_unit"] * units
    draw = block.uniform[_Uniform.RATE_CODE]
    rate_code = np.ones(block.rows)
    rate_code[draw < calibration["rate_code"]["negotiated"]] = 5.0
    special = np.flatnonzero(model.special_zone[zones.pickup] | model.special_zone[zones.dropoff])
    rate_code[special] = _special_rate_codes(model, zones.take(special), draw[special], rate_code[special])
    odd = np.flatnonzero(rate_code != 1.0)
    fare[odd] = _odd_fares(model, rate_code[odd], fare[odd], block.rng)
    return _Fares(fare, rate_code)


def _stretch_long_trips(block: _Block, seconds: np.ndarray) -> None:
    """A rare multi-hour trip (meter left running); its fare used the ordinary duration."""
    calibration = block.model.cal["duration"]
    long_trips = np.flatnonzero(block.uniform[_Uniform.LONG_TRIP] < calibration["long_rate"])
    low_hours, high_hours = calibration["long_hours"]
    seconds[long_trips] = np.rint(
        _S_PER_HOUR * (low_hours + (high_hours - low_hours) * block.uniform[_Uniform.LONG_HOURS][long_trips]))


@dataclass(frozen=True)
class _Surcharges:
    """Everything on the meter besides the fare and the tip (``airport`` None before its era)."""

    extra: np.ndarray
    mta_tax: np.ndarray
    improvement: np.ndarray
    tolls: np.ndarray
    congestion: np.ndarray  # NaN before 2019
    airport: np.ndarray | None

    def optional(self) -> tuple[np.ndarray, ...]:
        return () if self.airport is None else (self.airport,)


def _surcharges(block: _Block, zones: _Zones, rate_code: np.ndarray) -> _Surcharges:
    model, plan, tariff = block.model, block.plan, block.model.cal["tariff"]
    dayhour = block.pickup.dayhour
    extra = model.extra_by_dayhour[dayhour]
    odd = np.flatnonzero(rate_code != 1.0)
    rush = model.rush_hour[dayhour[odd]]
    extra[odd] = np.where(rate_code[odd] == 2.0, np.where(rush, tariff["jfk_rush_surcharge"], 0.0),
                          np.where(rate_code[odd] == 5.0, 0.0, extra[odd]))
    return _Surcharges(
        extra=extra,
        mta_tax=np.full(block.rows, tariff["mta_tax"]),
        improvement=np.full(block.rows, tariff["improvement_surcharge"]),
        tolls=np.where(block.uniform[_Uniform.TOLL] < model.toll_prob[zones.pair], plan.toll, 0.0),
        congestion=np.where(model.core_zone[zones.pickup] | model.core_zone[zones.dropoff], plan.congestion,
                            0.0 * plan.congestion),
        airport=model.airport_fee_by_zone[zones.pickup] if plan.airport_fee else None,
    )


@dataclass(frozen=True)
class _Payment:
    passenger_codes: np.ndarray  # index into the calibration's passenger weights
    card: np.ndarray  # bool
    payment_type: np.ndarray  # TLC codes: 1 card, 2 cash, 3 no charge, 4 dispute (0 missing)


def _payment(block: _Block, zones: _Zones, miles: np.ndarray) -> _Payment:
    """Card log-odds by zones, hour, distance, passengers and calendar trend; the rest cash,
    no charge or dispute."""
    model, u = block.model, block.uniform
    passenger_codes = model.passenger_code(u[_Uniform.PASSENGERS])
    logit = (block.plan.card_offset + model.card_logit_pickup[zones.pickup] + model.card_logit_dropoff[zones.dropoff]
             + model.card_logit_dayhour[block.pickup.dayhour] + model.card_logit_distance[model.card_distance_bin(miles)]
             + model.card_logit_passengers[passenger_codes])
    if block.changed:
        logit[block.changed_from:] += block.effects.card_logit_shift
    card = u[_Uniform.CARD] * (1.0 + np.exp(-logit)) < 1.0
    shares = model.cal["payment"]
    no_charge, dispute = shares["no_charge_share"], shares["no_charge_share"] + shares["dispute_share"]
    outcome = u[_Uniform.CASH_OUTCOME]
    payment_type = np.where(card, 1, np.where(outcome < no_charge, 3, np.where(outcome < dispute, 4, 2)))
    return _Payment(passenger_codes, card, payment_type)


def _tips(block: _Block, fare: np.ndarray, charges: _Surcharges) -> np.ndarray:
    """Tips of card trips: none, a preset share of the total, or custom (cash trips: see _block)."""
    model, draw = block.model, block.uniform[_Uniform.TIP_KIND]
    before_tip = (fare + charges.extra + charges.mta_tax + charges.improvement + charges.tolls
                  + np.nan_to_num(charges.congestion))
    if charges.airport is not None:
        before_tip += charges.airport
    kind = model.tip_kind(None)(draw)
    if block.changed:
        kind[block.changed_from:] = model.tip_kind(block.effects)(draw[block.changed_from:])
    tip = np.round(model.tip_share[kind] * before_tip, 2)
    custom = np.flatnonzero(kind == len(model.tip_share) - 1)
    tip[custom] = _custom_tips(model.cal["tips"], fare[custom], block.rng)
    return tip


@dataclass(frozen=True)
class _TripCodes:
    vendor: np.ndarray  # 1.0 / 2.0, NaN missing
    store_and_fwd: np.ndarray  # int8 0 N, 1 Y, -1 missing
    passengers: np.ndarray  # float, NaN missing


def _trip_codes(block: _Block, fares: _Fares, charges: _Surcharges, payment: _Payment) -> _TripCodes:
    """Vendor, store-and-forward flag and passengers; then blank the codes of a share of rows
    (from mid-2019): these, the rate code, congestion and airport fees and the payment type,
    in place, with a card drawn for them anew."""
    calibration, u = block.model.cal["codes"], block.uniform
    vendor = np.where(u[_Uniform.VENDOR] < calibration["vendor1_share"], 1.0, 2.0)
    flag_y = u[_Uniform.VENDOR] < calibration["vendor1_share"] * calibration["store_and_fwd_y_vendor1"]
    codes = _TripCodes(vendor, flag_y.astype(np.int8), payment.passenger_codes.astype(np.float64))
    missing = np.flatnonzero(u[_Uniform.MISSING_CODES] < block.plan.missing_rate)
    if missing.size:
        for col in (codes.vendor, codes.passengers, fares.rate_code, charges.congestion, *charges.optional()):
            col[missing] = np.nan
        codes.store_and_fwd[missing] = -1
        payment.payment_type[missing] = 0
        payment.card[missing] = u[_Uniform.MISSING_CODE_CARD][missing] < block.model.cal["tips"]["missing_code_card_prob"]
    return codes


def _refunds_and_zero_fares(block: _Block, fare: np.ndarray, charges: _Surcharges, tip: np.ndarray,
                            payment_type: np.ndarray) -> None:
    """Refunds (every amount negated, no tip) and zero fares, in place."""
    rates, draw = block.model.cal["fares"], block.uniform[_Uniform.REFUND_OR_ZERO_FARE]
    refund = np.flatnonzero(draw < rates["negative_fare_rate"])
    zero_fare = np.flatnonzero((draw >= rates["negative_fare_rate"])
                               & (draw < rates["negative_fare_rate"] + rates["zero_fare_rate"]))
    if not (refund.size or zero_fare.size):
        return
    tip[refund] = tip[zero_fare] = 0.0
    for col in (fare, charges.extra, charges.mta_tax, charges.improvement, charges.tolls, charges.congestion,
                *charges.optional()):
        col[refund] = -col[refund]
    for col in (fare, charges.extra, charges.mta_tax, charges.tolls):
        col[zero_fare] = 0.0
    paid = refund[payment_type[refund] != 0]
    payment_type[paid] = np.where(block.uniform[_Uniform.REFUND_PAYMENT][paid] < 0.6, 3, 4)


def _block(model: _Model, plan: _MonthPlan, seed: int, block_index: int) -> dict[str, np.ndarray]:
    """Generate rows ``[block_index*BLOCK_ROWS, ...)`` of a month as numpy columns."""
    block = _draw_block(model, plan, seed, block_index)
    zones = _zones(block)
    miles = _distances(block, zones)
    seconds = _durations(block, miles)
    fares = _fares(block, zones, miles, seconds)
    _stretch_long_trips(block, seconds)
    charges = _surcharges(block, zones, fares.rate_code)
    payment = _payment(block, zones, miles)
    tip = _tips(block, fares.fare, charges)
    codes = _trip_codes(block, fares, charges, payment)
    tip[~payment.card] = 0.0  # cash tips are not recorded
    _refunds_and_zero_fares(block, fares.fare, charges, tip, payment.payment_type)
    total = (fares.fare + charges.extra + charges.mta_tax + tip + charges.tolls + charges.improvement
             + np.nan_to_num(charges.congestion))
    if charges.airport is not None:
        total += np.nan_to_num(charges.airport)

    pickup_us = block.pickup.seconds * US_PER_SECOND
    columns: dict[str, np.ndarray] = {
        "VendorID": codes.vendor,
        "tpep_pickup_datetime": pickup_us.view("datetime64[us]"),
        "tpep_dropoff_datetime": (pickup_us + seconds.astype(np.int64) * US_PER_SECOND).view("datetime64[us]"),
        "passenger_count": codes.passengers,
        "trip_distance": miles,
        "RatecodeID": fares.rate_code,
        "store_and_fwd_flag": codes.store_and_fwd,
        "PULocationID": zones.pickup,
        "DOLocationID": zones.dropoff,
        "payment_type": payment.payment_type,
        "fare_amount": fares.fare,
        "extra": charges.extra,
        "mta_tax": charges.mta_tax,
        "tip_amount": tip,
        "tolls_amount": charges.tolls,
        "improvement_surcharge": charges.improvement,
        "total_amount": np.round(total, 2),
        "congestion_surcharge": charges.congestion,
    }
    if charges.airport is not None:
        columns["airport_fee"] = charges.airport
    return columns


_OUTSIDE_NYC_ZONE = 265


def _special_rate_codes(model: _Model, zones: _Zones, draw: np.ndarray, rate_code: np.ndarray) -> np.ndarray:
    """Rate codes of trips touching JFK, Newark or outside NYC (others keep `rate_code`)."""
    shares = model.cal["fares"]["rate_code"]
    jfk, newark = model.cal["zones"]["jfk"], model.cal["zones"]["newark"]
    pickup, dropoff = zones.pickup, zones.dropoff
    jfk_manhattan = (((pickup == jfk) & (zones.dropoff_group <= 1))
                     | ((dropoff == jfk) & (zones.pickup_group <= 1)))
    jfk_other = ((pickup == jfk) | (dropoff == jfk)) & ~jfk_manhattan
    outside = (pickup == _OUTSIDE_NYC_ZONE) | (dropoff == _OUTSIDE_NYC_ZONE)
    rate_code = rate_code.copy()
    rate_code[outside & (draw < shares["outside_nassau_westchester"] + shares["outside_negotiated"])] = 5.0
    rate_code[outside & (draw < shares["outside_nassau_westchester"])] = 4.0
    rate_code[((pickup == newark) | (dropoff == newark)) & (draw < shares["newark"])] = 3.0
    rate_code[jfk_other & (draw < shares["jfk_other_flat"])] = 2.0
    rate_code[jfk_manhattan & (draw < shares["jfk_manhattan_flat"])] = 2.0
    return rate_code


def _odd_fares(model: _Model, rate_code: np.ndarray, meter: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fares of rate codes other than 1: JFK flat, metered x factor, negotiated."""
    calibration, tariff = model.cal["fares"], model.cal["tariff"]
    fare = meter.copy()
    for code, factor in calibration["rate_fare_factor"].items():
        selected = rate_code == float(code)
        fare[selected] = np.round(meter[selected] * factor * 2.0) / 2.0
    fare[rate_code == 2.0] = tariff["jfk_flat_fare"]
    negotiated = rate_code == 5.0
    noise = rng.standard_normal(int(negotiated.sum()))
    fare[negotiated] = np.minimum(
        np.round(np.exp(calibration["negotiated_log_mu"] + calibration["negotiated_log_sigma"] * noise)), 500.0)
    return fare


def _custom_tips(tips: dict[str, Any], fare: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Custom card tips: a share of the fare drawn from its calibrated distribution per fare bin."""
    quantiles = np.asarray(tips["custom_log_ratio_quantiles"])  # fare bin x quantile
    position = rng.random(len(fare)) * (quantiles.shape[1] - 1)  # linear interpolation between quantiles
    below = np.minimum(position.astype(np.intp), quantiles.shape[1] - 2)
    fare_bin = np.searchsorted(np.asarray(tips["custom_fare_edges"]), fare, side="right")
    low, high = quantiles[fare_bin, below], quantiles[fare_bin, below + 1]
    log_ratio = low + (position - below) * (high - low)
    return np.round(fare * np.exp(log_ratio), 2)


_FLAGS = pa.array(["N", "Y"])
_NULLABLE = frozenset({"VendorID", "passenger_count", "RatecodeID", "congestion_surcharge", "airport_fee"})


def _to_batch(cols: dict[str, np.ndarray]) -> pa.RecordBatch:
    arrays = []
    for name, values in cols.items():
        if values.dtype == np.int8:  # store_and_fwd_flag codes, -1 = missing
            arrays.append(_FLAGS.take(pa.array(values, mask=values < 0)))
        else:  # NaN -> null in the nullable columns, as TLC writes them
            arrays.append(pa.array(values, type=OUTPUT_SCHEMA.get(name), from_pandas=name in _NULLABLE))
    return pa.RecordBatch.from_arrays(arrays, names=list(cols))


def _month_batches(model: _Model, plan: _MonthPlan, seed: int, scenario: Scenario,
                   changes: list[dict[str, Any]]) -> Iterator[pa.RecordBatch]:
    for block_index in range(max(1, -(-plan.n_rows // BLOCK_ROWS))):
        yield _to_batch(scenario.apply(plan.name, _block(model, plan, seed, block_index), changes))


# --------------------------------------------------------------------------- writing


#: Columns where dictionary encoding pays (few distinct values, no nulls); the
#: others are written plain, which is faster and about as small.
_DICTIONARY = frozenset({
    "trip_distance", "PULocationID", "DOLocationID", "payment_type", "fare_amount",
    "fare_amount_usd", "tip_amount", "total_amount",
})


class _Writer:
    """One month's file; each :meth:`write` call is one Parquet row group."""

    def __init__(self, path: Path, schema: pa.Schema, fmt: str) -> None:
        self.fmt = fmt
        self.tmp = path.with_name(path.name + ".tmp")
        self.path = path
        if fmt == "parquet":
            self._w = pq.ParquetWriter(self.tmp, schema, compression="zstd", compression_level=1,
                                       use_dictionary=[c for c in schema.names if c in _DICTIONARY])
        else:  # TLC style: bare header and values, "YYYY-MM-DD HH:MM:SS" times, empty = missing
            self._sink = open(self.tmp, "wb")
            self._sink.write((",".join(schema.names) + "\n").encode())
            options = pacsv.WriteOptions(include_header=False, quoting_style="none")
            self._w = pacsv.CSVWriter(self._sink, self._csv_schema(schema), write_options=options)

    @staticmethod
    def _csv_schema(schema: pa.Schema) -> pa.Schema:
        return pa.schema([pa.field(f.name, pa.timestamp("s") if pa.types.is_timestamp(f.type) else f.type)
                          for f in schema])

    def write(self, table: pa.Table) -> None:
        if self.fmt == "parquet":
            self._w.write_table(table, row_group_size=max(table.num_rows, 1))
        else:
            self._w.write_table(table.cast(self._csv_schema(table.schema)))

    def close(self) -> None:
        self._w.close()
        if self.fmt == "csv":
            self._sink.close()
        self.tmp.replace(self.path)


# --------------------------------------------------------------------------- API


@dataclass
class GenerateResult:
    """What :func:`generate` wrote.

    Attributes
    ----------
    out_dir
        The output folder.
    files
        Monthly data files in month order (``ground_truth.json`` not included).
    rows
        Rows written per month (``"YYYY-MM"`` -> rows).
    seconds
        Wall time of the whole call.
    ground_truth
        The content of ``ground_truth.json``.
    """

    out_dir: Path
    files: list[Path]
    rows: dict[str, int]
    seconds: float
    ground_truth: dict[str, Any]


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SpecError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class _Request:
    """The arguments of :func:`generate`, checked."""

    months: list[str]
    first_index: int
    rows_per_month: int
    scenario: Scenario
    scenario_month: str | None
    fmt: str
    seed: int
    chunk_rows: int


def _check_request(start: str, end: str, rows_per_month: int, *, scenario: str, fmt: str, seed: int,
                   scenario_month: str | None, chunk_rows: int) -> _Request:
    """SpecError naming the first invalid argument."""
    if scenario not in SCENARIOS:
        raise SpecError(f"scenario must be one of {', '.join(SCENARIOS)}; got {scenario!r}")
    if fmt not in FORMATS:
        raise SpecError(f"fmt must be one of {', '.join(FORMATS)}; got {fmt!r}")
    first, last = month_index(start, "start"), month_index(end, "end")
    if last < first:
        raise SpecError(f"end ({end}) is before start ({start})")
    rows_per_month = _check_int(rows_per_month, "rows_per_month", 1)
    seed = _check_int(seed, "seed", 0)
    chunk_rows = _check_int(chunk_rows, "chunk_rows", 1)
    if scenario_month is not None:
        if not first <= month_index(scenario_month, "scenario_month") <= last:
            raise SpecError(f"scenario_month {scenario_month} is outside {start}..{end}")
    return _Request(
        months=[month_from_index(i) for i in range(first, last + 1)], first_index=first,
        rows_per_month=rows_per_month, scenario=SCENARIOS[scenario], scenario_month=scenario_month,
        fmt=fmt, seed=seed, chunk_rows=chunk_rows,
    )


def _write_month(path: Path, model: _Model, plan: _MonthPlan, request: _Request, changes: list[dict[str, Any]],
                 progress: Callable[[str, int, int], None] | None) -> int:
    """Write one month's file in chunks of ``request.chunk_rows`` rows; the rows written."""
    writer: _Writer | None = None
    pending: list[pa.RecordBatch] = []
    held = done = 0
    for batch in _month_batches(model, plan, request.seed, request.scenario, changes):
        writer = writer or _Writer(path, batch.schema, request.fmt)
        while batch.num_rows:
            take = min(request.chunk_rows - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            batch = batch.slice(take)
            held += take
            if held == request.chunk_rows or done + held == plan.n_rows:
                writer.write(pa.Table.from_batches(pending))
                done, held, pending = done + held, 0, []
                if progress is not None:
                    progress(plan.name, done, plan.n_rows)
    assert writer is not None
    writer.close()
    return done


def _ground_truth(request: _Request, rows: dict[str, int], changes: list[dict[str, Any]]) -> dict[str, Any]:
    """The content of ``ground_truth.json``."""
    return {
        "scenario": request.scenario.name,
        "description": request.scenario.description,
        "seed": request.seed,
        "start": request.months[0],
        "end": request.months[-1],
        "rows_per_month": request.rows_per_month,
        "format": request.fmt,
        "rows": rows,
        "calibration": CALIBRATION_PATH.name,
        "changes": changes,
        "calendar_changes": calendar_changes(request.months),
    }


def generate(
    out_dir: str | Path,
    start: str,
    end: str,
    rows_per_month: int,
    *,
    scenario: str = "none",
    fmt: str = "parquet",
    seed: int = 0,
    scenario_month: str | None = None,
    chunk_rows: int = 1_000_000,
    progress: Callable[[str, int, int], None] | None = None,
) -> GenerateResult:
    """Write synthetic TLC-like monthly trip files and their ground truth.

    Parameters
    ----------
    out_dir
        Folder to write into (created if needed).
    start, end
        First and last month, ``"YYYY-MM"``, inclusive.
    rows_per_month
        Rows of an ordinary month (scenarios may lower the volume).
    scenario
        A name in :data:`SCENARIOS`.
    fmt
        ``"parquet"`` or ``"csv"``.
    seed
        Non-negative seed; the same arguments give the same values.
    scenario_month
        ``"YYYY-MM"`` inside the range: the month a scenario changes
        (default: its own, e.g. the middle month or 2020-03).
    chunk_rows
        Rows per write chunk (Parquet row group); bounds memory, not values.
    progress
        Called as ``progress(month, rows_done, rows_total)`` after each chunk.

    Returns
    -------
    GenerateResult

    Raises
    ------
    SpecError
        If an argument is invalid (the message names it).
    """
    t_start = time.perf_counter()
    request = _check_request(start, end, rows_per_month, scenario=scenario, fmt=fmt, seed=seed,
                             scenario_month=scenario_month, chunk_rows=chunk_rows)
    changes = request.scenario.changes(request.months, scenario_month)
    model = _model()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    rows: dict[str, int] = {}
    for index in range(request.first_index, request.first_index + len(request.months)):
        plan = _plan_month(model, index, request.rows_per_month, request.seed, request.scenario, changes)
        path = out / f"yellow_tripdata_{plan.name}.{fmt}"
        rows[plan.name] = _write_month(path, model, plan, request, changes, progress)
        files.append(path)
    truth = _ground_truth(request, rows, changes)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return GenerateResult(out, files, rows, time.perf_counter() - t_start, truth)
