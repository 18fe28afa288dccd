"""Plausibility rules and guards: every absurd row is dropped under a named rule, counted,
and never reaches a table or the model; rules carry parameters in the job spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier

from rapidseval import SpecError, get_backend
from rapidseval.io.readers import read_month
from rapidseval.data.synthetic import generate
from rapidseval.features import DROP_RULES, STUDY_DROP_RULES, FeatureSpec, prepare, required_columns
from rapidseval.spec import load_job
from rapidseval.shift import ShiftCalculator, ShiftReduce

CPU = get_backend("cpu")
DATA = Path(__file__).parent / "data"


def _trips(**columns):
    """Ten ordinary March 2020 trips (2 miles in 10 minutes, $10, $1 tip); ``columns`` overrides."""
    pick = pd.Series(pd.date_range("2020-03-02 08:00", periods=10, freq="37min").astype("datetime64[us]"))
    frame = pd.DataFrame({
        "pickup_datetime": pick,
        "dropoff_datetime": pick + pd.Timedelta(minutes=10),
        "passenger_count": 1.0, "trip_distance": np.linspace(1.0, 3.0, 10), "rate_code_id": 1.0,
        "pickup_location_id": 161.0, "dropoff_location_id": 236.0, "fare_amount": 10.0, "tip_amount": 1.0,
    })
    for name, (row, value) in columns.items():
        frame.loc[row, name] = value
    return frame


def _prepare(frame, spec=FeatureSpec()):
    return prepare(frame, spec, month="2020-03", backend=CPU)


AT = pd.Timestamp("2020-03-02 08:00")


@pytest.mark.parametrize("rule, changes", [
    ("zero_duration", {"dropoff_datetime": (3, AT + pd.Timedelta(minutes=111))}),   # row 3 picks up at 08:00+111 min
    ("speed_above_max", {"trip_distance": (4, 20.5), "dropoff_datetime": (4, AT + pd.Timedelta(minutes=148, seconds=13))}),
    ("duration_above_max", {"dropoff_datetime": (5, AT + pd.Timedelta(minutes=185, hours=13))}),
    ("distance_above_max", {"trip_distance": (6, 1e39)}),
    ("distance_above_max", {"trip_distance": (6, -3.0)}),
    ("fare_above_max", {"fare_amount": (7, 429490.2)}),  # a real TLC fare (2018-08 sample)
    ("outside_period", {"dropoff_datetime": (8, pd.Timestamp("2200-01-01"))}),
    ("outside_period", {"dropoff_datetime": (8, pd.Timestamp("9999-12-31"))}),
    ("missing_timestamp", {"dropoff_datetime": (2, pd.NaT)}),
])
def test_each_absurd_row_is_charged_to_its_rule(rule, changes):
    frame, stats = _prepare(_trips(**changes))
    assert stats.dropped[rule] == 1 and sum(stats.dropped.values()) == 1
    assert stats.rows_used == len(frame) == 9


def test_exact_duplicates_are_counted_and_the_first_kept():
    trips = _trips()
    frame, stats = _prepare(pd.concat([trips, trips.iloc[[2, 2, 5]]], ignore_index=True))
    assert stats.dropped["duplicate_row"] == 3 and stats.rows_used == 10 == len(frame)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(rows=st.lists(st.tuples(st.sampled_from([0.0, -0.0, 1.5, float("nan"), 2.0]), st.sampled_from([0, 1, 2]),
                               st.sampled_from([None, "2020-03-02 08:00", "2020-03-02 08:10"])),
                     min_size=1, max_size=30))
def test_duplicates_are_those_pandas_finds(rows):
    """The hashed search agrees with ``DataFrame.duplicated(keep="first")`` on the columns read
    (NaN equal to NaN, -0.0 to 0.0, missing times equal)."""
    from rapidseval.features import _duplicate_rows

    frame = pd.DataFrame(rows, columns=["fare", "zone", "time"])
    frame["time"] = pd.to_datetime(frame["time"]).astype("datetime64[us]")
    valid = frame["time"].notna().to_numpy()
    cols = {"fare": frame["fare"].to_numpy(), "zone": frame["zone"].to_numpy(dtype="float64"), "time_valid": valid,
            "time_us": np.where(valid, frame["time"].to_numpy().view("int64"), 0)}
    expected = frame.duplicated(keep="first").to_numpy()
    assert (_duplicate_rows(cols, len(frame), xp=np, backend=CPU) == expected).all()


def test_parameters_move_the_bounds():
    trips = _trips(trip_distance=(4, 20.5), dropoff_datetime=(4, AT + pd.Timedelta(minutes=148, seconds=13)))
    spec = FeatureSpec(rule_params={"speed_above_max": {"max_mph": 10_000.0}})
    assert _prepare(trips, spec)[1].dropped["speed_above_max"] == 0
    long = _trips(dropoff_datetime=(5, AT + pd.Timedelta(minutes=185, hours=13)))
    assert _prepare(long, FeatureSpec(rule_params={"duration_above_max": {"max_hours": 14.0}}))[1].rows_used == 10
    # a trip may spill past the month only as far as the period guard allows
    late = _trips(pickup_datetime=(9, pd.Timestamp("2020-03-31 23:00")), dropoff_datetime=(9, pd.Timestamp("2020-04-01 06:00")))
    assert _prepare(late)[1].rows_used == 10
    short = FeatureSpec(rule_params={"outside_period": {"max_trip_hours": 2.0}})
    assert _prepare(late, short)[1].dropped["outside_period"] == 1


def test_guards_hold_with_every_rule_switched_off():
    """NaT is not 1970-01-01, a year-9999 dropoff does not become a window, 1e39 does not
    reach the model as inf (float32): all counted."""
    frame = _trips(
        dropoff_datetime=(2, pd.NaT),
        trip_distance=(4, 1e39),
    )
    frame.loc[6, "dropoff_datetime"] = pd.Timestamp("9999-12-31")
    out, stats = _prepare(frame, FeatureSpec(drop_rules=()))
    assert stats.dropped == {"missing_timestamp": 1, "outside_period": 1, "feature_not_finite": 1}
    assert stats.rows_used == 7 == len(out)
    assert out["pickup_datetime"].min() >= pd.Timestamp("2020-03-01")
    assert out["dropoff_datetime"].max() < pd.Timestamp("2020-04-02")
    features = out[list(FeatureSpec().features)]
    assert np.isfinite(features.to_numpy()).all()
    RandomForestClassifier(n_estimators=2, random_state=0).fit(features, out["high_tip"])  # no "contains infinity"


def test_spec_forms():
    default = load_job({}).features
    assert default.rule_names() == tuple(DROP_RULES)
    assert default.rule_params()["speed_above_max"] == {"max_mph": 100.0}
    # the original list form still works, and keeps the guards
    old = load_job({"features": {"drop_rules": list(STUDY_DROP_RULES)}}).features
    assert set(old.rule_names()) == set(STUDY_DROP_RULES) | {"outside_period", "feature_not_finite"}
    # list items may carry parameters
    listed = load_job({"features": {"drop_rules": ["zero_duration", {"speed_above_max": {"max_mph": 80}}]}}).features
    assert "fare_not_positive" not in listed.rule_names() and listed.rule_params()["speed_above_max"] == {"max_mph": 80.0}
    # a mapping changes only the rules it names; --set reaches a parameter by its dotted path
    mapped = load_job({}, ["features.drop_rules.fare_above_max.max_fare=500", "features.drop_rules.duplicate_row=false"]).features
    assert mapped.rule_params()["fare_above_max"] == {"max_fare": 500.0}
    assert "duplicate_row" not in mapped.rule_names() and "zero_duration" in mapped.rule_names()
    # the resolved spec (as the manifest records it) loads back to the same rules
    again = load_job({"features": load_job({"features": {"drop_rules": {"speed_above_max": {"max_mph": 70}}}}).features.model_dump()})
    assert again.features.rule_params()["speed_above_max"] == {"max_mph": 70.0}


@pytest.mark.parametrize("rules, message", [
    ({"outside_period": False}, "guard that bounds the run"),
    ({"speed_above_max": {"max_kmh": 3}}, "unknown parameter.*choose from max_mph"),
    ({"speed_above_max": {"max_mph": 0}}, r"max_mph must be within \[1, 1e\+06\]"),
    ({"speed_above_max": {"max_mph": "fast"}}, "must be a number"),
    ({"outside_period": {"max_trip_hours": 1e9}}, "max_trip_hours must be within"),
    ({"zero_duration": {"seconds": 1}}, "takes no parameters"),
    (["zero_duration", "zero_duration"], "listed twice"),
    (["teleport"], "unknown drop rule 'teleport'; choose from missing_timestamp"),
])
def test_bad_rule_settings_name_the_rule(rules, message):
    with pytest.raises(SpecError, match=message):
        load_job({"features": {"drop_rules": rules}})


def _shift_counts(frame, day_counts=ShiftReduce(FeatureSpec().features)):
    return day_counts(frame, CPU)


@pytest.fixture(scope="module")
def quiet_months(tmp_path_factory):
    root = tmp_path_factory.mktemp("quiet")
    generate(root, "2020-01", "2020-02", 10_000, scenario="none", seed=11)
    spec = FeatureSpec()
    return {m: read_month(str(root / f"yellow_tripdata_{m}.parquet"), m, required_columns(spec)).to_pandas()
            for m in ("2020-01", "2020-02")}


def _absurd_rows(template: pd.DataFrame, k: int) -> pd.DataFrame:
    """``k`` absurd trips: a 20.5-mile trip in 13 s, a 0-second trip, a $429,490 fare, a
    dropoff in 2200, a 1e39-mile trip, a 30-hour trip, ... cycled."""
    rows = template.iloc[[0] * k].reset_index(drop=True).copy()
    kinds = [
        {"trip_distance": 20.5, "dropoff_datetime": pd.Timedelta(seconds=13)},
        {"dropoff_datetime": pd.Timedelta(0)},
        {"fare_amount": 429490.2},
        {"dropoff_datetime": pd.Timestamp("2200-01-01")},
        {"trip_distance": 1e39},
        {"dropoff_datetime": pd.Timedelta(hours=30)},
        {"trip_distance": 700.0},
    ]
    for i in range(k):
        pick = pd.Timestamp("2020-02-12 14:00") + pd.Timedelta(minutes=i)
        rows.loc[i, "pickup_datetime"] = pick
        rows.loc[i, "dropoff_datetime"] = pick + pd.Timedelta(minutes=12)
        for col, value in kinds[i % len(kinds)].items():
            rows.loc[i, col] = pick + value if isinstance(value, pd.Timedelta) else value
    return rows


@pytest.mark.parametrize("k", [1, 3, 10])
def test_planted_absurd_rows_are_counted_and_leave_the_shift_statistics_unchanged(quiet_months, k):
    """The bar of issue 14: 1 to 10 absurd rows in a quiet 10k-row month are counted under
    named rules, and the month's shift statistics equal those of the month without them."""
    ref, month = quiet_months["2020-01"], quiet_months["2020-02"]
    planted = pd.concat([month, _absurd_rows(month, k)], ignore_index=True)
    spec = FeatureSpec()
    clean_frame, clean_stats = prepare(month, spec, month="2020-02", backend=CPU)
    dirty_frame, dirty_stats = prepare(planted, spec, month="2020-02", backend=CPU)
    extra = {r: dirty_stats.dropped[r] - clean_stats.dropped[r] for r in dirty_stats.dropped}
    assert sum(extra.values()) == k and dirty_stats.rows_used == clean_stats.rows_used
    assert {r for r, v in extra.items() if v} <= {"speed_above_max", "zero_duration", "fare_above_max", "outside_period",
                                                   "distance_above_max", "duration_above_max"}
    ref_frame, _ = prepare(ref, spec, month="2020-01", backend=CPU)
    features = spec.features
    calc = ShiftCalculator(features, frequency="M").fit(_shift_counts(ref_frame), label="2020-01")
    clean = calc.calculate(_shift_counts(clean_frame)).to_df()
    dirty = calc.calculate(_shift_counts(dirty_frame)).to_df()
    pd.testing.assert_frame_equal(clean, dirty)
    assert not dirty["window_alarm"].any(), dirty.loc[dirty["alarm"], ["feature", "statistic", "value", "threshold"]]


