"""checks.baseline and checks.jumps: the baseline model scored beside the primary, its check
rows per month and replay window; jumps between consecutive windows, with a planted step
change found in the right window and direction and a measured false-jump rate on quiet
streams; the same checks per fold and month in a backtest."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest

import rapidseval
from rapidseval.checks import CHECK_COLUMNS
from rapidseval.checks.compare import BandSettings, BaselineRule, JumpRule, baseline_rows, jump_rows, with_bands
from rapidseval.core.confusion import CODES
from rapidseval.data.synthetic import generate
from rapidseval.metrics import COUNT_COLUMNS, add_metrics
from rapidseval.replay import bootstrap_bands

from _jobs import override

MONTHS = ("2020-01", "2020-03")


@pytest.fixture(scope="module")
def months_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tlc-compare")
    generate(out, *MONTHS, 6_000, scenario="none", seed=3)
    return out


def _job(months_dir, out, **extra):
    job = {
        "name": "compare", "seed": 2, "backend": "cpu",
        "data": {"source": str(months_dir / "yellow_tripdata_{month}.parquet"), "start": MONTHS[0],
                 "end": MONTHS[1]},
        "model": {"kind": "random_forest", "params": {"n_estimators": 8, "max_depth": 6}},
        "evaluation": {"train": ["2020-01"], "test": ["2020-02"], "score": ["2020-03"],
                       "replay": {"months": ["2020-03"], "window": "W", "min_window_rows": 200,
                                  "bands": {"replicates": 200}},
                       "shift": None},
        "checks": {"baseline": {"kind": "logistic_regression", "metric": "f1"},
                   "jumps": {"metric": "f1", "min_rows": 200}},
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out), "report": False},
    }
    return override(job, extra)


@pytest.fixture(scope="module")
def study(months_dir, tmp_path_factory):
    return rapidseval.run(_job(months_dir, tmp_path_factory.mktemp("run") / "study"))


def test_baseline_model_is_scored_like_a_shadow(study):
    assert list(study.monthly["model"].unique()) == ["random_forest", "baseline_logistic_regression"]
    assert set(study.replay["model"]) == {"random_forest", "baseline_logistic_regression"}
    info = {m["name"]: m for m in study.manifest["models"]}
    base = info["baseline_logistic_regression"]
    assert base["kind"] == "logistic_regression" and base["train_months"] == ["2020-01"]
    assert base["threshold"] == info["random_forest"]["threshold"] == 0.5
    on_disk = pd.read_parquet(study.run_dir / "monthly.parquet")
    assert "baseline_logistic_regression" in set(on_disk["model"])


def test_baseline_rows_per_month_and_window(study):
    checks = study.checks
    assert list(checks.columns) == CHECK_COLUMNS
    base = checks[checks["kind"] == "baseline"]
    assert set(base["model"]) == {"random_forest"}
    # months other than the training month, and in-period windows with enough rows
    assert sorted(base["month"].dropna()) == ["2020-02", "2020-03"]
    windows = study.replay[(study.replay.model == "random_forest") & study.replay.in_period
                           & (study.replay.n >= 200)]
    assert sorted(base["window_start"].dropna()) == sorted(windows["window_start"])
    monthly = study.monthly.set_index(["model", "month"])
    for r in base[base["month"].notna()].itertuples():
        assert r.value == monthly.loc[("random_forest", r.month), "f1"]
        assert r.threshold == monthly.loc[("baseline_logistic_regression", r.month), "f1"]
        assert r.detail.startswith("f1 ") and "vs logistic_regression" in r.detail
    # the rule: fails exactly when the primary's band lies wholly below the baseline + margin
    replay = study.replay.set_index(["model", "window_start"])
    for r in base[base["window_start"].notna()].itertuples():
        high = replay.loc[("random_forest", r.window_start), "f1_high"]
        assert r.status == ("pass" if not high < r.threshold else "fail")


def test_jumps_rows_per_model(study):
    jumps = study.checks[study.checks["kind"] == "jumps"]
    # every model but the baseline (a yardstick, not a candidate): at least one row (a pass row
    # when no pair jumped)
    assert set(jumps["model"]) == {"random_forest"}
    assert set(jumps["severity"]) == {"warn"}


def test_primary_worse_than_baseline_fails(months_dir, tmp_path_factory):
    """A stump whose P(y=1) never exceeds the threshold (it predicts nothing: F1 0) against
    logistic regression at the same threshold (it predicts a few rows right): significantly
    below in every month and window; a fail check makes the command line exit 3."""
    out = tmp_path_factory.mktemp("run") / "worse"
    job = _job(months_dir, out, **{"model.params": {"n_estimators": 1, "max_depth": 1}, "model.threshold": 0.6})
    result = rapidseval.run(job)
    base = result.checks[result.checks["kind"] == "baseline"]
    assert len(base) and (base["status"] == "fail").all()
    assert (base["value"] == 0).all() and (base["threshold"] > 0).all()
    assert not result.failed_checks.empty
    from typer.testing import CliRunner

    from rapidseval.cli import app
    import yaml

    path = out.parent / "worse.yaml"
    job["output"]["dir"] = str(out.parent / "worse_cli")
    path.write_text(yaml.safe_dump(job))
    assert CliRunner().invoke(app, ["run", str(path)]).exit_code == 3


def test_majority_baseline_and_learned_threshold(months_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "majority"
    result = rapidseval.run(_job(months_dir, out, **{"checks.baseline": {"kind": "majority", "margin": 0.05},
                                                     "model.threshold": {"learn": "max_f1"}}))
    info = {m["name"]: m for m in result.manifest["models"]}
    assert info["baseline_majority"]["threshold_learned"]["months"] == ["2020-02"]
    base = result.checks[result.checks["kind"] == "baseline"]
    monthly = result.monthly.set_index(["model", "month"])
    for r in base[base["month"].notna()].itertuples():
        assert r.threshold == pytest.approx(monthly.loc[("baseline_majority", r.month), "f1"] + 0.05, abs=1e-12)


# ---------------------------------------------------------------------------------------
# jumps: ground truth on generated streams
# ---------------------------------------------------------------------------------------
STEP_DAY = pd.Timestamp("2020-03-10")


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    """A quiet generated stream (scenario none, ~650 rows a day), replayed day by day over
    February and March; jumps at the default lag (a week of daily windows)."""
    months = tmp_path_factory.mktemp("tlc-daily")
    generate(months, *MONTHS, 20_000, scenario="none", seed=8)
    job = _job(months, tmp_path_factory.mktemp("run") / "daily",
               **{"evaluation.test": [], "evaluation.score": [],
                  "evaluation.replay": {"months": ["2020-02", "2020-03"], "window": "D", "min_window_rows": 100,
                                        "bands": {"replicates": 300}}})
    return rapidseval.run(job)


def _flip(windows: pd.DataFrame, start, share: float, label: int, seed: int) -> pd.DataFrame:
    """The windows' counts as if ``share`` of the rows labelled ``label`` had the other label
    from window ``start`` on (each row drawn independently: binomial thinning of the counts;
    a flipped positive turns tp into fp and fn into tn, a flipped negative the reverse)."""
    rng = np.random.default_rng(seed)
    out = windows[["window_start", *COUNT_COLUMNS]].copy()
    later = (out["window_start"] >= start).to_numpy()
    moves = (("tp", "fp"), ("fn", "tn")) if label == 1 else (("fp", "tp"), ("tn", "fn"))
    for source, target in moves:
        flipped = np.where(later, rng.binomial(out[source].to_numpy(), share), 0)
        out[source] -= flipped
        out[target] += flipped
    return out


def _window_jumps(table: pd.DataFrame, lag: int = 7, seed: int = 0) -> pd.DataFrame:
    rows = jump_rows(table, JumpRule("f1", 100, "warn", lag=lag), model="m", key="window_start",
                     bands=BandSettings(replicates=300, seed=seed))
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def _primary_windows(run) -> pd.DataFrame:
    replay = run.replay
    return replay[(replay["model"] == "random_forest") & replay["in_period"]].reset_index(drop=True)


def test_quiet_generated_stream_has_no_jump(daily):
    """No day of a quiet stream jumps against the same weekday a week before (~50 pairs; the
    baseline's own jumps are left out); the measured rate over more seeds and sizes is in the README."""
    jumps = daily.checks[daily.checks["kind"] == "jumps"]
    assert set(jumps["model"]) == {"random_forest"}
    assert (jumps["status"] == "pass").all(), jumps["detail"].tolist()
    windows = jumps[jumps["window_start"].isna() & jumps["month"].isna()]
    assert len(windows) == 2 and windows["detail"].str.contains("pairs 7 apart").sum() == 1


@pytest.mark.parametrize("label, direction", [(1, -1), (0, 1)])
def test_planted_step_is_found_where_it_starts(daily, label, direction):
    """40% of one class's labels flipped from 2020-03-10 on: one jump, on that day, in the
    right direction (positives lost: F1 down; negatives turned positive: F1 up), for every seed."""
    windows = _primary_windows(daily)
    for seed in range(4):
        jumps = _window_jumps(_flip(windows, STEP_DAY, 0.4, label, seed), seed=seed)
        assert list(jumps["status"]) == ["warn"], jumps["detail"].tolist()
        assert jumps["window_start"].iloc[0] == STEP_DAY and np.sign(jumps["value"].iloc[0]) == direction
        assert "2020-03-03" in jumps["detail"].iloc[0] and "2020-03-10" in jumps["detail"].iloc[0]
    # the unflipped stream: no jump
    assert list(_window_jumps(windows)["status"]) == ["pass"]


def test_false_jump_rate_on_identical_windows():
    """Windows drawn from one confusion distribution (sizes 300 to 3,000): the share of pairs
    reported as jumps stays below the stated window_rate (0.001; the bands alone would give
    ~0.6% for equal sizes, up to 5% for very unequal ones)."""
    rng = np.random.default_rng(17)
    jumps = pairs = 0
    for seed in range(30):
        n = rng.integers(300, 3_000, size=60)
        counts = np.array([rng.multinomial(k, [0.35, 0.15, 0.2, 0.3]) for k in n])
        table = pd.DataFrame(counts, columns=COUNT_COLUMNS)
        table.insert(0, "window_start", pd.date_range("2020-01-01", periods=60, freq="D"))
        found = _window_jumps(table, lag=1, seed=seed)
        jumps += int((found["status"] != "pass").sum())
        pairs += 59
    assert jumps / pairs <= 0.002, (jumps, pairs)


def test_metric_variance_is_the_multinomial_variance():
    rng = np.random.default_rng(0)
    shares, n = np.array([0.3, 0.1, 0.15, 0.45]), 2_000
    reps = add_metrics(pd.DataFrame(rng.multinomial(n, shares, size=40_000), columns=COUNT_COLUMNS))
    expected = pd.Series(dict(zip(COUNT_COLUMNS, shares * n)))
    from rapidseval.checks.compare import metric_variance

    for metric in ("precision", "recall", "f1", "accuracy"):
        assert float(metric_variance(expected, metric)) == pytest.approx(reps[metric].var(), rel=0.03)


def test_bands_from_counts_are_the_replay_bootstrap():
    table = pd.DataFrame({"tp": [30, 0, 5], "fp": [10, 0, 7], "fn": [5, 0, 1], "tn": [55, 0, 9]})
    banded = with_bands(table, "f1", BandSettings(0.9, 200, 5))
    counts = np.zeros((3, 4), dtype="int64")
    for c in COUNT_COLUMNS:
        counts[:, CODES[c]] = table[c]
    want = bootstrap_bands(counts, level=0.9, replicates=200, seed=5)
    np.testing.assert_array_equal(banded["f1_low"], want["f1_low"])
    np.testing.assert_array_equal(banded["f1_high"], want["f1_high"])
    assert np.isnan(banded["f1"].iloc[1]) and np.isnan(banded["f1_low"].iloc[1])


def test_season_lag():
    from rapidseval.checks.compare import season_lag

    assert [season_lag(*w) for w in (("D", 1), ("h", 1), ("h", 6), ("h", 5), ("D", 2), ("W", 1), ("M", 1))] == \
        [7, 168, 28, 1, 1, 1, 1]


def test_baseline_rule_on_counts():
    """Significantly below the baseline fails; level with it (within the band) passes."""
    months = pd.DataFrame({"month": ["2020-02", "2020-03"], "tp": [300, 520], "fp": [200, 100], "fn": [300, 80],
                           "tn": [200, 300]})
    base = pd.DataFrame({"month": ["2020-02", "2020-03"], "f1": [0.70, 0.85]})
    rows = baseline_rows(months, base, BaselineRule("baseline_majority", "majority"), model="m", key="month")
    assert [r["status"] for r in rows] == ["fail", "pass"]  # f1 0.545 vs 0.70; 0.852 vs 0.85
    assert rows[0]["detail"].startswith("f1 0.5455 [")
    assert rows[0]["detail"].endswith("vs majority 0.7000 + margin 0.00")


# ---------------------------------------------------------------------------------------
# backtests: a baseline per fold and month, jumps per policy
# ---------------------------------------------------------------------------------------
BT_MONTHS = ("2019-10", "2020-02")


@pytest.fixture(scope="module")
def bt_history(tmp_path_factory):
    out = tmp_path_factory.mktemp("bt-history")
    generate(out, *BT_MONTHS, 4_000, scenario="none", seed=12)
    return out


def _bt_job(history, out, cache, checks=True):
    job = {
        "name": "btc", "seed": 4, "backend": "cpu",
        "data": {"source": str(history / "yellow_tripdata_{month}.parquet"), "start": BT_MONTHS[0],
                 "end": BT_MONTHS[1]},
        "model": {"params": {"n_estimators": 5, "max_depth": 5}},
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out)},
        "backtest": {"train_months": 1, "horizon": 2, "metric": "f1", "floor": 0.5, "cache_dir": str(cache),
                     "policies": [{"kind": "static"}, {"kind": "periodic", "params": {"every": 2}}]},
    }
    if checks:
        job["checks"] = {"baseline": {"kind": "logistic_regression", "metric": "f1", "severity": "warn"},
                         "jumps": {"metric": "f1", "min_rows": 100}}
    return job


