"""Data checks (``checks.data``): counts and values equal pandas' on the same rows, per month and
per window, over parts merged in any order; a study and a backtest with planted violations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import binom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rapidseval
from rapidseval import get_backend
from rapidseval.checks import checks_table
from rapidseval.checks.data import DataAccumulator, DataCounts, DataReduce, DataRule, GroupCounts, judge_group
from rapidseval.core.errors import SpecError
from rapidseval.core.time import parse_window
from rapidseval.data.synthetic import generate

from _damage import month_file
from _data_rules import RULES  # one rule of every kind (shared with test_cupy_checks)

CPU = get_backend("cpu")
US_PER_HOUR = 3_600_000_000


def _expected(rule: DataRule, frame: pd.DataFrame) -> tuple[int, float, int]:
    """(n, value, violations) of ``rule`` on ``frame`` by pandas (value NaN: nothing to judge)."""
    s, n = frame[rule.column], len(frame)
    if rule.rule == "not_null":
        bad = int(s.isna().sum())
    elif rule.rule == "min":
        bad = int((s < rule.min).sum())
    elif rule.rule == "max":
        bad = int((s > rule.max).sum())
    elif rule.rule == "between":
        bad = int(((s < rule.min) | (s > rule.max)).sum())
    elif rule.rule == "in_set":
        bad = int((s.notna() & ~s.isin(rule.values)).sum())
    elif rule.rule == "mean_between":
        return n, float(s.mean()) if s.notna().any() else np.nan, 0
    elif rule.rule == "fraction_between":
        meets = s.isin(rule.where_values) if rule.where_values else s.between(rule.where_min, rule.where_max)
        return n, float(meets.sum() / n) if n else np.nan, 0
    else:
        return n, float(s.nunique() / s.notna().sum()) if s.notna().any() else np.nan, 0
    return n, bad / n if n else np.nan, bad


def _check_rows(rows: pd.DataFrame, rule: DataRule, frame: pd.DataFrame, groups) -> None:
    """Every group's row for ``rule`` has pandas' value on that group's rows."""
    for key, sel in groups:
        row = rows[(rows["check"] == rule.label) & key]
        assert len(row) == 1, (rule.label, key)
        n, value, bad = _expected(rule, frame[sel])
        got = float(row["value"].iloc[0])
        if np.isnan(value):
            assert np.isnan(got) and row["status"].iloc[0] == "pass", rule.label
            continue
        if rule.rule == "mean_between":
            scale = max(1.0, float(frame[sel][rule.column].abs().mean()))
            assert abs(got - value) <= 1e-12 * scale, (rule.label, got, value)
        else:
            assert got == value, (rule.label, got, value)
        if rule.rule in ("not_null", "min", "max", "between", "in_set"):
            assert f"{bad:,} of {n:,} rows" in row["detail"].iloc[0]
            # a tolerance is judged by the binomial: what that share gives by chance at window_rate
            allowed = 0 if rule.tolerance == 0 else binom.isf(rule.window_rate, n, rule.tolerance)
            assert row["status"].iloc[0] == ("pass" if bad <= allowed else rule.severity)


