"""Derive the synthetic generator's calibration constants from real TLC samples.

The generator (:mod:`rapidseval.data.synthetic`) reads its constants from the
embedded ``calibration.json``.  This module re-derives that file from the real
yellow-taxi samples (2018 monthly samples, an October 2021 sample and a 2022
BigQuery export), so every number can be traced back to data::

    python tools/calibrate.py SAMPLES_DIR OUT_JSON

``SAMPLES_DIR`` holds the real sample Parquet files; ``OUT_JSON`` is the file to
write (``rapidseval/data/calibration.json`` replaces the embedded calibration).

What is fitted (and what is a published fact rather than a fit) is listed in
the ``"notes"`` entry of the output.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["calibrate", "load_samples", "main"]

USAGE = "usage: python tools/calibrate.py SAMPLES_DIR OUT_JSON"

#: Borough of each TLC taxi zone 1..265, one letter per zone, from TLC's
#: ``taxi_zone_lookup.csv``: E=EWR, Q=Queens, X=Bronx, M=Manhattan,
#: S=Staten Island, K=Brooklyn, U=unknown / outside NYC (264, 265).
ZONE_BOROUGH = (
    "EQXMSSQQQQKMMKQQKXQXKKSMKKQQKQXXKKKKKQKKMMMSMXXMKMXKQKKQQXXXKKKQKKKMXQKKQM"
    "MKKXMKXQQSKQMMKMKQQXQQKQSMQQMMMKMKSSKKMMSMQSXMQQKQMXMMQQQQKQQXMQQMMMMMQQXM"
    "KKMMMKKSQMXQMMMMKMXXXMQSQXQSKKQQKXXXXMSKKKQQQMKQQQXXQMQSQSQXMKMXXSQQKQQXSK"
    "QMKQKKMMMMMMXMMMMXXXMMSMXXMXSQQXKKKQXQMMMUU"
)
#: TLC "Yellow Zone" service zones (Manhattan below ~96th/110th Street): the
#: zones where the 2019 congestion surcharge applies, "Manhattan core".
YELLOW_ZONES = (
    4, 12, 13, 24, 43, 45, 48, 50, 68, 79, 87, 88, 90, 100, 103, 104, 105, 107,
    113, 114, 125, 137, 140, 141, 142, 143, 144, 148, 151, 158, 161, 162, 163,
    164, 170, 186, 194, 209, 211, 224, 229, 230, 231, 232, 233, 234, 236, 237,
    238, 239, 246, 249, 261, 262, 263,
)
#: Zone groups used for origin -> destination structure.
GROUPS = (
    "manhattan_core", "manhattan_north", "brooklyn", "queens", "bronx",
    "staten_island", "jfk", "laguardia", "newark", "unknown",
)
N_ZONES = 265
JFK, LGA, EWR = 132, 138, 1
DIST_EDGES = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0)
PRESETS = (0.20, 0.25, 0.30)
TIP_FARE_EDGES = (5.0, 8.0, 12.0, 20.0, 40.0)
DURATION_SD_EDGES = (1.0, 2.0, 5.0, 10.0, 20.0)

#: Published tariff facts (NYC TLC yellow-taxi rate card 2012-09 .. 2022-12,
#: congestion surcharge from 2019-02-02, airport fee from 2022-01); not fitted.
TARIFF = {
    "initial": 2.5,
    "per_unit": 0.5,
    "units_per_mile": 5,
    "mta_tax": 0.5,
    "improvement_surcharge": 0.3,
    "night_surcharge": 0.5,
    "rush_surcharge": 1.0,
    "jfk_flat_fare": 52.0,
    "jfk_rush_surcharge": 4.5,
    "congestion_surcharge": 2.5,
    "congestion_from": "2019-02",
    "airport_fee": 1.25,
    "airport_fee_from": "2022-01",
    # E-ZPass crossing toll most often charged (RFK / Queens-Midtown); the
    # 2018 and 2021-22 values are the samples' modes, 6.12 is MTA's 2019 rate.
    "tolls": [["2017-03", 5.76], ["2019-03", 6.12], ["2021-04", 6.55]],
}

_RENAME = {
    "vendor_id": "VendorID",
    "pickup_datetime": "tpep_pickup_datetime",
    "dropoff_datetime": "tpep_dropoff_datetime",
    "rate_code_id": "RatecodeID",
    "rate_code": "RatecodeID",
    "pickup_location_id": "PULocationID",
    "dropoff_location_id": "DOLocationID",
    "imp_surcharge": "improvement_surcharge",
}
_PARTS = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount",
          "improvement_surcharge", "airport_fee")


def zone_groups() -> np.ndarray:
    """Group index (into :data:`GROUPS`) of zones 1..265 (array position 0 = zone 1)."""
    code = {"M": 1, "K": 2, "Q": 3, "X": 4, "S": 5, "E": 8, "U": 9}
    g = np.array([code[b] for b in ZONE_BOROUGH], dtype=np.int64)
    g[np.asarray(YELLOW_ZONES) - 1] = 0
    g[JFK - 1], g[LGA - 1], g[EWR - 1] = 6, 7, 8
    return g


def load_samples(directory: str | Path) -> pd.DataFrame:
    """Read every zone-era sample in `directory` into one frame with TLC names.

    Adds ``file_year``/``file_month`` (the month the row was published in)
    and, for exports without it, ``congestion_surcharge`` recovered as
    ``total_amount`` minus the other parts.
    """
    frames = []
    for path in sorted(Path(directory).glob("*.parquet")):
        df = pd.read_parquet(path).rename(columns=_RENAME)
        if "PULocationID" not in df.columns:
            continue  # pre-2016-07 latitude/longitude era: no zones
        if "data_file_year" in df.columns:
            df["file_year"], df["file_month"] = df.pop("data_file_year"), df.pop("data_file_month")
        else:
            year, month = re.search(r"(\d{4})-(\d{2})", path.name).groups()
            df["file_year"], df["file_month"] = int(year), int(month)
        if "congestion_surcharge" not in df.columns:
            parts = sum(df[c].fillna(0.0) for c in _PARTS if c in df.columns)
            df["congestion_surcharge"] = (df["total_amount"] - parts).round(2)
        frames.append(df)
    if not frames:
        raise FileNotFoundError(f"no zone-era TLC samples (*.parquet) in {directory}")
    out = pd.concat(frames, ignore_index=True)
    out["duration_s"] = (out["tpep_dropoff_datetime"] - out["tpep_pickup_datetime"]).dt.total_seconds()
    return out


def _r(x: Any, digits: int = 5) -> Any:
    """Round numbers (recursively) to `digits` significant digits for a compact file."""
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_r(v, digits) for v in x]
    if isinstance(x, dict):
        return {k: _r(v, digits) for k, v in x.items()}
    if isinstance(x, (float, np.floating)):
        return float(f"{float(x):.{digits}g}")
    if isinstance(x, np.integer):
        return int(x)
    return x


def _shrunk(k: np.ndarray, n: np.ndarray, prior: float | np.ndarray, strength: float) -> np.ndarray:
    """Empirical-Bayes shrinkage of rates k/n towards `prior`."""
    return (k + strength * prior) / (n + strength)


def _calendar(df: pd.DataFrame) -> dict[str, Any]:
    start = pd.to_datetime(dict(year=df.file_year, month=df.file_month, day=1))
    t = df.tpep_pickup_datetime
    inside = (t >= start) & (t < start + pd.DateOffset(months=1))
    stray = (t < start) & (t >= start - pd.Timedelta(hours=1))
    x = df[inside]
    weekend = x.tpep_pickup_datetime.dt.day_of_week >= 5
    hours = x.tpep_pickup_datetime.dt.hour
    prof = {}
    for name, sel in (("weekday", ~weekend), ("weekend", weekend)):
        c = np.bincount(hours[sel], minlength=24).astype(float) + 0.5
        prof[name] = c / c.sum()
    # volume per calendar weekday, relative to the month's mean day
    rates, weights = [], []
    for (yy, mm), g in x.groupby(["file_year", "file_month"]):
        days = pd.date_range(f"{yy}-{mm:02d}-01", periods=pd.Period(f"{yy}-{mm:02d}").days_in_month)
        ndays = np.bincount(days.day_of_week, minlength=7)
        per_day = np.bincount(g.tpep_pickup_datetime.dt.day_of_week, minlength=7) / ndays
        rates.append(per_day / (len(g) / len(days)))
        weights.append(len(g))
    factor = np.average(np.array(rates), axis=0, weights=weights)
    lead = (start - t)[stray].dt.total_seconds()
    return {
        "hour_profile": {k: v.tolist() for k, v in prof.items()},
        "weekday_factor": (factor / factor.mean()).tolist(),
        "stray_rate": float(stray.mean()),
        "stray_window_s": float(np.ceil(lead.max() / 60.0) * 60.0) if len(lead) else 300.0,
    }


def _zones(df: pd.DataFrame, groups: np.ndarray) -> dict[str, Any]:
    pu = df.PULocationID.to_numpy()
    do = df.DOLocationID.to_numpy()
    ok = (pu >= 1) & (pu <= N_ZONES) & (do >= 1) & (do <= N_ZONES)
    pu, do = pu[ok], do[ok]
    pu_w = np.bincount(pu - 1, minlength=N_ZONES) + 0.5
    do_w = np.bincount(do - 1, minlength=N_ZONES) + 0.5
    gp, gd = groups[pu - 1], groups[do - 1]
    ng = len(GROUPS)
    same = pu == do
    n_g = np.bincount(gp, minlength=ng)
    same_p = _shrunk(np.bincount(gp[same], minlength=ng), n_g, same.mean(), 20.0)
    counts = np.zeros((ng, ng))
    np.add.at(counts, (gp[~same], gd[~same]), 1.0)
    marginal = counts.sum(axis=0) / counts.sum()
    trans = (counts + 2.0 * marginal) / (counts.sum(axis=1, keepdims=True) + 2.0)
    return {
        "pickup_weight": (pu_w / pu_w.sum()).tolist(),
        "dropoff_weight": (do_w / do_w.sum()).tolist(),
        "same_zone_prob": same_p.tolist(),
        "group_transition": trans.tolist(),
    }


def _robust(x: np.ndarray) -> tuple[float, float]:
    """Median and normal-equivalent standard deviation (IQR / 1.349) of `x`."""
    q1, q2, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    return float(q2), float((q3 - q1) / 1.349)


def _zoned_trips(df: pd.DataFrame) -> pd.DataFrame:
    """Trips whose pickup and dropoff are known taxi zones."""
    return df[(df.PULocationID.between(1, N_ZONES)) & (df.DOLocationID.between(1, N_ZONES))]


def _distance(df: pd.DataFrame, groups: np.ndarray) -> dict[str, Any]:
    """Log-normal distance per (pickup group, dropoff group), fitted robustly (median and
    inter-quartile range of log distance) and shrunk towards the overall fit; trips within
    one zone have their own."""
    trips = _zoned_trips(df)
    miles = trips.trip_distance.to_numpy()
    pickup_group = groups[trips.PULocationID.to_numpy() - 1]
    dropoff_group = groups[trips.DOLocationID.to_numpy() - 1]
    same = trips.PULocationID.to_numpy() == trips.DOLocationID.to_numpy()
    positive = (miles > 0) & (miles < 150)
    selected = positive & ~same
    log_miles, pair = np.log(miles[selected]), pickup_group[selected] * len(GROUPS) + dropoff_group[selected]
    overall_mu, overall_sd = _robust(log_miles)
    n_pairs = len(GROUPS) ** 2
    count = np.bincount(pair, minlength=n_pairs).astype(float)
    mu, var = np.full(n_pairs, overall_mu), np.full(n_pairs, overall_sd**2)
    for p in np.flatnonzero(count >= 2):
        mu[p], sd = _robust(log_miles[pair == p])
        var[p] = sd**2
    strength = 30.0
    mu = ((count * mu + strength * overall_mu) / (count + strength)).reshape(len(GROUPS), -1)
    var = ((count * var + strength * overall_sd**2) / (count + strength)).reshape(len(GROUPS), -1)
    log_same = np.log(miles[positive & same])
    return {
        "mu": mu.tolist(),
        "sigma": np.sqrt(np.maximum(var, 0.05)).tolist(),
        "same_zone_mu": _robust(log_same)[0],
        "same_zone_sigma": _robust(log_same)[1],
        "zero_rate": float((miles == 0).mean()),
        "max_miles": 150.0,
    }


def _duration(df: pd.DataFrame) -> dict[str, Any]:
    """log T = a[weekend, hour] + b1 log d + b2 (log d)^2 + N(0, s(d)^2) on ordinary trips (the
    square term lets long trips run faster, on highways); zero-distance and multi-hour trips apart."""
    trips = _zoned_trips(df)
    miles = trips.trip_distance.to_numpy()
    seconds = trips.duration_s.to_numpy()
    weekend = (trips.tpep_pickup_datetime.dt.day_of_week >= 5).to_numpy().astype(int)
    hour = trips.tpep_pickup_datetime.dt.hour.to_numpy()
    fit = (miles > 0) & (miles < 150) & (seconds > 30) & (seconds < 3 * 3600)
    cell = (weekend * 24 + hour)[fit]
    design = np.zeros((fit.sum(), 50))
    design[np.arange(fit.sum()), cell] = 1.0
    design[:, 48] = np.log(miles[fit])
    design[:, 49] = np.log(miles[fit]) ** 2
    coef, *_ = np.linalg.lstsq(design, np.log(seconds[fit]), rcond=None)
    resid = np.log(seconds[fit]) - design @ coef
    sd_bin = np.searchsorted(np.asarray(DURATION_SD_EDGES), miles[fit], side="right")
    sd = [float(resid[sd_bin == b].std()) for b in range(len(DURATION_SD_EDGES) + 1)]
    zero_distance = np.log(seconds[(miles == 0) & (seconds > 0) & (seconds < 3 * 3600)])
    return {
        "log_a": coef[:48].reshape(2, 24).tolist(),
        "log_b": [float(coef[48]), float(coef[49])],
        "sigma_distance_edges": list(DURATION_SD_EDGES),
        "sigma": sd,
        "zero_distance_log_mu": float(zero_distance.mean()),
        "zero_distance_log_sigma": float(zero_distance.std()),
        "long_rate": float((seconds > 3 * 3600).mean()),
        "long_hours": [3.0, 24.0],
    }


def _meter(d: np.ndarray, t_min: np.ndarray, cruise_mph: float) -> np.ndarray:
    slow = np.maximum(0.0, t_min - d * 60.0 / cruise_mph)
    return TARIFF["initial"] + TARIFF["per_unit"] * (np.floor(d * TARIFF["units_per_mile"]) + np.floor(slow))


def _rate_codes(df: pd.DataFrame, groups: np.ndarray) -> dict[str, float]:
    """Share of each special rate code among the trips it can apply to (by trip ends)."""
    pickup, dropoff = df.PULocationID.to_numpy(), df.DOLocationID.to_numpy()
    codes = df.RatecodeID.to_numpy()
    pickup_group = groups[np.clip(pickup, 1, N_ZONES) - 1]
    dropoff_group = groups[np.clip(dropoff, 1, N_ZONES) - 1]
    jfk_manhattan = ((pickup == JFK) & (dropoff_group <= 1)) | ((dropoff == JFK) & (pickup_group <= 1))
    jfk_other = ((pickup == JFK) | (dropoff == JFK)) & ~jfk_manhattan
    newark = (pickup == EWR) | (dropoff == EWR)
    outside_nyc = (pickup == 265) | (dropoff == 265)
    other = ~(jfk_manhattan | jfk_other | newark | outside_nyc)
    valid = ~np.isnan(codes.astype(float))

    def share(mask: np.ndarray, code: int) -> float:
        rows = mask & valid
        return float((codes[rows] == code).mean()) if rows.any() else 0.0

    return {
        "jfk_manhattan_flat": share(jfk_manhattan, 2),
        "jfk_other_flat": share(jfk_other, 2),
        "newark": share(newark, 3),
        "outside_nassau_westchester": share(outside_nyc, 4),
        "outside_negotiated": share(outside_nyc, 5),
        "negotiated": share(other, 5),
    }


def _toll_prob(df: pd.DataFrame, groups: np.ndarray) -> np.ndarray:
    """Share of trips with a toll per (pickup group, dropoff group), shrunk towards the overall share."""
    toll = (df.tolls_amount > 0).to_numpy()
    pickup_group = groups[np.clip(df.PULocationID.to_numpy(), 1, N_ZONES) - 1]
    dropoff_group = groups[np.clip(df.DOLocationID.to_numpy(), 1, N_ZONES) - 1]
    n_groups = len(GROUPS)
    trips = np.zeros((n_groups, n_groups))
    tolled = np.zeros((n_groups, n_groups))
    np.add.at(trips, (pickup_group, dropoff_group), 1.0)
    np.add.at(tolled, (pickup_group, dropoff_group), toll.astype(float))
    return _shrunk(tolled, trips, toll.mean(), 20.0)


def _fares(df: pd.DataFrame, groups: np.ndarray) -> dict[str, Any]:
    """The meter's cruise speed (the one that reproduces most standard fares within $1), fare
    factors of rate codes 3 and 4, negotiated fares, rate codes, tolls, refunds and zero fares."""
    paid = df[df.fare_amount > 0]
    miles = paid.trip_distance.to_numpy()
    minutes = paid.duration_s.to_numpy() / 60.0
    codes = paid.RatecodeID.to_numpy()
    fare = paid.fare_amount.to_numpy()
    standard = (codes == 1) & (minutes > 0) & (minutes < 180)
    grid = np.arange(10.0, 30.5, 0.5)
    hit = [np.mean(np.abs(fare[standard] - _meter(miles[standard], minutes[standard], v)) <= 1.0) for v in grid]
    cruise = float(grid[int(np.argmax(hit))])
    meter = _meter(miles, minutes, cruise)
    factor = {}
    for code in (3, 4):
        rows = (codes == code) & (meter > 0)
        factor[str(code)] = float(np.median(fare[rows] / meter[rows])) if rows.any() else 1.0
    negotiated = paid.fare_amount[(codes == 5)]
    return {
        "meter_cruise_mph": cruise,
        "meter_within_1usd": float(max(hit)),
        "rate_fare_factor": factor,
        "rate_code": _rate_codes(df, groups),
        "negotiated_log_mu": float(np.log(negotiated[negotiated > 0]).mean()),
        "negotiated_log_sigma": float(np.log(negotiated[negotiated > 0]).std()),
        "toll_prob": _toll_prob(df, groups).tolist(),
        "negative_fare_rate": float((df.fare_amount < 0).mean()),
        "zero_fare_rate": float((df.fare_amount == 0).mean()),
    }


def _design(df: pd.DataFrame, edges: np.ndarray) -> tuple[Any, np.ndarray]:
    from scipy import sparse

    n = len(df)
    hr = df.tpep_pickup_datetime.dt.hour.to_numpy()
    wk = (df.tpep_pickup_datetime.dt.day_of_week >= 5).to_numpy()
    db = np.searchsorted(edges, df.trip_distance.to_numpy(), side="right")
    pc = np.clip(df.passenger_count.fillna(1).to_numpy().astype(int), 0, 6)
    year = df.file_year.to_numpy()
    blocks = [
        (df.PULocationID.to_numpy() - 1, N_ZONES),
        (df.DOLocationID.to_numpy() - 1, N_ZONES),
        (hr, 24),
        (db, len(edges) + 1),
        (pc, 7),
    ]
    cols, off = [], 0
    for idx, width in blocks:
        cols.append(idx + off)
        off += width
    rows = np.repeat(np.arange(n), len(blocks))
    data = np.ones(n * len(blocks))
    x = sparse.csr_matrix((data, (rows, np.stack(cols, axis=1).ravel())), shape=(n, off))
    extra = sparse.csr_matrix(np.stack([wk, year == 2021, year == 2022], axis=1).astype(float))
    return sparse.hstack([x, extra]).tocsr(), np.cumsum([0] + [w for _, w in blocks])


def _payment(df: pd.DataFrame) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    x = df[df.payment_type.between(1, 4) & df.PULocationID.between(1, N_ZONES)
           & df.DOLocationID.between(1, N_ZONES)]
    edges = np.asarray(DIST_EDGES)
    design, off = _design(x, edges)
    y = (x.payment_type == 1).to_numpy()
    model = LogisticRegression(C=0.3, max_iter=2000).fit(design, y)
    w = model.coef_[0]
    non_card = x.payment_type[~y]
    p3 = float((non_card == 3).mean())
    p4 = float((non_card == 4).mean())
    years = x.file_year.to_numpy()
    return {
        "intercept": float(model.intercept_[0]),
        "pickup_zone": w[off[0]:off[1]].tolist(),
        "dropoff_zone": w[off[1]:off[2]].tolist(),
        "hour": w[off[2]:off[3]].tolist(),
        "distance_edges": list(DIST_EDGES),
        "distance_bin": w[off[3]:off[4]].tolist(),
        "passengers": w[off[4]:off[5]].tolist(),
        "weekend": float(w[off[5]]),
        # logit offset by time, interpolated linearly between anchors
        "year_offset": [["2018-06", 0.0], ["2021-10", float(w[off[5] + 1])],
                        ["2022-06", float(w[off[5] + 2])]],
        "no_charge_share": p3,
        "dispute_share": p4,
        "card_share_by_year": {str(yy): float(y[years == yy].mean()) for yy in np.unique(years)},
    }


def _tips(df: pd.DataFrame) -> dict[str, Any]:
    card = df[(df.payment_type == 1) & (df.fare_amount > 0) & (df.RatecodeID != 5)]
    tip = card.tip_amount.to_numpy()
    pre = (card.total_amount - card.tip_amount).to_numpy()
    fare = card.fare_amount.to_numpy()
    zero = tip == 0
    preset = np.zeros(len(card), dtype=bool)
    shares = []
    for p in PRESETS:
        hit = ~zero & ~preset & (np.abs(tip - np.round(p * pre, 2)) <= 0.011)
        shares.append(float(hit.mean()))
        preset |= hit
    custom = ~zero & ~preset & (tip < 5 * fare)
    # custom tips as a share of the fare: empirical quantiles of log(tip / fare) per fare bin
    bins = np.searchsorted(np.asarray(TIP_FARE_EDGES), fare[custom], side="right")
    log_ratio = np.log(tip[custom] / fare[custom])
    probs = np.linspace(0.0, 1.0, 21)
    quantiles = [np.quantile(log_ratio[bins == b], probs).tolist() for b in range(len(TIP_FARE_EDGES) + 1)]
    missing = df[df.payment_type == 0]
    tipped_missing = float((missing.tip_amount > 0).mean()) if len(missing) else 0.8
    return {
        "zero_share": float(zero.mean()),
        "presets": list(PRESETS),
        "preset_share": shares,
        "custom_fare_edges": list(TIP_FARE_EDGES),
        "custom_log_ratio_quantiles": quantiles,
        "missing_code_card_prob": min(1.0, tipped_missing / (1.0 - float(zero.mean()))),
    }


def _codes(df: pd.DataFrame) -> dict[str, Any]:
    pc = df.passenger_count.dropna().clip(0, 6).astype(int)
    pc_w = np.bincount(pc, minlength=7) + 0.5
    v = df.VendorID
    by_year = df.groupby("file_year").payment_type.apply(lambda s: float((s == 0).mean()))
    late = by_year.get(2021, 0.0)
    return {
        "passenger_weight": (pc_w / pc_w.sum()).tolist(),
        "vendor1_share": float((v == 1).sum() / v.isin([1, 2]).sum()),
        "store_and_fwd_y_vendor1": float((df.store_and_fwd_flag[v == 1] == "Y").mean()),
        "missing_from": "2019-07",
        "missing_rate": [["2019-07", late], ["2021-10", late], ["2022-06", by_year.get(2022, late)]],
        "missing_rate_by_year": {str(k): float(x) for k, x in by_year.items()},
    }


def _reference(df: pd.DataFrame) -> dict[str, Any]:
    pos = df[df.fare_amount > 0]
    label = pos.tip_amount > 0.2 * pos.fare_amount
    return {
        "label_rate_by_year": {str(k): float(x) for k, x in label.groupby(pos.file_year).mean().items()},
        "label_rate_2018_2021": float(label[pos.file_year.isin([2018, 2021])].mean()),
        "rows_by_year": {str(k): int(x) for k, x in df.groupby("file_year").size().items()},
    }


def calibrate(directory: str | Path) -> dict[str, Any]:
    """Fit every calibration constant from the samples in `directory`.

    Parameters
    ----------
    directory
        Folder holding the real TLC sample Parquet files.

    Returns
    -------
    dict
        The JSON-ready calibration (numbers rounded to 5 significant digits).
    """
    df = load_samples(directory)
    groups = zone_groups()
    out: dict[str, Any] = {
        "version": 1,
        "source": sorted(p.name for p in Path(directory).glob("*.parquet")),
        "notes": (
            "Fitted on real NYC TLC yellow-taxi samples by tools/calibrate.py; "
            "'tariff' holds the published 2019-2022 rate card (not fitted); zone "
            "boroughs and core zones come from TLC's taxi_zone_lookup.csv."
        ),
        "tariff": TARIFF,
        "zones": {"groups": list(GROUPS), "group_of_zone": groups.tolist(),
                  "core_zones": list(YELLOW_ZONES), "jfk": JFK, "laguardia": LGA, "newark": EWR},
    }
    out["calendar"] = _calendar(df)
    out["zones"].update(_zones(df, groups))
    out["distance"] = _distance(df, groups)
    out["duration"] = _duration(df)
    out["fares"] = _fares(df, groups)
    out["payment"] = _payment(df)
    out["tips"] = _tips(df)
    out["codes"] = _codes(df)
    out["reference"] = _reference(df)
    return _r(out)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python tools/calibrate.py SAMPLES_DIR OUT_JSON``."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    cal = calibrate(args[0])
    text = json.dumps(cal, separators=(",", ":"))
    Path(args[1]).write_text(text + "\n")
    print(f"wrote {args[1]} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
