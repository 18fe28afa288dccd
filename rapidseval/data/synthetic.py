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
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

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
_N_UNIFORMS = 19

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

    def effects(self, month: str, changes: list[dict[str, Any]]) -> tuple[int, Effects] | None:
        """``(change time in epoch seconds, Effects)`` for rows picked up from then on."""
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
        fx = self.lockdown
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
             "pickup_group_weight": dict(zip(groups, fx.pickup_group_weight or ())),
             "dropoff_group_weight": dict(zip(groups, fx.dropoff_group_weight or ())),
             "distance_log_shift": fx.distance_log_shift, "duration_factor": fx.duration_factor,
             "how": "fewer airport and Manhattan-core trips, more outer-borough ones; trips "
                    f"shorter (log distance {fx.distance_log_shift:+g}) and faster "
                    f"(duration x{fx.duration_factor:g})"},
            {"kind": "payment_and_tips", "months": hit, "from": start,
             "columns": ["payment_type", "tip_amount", "total_amount"], "features": [],
             "label_affected": True, "card_logit_shift": fx.card_logit_shift,
             "zero_tip_share": fx.zero_tip_share, "preset_scale": fx.preset_scale,
             "how": f"card share falls (log-odds {fx.card_logit_shift:+g}), more card trips "
                    f"without tip ({fx.zero_tip_share:.0%}) and fewer preset tips "
                    f"(x{fx.preset_scale:g}): the high-tip rate drops, so a model trained "
                    "before the change loses F1"},
        ]

    def _t0(self, changes) -> int:
        return int(np.datetime64(changes[0]["from"], "s").astype(np.int64))

    def volume(self, month, cell_start_s, changes):
        if month not in changes[0]["months"]:
            return None
        ramp = np.clip((cell_start_s + 1800 - self._t0(changes)) / (self.ramp_days * 86400), 0.0, 1.0)
        return 1.0 - (1.0 - self.floor) * ramp

    def effects(self, month, changes):
        return (self._t0(changes), self.lockdown) if month in changes[0]["months"] else None


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
    """Calibration turned into sampling tables (built once)."""

    def __init__(self, cal: dict[str, Any]) -> None:
        z, tariff = cal["zones"], cal["tariff"]
        self.cal = cal
        self.group = np.asarray(z["group_of_zone"], dtype=np.int64)
        self.n_groups = len(z["groups"])
        self.pu_w = np.asarray(z["pickup_weight"])
        self.trans = np.asarray(z["group_transition"])
        # arrays indexed by zone id (0 unused)
        self.core = np.zeros(266, dtype=bool)
        self.core[z["core_zones"]] = True
        self.special = np.zeros(266, dtype=bool)  # trip ends with their own rate codes
        self.special[[z["jfk"], z["newark"], 265]] = True
        self.airport_fee = np.zeros(266)
        self.airport_fee[[z["jfk"], z["laguardia"]]] = tariff["airport_fee"]
        # zones ordered by group: searching g + u in g + (within-group cdf) samples a zone of group g
        self.order = np.argsort(self.group, kind="stable")
        g_sorted = self.group[self.order]
        w = np.asarray(z["dropoff_weight"])[self.order]
        within = np.empty_like(w)
        for g in range(self.n_groups):
            within[g_sorted == g] = _cdf(w[g_sorted == g])
        self.dropoff = _Lookup(g_sorted + within)
        # a dropoff drawn by group can land on the pickup zone by chance: lower the
        # explicit same-zone probability so that the total matches the calibration
        do_w = np.asarray(z["dropoff_weight"])
        do_in_group = do_w / np.bincount(self.group, weights=do_w)[self.group]
        pu_in_group = self.pu_w / np.bincount(self.group, weights=self.pu_w)[self.group]
        chance = np.bincount(self.group, weights=pu_in_group * do_in_group, minlength=self.n_groups)
        chance *= np.diag(self.trans)
        target = np.asarray(z["same_zone_prob"])
        self.same = np.clip((target - chance) / (1.0 - chance), 0.0, 1.0)
        self.pickup = {None: _Lookup(_cdf(self.pu_w))}
        self.dropoff_group = {None: _Lookup(_stack(self._trans_cdf(None)))}
        # arrays indexed by group pair (pickup group * n_groups + dropoff group)
        d, f, p = cal["distance"], cal["fares"], cal["payment"]
        self.d_mu, self.d_sigma = np.ravel(d["mu"]), np.ravel(d["sigma"])
        self.toll_p = np.ravel(f["toll_prob"])
        # arrays indexed by weekend * 24 + hour
        hour = np.arange(48) % 24
        night = (hour >= 20) | (hour < 6)
        self.rush = (np.arange(48) < 24) & (hour >= 16) & (hour < 20)
        self.extra = np.where(night, tariff["night_surcharge"],
                              np.where(self.rush, tariff["rush_surcharge"], 0.0))
        dur = cal["duration"]
        self.log_a = np.ravel(dur["log_a"])
        self.dur_sd = np.asarray(dur["sigma"])
        self.dur_bin = _Lookup(np.asarray(dur["sigma_distance_edges"]), top=2 * dur["sigma_distance_edges"][-1])
        self.pay_dayhour = p["intercept"] + np.asarray(p["hour"])[hour] + p["weekend"] * (np.arange(48) >= 24)
        # card log-odds terms by zone id, distance bin, passenger count
        self.pay_pu = np.asarray([0.0] + p["pickup_zone"])
        self.pay_do = np.asarray([0.0] + p["dropoff_zone"])
        self.pay_dist = np.asarray(p["distance_bin"])
        self.pay_bin = _Lookup(np.asarray(p["distance_edges"]), top=2 * p["distance_edges"][-1])
        self.pay_pass = np.asarray(p["passengers"])
        self.passengers = _Lookup(_cdf(np.asarray(cal["codes"]["passenger_weight"])))
        # tip kinds: 0 none, 1.. presets, last custom
        self.tip_pct = np.asarray([0.0] + cal["tips"]["presets"] + [0.0])
        self.tip_kind = {None: self._tip_lookup(None)}

    def _trans_cdf(self, fx: Effects | None) -> np.ndarray:
        t = self.trans
        if fx is not None and fx.dropoff_group_weight is not None:
            t = t * np.asarray(fx.dropoff_group_weight)[None, :]
        c = np.cumsum(t, axis=1)
        return c / c[:, -1:]

    def _tip_lookup(self, fx: Effects | None) -> _Lookup:
        tips = self.cal["tips"]
        zero = tips["zero_share"] if fx is None or fx.zero_tip_share is None else fx.zero_tip_share
        scale = 1.0 if fx is None else fx.preset_scale
        return _Lookup(np.cumsum([zero] + [s * scale for s in tips["preset_share"]]), top=1.0)

    def with_effects(self, fx: Effects) -> tuple[_Lookup, _Lookup]:
        """Pickup-zone and dropoff-group samplers under `fx` (cached)."""
        if fx not in self.pickup:
            w = self.pu_w
            if fx.pickup_group_weight is not None:
                w = w * np.asarray(fx.pickup_group_weight)[self.group]
            self.pickup[fx] = _Lookup(_cdf(w))
            self.dropoff_group[fx] = _Lookup(_stack(self._trans_cdf(fx)))
        return self.pickup[fx], self.dropoff_group[fx]

    def tip_kinds(self, fx: Effects) -> _Lookup:
        """Tip-kind sampler under `fx` (cached)."""
        if fx not in self.tip_kind:
            self.tip_kind[fx] = self._tip_lookup(fx)
        return self.tip_kind[fx]


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
    n: int
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


