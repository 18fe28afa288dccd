"""Rolling-origin backtests: the calendar splitter, retraining policies on a generated
history with a known regime change, resume after a killed run, 1 vs 2 workers."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rapidseval
from rapidseval import SpecError, load_job
from rapidseval.jobs.checks import drift_calculator, splitter
from rapidseval.backtest import POLICIES, MonthSplitter, drift_signal, fit_reference, register_policy
from rapidseval.core.time import month_range
from rapidseval.jobs.progress import Reporter
from rapidseval.shift import FamilyThreshold, ShiftCalculator, count_days

ROWS = 20_000
START, END = "2019-10", "2020-08"
CHANGE = "2020-03"  # march2020 scenario: the regime changes from the 14th of this month


# ---------------------------------------------------------------------------------------
# splitter
# ---------------------------------------------------------------------------------------
MONTHS = month_range("2020-01", "2020-12")


def test_sliding_window_folds_and_generator():
    s = MonthSplitter(train_months=3, horizon=2)
    folds = list(s.split(MONTHS))
    assert folds[0] == (["2020-01", "2020-02", "2020-03"], ["2020-04", "2020-05"])
    assert folds[1] == (["2020-02", "2020-03", "2020-04"], ["2020-05", "2020-06"])
    assert len(folds) == 9  # origins 2020-04 .. 2020-12
    assert s.get_n_splits(MONTHS) == 9
    # a plain generator, like TimeSeriesSplit.split
    gen = s.split(MONTHS)
    assert iter(gen) is gen


def test_expanding_window_every_n_months():
    s = MonthSplitter(train_months=None, every=3, first_origin="2020-03", horizon=3)
    folds = s.folds(MONTHS)
    assert [f.origin for f in folds] == ["2020-03", "2020-06", "2020-09", "2020-12"]
    assert [f.train for f in folds][:2] == [("2020-01", "2020-02"), tuple(month_range("2020-01", "2020-05"))]
    assert all(f.train[0] == "2020-01" for f in folds)


def test_gap_leaves_months_out():
    s = MonthSplitter(train_months=2, gap=2, horizon=1)
    first = s.folds(MONTHS)[0]
    assert first.train == ("2020-01", "2020-02") and first.origin == "2020-05" and first.eval == ("2020-05",)
    for train, ev in s.split(MONTHS):
        gap = MONTHS.index(ev[0]) - MONTHS.index(train[-1]) - 1
        assert gap == 2


def test_horizon_past_the_end_is_truncated_and_flagged():
    folds = MonthSplitter(train_months=6, horizon=4).folds(MONTHS)
    last = folds[-1]
    assert last.origin == "2020-12" and last.eval == ("2020-12",) and last.truncated
    assert [f.truncated for f in folds] == [False] * 3 + [True] * 3
    assert all(len(f.eval) >= 1 for f in folds)


def test_listed_origins():
    s = MonthSplitter(origins=["2020-06", "2020-09"], train_months=2, horizon=6)
    assert [(f.train, f.eval) for f in s.folds(MONTHS)] == [
        (("2020-04", "2020-05"), tuple(month_range("2020-06", "2020-11"))),
        (("2020-07", "2020-08"), tuple(month_range("2020-09", "2020-12"))),
    ]


@pytest.mark.parametrize("kwargs, message", [
    ({"origins": ["2020-02"], "train_months": 3}, "too little history for origin 2020-02"),
    ({"first_origin": "2020-03", "train_months": 3}, "too little history for origin 2020-03"),
    ({"train_months": 2, "gap": 1, "origins": ["2020-03"]}, "and a gap of 1"),
    ({"train_months": 12}, "too little history"),
    ({"origins": ["2021-01"], "train_months": 1}, "outside the data"),
    ({"origins": ["2020-06", "2020-05"]}, "calendar order"),
    ({"horizon": 0}, "horizon must be an integer >= 1"),
    ({"gap": -1}, "gap must be an integer >= 0"),
])
def test_splitter_errors(kwargs, message):
    with pytest.raises(SpecError, match=message):
        MonthSplitter(**kwargs).folds(MONTHS)


def test_splitter_needs_consecutive_months():
    with pytest.raises(SpecError, match="consecutive"):
        MonthSplitter(train_months=1).folds(["2020-01", "2020-03"])


# ---------------------------------------------------------------------------------------
# spec
# ---------------------------------------------------------------------------------------
def test_job_files_validate():
    syn = load_job("jobs/backtest_synthetic.yaml")
    assert syn.backtest is not None and syn.data.source == "synthetic"
    real = load_job("jobs/backtest_2009_2020.yaml")
    assert real.data.source == "tlc" and real.data.start == "2009-01" and real.data.end == "2020-12"
    folds = splitter(real.backtest).folds(real.data.months)
    assert folds[0].train[0] >= "2009-01" and folds[-1].eval[-1] == "2020-12"


@pytest.mark.parametrize("backtest, message", [
    ({"policies": [{"kind": "nope"}]}, "unknown retraining policy 'nope'; choose one of static, periodic, drift_triggered"),
    ({"policies": [{"kind": "periodic", "params": {"evry": 2}}]}, "its parameters are every"),
    ({"policies": [{"kind": "static"}, {"kind": "static"}]}, "used twice"),
    ({"train_months": 30}, "too little history"),
    ({"metric": "auc"}, "backtest.metric"),
    ({"drift": {"features": ["trip_distance", "tip_amount"]}}, r"backtest.drift.features: tip_amount not among"),
    ({"drift": {"alarm": "mad"}}, r"backtest.drift.alarm"),
    ({"drift": {"k_std": 0}}, r"backtest.drift.k_std"),
])
def test_bad_backtest_specs(backtest, message):
    job = {"data": {"start": "2019-01", "end": "2020-12"}, "backtest": backtest}
    with pytest.raises(SpecError, match=message):
        load_job(job)


def test_backtest_replaces_evaluation():
    with pytest.raises(SpecError, match="no evaluation section"):
        load_job({"data": {"start": "2019-01", "end": "2020-12"}, "backtest": {}, "evaluation": {"train": ["2020-01"]}})


def test_user_policy_is_registered_and_validated():
    @register_policy("every_other_test")
    def every_other(ctx, *, k=2):
        return "k" if ctx.months_since_retrain >= k else None

    try:
        spec = load_job({"data": {"start": "2019-01", "end": "2020-12"},
                         "backtest": {"policies": [{"kind": "every_other_test", "name": "eo", "params": {"k": 4}}]}})
        assert spec.backtest.policies[0].label == "eo"
    finally:
        POLICIES.pop("every_other_test")


def _month_counts(rng, first_day, days, shift=0.0, per_day=3_000):
    day = np.repeat(np.arange(first_day, first_day + days), per_day)
    x = (rng.normal(size=len(day)) + shift).round(2).astype("float32")
    same = rng.integers(0, 24, len(day)).astype("float32")
    return count_days(day, {"x": x, "same": same})


def test_drift_signal_is_the_calibrated_alarm():
    """The signal is the shift engine's window-level alarm: the month's KS above the threshold
    learned from the training months (each day against the rest, scores standardised by size,
    family-calibrated), naming the most shifted feature."""
    from rapidseval.shift._verdict import from_score

    rng = np.random.default_rng(0)
    train = [_month_counts(rng, 18262, 31), _month_counts(rng, 18293, 29)]  # Jan, Feb 2020
    calc = fit_reference(train, ShiftCalculator(["x", "same"], statistics=["ks"], frequency="M"))
    null = calc.null_.set_index("feature")
    assert int(null.loc["x", "block_days"]) == 1 and int(null.loc["x", "n_null"]) == 60
    quiet = drift_signal(calc, _month_counts(rng, 18322, 31), month="2020-03")
    assert not quiet.alarm and quiet.value < quiet.threshold
    march = _month_counts(rng, 18322, 31, shift=0.05)
    shifted = drift_signal(calc, march, month="2020-03")
    assert shifted.alarm and shifted.feature == "x" and shifted.statistic == "ks"
    # the threshold is the null's score threshold in KS units for the month's size against the
    # reference's (its Kish size: reweighted to March's weekday mix)
    row = calc.calculate(march).table.set_index("feature").loc["x"]
    assert row["n_window"] == 31 * 3_000 and 0.9 * 60 * 3_000 < row["n_reference"] <= 60 * 3_000
    want = from_score("ks", null.loc["x", "score_threshold"], row["n_reference"], row["n_window"])
    assert shifted.threshold == pytest.approx(float(want), rel=1e-12)
    assert shifted.value > shifted.threshold and set(shifted.values) == {"x", "same"}


# ---------------------------------------------------------------------------------------
# the job on a generated history with a regime change
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def history(tmp_path_factory):
    from rapidseval.data.synthetic import generate

    out = tmp_path_factory.mktemp("history")
    generate(out, START, END, ROWS, scenario="march2020", seed=11, scenario_month=CHANGE)
    return out


def _job(history, out, cache, **backtest):
    bt = {
        "train_months": 1, "horizon": 2, "metric": "accuracy", "floor": 0.5, "cache_dir": str(cache),
        "policies": [{"kind": "static"}, {"kind": "periodic", "params": {"every": 3}}, {"kind": "drift_triggered"}],
        "daily": True,
    }
    bt.update(backtest)
    return {
        "name": "bt", "seed": 4, "backend": "cpu",
        "data": {"source": str(history / "yellow_tripdata_{month}.parquet"), "start": START, "end": END},
        "model": {"params": {"n_estimators": 10, "max_depth": 6}},
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out)},
        "backtest": bt,
    }


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def result(history, cache_dir, tmp_path_factory):
    return rapidseval.run(_job(history, tmp_path_factory.mktemp("run") / "bt", cache_dir))


def _policy(result, name):
    return result.backtest[result.backtest["policy"] == name].set_index("eval_month")


def _mean(t, months, col="accuracy"):
    return float(t.loc[list(months), col].mean())


BEFORE = month_range("2019-11", "2020-02")
AFTER = month_range("2020-04", END)


def test_tables_and_run_dir(result):
    bt, st, pol = result.backtest, result.staleness, result.policies
    origins = month_range("2019-11", END)
    assert list(pol["policy"]) == ["static", "periodic", "drift_triggered"]
    assert len(bt) == 3 * len(origins) and set(bt["eval_month"]) == set(origins)
    # the model in force is always one of the fold models; its age counts from its training end
    assert (bt["model_age_months"] >= 1).all()
    static = _policy(result, "static")
    assert set(static["origin"]) == {"2019-11"} and list(static["model_age_months"]) == list(range(1, len(origins) + 1))
    # staleness: every origin on its horizon (2 months, 1 for the last)
    assert len(st) == 2 * len(origins) - 1
    assert set(st["model_age_months"]) == {1, 2}
    # the same (model, month) is the same numbers wherever it appears
    merged = bt.merge(st, on=["origin", "eval_month"], suffixes=("", "_st"))
    assert len(merged) > 0
    assert (merged["tp"] == merged["tp_st"]).all() and (merged["f1"] == merged["f1_st"]).all()
    # counts add up to the month's usable rows
    rows = result.manifest["rows"]["by_month"]
    for r in static.reset_index().itertuples():
        assert r.n == rows[r.eval_month]["rows_used"]
    # summary = aggregate of the per-month table
    for p in pol.itertuples():
        t = bt[bt["policy"] == p.policy]
        assert p.mean_f1 == pytest.approx(t["f1"].mean(), abs=1e-12)
        assert p.worst_f1 == pytest.approx(t["f1"].min(), abs=1e-12)
        assert p.retrains == t["retrained"].sum()
        assert p.months_below_floor == (t["accuracy"] < 0.5).sum()
        assert p.train_seconds == pytest.approx(t["train_seconds"].sum())
    # F1 from counts is sklearn's formula
    f1 = 2 * bt["tp"] / (2 * bt["tp"] + bt["fp"] + bt["fn"])
    np.testing.assert_allclose(bt["f1"], f1, rtol=0, atol=1e-12)
    # per day: sums to the month
    daily = pd.read_parquet(result.run_dir / "backtest_daily.parquet")
    by_month = daily.groupby(["policy", "eval_month"])[["tp", "fp", "fn", "tn"]].sum().reset_index()
    check = bt.merge(by_month, on=["policy", "eval_month"], suffixes=("", "_d"))
    assert len(check) == len(bt) and (check["tp"] == check["tp_d"]).all() and (check["tn"] == check["tn_d"]).all()
    for name in ("backtest", "staleness", "policies", "models", "manifest"):
        assert any(p.name.startswith(name) for p in result.run_dir.iterdir()), name
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["complete"] and manifest["backtest"]["folds"] == len(origins)
    assert not (result.run_dir.parent / ".bt.work").exists()  # nothing left to resume


def test_static_model_decays(result):
    static = _policy(result, "static")
    assert _mean(static, AFTER) < _mean(static, BEFORE) - 0.04
    assert static["retrained"].sum() == 1


def test_drift_retrains_name_their_trigger_month(result):
    """Each drift retrain names the month whose signal triggered it; on data read from files
    there is no ground truth to judge it by (null), and the policy table says so (NA)."""
    drift = _policy(result, "drift_triggered")
    by_drift = drift[drift["retrain_reason"].str.startswith("drift:")]
    assert len(by_drift)
    for month, row in by_drift.iterrows():
        assert row["retrain_reason"].endswith(f"in {row['trigger_month']}") and row["trigger_month"] < month
    assert (drift.loc[~drift.index.isin(by_drift.index), "trigger_month"] == "").all()
    assert drift["trigger_true"].isna().all() and str(drift["trigger_true"].dtype) == "boolean"
    pol = result.policies.set_index("policy")
    assert pol.loc["drift_triggered", "drift_retrains"] == len(by_drift)
    assert pd.isna(pol.loc["drift_triggered", "false_drift_retrains"])


def test_periodic_retrains_on_schedule_and_recovers(result):
    periodic, static = _policy(result, "periodic"), _policy(result, "static")
    retrains = list(periodic.index[periodic["retrained"]])
    assert retrains == ["2019-11", "2020-02", "2020-05", "2020-08"]
    assert set(periodic.loc[retrains[1:], "retrain_reason"]) == {"scheduled (every 3 months)"}
    # 2020-05's model (trained on April, after the change) beats the stale model from then on
    recovered = month_range("2020-05", END)
    assert _mean(periodic, recovered) > _mean(static, recovered) + 0.04
    assert (periodic.loc[recovered, "accuracy"] > static.loc[recovered, "accuracy"]).all()


def test_drift_triggered_retrains_after_the_change(result):
    drift = _policy(result, "drift_triggered")
    retrains = list(drift.index[drift["retrained"]])
    assert retrains[0] == "2019-11"  # initial
    later = retrains[1:]
    assert later, "no retrain after the regime change"
    assert all(m > CHANGE for m in later), f"retrained before the change: {later}"
    assert later[0] <= "2020-05"  # the change is seen within two months
    reasons = drift.loc[later, "retrain_reason"]
    assert all(r.startswith(("drift:", "floor:")) for r in reasons)
    static = _policy(result, "static")
    assert _mean(drift, month_range("2020-05", END)) > _mean(static, month_range("2020-05", END)) + 0.04


def test_decisions_use_only_known_labels(history, cache_dir, tmp_path):
    """With labels two months late, a floor-only policy cannot react before month+3."""
    seen = []

    @register_policy("floor_spy_test")
    def spy(ctx):
        seen.append((ctx.origin, ctx.labelled_months))
        m = ctx.latest_metrics()
        return "floor" if m is not None and m["accuracy"] < ctx.floor else None

    try:
        res = rapidseval.run(_job(history, tmp_path / "run", cache_dir, label_delay=2, daily=False,
                                  policies=[{"kind": "floor_spy_test"}]))
    finally:
        POLICIES.pop("floor_spy_test")
    for origin, labelled in seen:
        assert all(m <= month_range("2019-01", origin)[-4] for m in labelled), (origin, labelled)
    t = _policy(res, "floor_spy_test")
    retrains = list(t.index[t["retrained"]])
    assert len(retrains) > 1 and retrains[1] >= "2020-06"  # change in 2020-03 (mid-month), known 2 months later


def test_static_and_periodic_need_no_drift_signals(result, history, cache_dir, tmp_path):
    """A job of static and periodic policies fits no drift reference, and its tables are
    those of the same policies in a job that also ran drift_triggered."""
    res = rapidseval.run(_job(history, tmp_path / "run", cache_dir, policies=[
        {"kind": "static"}, {"kind": "periodic", "params": {"every": 3}}]))
    assert result.manifest["backtest"]["drift_signals"] and not res.manifest["backtest"]["drift_signals"]
    ours = result.backtest[result.backtest["policy"] != "drift_triggered"].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours.drop(columns=_TIMING), res.backtest.drop(columns=_TIMING))


def _cached_counts(cache_dir, month, features):
    from rapidseval.features import PartStats
    from rapidseval.io.feature_cache import CachedMonth
    from rapidseval.jobs.cached_features import read_day_counts

    (path,) = Path(cache_dir).glob(f"{month}-*.counts.parquet")
    key = path.name[: -len(".counts.parquet")]
    return read_day_counts(CachedMonth(month, key, str(cache_dir), PartStats(), hit=True), features)


def test_worker_drift_signals_equal_the_host_computation(history, cache_dir, tmp_path):
    """The drift signals computed beside the scores (on the workers) are what the host would
    compute from the cached per-day counts: the model's training months as the reference,
    the month just before the origin (the latest whole month) compared with it."""
    seen = {}

    @register_policy("drift_spy_test")
    def spy(ctx):  # called again for an origin after a round of scoring: keep the last call
        sig = ctx.drift()
        seen[ctx.origin] = (ctx.origin, ctx.model_origin, ctx.train_months, sig)
        return "drift" if sig.alarm else None

    try:
        rapidseval.run(_job(history, tmp_path / "run", cache_dir, train_months=2, daily=False,
                            policies=[{"kind": "drift_spy_test"}]))
    finally:
        POLICIES.pop("drift_spy_test")
    origins = month_range("2019-12", END)
    assert sorted(seen) == origins[1:]
    assert len({m for _, m, *_ in seen.values()}) > 1  # the spy retrained: signals of several models are checked
    for origin, model_origin, train, sig in seen.values():
        assert sig.month == month_range("2019-01", origin)[-2] and model_origin <= sig.month < origin
        feats = list(_cached_counts(cache_dir, train[0], None))  # all the job's features (drift.features unset)
        calc = fit_reference([_cached_counts(cache_dir, m, feats) for m in train],
                             ShiftCalculator(feats, statistics=["ks"], frequency="M", fill_value=-1.0))
        host = drift_signal(calc, _cached_counts(cache_dir, sig.month, feats), month=sig.month)
        assert (sig.alarm, sig.feature, sig.statistic) == (host.alarm, host.feature, host.statistic), origin
        assert sig.value == pytest.approx(host.value, rel=1e-12) and sig.threshold == pytest.approx(host.threshold, rel=1e-12)
        assert sig.values == pytest.approx(host.values, rel=1e-12)


# ---------------------------------------------------------------------------------------
# determinism: resume after a kill, 1 vs 2 workers
# ---------------------------------------------------------------------------------------
_TIMING = ["train_seconds"]


def _assert_same(a, b):
    for name in ("backtest", "staleness", "policies"):
        x, y = getattr(a, name), getattr(b, name)
        pd.testing.assert_frame_equal(x.drop(columns=_TIMING, errors="ignore"), y.drop(columns=_TIMING, errors="ignore"),
                                      check_exact=True)


class _Killed(Exception):
    pass


class _Killer(Reporter):
    """Raises (like a killed driver) after ``after`` folds have finished."""

    def __init__(self, after: int):
        self.after, self.done, self._in_folds = after, 0, False

    @contextlib.contextmanager
    def stage(self, name, total=None):
        self._in_folds = name.startswith("folds")
        try:
            yield self
        finally:
            self._in_folds = False

    def advance(self, n=1):
        if self._in_folds:
            self.done += n
            if self.done >= self.after:
                raise _Killed(f"killed after {self.done} folds")


@pytest.fixture(scope="module")
def dask_cluster():
    """One real scheduler with worker processes for the module (starting one per run is slow)."""
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.CRITICAL) as cluster, Client(cluster, set_as_default=False) as client:
        yield cluster, client


def _on(job, cluster):
    job["cluster"] = {"kind": "scheduler", "address": cluster.scheduler_address}
    return job


def test_resume_after_kill_gives_identical_results(result, history, cache_dir, tmp_path, dask_cluster):
    cluster, client = dask_cluster
    job = _on(_job(history, tmp_path / "run", cache_dir, daily=False), cluster)
    with pytest.raises(_Killed):
        rapidseval.run(job, reporter=_Killer(after=3))
    work = tmp_path / ".run.work"
    done = len(list((work / "folds").glob("*.json")))
    n_folds = len(month_range("2019-11", END))
    assert 3 <= done < n_folds
    assert not (tmp_path / "run").exists()  # no run directory from a killed run
    resumed = rapidseval.run(job)
    info = resumed.manifest["backtest"]
    # a fold already running on the worker when the driver died may still have finished
    # (Dask cannot interrupt a running task): it is reused too
    assert done <= info["folds_reused"] <= done + 1
    assert info["models_fitted"] == n_folds - info["folds_reused"] > 0
    _assert_same(result, resumed)


def test_one_and_two_workers_identical(result, history, cache_dir, tmp_path, dask_cluster):
    cluster, client = dask_cluster
    runs = []
    for n in (1, 2):
        cluster.scale(n)
        client.wait_for_workers(n, timeout=60)
        assert len(client.scheduler_info()["workers"]) == n
        runs.append(rapidseval.run(_on(_job(history, tmp_path / f"w{n}", cache_dir), cluster)))
        assert f"({n} workers," in runs[-1].manifest["cluster_started"]  # the scheduler's worker count
    _assert_same(runs[0], runs[1])
    _assert_same(result, runs[1])  # and the same as the threads executor
    # every month's features came from the cache the first run filled
    months = len(month_range(START, END))
    for r in runs:
        assert r.manifest["backtest"]["feature_cache"]["reused"] == months
    assert len([p for p in Path(cache_dir).iterdir() if p.suffix == ".json"]) == months


def test_drift_spec_errors_name_the_field_and_choices():
    job = Path(__file__).resolve().parent.parent / "jobs" / "backtest_synthetic.yaml"
    with pytest.raises(SpecError, match="backtest.drift.statistics: unknown shift statistic 'kss'; choose from ks, "):
        load_job(job, ["backtest.drift.statistics=[kss]"])
    with pytest.raises(SpecError, match="backtest.drift.threshold"):  # the old fixed threshold is gone
        load_job(job, ["backtest.drift.threshold=0.1"])
    spec = load_job(job, ["backtest.drift.statistics=[ks, psi]", "backtest.drift.min_effect={ks: 0.02}"])
    calc = drift_calculator(spec.backtest.drift, ["trip_distance"])
    assert calc.statistics == ("ks", "psi") and calc.frequency == "M"
    assert calc.threshold == FamilyThreshold(min_effect={"ks": 0.02})


def test_calibrated_drift_does_not_retrain_without_a_shift(tmp_path):
    """On a history with no injected shift, the calibrated drift signal leaves the model alone
    (bound: at most one drift retrain in ten decisions; a month without change triggers at
    most at window_alarm_rate, so one chance alarm is allowed).  2020, not 2019: the
    generator's missing codes start in 2019-07 (``missing_code_rate``), a real change the
    window-level rule rightly flags."""
    from rapidseval.data.synthetic import generate, missing_code_rate

    assert len({missing_code_rate(m) for m in month_range("2020-01", "2020-12")}) == 1
    hist = tmp_path / "quiet"
    generate(hist, "2020-01", "2020-12", ROWS, scenario="none", seed=21)
    job = _job(hist, tmp_path / "run", tmp_path / "cache", train_months=2, horizon=1, daily=False,
               policies=[{"kind": "drift_triggered", "params": {"use_floor": False}}])
    job["data"].update(start="2020-01", end="2020-12")
    t = _policy(rapidseval.run(job), "drift_triggered")
    drift_retrains = [m for m, r in zip(t.index, t["retrain_reason"]) if str(r).startswith("drift:")]
    assert len(t) == 10 and len(drift_retrains) <= 1, drift_retrains


def test_drift_checks_every_month_between_origins(tmp_path):
    """Origins two months apart: a one-month units bug in the first month after an origin
    (not the month just before the next one) still triggers a retrain at the next origin,
    and the reason names the month."""
    from rapidseval.data.synthetic import generate

    hist = tmp_path / "bug"
    generate(hist, "2019-01", "2019-08", ROWS, scenario="units_bug", seed=23, scenario_month="2019-05")
    job = _job(hist, tmp_path / "run", tmp_path / "cache", train_months=2, horizon=2, every=2, daily=False,
               policies=[{"kind": "drift_triggered", "params": {"use_floor": False}}])
    job["data"].update(start="2019-01", end="2019-08")
    res = rapidseval.run(job)
    t = res.backtest[res.backtest["policy"] == "drift_triggered"]
    assert list(t["eval_month"]) == month_range("2019-03", "2019-08")
    reasons = t[t["retrained"]].set_index("eval_month")["retrain_reason"]  # decisions to retrain, by origin
    assert reasons["2019-03"] == "initial"
    assert "2019-05" not in reasons.index, reasons  # 2019-03 and 2019-04 are clean
    # distances in km: trip_distance and the speed derived from it
    assert reasons["2019-07"].startswith(("drift: trip_distance ", "drift: trip_speed ")), reasons
    assert reasons["2019-07"].endswith("in 2019-05"), reasons  # not only the month before the origin


def test_drift_triggers_are_judged_against_the_generators_ground_truth():
    """Generated data: a trigger is true when the scenario or the generator's calendar (missing
    codes from 2019-07) changes a watched feature between the training months and the month
    that triggered; other sources have no ground truth."""
    from rapidseval.jobs.backtest import _ground_truth

    job = Path(__file__).resolve().parent.parent / "jobs" / "backtest_synthetic.yaml"
    spec = load_job(job)
    feats = tuple(spec.features.features)
    truth = _ground_truth(spec, feats)
    assert truth(("2019-12", "2020-01", "2020-02"), "2020-03")  # the change starts on the 14th
    assert truth(("2020-03", "2020-04", "2020-05"), "2020-06")  # March's first half is pre-change
    assert not truth(("2020-04", "2020-05", "2020-06"), "2020-07")
    assert not truth(("2019-10", "2019-11", "2019-12"), "2020-01")
    assert truth(("2019-04", "2019-05", "2019-06"), "2019-07")  # missing codes start
    assert not _ground_truth(spec, ("trip_distance",))(("2019-04", "2019-05", "2019-06"), "2019-07")
    assert _ground_truth(load_job(job, ["data.source=/tmp/x_{month}.parquet"]), feats) is None
