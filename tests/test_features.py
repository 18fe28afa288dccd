"""Cleaning rules count every dropped row; features follow the study's definitions."""

import numpy as np
import pandas as pd
import pytest

from rapidseval import SchemaError, get_backend
from rapidseval.features import DROP_RULES, STUDY_DROP_RULES, STUDY_FEATURES, FeatureSpec, prepare

STUDY_RULES = FeatureSpec(drop_rules=STUDY_DROP_RULES)  # the study's cleaning (and the guards)


def _frame():
    pick = pd.to_datetime([
        "2020-03-02 08:15:30",  # Monday, work hours
        "2020-03-07 23:59:00",  # Saturday, crosses midnight
        "2020-02-29 23:50:00",  # outside month
        "2020-03-03 10:00:00",  # zero fare
        None,                   # missing timestamp
        "2020-03-04 12:00:00",  # dropoff before pickup
        "2020-03-05 09:00:00",  # inf distance
        "2020-03-06 18:59:59",  # Friday 18h: still work hours; missing codes
        "2020-03-06 19:00:00",  # missing tip
        "2020-03-09 01:00:00",  # two-day trip: total seconds, not .seconds
    ]).astype("datetime64[us]")
    drop = pd.to_datetime([
        "2020-03-02 08:35:30",
        "2020-03-08 00:09:00",
        "2020-03-01 00:05:00",
        "2020-03-03 10:10:00",
        "2020-03-04 10:10:00",
        "2020-03-04 11:00:00",
        "2020-03-05 09:20:00",
        "2020-03-06 19:10:00",
        "2020-03-06 19:10:00",
        "2020-03-11 02:00:00",
    ]).astype("datetime64[us]")
    return pd.DataFrame({
        "pickup_datetime": pick,
        "dropoff_datetime": drop,
        "passenger_count": [1, 2, 1, 1, 1, 1, 1, np.nan, 1, 3],
        "trip_distance": [3.0, 1.5, 1.0, 1.0, 1.0, 1.0, np.inf, 2.0, 2.0, 40.0],
        "rate_code_id": [1, 1, 1, 1, 1, 1, 1, np.nan, 1, 5],
        "pickup_location_id": [161, 79, 1, 2, 3, 4, 5, 236, 7, 132],
        "dropoff_location_id": [236, 80, 1, 2, 3, 4, 5, 237, 7, 265],
        "fare_amount": [15.0, 7.0, 5.0, 0.0, 5.0, 5.0, 5.0, 10.0, 10.0, 200.0],
        "tip_amount": [3.01, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, np.nan, 40.0],
    })


def test_every_row_is_kept_or_charged_to_one_rule():
    frame, stats = prepare(_frame(), STUDY_RULES, month="2020-03", backend=get_backend("cpu"))
    assert stats.rows_read == 10 and stats.rows_used == 4 == len(frame)
    assert stats.dropped == {
        "missing_timestamp": 1,
        "pickup_outside_month": 1,
        "outside_period": 0,
        "fare_not_positive": 1,
        "missing_label": 1,
        "non_finite_value": 1,
        "dropoff_before_pickup": 1,
        "feature_not_finite": 0,
    }
    assert stats.rows_read == stats.rows_used + sum(stats.dropped.values())
    assert stats.filled["passenger_count"] == 1 and stats.filled["RatecodeID"] == 1


def test_study_features_and_target():
    frame, stats = prepare(_frame(), STUDY_RULES, month="2020-03", backend=get_backend("cpu"))
    assert list(frame.columns[:11]) == list(STUDY_FEATURES)
    assert all(frame[f].dtype == np.float32 for f in STUDY_FEATURES)
    first = frame.iloc[0]
    assert (first.pickup_weekday, first.pickup_hour, first.pickup_minute, first.work_hours) == (0, 8, 15, 1)
    assert first.trip_time == 1200.0
    assert first.trip_speed == np.float32(3.0 / (1200 + 1e-7))
    assert frame["high_tip"].tolist() == [1, 0, 0, 0]  # 3.01/15 > 0.2; 2/10 == 0.2 is not > 0.2
    sat = frame.iloc[1]
    assert (sat.pickup_weekday, sat.work_hours, sat.trip_time) == (5, 0, 600.0)
    fri = frame.iloc[2]
    assert (fri.pickup_weekday, fri.pickup_hour, fri.work_hours) == (4, 18, 1)
    assert fri.passenger_count == -1 and fri.RatecodeID == -1  # filled like the study
    long = frame.iloc[3]
    assert long.trip_time == 2 * 86400 + 3600  # total seconds (the study's .seconds would give 3600)
    assert stats.positives == 1


def test_features_match_pandas_dt_accessors_on_random_times():
    rng = np.random.default_rng(0)
    pick = pd.Series(np.datetime64("2020-03-01", "us") + rng.integers(0, 31 * 86400 * 10**6, 5000).astype("timedelta64[us]"))
    df = pd.DataFrame({
        "pickup_datetime": pick,
        "dropoff_datetime": pick + pd.to_timedelta(rng.integers(0, 7200, 5000), unit="s"),
        "passenger_count": 1.0, "trip_distance": 1.0, "rate_code_id": 1.0,
        "pickup_location_id": 1.0, "dropoff_location_id": 1.0, "fare_amount": 5.0, "tip_amount": 1.0,
    })
    frame, _ = prepare(df, STUDY_RULES, month="2020-03", backend=get_backend("cpu"))  # keeps 0 s and fast trips
    assert (frame.pickup_weekday.to_numpy() == pick.dt.day_of_week.to_numpy()).all()
    assert (frame.pickup_hour.to_numpy() == pick.dt.hour.to_numpy()).all()
    assert (frame.pickup_minute.to_numpy() == pick.dt.minute.to_numpy()).all()
    tt = (df.dropoff_datetime - df.pickup_datetime).dt.total_seconds().astype("float32")
    assert (frame.trip_time.to_numpy() == tt.to_numpy()).all()


def test_rules_can_be_switched_off_but_not_the_guards():
    spec = FeatureSpec(drop_rules=("fare_not_positive",))
    frame, stats = prepare(_frame().dropna(subset=["pickup_datetime"]), spec, month="2020-03", backend=get_backend("cpu"))
    # the guards stay: the pickup of 2020-02-29 is outside the period, the inf distance
    # would reach the model as an inf feature
    assert stats.dropped == {"missing_timestamp": 0, "outside_period": 1, "fare_not_positive": 1, "feature_not_finite": 1}
    assert stats.rows_used == 6


def test_missing_column_names_file_month_and_feature():
    df = _frame().drop(columns=["pickup_location_id"])
    with pytest.raises(SchemaError, match=r"yellow_2015-01.parquet \(2020-03\): missing canonical column\(s\) pickup_location_id needed by pickup_location_id: PULocationID"):
        prepare(df, FeatureSpec(), month="2020-03", backend=get_backend("cpu"), path="yellow_2015-01.parquet")


def test_empty_frame():
    frame, stats = prepare(_frame().iloc[:0], FeatureSpec(), month="2020-03", backend=get_backend("cpu"))
    assert len(frame) == 0 and stats.rows_read == 0 and set(stats.dropped) == set(DROP_RULES)