frames = st.integers(min_value=0, max_value=10_000).flatmap(lambda seed: st.tuples(
    st.just(seed), st.integers(min_value=0, max_value=400), st.integers(min_value=1, max_value=5)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames)
def test_rules_equal_pandas_per_month_and_window_over_parts_merged_in_any_order(case):
    seed, n, n_parts = case
    rng = np.random.default_rng(seed)
    x = rng.choice([-3.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 6.0, np.nan], n) + rng.choice([0.0, 0.25], n)
    t = np.datetime64("2020-02-28T00:00", "us") + rng.integers(0, 4 * 24, n) * np.timedelta64(1, "h")
    t = pd.Series(t).where(rng.random(n) > 0.1)  # some NaT: in the month, in no window
    frame = pd.DataFrame({"x": x, "t": t.astype("datetime64[us]")})
    month = "2020-03"
    # windows of 6 hours, counted for window keys 480..490 only (the rest: no window)
    w = parse_window("6h")
    keys = w.keys(frame["t"].to_numpy().view("int64"))
    lo = int(w.keys(np.array([np.datetime64("2020-02-29", "us").astype("int64")]))[0])
    hi = lo + 10
    reduce = DataReduce(RULES, "6h", "t", (month,), lo, hi, lo + 5)
    acc = DataAccumulator(reduce)
    cuts = np.sort(rng.integers(0, n + 1, n_parts - 1))
    parts = [frame.iloc[a:b] for a, b in zip([0, *cuts], [*cuts, n])]
    for i in rng.permutation(len(parts)):
        counts = reduce.reduce(parts[i], parts[i], month=month, backend=CPU)
        acc.add(month, DataCounts.from_json(counts.to_json()) if i % 2 else counts)  # JSON round trip too
    rows = checks_table(acc.rows())
    in_window = frame["t"].notna().to_numpy() & (keys >= lo) & (keys <= hi)
    window_keys = sorted(set(keys[in_window].tolist()) | set(range(lo, lo + 6)))
    groups = [(rows["month"] == month, np.ones(n, bool))]
    for k in window_keys:
        start = pd.Timestamp(w.bounds(np.array([k]))[0][0])
        groups.append((rows["window_start"] == start, in_window & (keys == k)))
    for rule in RULES:
        assert (rows["check"] == rule.label).sum() == len(groups)
        _check_rows(rows, rule, frame, groups)


def test_no_rows_is_a_pass_with_no_value():
    reduce = DataReduce(RULES)
    acc = DataAccumulator(reduce)
    empty = pd.DataFrame({"x": np.zeros(0), "t": pd.Series([], dtype="datetime64[us]")})
    acc.add("2020-01", reduce.reduce(empty, empty, month="2020-01", backend=CPU))
    rows = pd.DataFrame(acc.rows())
    assert (rows["status"] == "pass").all() and rows["value"].isna().all()
    assert (rows["detail"] == "no rows").all()


def test_used_feature_fill_value_counts_as_missing_and_float32_compares_as_pandas():
    """A used feature holds the job's fill value where its input was missing (float32, as
    prepare writes it): every rule sees that value as missing, and the bounds compare as
    pandas compares the float32 input (0.1 meets max 0.1 and in_set [0.1])."""
    rng = np.random.default_rng(3)
    s = pd.Series(rng.choice([-3.0, 0.1, 0.3, 0.5, 1.0, 2.0, np.nan], 500).astype("float32"))  # the input
    frame = pd.DataFrame({"x": s.fillna(-1.0).astype("float32")})  # what prepare gives the rules
    rules = (
        DataRule("nn", "x", "not_null", "used", "fail", missing_value=-1.0),
        DataRule("min", "x", "min", "used", "fail", min=0.1, missing_value=-1.0),
        DataRule("max", "x", "max", "used", "fail", max=0.3, missing_value=-1.0),
        DataRule("between", "x", "between", "used", "fail", min=0.1, max=0.5, missing_value=-1.0),
        DataRule("in_set", "x", "in_set", "used", "fail", values=(0.1, 0.3, 1.0), missing_value=-1.0),
        DataRule("mean", "x", "mean_between", "used", "fail", min=-9.0, max=9.0, missing_value=-1.0),
        DataRule("frac", "x", "fraction_between", "used", "fail", min=0.0, max=1.0, where_min=0.1, where_max=0.3,
                 missing_value=-1.0),
        DataRule("uniq", "x", "unique_fraction", "used", "fail", min=0.0, max=1.0, missing_value=-1.0),
    )
    acc = DataAccumulator(DataReduce(rules))
    acc.add("2020-03", DataReduce(rules).reduce(frame, frame, month="2020-03", backend=CPU))
    got = checks_table(acc.rows()).set_index("check")["value"]
    n, present = len(s), s.notna()
    assert s.isna().sum() > 0 and (s == np.float32(0.1)).sum() > 0
    expected = {"nn": s.isna().sum() / n, "min": (s < 0.1).sum() / n, "max": (s > 0.3).sum() / n,
                "between": ((s < 0.1) | (s > 0.5)).sum() / n,
                "in_set": (present & ~s.isin(np.float32([0.1, 0.3, 1.0]))).sum() / n,
                "frac": s.between(0.1, 0.3).sum() / n, "uniq": s.nunique() / present.sum()}
    for label, value in expected.items():
        assert got[label] == value, (label, got[label], value)
    assert got["mean"] == pytest.approx(s.astype("float64").mean(), rel=1e-12)
    assert got["max"] < (s.astype("float64") > 0.3).sum() / n  # 0.3 as read (0.30000001 in float32): not above 0.3
    assert got["nn"] > 0  # the filled rows are missing: not_null on a feature can fail


# (the reduction on CuPy arrays: tests/test_cupy_checks.py, which the device's quick check runs)


# ---------------------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------------------
ROWS = 3_000
MONTHS = ("2020-01", "2020-02", "2020-03")
PLANTED = "2020-02"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """Three synthetic months; 1% of February's rows get a negative fare."""
    out = tmp_path_factory.mktemp("tlc-data-checks")
    generate(out, MONTHS[0], MONTHS[-1], ROWS, seed=7)
    path = month_file(out, PLANTED)
    table = pq.read_table(path)
    fare = table.column("fare_amount").to_numpy(zero_copy_only=False).astype("float64").copy()
    rows = np.random.default_rng(0).choice(len(fare), len(fare) // 100, replace=False)
    fare[rows] = -np.abs(fare[rows]) - 1.0
    i = table.schema.get_field_index("fare_amount")
    table = table.set_column(i, pa.field("fare_amount", pa.float64()), pa.array(fare))
    pq.write_table(table, path)
    return out


DATA_CHECKS = [
    {"column": "fare_amount", "rule": "min", "min": 0, "tolerance": 0.005},  # synthetic months: ~0.1% negative
    {"column": "trip_speed", "rule": "between", "min": 0, "max": 1, "severity": "warn"},
    {"column": "high_tip", "rule": "in_set", "values": [0, 1]},
    {"column": "high_tip", "rule": "mean_between", "min": 0.01, "max": 0.99},
    {"column": "trip_distance", "rule": "min", "min": 0, "on": "used", "name": "distance used"},
    {"column": "dropoff_datetime", "rule": "not_null"},
]


def _study(data_dir: Path, out: Path, checks=DATA_CHECKS) -> dict[str, Any]:
    return {
        "name": "data-checks", "seed": 1, "backend": "cpu",
        "data": {"source": str(data_dir / "yellow_tripdata_{month}.parquet"), "start": MONTHS[0], "end": MONTHS[-1],
                 "partition_rows": 10_000},
        "model": {"kind": "random_forest", "params": {"n_estimators": 5, "max_depth": 4}},
        "evaluation": {"train": [MONTHS[0]], "test": [MONTHS[1]], "score": [MONTHS[2]],
                       "replay": {"months": [MONTHS[1], MONTHS[2]], "window": "W", "bands": None}, "shift": None},
        "checks": {"data": checks},
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out), "report": False},
    }