def _plan_month(model: _Model, index: int, rows_per_month: int, seed: int,
                scenario: Scenario, changes: list[dict[str, Any]]) -> _MonthPlan:
    cal = model.cal
    name = month_from_index(index)
    start = _month_start_s(index)
    window = int(cal["calendar"]["stray_window_s"])
    n_days = (_month_start_s(index + 1) - start) // 86400
    cell_start = np.concatenate([[start - window], start + 3600 * np.arange(n_days * 24, dtype=np.int64)])
    weekend = weekday(cell_start // 86400) >= 5
    hour = (cell_start // 3600) % 24
    prof = cal["calendar"]["hour_profile"]
    hourly = np.where(weekend, np.asarray(prof["weekend"])[hour], np.asarray(prof["weekday"])[hour])
    base = (np.asarray(cal["calendar"]["weekday_factor"])[weekday(cell_start // 86400)] * hourly)[1:]
    mult = scenario.volume(name, cell_start[1:], changes)
    weight = base if mult is None else base * mult
    n = int(round(rows_per_month * weight.sum() / base.sum()))
    rng = _rng([seed, index + 1, 0])
    n_stray = int(rng.binomial(n, cal["calendar"]["stray_rate"])) if n else 0
    counts = np.concatenate([[n_stray], rng.multinomial(n - n_stray, weight / weight.sum())])
    cell_len = np.full(len(cell_start), 3600.0)
    cell_len[0] = window
    tariff = cal["tariff"]
    if index < month_index("2019-01"):
        congestion = np.nan
    elif index < month_index(tariff["congestion_from"]):
        congestion = 0.0
    else:
        congestion = float(tariff["congestion_surcharge"])
    tolls = [v for m, v in tariff["tolls"] if month_index(m) <= index] or [tariff["tolls"][0][1]]
    eff = scenario.effects(name, changes)
    return _MonthPlan(
        name=name, index=index, n=n,
        cell_start_s=cell_start,
        cell_step_s=cell_len / np.maximum(counts, 1),
        cell_dayhour=weekend * 24 + hour,
        counts=counts, ends=np.cumsum(counts),
        change_s=None if eff is None else eff[0], effects=None if eff is None else eff[1],
        congestion=congestion,
        airport_fee=index >= month_index(tariff["airport_fee_from"]),
        toll=float(tolls[-1]),
        card_offset=_yearly(cal["payment"]["year_offset"], index),
        missing_rate=missing_code_rate(name),
    )


def _block(model: _Model, plan: _MonthPlan, seed: int, b: int) -> dict[str, np.ndarray]:
    """Generate rows ``[b*BLOCK_ROWS, ...)`` of a month as numpy columns."""
    cal, tariff = model.cal, model.cal["tariff"]
    lo = b * BLOCK_ROWS
    n = max(min(plan.n, lo + BLOCK_ROWS) - lo, 0)
    rng = _rng([seed, plan.index + 1, 1, b])
    u = rng.random((_N_UNIFORMS, n))
    z = rng.standard_normal((2, n))

    # pickup time: row j of a cell with k rows falls in the j-th of k equal slices
    # of the hour (jittered stratification), so rows come out sorted
    c0, c1 = np.searchsorted(plan.ends, [lo, lo + max(n - 1, 0)], side="right")
    first = plan.ends[c0:c1 + 1] - plan.counts[c0:c1 + 1]
    in_block = np.minimum(plan.ends[c0:c1 + 1], lo + n) - np.maximum(first, lo)
    j = np.arange(lo, lo + n) - np.repeat(first, in_block) + u[0]
    pick_s = np.repeat(plan.cell_start_s[c0:c1 + 1], in_block) + (
        j * np.repeat(plan.cell_step_s[c0:c1 + 1], in_block)).astype(np.int64)
    dh = np.repeat(plan.cell_dayhour[c0:c1 + 1], in_block)
    fx = plan.effects
    k = n if fx is None else int(np.searchsorted(pick_s, plan.change_s))

    # zones: pickup marginal; dropoff = same zone, or a group given the pickup group, then a zone
    pu = model.pickup[None](u[1])
    if k < n:
        pick_alt, group_alt = model.with_effects(fx)
        pu[k:] = pick_alt(u[1, k:])
    pu += 1
    gp = model.group[pu - 1]
    gd_key = u[3] + gp
    gd = model.dropoff_group[None](gd_key)
    if k < n:
        gd[k:] = group_alt(gd_key[k:])
    gd -= gp * model.n_groups
    do = model.order[model.dropoff(gd + u[4])] + 1
    same = u[2] < model.same[gp]
    do[same] = pu[same]
    gd = model.group[do - 1]
    pair = gp * model.n_groups + gd

    # distance (log-normal by group pair) and duration (hour-dependent speed)
    dcal, tcal = cal["distance"], cal["duration"]
    mu = np.where(same, dcal["same_zone_mu"], model.d_mu[pair])
    if k < n:
        mu[k:] += fx.distance_log_shift
    dist = np.exp(mu + np.where(same, dcal["same_zone_sigma"], model.d_sigma[pair]) * z[0])
    dist = np.minimum(np.round(dist, 2), dcal["max_miles"])
    dist[u[5] < dcal["zero_rate"]] = 0.0
    log_d = np.log(np.maximum(dist, 0.01))
    log_t = (model.log_a[dh] + log_d * (tcal["log_b"][0] + tcal["log_b"][1] * log_d)
             + model.dur_sd[model.dur_bin(dist)] * z[1])
    zero = np.flatnonzero(dist == 0.0)
    log_t[zero] = tcal["zero_distance_log_mu"] + tcal["zero_distance_log_sigma"] * z[1][zero]
    secs = np.exp(log_t)
    if k < n:
        secs[k:] *= fx.duration_factor
    secs = np.maximum(np.rint(secs), 1.0)

    # fares: the meter (1/5 mile when fast, a minute when slow), then the other rate codes
    f = cal["fares"]
    slow = np.maximum(secs * (1.0 / 60.0) - dist * (60.0 / f["meter_cruise_mph"]), 0.0)
    units = np.floor(dist * tariff["units_per_mile"]) + np.floor(slow)
    fare = tariff["initial"] + tariff["per_unit"] * units
    rc = np.ones(n)
    rc[u[6] < f["rate_code"]["negotiated"]] = 5.0
    special = np.flatnonzero(model.special[pu] | model.special[do])
    rc[special] = _special_rate_codes(model, pu[special], do[special], gp[special], gd[special],
                                      u[6][special], rc[special])
    odd = np.flatnonzero(rc != 1.0)
    fare[odd] = _odd_fares(model, rc[odd], fare[odd], rng)

    # a rare multi-hour trip (meter left running): the fare above used the ordinary duration
    long_ = np.flatnonzero(u[7] < tcal["long_rate"])
    lo_h, hi_h = tcal["long_hours"]
    secs[long_] = np.rint(3600.0 * (lo_h + (hi_h - lo_h) * u[8][long_]))

    extra = model.extra[dh]
    rush = model.rush[dh[odd]]
    extra[odd] = np.where(rc[odd] == 2.0, np.where(rush, tariff["jfk_rush_surcharge"], 0.0),
                          np.where(rc[odd] == 5.0, 0.0, extra[odd]))
    mta = np.full(n, tariff["mta_tax"])
    improvement = np.full(n, tariff["improvement_surcharge"])
    congestion = np.where(model.core[pu] | model.core[do], plan.congestion, 0.0 * plan.congestion)
    airport = model.airport_fee[pu] if plan.airport_fee else None
    tolls = np.where(u[9] < model.toll_p[pair], plan.toll, 0.0)

    # payment: card log-odds by zones, hour, distance, passengers, calendar trend
    pc = model.passengers(u[10])
    logit = (plan.card_offset + model.pay_pu[pu] + model.pay_do[do] + model.pay_dayhour[dh]
             + model.pay_dist[model.pay_bin(dist)] + model.pay_pass[pc])
    if k < n:
        logit[k:] += fx.card_logit_shift
    card = u[11] * (1.0 + np.exp(-logit)) < 1.0
    pay = cal["payment"]
    no_charge, dispute = pay["no_charge_share"], pay["no_charge_share"] + pay["dispute_share"]
    payment = np.where(card, 1, np.where(u[12] < no_charge, 3, np.where(u[12] < dispute, 4, 2)))

    # tips: card only (cash tips are not recorded): none, a preset % of the total, or custom
    pre = fare + extra + mta + improvement + tolls + np.nan_to_num(congestion)
    if airport is not None:
        pre += airport
    kind = model.tip_kind[None](u[13])
    if k < n:
        kind[k:] = model.tip_kinds(fx)(u[13, k:])
    tip = np.round(model.tip_pct[kind] * pre, 2)
    custom = np.flatnonzero(kind == len(model.tip_pct) - 1)
    tip[custom] = _custom_tips(cal["tips"], fare[custom], rng)

    # missing codes (from mid-2019), refunds and zero fares
    codes = cal["codes"]
    vendor = np.where(u[14] < codes["vendor1_share"], 1.0, 2.0)
    sff = (u[14] < codes["vendor1_share"] * codes["store_and_fwd_y_vendor1"]).astype(np.int8)
    passengers = pc.astype(np.float64)
    missing = np.flatnonzero(u[15] < plan.missing_rate)
    optional = () if airport is None else (airport,)
    if missing.size:
        for col in (vendor, passengers, rc, congestion, *optional):
            col[missing] = np.nan
        sff[missing] = -1
        payment[missing] = 0
        card[missing] = u[16][missing] < cal["tips"]["missing_code_card_prob"]
    tip[~card] = 0.0
    refund = np.flatnonzero(u[17] < f["negative_fare_rate"])
    zero_fare = np.flatnonzero((u[17] >= f["negative_fare_rate"])
                               & (u[17] < f["negative_fare_rate"] + f["zero_fare_rate"]))
    if refund.size or zero_fare.size:
        tip[refund] = tip[zero_fare] = 0.0
        for col in (fare, extra, mta, improvement, tolls, congestion, *optional):
            col[refund] = -col[refund]
        for col in (fare, extra, mta, tolls):
            col[zero_fare] = 0.0
        ok = refund[payment[refund] != 0]
        payment[ok] = np.where(u[18][ok] < 0.6, 3, 4)
    total = fare + extra + mta + tip + tolls + improvement + np.nan_to_num(congestion)
    if airport is not None:
        total += np.nan_to_num(airport)

    pick_us = pick_s * US_PER_SECOND
    cols: dict[str, np.ndarray] = {
        "VendorID": vendor,
        "tpep_pickup_datetime": pick_us.view("datetime64[us]"),
        "tpep_dropoff_datetime": (pick_us + secs.astype(np.int64) * US_PER_SECOND).view("datetime64[us]"),
        "passenger_count": passengers,
        "trip_distance": dist,
        "RatecodeID": rc,
        "store_and_fwd_flag": sff,
        "PULocationID": pu,
        "DOLocationID": do,
        "payment_type": payment,
        "fare_amount": fare,
        "extra": extra,
        "mta_tax": mta,
        "tip_amount": tip,
        "tolls_amount": tolls,
        "improvement_surcharge": improvement,
        "total_amount": np.round(total, 2),
        "congestion_surcharge": congestion,
    }
    if airport is not None:
        cols["airport_fee"] = airport
    return cols


def _special_rate_codes(model: _Model, pu: np.ndarray, do: np.ndarray, gp: np.ndarray, gd: np.ndarray,
                        u: np.ndarray, rc: np.ndarray) -> np.ndarray:
    """Rate codes of trips touching JFK, Newark or outside NYC (others keep `rc`)."""
    p = model.cal["fares"]["rate_code"]
    z = model.cal["zones"]
    jfk, ewr = z["jfk"], z["newark"]
    jfk_m = ((pu == jfk) & (gd <= 1)) | ((do == jfk) & (gp <= 1))  # JFK <-> Manhattan
    jfk_o = ((pu == jfk) | (do == jfk)) & ~jfk_m
    out = (pu == 265) | (do == 265)
    rc = rc.copy()
    rc[out & (u < p["outside_nassau_westchester"] + p["outside_negotiated"])] = 5.0
    rc[out & (u < p["outside_nassau_westchester"])] = 4.0
    rc[((pu == ewr) | (do == ewr)) & (u < p["newark"])] = 3.0
    rc[jfk_o & (u < p["jfk_other_flat"])] = 2.0
    rc[jfk_m & (u < p["jfk_manhattan_flat"])] = 2.0
    return rc


def _odd_fares(model: _Model, rc: np.ndarray, meter: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fares of rate codes other than 1: JFK flat, metered x factor, negotiated."""
    f, tariff = model.cal["fares"], model.cal["tariff"]
    fare = meter.copy()
    for code, factor in f["rate_fare_factor"].items():
        sel = rc == float(code)
        fare[sel] = np.round(meter[sel] * factor * 2.0) / 2.0
    fare[rc == 2.0] = tariff["jfk_flat_fare"]
    neg = rc == 5.0
    z = rng.standard_normal(int(neg.sum()))
    fare[neg] = np.minimum(np.round(np.exp(f["negotiated_log_mu"] + f["negotiated_log_sigma"] * z)), 500.0)
    return fare


def _custom_tips(tips: dict[str, Any], fare: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Custom card tips: a share of the fare drawn from its calibrated distribution per fare bin."""
    q = np.asarray(tips["custom_log_ratio_quantiles"])
    pos = rng.random(len(fare)) * (q.shape[1] - 1)  # linear interpolation between quantiles
    i = np.minimum(pos.astype(np.intp), q.shape[1] - 2)
    row = np.searchsorted(np.asarray(tips["custom_fare_edges"]), fare, side="right")
    log_ratio = q[row, i] + (pos - i) * (q[row, i + 1] - q[row, i])
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
    for b in range(max(1, -(-plan.n // BLOCK_ROWS))):
        yield _to_batch(scenario.apply(plan.name, _block(model, plan, seed, b), changes))


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
    months = [month_from_index(i) for i in range(first, last + 1)]
    if scenario_month is not None:
        if not first <= month_index(scenario_month, "scenario_month") <= last:
            raise SpecError(f"scenario_month {scenario_month} is outside {start}..{end}")
    story = SCENARIOS[scenario]
    changes = story.changes(months, scenario_month)
    model = _model()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    files: list[Path] = []
    rows: dict[str, int] = {}
    for index in range(first, last + 1):
        plan = _plan_month(model, index, rows_per_month, seed, story, changes)
        path = out / f"yellow_tripdata_{plan.name}.{fmt}"
        writer: _Writer | None = None
        pending: list[pa.RecordBatch] = []
        held = done = 0
        for batch in _month_batches(model, plan, seed, story, changes):
            writer = writer or _Writer(path, batch.schema, fmt)
            while batch.num_rows:
                take = min(chunk_rows - held, batch.num_rows)
                pending.append(batch.slice(0, take))
                batch = batch.slice(take)
                held += take
                if held == chunk_rows or done + held == plan.n:
                    writer.write(pa.Table.from_batches(pending))
                    done, held, pending = done + held, 0, []
                    if progress is not None:
                        progress(plan.name, done, plan.n)
        assert writer is not None
        writer.close()
        files.append(path)
        rows[plan.name] = done

    truth = {
        "scenario": story.name,
        "description": story.description,
        "seed": seed,
        "start": months[0],
        "end": months[-1],
        "rows_per_month": rows_per_month,
        "format": fmt,
        "rows": rows,
        "calibration": CALIBRATION_PATH.name,
        "changes": changes,
        "calendar_changes": calendar_changes(months),
    }
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return GenerateResult(out, files, rows, time.perf_counter() - t_start, truth)
