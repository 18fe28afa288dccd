"""Tests of the synthetic TLC-like generator (rapidseval.data.synthetic)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rapidseval.data import synthetic
from rapidseval.data.synthetic import SCENARIOS, generate, load_calibration
from rapidseval.core.errors import SpecError

ROWS = 20_000
REAL_SAMPLES = Path(os.environ.get("RAPIDSEVAL_TLC_SAMPLES", "/work/shared/data/tlc-real"))

EXPECTED_DTYPES = {
    "VendorID": "float64",
    "tpep_pickup_datetime": "datetime64[us]",
    "tpep_dropoff_datetime": "datetime64[us]",
    "passenger_count": "float64",
    "trip_distance": "float64",
    "RatecodeID": "float64",
    "store_and_fwd_flag": "str",
    "PULocationID": "int64",
    "DOLocationID": "int64",
    "payment_type": "int64",
    "fare_amount": "float64",
    "extra": "float64",
    "mta_tax": "float64",
    "tip_amount": "float64",
    "tolls_amount": "float64",
    "improvement_surcharge": "float64",
    "total_amount": "float64",
    "congestion_surcharge": "float64",
}
#: the codes TLC leaves empty together on the same rows from mid-2019
MISSING_TOGETHER = ["VendorID", "passenger_count", "RatecodeID", "store_and_fwd_flag", "congestion_surcharge"]


def _read(result, month: str) -> pd.DataFrame:
    return pd.read_parquet(Path(result.out_dir) / f"yellow_tripdata_{month}.parquet")


def _label(df: pd.DataFrame) -> pd.Series:
    pos = df[df.fare_amount > 0]
    return pos.tip_amount > 0.2 * pos.fare_amount


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """Memoised ``generate`` for the module: one run per distinct argument set."""
    cache: dict = {}

    def run(start, end, rows=ROWS, **kw):
        key = (start, end, rows, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = generate(tmp_path_factory.mktemp("syn"), start, end, rows, **kw)
        return cache[key]

    return run


# ----------------------------------------------------------------------------- files, schema


def test_files_rows_and_result(gen):
    res = gen("2020-01", "2020-03", seed=7)
    assert [p.name for p in res.files] == [f"yellow_tripdata_2020-0{m}.parquet" for m in (1, 2, 3)]
    assert res.rows == {"2020-01": ROWS, "2020-02": ROWS, "2020-03": ROWS}
    assert res.seconds > 0
    for month, n in res.rows.items():
        meta = pq.ParquetFile(Path(res.out_dir) / f"yellow_tripdata_{month}.parquet").metadata
        assert meta.num_rows == n
    truth = json.loads((Path(res.out_dir) / "ground_truth.json").read_text())
    assert truth == res.ground_truth
    assert truth["scenario"] == "none" and truth["seed"] == 7 and truth["rows_per_month"] == ROWS
    assert truth["changes"] == []


def test_schema_and_dtypes(gen):
    df = _read(gen("2020-01", "2020-01", seed=7), "2020-01")
    assert {c: str(t) for c, t in df.dtypes.items()} == EXPECTED_DTYPES
    assert df.PULocationID.between(1, 265).all() and df.DOLocationID.between(1, 265).all()
    assert set(df.payment_type.unique()) <= {0, 1, 2, 3, 4}
    assert set(df.RatecodeID.dropna().unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert set(df.store_and_fwd_flag.dropna().unique()) <= {"N", "Y"}
    assert (df.tpep_dropoff_datetime > df.tpep_pickup_datetime).all()
    assert (df.tpep_pickup_datetime.dt.microsecond == 0).all()  # whole seconds, as TLC


def test_airport_fee_only_from_2022(gen):
    res = gen("2021-12", "2022-01", rows=2_000, seed=3)
    assert "airport_fee" not in _read(res, "2021-12").columns
    df = _read(res, "2022-01")
    assert list(df.columns) == [*EXPECTED_DTYPES, "airport_fee"]
    fee = df.airport_fee[df.payment_type != 0]
    assert set(fee.unique()) <= {0.0, 1.25, -1.25}
    assert (fee[df.PULocationID.isin([132, 138]) & (df.fare_amount > 0)] == 1.25).all()


def test_congestion_surcharge_eras(gen):
    assert _read(gen("2018-06", "2018-06", rows=2_000), "2018-06").congestion_surcharge.isna().all()
    df = _read(gen("2020-01", "2020-01", seed=7), "2020-01")
    ok = df[(df.payment_type != 0) & (df.fare_amount > 0)]
    assert set(ok.congestion_surcharge.unique()) == {0.0, 2.5}


def test_pickups_sorted_and_inside_month(gen):
    res = gen("2020-01", "2020-03", seed=7)
    window = pd.Timedelta(seconds=load_calibration()["calendar"]["stray_window_s"])
    for month in res.rows:
        t = _read(res, month).tpep_pickup_datetime
        assert t.is_monotonic_increasing
        start = pd.Timestamp(f"{month}-01")
        assert t.min() >= start - window and t.max() < start + pd.offsets.MonthBegin(1)
        assert (t < start).sum() <= 5  # a handful of stray rows at most, as in real files
        assert t.dt.day.nunique() == t[t >= start].dt.days_in_month.iloc[0]  # every day covered


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_values_other_seed_differs(gen, tmp_path):
    a = _read(gen("2020-01", "2020-01", seed=7), "2020-01")
    b = _read(generate(tmp_path, "2020-01", "2020-01", ROWS, seed=7), "2020-01")
    pd.testing.assert_frame_equal(a, b)
    c = _read(gen("2020-01", "2020-01", seed=8), "2020-01")
    assert len(c) == len(a)
    assert not a.trip_distance.equals(c.trip_distance)
    assert not a.tpep_pickup_datetime.equals(c.tpep_pickup_datetime)


def test_chunking_changes_row_groups_not_values(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "BLOCK_ROWS", 3_000)  # generation blocks straddle chunks
    frames, calls = {}, []
    for chunk in (1_000, 5_000):
        res = generate(tmp_path / str(chunk), "2019-07", "2019-07", ROWS, seed=11, chunk_rows=chunk,
                       progress=lambda m, done, total, c=chunk: calls.append((c, m, done, total)))
        path = res.files[0]
        assert pq.ParquetFile(path).metadata.num_row_groups == math.ceil(ROWS / chunk)
        frames[chunk] = pd.read_parquet(path)
    pd.testing.assert_frame_equal(frames[1_000], frames[5_000])
    assert frames[1_000].tpep_pickup_datetime.is_monotonic_increasing  # across blocks too
    small = [c for c in calls if c[0] == 5_000]
    assert [c[2] for c in small] == [5_000, 10_000, 15_000, 20_000]
    assert all(c[1] == "2019-07" and c[3] == ROWS for c in small)


def test_csv_and_parquet_hold_the_same_values(gen):
    pq_df = _read(gen("2022-01", "2022-01", rows=5_000, seed=2), "2022-01")
    res = gen("2022-01", "2022-01", rows=5_000, seed=2, fmt="csv")
    path = Path(res.out_dir) / "yellow_tripdata_2022-01.csv"
    assert res.files == [path]
    header = path.read_text().splitlines()[:2]
    assert header[0] == ",".join(pq_df.columns)
    assert header[1].split(",")[1] == pq_df.tpep_pickup_datetime.iloc[0].strftime("%Y-%m-%d %H:%M:%S")
    csv_df = pd.read_csv(path, parse_dates=["tpep_pickup_datetime", "tpep_dropoff_datetime"])
    for col in ("tpep_pickup_datetime", "tpep_dropoff_datetime"):
        csv_df[col] = csv_df[col].astype("datetime64[us]")
    pd.testing.assert_frame_equal(csv_df, pq_df, check_dtype=False)


# ----------------------------------------------------------------------------- realism


def test_hour_profile_follows_calibration(gen):
    df = _read(gen("2020-01", "2020-03", seed=7), "2020-02")
    prof = load_calibration()["calendar"]["hour_profile"]
    for weekend, name in ((False, "weekday"), (True, "weekend")):
        t = df.tpep_pickup_datetime[(df.tpep_pickup_datetime.dt.day_of_week >= 5) == weekend]
        observed = np.bincount(t.dt.hour, minlength=24)
        assert np.corrcoef(observed, prof[name])[0, 1] > 0.9


def test_zone_popularity_follows_calibration(gen):
    df = _read(gen("2020-01", "2020-01", seed=7), "2020-01")
    zones = load_calibration()["zones"]
    pu = np.bincount(df.PULocationID - 1, minlength=265)
    do = np.bincount(df.DOLocationID - 1, minlength=265)
    assert np.corrcoef(pu, zones["pickup_weight"])[0, 1] > 0.95
    assert np.corrcoef(do, zones["dropoff_weight"])[0, 1] > 0.95
    assert 0.03 < (df.PULocationID == df.DOLocationID).mean() < 0.12  # same-zone trips


def test_card_share_and_label_rate_match_2018_samples(gen):
    ref = load_calibration()
    df = pd.concat([_read(gen("2018-03", "2018-10", rows=5_000, seed=4), f"2018-{m:02d}") for m in range(3, 11)])
    card = (df.payment_type == 1).mean()
    assert abs(card - ref["payment"]["card_share_by_year"]["2018"]) < 0.03
    assert abs(_label(df).mean() - ref["reference"]["label_rate_by_year"]["2018"]) < 0.04
    assert (df.payment_type == 0).sum() == 0  # no missing codes before 2019-07
    assert 0.3 < df.trip_distance.median() / df.trip_distance.mean() < 0.8  # skewed, log-normal-like
    assert (df.trip_distance == 0).any() and (df.fare_amount < 0).any()


def test_cash_tips_are_zero_card_tips_mostly_positive(gen):
    df = _read(gen("2020-01", "2020-01", seed=7), "2020-01")
    assert (df.tip_amount[df.payment_type == 2] == 0).all()
    card = df[(df.payment_type == 1) & (df.fare_amount > 0)]
    assert 0.02 < (card.tip_amount == 0).mean() < 0.10
    assert 0.6 < (card.tip_amount > 0.2 * card.fare_amount).mean() < 0.85


def test_fares_follow_the_meter(gen):
    df = _read(gen("2020-01", "2020-01", seed=7), "2020-01")
    assert (df.mta_tax.abs() == 0.5).mean() > 0.99
    jfk = df[(df.RatecodeID == 2) & (df.fare_amount > 0)]
    assert len(jfk) and (jfk.fare_amount == 52.0).all()
    std = df[(df.RatecodeID == 1) & (df.fare_amount > 0)]
    assert (std.fare_amount >= 2.5).all() and ((std.fare_amount * 2) % 1 == 0).all()
    parts = ["fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge",
             "congestion_surcharge"]
    assert np.allclose(df[parts].fillna(0).sum(axis=1), df.total_amount, atol=0.011)


def test_missing_codes_from_mid_2019_on_the_same_rows(gen):
    res = gen("2019-06", "2019-07", seed=5)
    assert _read(res, "2019-06")[MISSING_TOGETHER].notna().all().all()
    df = _read(res, "2019-07")
    missing = df.payment_type == 0
    assert 0.005 < missing.mean() < 0.03
    for col in MISSING_TOGETHER:
        assert (df[col].isna() == missing).all(), col


def test_label_is_learnable_and_march2020_degrades_it(gen):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import f1_score

    res = gen("2020-01", "2020-05", scenario="march2020", seed=1)

    def xy(month):
        df = _read(res, month)
        df = df[df.fare_amount > 0]
        t = df.tpep_pickup_datetime
        secs = (df.tpep_dropoff_datetime - t).dt.total_seconds()
        x = pd.DataFrame({
            "weekday": t.dt.day_of_week, "hour": t.dt.hour, "minute": t.dt.minute,
            "passengers": df.passenger_count, "distance": df.trip_distance, "time": secs,
            "speed": df.trip_distance / (secs + 1e-7), "pu": df.PULocationID, "do": df.DOLocationID,
            "rate": df.RatecodeID,
        }).astype("float32").fillna(-1)
        return x, (df.tip_amount > 0.2 * df.fare_amount).to_numpy()

    model = RandomForestClassifier(n_estimators=30, max_depth=10, random_state=0, n_jobs=1).fit(*xy("2020-01"))
    f1 = {m: f1_score(y, model.predict(x)) for m in ("2020-02", "2020-04", "2020-05") for x, y in [xy(m)]}
    assert 0.6 < f1["2020-02"] < 0.72
    assert 0.04 < f1["2020-02"] - f1["2020-04"] < 0.15
    assert 0.04 < f1["2020-02"] - f1["2020-05"] < 0.15


# ----------------------------------------------------------------------------- scenarios


def test_registry_names_and_descriptions():
    assert set(SCENARIOS) == {"none", "march2020", "units_bug", "schema_change"}
    for name, scenario in SCENARIOS.items():
        assert scenario.name == name and scenario.description


def test_units_bug_changes_only_distance_of_one_month(gen):
    bug = gen("2020-01", "2020-03", scenario="units_bug", seed=7)
    base = gen("2020-01", "2020-03", seed=7)
    (change,) = bug.ground_truth["changes"]
    assert change["months"] == ["2020-02"] and change["columns"] == ["trip_distance"]
    assert change["factor"] == pytest.approx(1.609344)
    means = {m: _read(bug, m).trip_distance.mean() for m in bug.rows}
    ratio = means["2020-02"] / ((means["2020-01"] + means["2020-03"]) / 2)
    assert ratio == pytest.approx(1.609344, abs=0.12)
    a, b = _read(bug, "2020-02"), _read(base, "2020-02")
    pd.testing.assert_frame_equal(a.drop(columns="trip_distance"), b.drop(columns="trip_distance"))
    assert np.allclose(a.trip_distance, b.trip_distance * 1.609344, atol=0.006)
    pd.testing.assert_frame_equal(_read(bug, "2020-03"), _read(base, "2020-03"))


def test_schema_change_renames_fare_in_one_month(gen):
    res = gen("2020-01", "2020-03", scenario="schema_change", scenario_month="2020-03", seed=7)
    base = gen("2020-01", "2020-03", seed=7)
    (change,) = res.ground_truth["changes"]
    renamed = change["renamed_to"]
    assert change["months"] == ["2020-03"] and change["columns"] == ["fare_amount"]
    df = _read(res, "2020-03")
    assert "fare_amount" not in df.columns and renamed in df.columns
    assert df[renamed].equals(_read(base, "2020-03").fare_amount)
    assert "fare_amount" in _read(res, "2020-02").columns


def test_schema_change_name_is_unknown_to_the_schema_layer():
    schema = pytest.importorskip("rapidseval.io.schema")
    renamed = SCENARIOS["schema_change"].changes(["2020-01"], None)[0]["renamed_to"]
    known = {schema.normalise_name(n) for names in schema.ALIASES.values() for n in names}
    assert schema.normalise_name(renamed) not in known


def test_march2020_volume_collapses_after_the_change(gen):
    res = gen("2020-02", "2020-04", scenario="march2020", seed=9)
    truth = res.ground_truth
    assert [c["kind"] for c in truth["changes"]] == ["volume_drop", "trip_mix", "payment_and_tips"]
    assert all(c["from"] == "2020-03-14T00:00:00" for c in truth["changes"])
    assert truth["changes"][0]["months"] == ["2020-03", "2020-04"]
    assert res.rows["2020-02"] == ROWS and res.rows["2020-04"] < 0.3 * ROWS
    march = _read(res, "2020-03")
    day = march.tpep_pickup_datetime.dt.day
    before = (day < 14).sum() / 13
    after = (day >= 18).sum() / 14  # after the few days of the collapse
    assert after < 0.3 * before
    old, new = march[day < 14], pd.concat([march[day >= 18], _read(res, "2020-04")])
    assert (old.payment_type == 1).mean() - (new.payment_type == 1).mean() > 0.05
    assert _label(old).mean() - _label(new).mean() > 0.05
    airports = [132, 138]
    assert old.PULocationID.isin(airports).mean() > 2 * new.PULocationID.isin(airports).mean()
    assert new.trip_distance.median() < old.trip_distance.median()
    feb = _read(res, "2020-02")
    assert abs((feb.payment_type == 1).mean() - (old.payment_type == 1).mean()) < 0.03


def test_scenario_month_moves_the_change(gen):
    res = gen("2021-01", "2021-03", rows=2_000, scenario="march2020", scenario_month="2021-02")
    assert res.ground_truth["changes"][0]["from"] == "2021-02-14T00:00:00"
    assert res.rows["2021-01"] == 2_000 and res.rows["2021-03"] < 600


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"scenario": "covid"}, "scenario"),
        ({"fmt": "xlsx"}, "fmt"),
        ({"start": "2020-13"}, "start"),
        ({"end": "2020/02"}, "end"),
        ({"start": "2020-03", "end": "2020-01"}, "end"),
        ({"rows_per_month": 0}, "rows_per_month"),
        ({"rows_per_month": 2.5}, "rows_per_month"),
        ({"seed": -1}, "seed"),
        ({"chunk_rows": 0}, "chunk_rows"),
        ({"scenario": "units_bug", "scenario_month": "2019-12"}, "scenario_month"),
        ({"scenario_month": "March"}, "scenario_month"),
    ],
)
def test_bad_arguments_raise_spec_error_naming_them(tmp_path, kwargs, named):
    args = {"start": "2020-01", "end": "2020-02", "rows_per_month": 10, **kwargs}
    with pytest.raises(SpecError, match=named):
        generate(tmp_path, **args)
    assert not list(tmp_path.iterdir())  # nothing written


def test_unknown_scenario_lists_the_registry(tmp_path):
    with pytest.raises(SpecError) as err:
        generate(tmp_path, "2020-01", "2020-01", 10, scenario="nope")
    for name in SCENARIOS:
        assert name in str(err.value)


@pytest.mark.skipif(not REAL_SAMPLES.is_dir(), reason="real TLC samples not available")
def test_calibration_is_rederived_from_the_real_samples():
    # the calibration is development tooling outside the package (tools/calibrate.py)
    spec = importlib.util.spec_from_file_location("calibrate", Path(__file__).parents[1] / "tools" / "calibrate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calibrate = module.calibrate

    fresh = json.loads(json.dumps(calibrate(REAL_SAMPLES)))
    embedded = load_calibration()
    assert fresh["calendar"] == embedded["calendar"]
    assert fresh["zones"] == embedded["zones"]
    assert fresh["reference"] == embedded["reference"]
    assert np.allclose(fresh["payment"]["pickup_zone"], embedded["payment"]["pickup_zone"], atol=1e-3)


def test_ground_truth_lists_the_calendar_changes_every_scenario_makes():
    """The missing codes that start in 2019-07 (as in the real files) are a change of every
    scenario: ground_truth.json lists them under calendar_changes, so a drift trigger in
    2019-08 is judged against the truth, not against the scenario's story alone."""
    from rapidseval.data.synthetic import calendar_changes, missing_code_rate

    months = ["2019-05", "2019-06", "2019-07", "2019-08", "2019-09"]
    (change,) = calendar_changes(months)
    assert change["kind"] == "missing_codes" and change["months"] == ["2019-07", "2019-08", "2019-09"]
    assert change["from"] == "2019-07-01T00:00:00"
    assert change["rate_before"] == 0.0 and change["rate"] == missing_code_rate("2019-07") > 0
    assert set(change["features"]) >= {"RatecodeID", "passenger_count"}
    assert calendar_changes(["2020-01", "2020-02", "2020-03"]) == []