@pytest.fixture(scope="module")
def study(data_dir, tmp_path_factory):
    return rapidseval.run(_study(data_dir, tmp_path_factory.mktemp("run") / "r"))


def test_study_names_the_planted_negative_fares_in_their_month_only(study, data_dir):
    checks = study.checks
    fare = checks[(checks["check"] == "fare_amount min") & checks["month"].notna()].set_index("month")
    assert list(fare.index) == list(MONTHS)
    raw = pd.read_parquet(month_file(data_dir, PLANTED), columns=["fare_amount"])["fare_amount"]
    bad = int((raw < 0).sum())
    assert bad >= ROWS // 100
    assert fare.loc[PLANTED, "status"] == "fail"
    assert fare.loc[PLANTED, "value"] == bad / len(raw)
    assert fare.loc[PLANTED, "detail"].startswith(f"{bad:,} of {len(raw):,} rows")
    for month in (MONTHS[0], MONTHS[2]):  # the generator's own few negative fares, within the tolerance
        clean = pd.read_parquet(month_file(data_dir, month), columns=["fare_amount"])["fare_amount"]
        assert fare.loc[month, "status"] == "pass"
        assert fare.loc[month, "value"] == (clean < 0).sum() / len(clean) <= 0.005
    # the failed check is the run's failed check (run exits 3)
    assert set(study.failed_checks["check"]) == {"fare_amount min"}
    assert set(study.failed_checks["month"].dropna()) == {PLANTED}
    on_disk = pd.read_parquet(study.run_dir / "checks.parquet")
    assert len(on_disk) == len(checks)