@pytest.fixture(scope="module")
def bt(bt_history, tmp_path_factory):
    cache = tmp_path_factory.mktemp("bt-cache")
    return rapidseval.run(_bt_job(bt_history, tmp_path_factory.mktemp("run") / "bt", cache)), cache


def test_backtest_baseline_rows_per_fold_and_month(bt):
    result, _ = bt
    checks = result.checks
    assert list(checks.columns) == CHECK_COLUMNS
    on_disk = pd.read_parquet(result.run_dir / "checks.parquet")
    assert len(on_disk) == len(checks)
    base = checks[checks["kind"] == "baseline"].set_index(["model", "month"])
    # one row per fold and horizon month, the fold model's F1 against the baseline's
    staleness = result.staleness
    want = {(f"fold {r.origin}", r.eval_month): r.f1 for r in staleness.itertuples()}
    assert set(base.index) == set(want)
    for key, f1 in want.items():
        assert base.loc[key, "value"] == f1
        assert 0 <= base.loc[key, "threshold"] <= 1 and base.loc[key, "detail"].startswith("f1 ")
    assert set(base["status"]) <= {"pass", "warn"}


def test_backtest_jumps_per_policy(bt):
    result, _ = bt
    jumps = result.checks[result.checks["kind"] == "jumps"]
    assert set(jumps["model"]) == {"static", "periodic"}
    for policy, rows in jumps.groupby("model"):
        months = result.backtest[result.backtest["policy"] == policy]["eval_month"]
        assert set(rows["month"].dropna()) <= set(months.iloc[1:])
        if (rows["status"] == "pass").any():
            assert len(rows) == 1 and "consecutive pairs" in rows["detail"].iloc[0]