def test_real_sample_loses_a_small_fraction():
    """Real TLC rows (500 of the 2018-01 sample): the plausibility rules drop under 2%."""
    spec = FeatureSpec()
    table = read_month(str(DATA / "snake_case_2018-01.parquet"), "2018-01", required_columns(spec))
    _, stats = prepare(table.to_pandas(), spec, month="2018-01", backend=CPU)
    plausibility = ("zero_duration", "duplicate_row", "duration_above_max", "speed_above_max", "distance_above_max",
                    "fare_above_max")
    assert sum(stats.dropped[r] for r in plausibility) <= 0.02 * stats.rows_read
    assert stats.rows_read == stats.rows_used + sum(stats.dropped.values())


@pytest.mark.rapids
def test_rules_and_guards_identical_on_gpu():
    """Every rule (duplicates, guards, float32 overflow) counts the same rows on cuDF/CuPy."""
    pytest.importorskip("cudf")
    from rapidseval.backend import gpu_available

    ok, why = gpu_available()
    if not ok:
        pytest.skip(why)
    frame = _trips(trip_distance=(4, 1e39), fare_amount=(7, 429490.2), dropoff_datetime=(2, pd.NaT))
    frame.loc[6, "dropoff_datetime"] = pd.Timestamp("9999-12-31")
    frame = pd.concat([frame, frame.iloc[[1, 3]]], ignore_index=True)
    gpu = get_backend("gpu")
    for spec in (FeatureSpec(), FeatureSpec(drop_rules=())):
        cpu_frame, cpu_stats = prepare(frame, spec, month="2020-03", backend=CPU)
        gpu_frame, gpu_stats = prepare(gpu.xdf.from_pandas(frame), spec, month="2020-03", backend=gpu)
        assert gpu_stats.to_dict() == cpu_stats.to_dict()
        pd.testing.assert_frame_equal(cpu_frame, gpu_frame.to_pandas(), check_exact=True)


def test_every_rule_has_one_test_or_judges_the_features():
    """Each rule but the feature guard is a row test on the input columns; the guard judges the features."""
    from rapidseval.features import _ROW_TESTS

    assert set(_ROW_TESTS) == set(DROP_RULES) - {"feature_not_finite"}