def test_study_windows_cover_the_replay_and_count_its_rows(study, data_dir):
    checks = study.checks
    fare_w = checks[(checks["check"] == "fare_amount min") & checks["window_start"].notna()]
    raw = pd.concat([pd.read_parquet(month_file(data_dir, m), columns=["fare_amount", "tpep_dropoff_datetime"])
                     for m in MONTHS[1:]])
    week = raw["tpep_dropoff_datetime"].dt.to_period("W-SUN").dt.start_time
    assert fare_w["window_start"].is_unique
    assert fare_w["window_start"].min() == pd.Timestamp("2020-01-27")  # the Monday week holding Feb 1
    assert fare_w["window_start"].max() >= pd.Timestamp("2020-03-30")
    for r in fare_w.itertuples():
        sel = (week == r.window_start).to_numpy()
        assert sel.sum() > 0, r.window_start
        assert r.value == (raw["fare_amount"].to_numpy()[sel] < 0).sum() / sel.sum()
        assert f"of {sel.sum():,} rows" in r.detail
    assert (fare_w["status"] == "fail").any() and (fare_w["status"] == "pass").any()


def test_study_feature_and_target_rules_on_the_rows_used(study):
    checks = study.checks
    monthly = study.monthly.set_index("month")
    for label in ("trip_speed between", "high_tip in_set", "high_tip mean_between", "distance used",
                  "dropoff_datetime not_null"):
        rows = checks[(checks["check"] == label) & checks["month"].notna()]
        assert list(rows["month"]) == list(MONTHS), label
        assert (rows["status"] == "pass").all(), (label, rows[["month", "value", "detail"]])
    mean = checks[(checks["check"] == "high_tip mean_between") & checks["month"].notna()].set_index("month")
    for month in MONTHS[1:]:  # evaluated months: the used rows' positive rate
        assert mean.loc[month, "value"] == pytest.approx(monthly.loc[month, "positive_rate"], abs=1e-12)
        assert f"{int(monthly.loc[month, 'n']):,} present" in mean.loc[month, "detail"]


def test_study_used_rules_per_window_equal_the_replay_windows(study):
    """A target rule's windows hold the replay's rows: its mean is the replay window's positive rate."""
    checks, replay = study.checks, study.replay.set_index("window_start")
    mean = checks[(checks["check"] == "high_tip mean_between") & checks["window_start"].notna()]
    assert list(mean["window_start"]) == list(replay.index)
    for r in mean.itertuples():
        window = replay.loc[r.window_start]
        assert r.value == pytest.approx(window["positives"] / window["n"], rel=1e-12)
        assert f"of {int(window['n']):,} present" in r.detail


def test_unknown_column_is_a_one_line_error_naming_the_field(data_dir, tmp_path):
    job = _study(data_dir, tmp_path / "r", checks=[{"column": "fare_amount", "rule": "min", "min": 0},
                                                   {"column": "fare", "rule": "min", "min": 0}])
    with pytest.raises(SpecError) as err:
        rapidseval.load_job(job)
    message = str(err.value)
    assert "checks.data[1].column: unknown column 'fare'" in message and "\n" not in message.strip()
    job["checks"]["data"] = [{"column": "pickup_datetime", "rule": "min", "min": 0}]
    with pytest.raises(SpecError, match=r"checks.data\[0\].rule: pickup_datetime is a timestamp"):
        rapidseval.load_job(job)