def test_backtest_resumed_without_baselines_fits_them(bt, bt_history, tmp_path):
    """Folds done by a killed run without checks.baseline get their baselines when the job
    is resumed with it: the same rows as a run that had it from the start."""
    from rapidseval.jobs.progress import Reporter

    class Killed(Exception):
        pass

    class Killer(Reporter):
        """Raises (like a killed driver) when the first fold has finished."""

        in_folds = False

        @contextlib.contextmanager
        def stage(self, name, total=None, **kwargs):
            self.in_folds = name.startswith("folds")
            yield self

        def advance(self, n=1, **kwargs):
            if self.in_folds:
                raise Killed("killed after a fold")

    result, cache = bt
    with pytest.raises(Killed):
        rapidseval.run(_bt_job(bt_history, tmp_path / "run", cache, checks=False), reporter=Killer())
    assert list((tmp_path / ".run.work" / "folds").glob("*.json"))
    assert not (tmp_path / ".run.work" / "baseline").exists()
    resumed = rapidseval.run(_bt_job(bt_history, tmp_path / "run", cache))
    assert resumed.manifest["backtest"]["folds_reused"] >= 1
    cols = ["check", "model", "month", "status", "value", "threshold"]
    pd.testing.assert_frame_equal(resumed.checks[cols].reset_index(drop=True),
                                  result.checks[cols].reset_index(drop=True))