def test_backtest_has_data_check_rows_per_month(data_dir, tmp_path):
    job = _study(data_dir, tmp_path / "r")
    del job["evaluation"]
    job["backtest"] = {"train_months": 1, "horizon": 1, "cache_dir": str(tmp_path / "cache"),
                       "policies": [{"kind": "static"}]}
    result = rapidseval.run(job)
    checks = result.checks
    fare = checks[checks["check"] == "fare_amount min"].set_index("month")
    assert fare.loc[PLANTED, "status"] == "fail" and set(fare.index) == set(MONTHS)
    assert checks["window_start"].isna().all()
    assert "fare_amount min" in set(pd.read_parquet(result.run_dir / "checks.parquet")["check"])
    raw = pd.read_parquet(month_file(data_dir, PLANTED), columns=["fare_amount"])["fare_amount"]
    assert fare.loc[PLANTED, "value"] == (raw < 0).sum() / len(raw)
    kept = sorted((tmp_path / "cache").glob("*.checks-*.json"))
    assert len(kept) == len(MONTHS)
    # from the cache: the counts kept beside the cached months give the same rows
    job["output"]["dir"] = str(tmp_path / "again")
    again = rapidseval.run(job)
    assert again.manifest["backtest"]["feature_cache"]["reused"] == len(MONTHS)
    pd.testing.assert_frame_equal(again.checks.reset_index(drop=True), checks.reset_index(drop=True))
    # changed rules on cached months: counted anew (the features stay cached)
    job["checks"]["data"] = [{"column": "fare_amount", "rule": "min", "min": 0, "tolerance": 0.02}]
    job["output"]["dir"] = str(tmp_path / "third")
    third = rapidseval.run(job)
    assert third.manifest["backtest"]["feature_cache"]["reused"] == len(MONTHS)
    assert len(list((tmp_path / "cache").glob("*.checks-*.json"))) == 2 * len(MONTHS)
    assert (third.checks["status"] == "pass").all() and set(third.checks["month"]) == set(MONTHS)
    assert third.checks.set_index("month").loc[PLANTED, "value"] == fare.loc[PLANTED, "value"]


def test_validate_names_the_unknown_column(tmp_path):
    """``rapidseval validate`` refuses the job before any read, with the field and the choices."""
    import yaml
    from typer.testing import CliRunner

    from rapidseval.cli import app

    job = _study(tmp_path, tmp_path / "r", checks=[{"column": "trip_speed", "rule": "min", "min": 0},
                                                   {"column": "fare_amnt", "rule": "min", "min": 0}])
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    assert "checks.data[1].column: unknown column 'fare_amnt'" in res.output and "trip_speed" in res.output
    assert "is valid" not in res.output


def test_a_tolerance_fails_a_month_or_window_by_chance_at_the_stated_rate_whatever_its_size():
    """One refund in a day of 100 trips is 1%: judged on the share alone a 0.5% tolerance
    fails it. Judged by the binomial, windows of any size holding exactly the tolerated
    share of bad rows fail at most window_rate of the time, and a doubled share is caught."""
    from rapidseval.checks.data import tolerance_allows

    rng = np.random.default_rng(0)
    rule = DataRule("fare", "fare_amount", "min", "read", "fail", min=0.0, tolerance=0.005, window_rate=0.001)
    for n in (100, 1_000, 30_000, 200_000):
        bad = rng.binomial(n, 0.005, 20_000)
        assert np.mean(bad > tolerance_allows(n, 0.005, 0.001)) <= 0.002, n
        if n >= 30_000:  # enough rows to see a doubled share, every time
            assert np.all(rng.binomial(n, 0.01, 1_000) > tolerance_allows(n, 0.005, 0.001)), n
    g = GroupCounts(n=100, bad=1)
    held, value, threshold, detail = judge_group(rule, g)
    assert held and value == 0.01 and threshold == 0.005 and "explains up to" in detail


def test_used_feature_rules_take_the_fill_value_as_missing_the_target_and_read_rules_do_not(tmp_path):
    from rapidseval.jobs.check_data import data_rules
    from rapidseval.jobs.inputs import feature_spec

    spec = rapidseval.load_job(_study(tmp_path, tmp_path / "r"))
    fspec = feature_spec(spec)
    by_label = {r.label: r for r in data_rules(spec, fspec)}
    assert by_label["distance used"].missing_value == fspec.fill_value  # a feature, on the rows used
    assert by_label["trip_speed between"].missing_value == fspec.fill_value
    assert by_label["high_tip in_set"].missing_value is None  # the target is never filled
    assert by_label["fare_amount min"].missing_value is None  # as read


def test_on_used_written_in_yaml_is_the_field_on_not_the_boolean_true():
    """PyYAML reads the key ``on`` as True (YAML 1.1): ``on: used`` failed with
    "checks.data.0.1: Keys should be strings"."""
    import yaml

    from rapidseval.spec import DataCheckSpec

    rule = yaml.safe_load("{column: trip_distance, rule: min, min: 0, on: used}")
    assert True in rule  # the YAML trap itself
    assert DataCheckSpec.model_validate(rule).on == "used"
    assert DataCheckSpec.model_validate({"column": "trip_distance", "rule": "min", "min": 0, "on": "read"}).on == "read"