def test_roc_auc_bands_from_counts_are_the_replays(study):
    """A table without bands gets the replay's Hanley-McNeil band of ROC AUC."""
    windows = study.replay[study.replay["n"] > 0]
    drawn = with_bands(windows.drop(columns=["roc_auc_low", "roc_auc_high"]), "roc_auc")
    np.testing.assert_allclose(drawn["roc_auc_low"], windows["roc_auc_low"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(drawn["roc_auc_high"], windows["roc_auc_high"], rtol=0, atol=1e-12)


def test_study_without_replay_judges_months(months_dir, tmp_path_factory):
    job = _job(months_dir, tmp_path_factory.mktemp("run") / "noreplay",
               **{"evaluation.replay": None, "checks.baseline.metric": "roc_auc"})
    result = rapidseval.run(job)
    base = result.checks[result.checks["kind"] == "baseline"]
    assert list(base["month"]) == ["2020-02", "2020-03"] and base["window_start"].isna().all()
    assert base["detail"].str.startswith("roc_auc ").all()
    jumps = result.checks[result.checks["kind"] == "jumps"]
    assert set(jumps["model"]) == {"random_forest"}  # the baseline's own jumps are left out


def test_bad_compare_specs(months_dir, tmp_path):
    from rapidseval import SpecError, load_job

    base = _job(months_dir, tmp_path / "bad")
    with pytest.raises(SpecError, match="checks.jumps.lag"):
        load_job(override(base, {"checks.jumps.lag": 0}))
    with pytest.raises(SpecError, match="checks.jumps.window_rate"):
        load_job(override(_job(months_dir, tmp_path / "bad"), {"checks.jumps.window_rate": 0}))
    assert load_job(override(_job(months_dir, tmp_path / "bad"), {"checks.jumps.lag": 3})).checks.jumps.lag == 3
    clash = override(_job(months_dir, tmp_path / "clash"), {"models": [
        {"name": "rf", "kind": "random_forest", "params": {"n_estimators": 2, "max_depth": 2}},
        {"name": "baseline_logistic_regression", "kind": "logistic_regression", "params": {}}]})
    del clash["model"]
    with pytest.raises(SpecError, match="checks.baseline: the job already has a model named 'baseline_logistic_regr"):
        rapidseval.run(clash)
    assert not (tmp_path / "clash").exists()  # refused before anything was written


def test_planted_step_through_the_job(tmp_path):
    """Rows, not counts: 40% of March's high-tip trips from the 10th on lose their tip in the
    file (their label turns 0); the study's replay reports the primary's jump on the 10th,
    downwards, and no other from then on."""
    months = tmp_path / "months"
    generate(months, *MONTHS, 20_000, scenario="none", seed=9)
    path = months / "yellow_tripdata_2020-03.parquet"
    trips = pd.read_parquet(path)
    rng = np.random.default_rng(1)
    later = trips["tpep_dropoff_datetime"] >= STEP_DAY
    high = trips["tip_amount"] / trips["fare_amount"] > 0.2
    flip = later & high & (rng.random(len(trips)) < 0.4)
    trips.loc[flip, "total_amount"] -= trips.loc[flip, "tip_amount"]
    trips.loc[flip, "tip_amount"] = 0.0
    trips.to_parquet(path, index=False)
    job = _job(months, tmp_path / "run",
               **{"evaluation.test": [], "evaluation.score": [],
                  "evaluation.replay": {"months": ["2020-02", "2020-03"], "window": "D", "min_window_rows": 100,
                                        "bands": {"replicates": 300}}})
    result = rapidseval.run(job)
    jumps = result.checks[(result.checks["kind"] == "jumps") & (result.checks["model"] == "random_forest")
                          & result.checks["window_start"].notna()]
    after = jumps[jumps["window_start"] >= STEP_DAY]
    # the lasting change: reported once, where it starts, downwards
    assert list(after["window_start"]) == [STEP_DAY] and (after["value"] < 0).all(), jumps["detail"].tolist()
    # before it, a quiet month: this seed's stream has one pair past the test (2020-02-03 ->
    # 2020-02-10, F1 0.61 -> 0.70) among ~30; the rate over many seeds is measured apart
    assert len(jumps) - len(after) <= 1
