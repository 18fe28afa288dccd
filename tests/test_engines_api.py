"""The engines called from Python on frames people have: the README's Dask DataFrame example runs,
replay and shift on a Dask DataFrame equal scikit-learn's metrics and the pandas answers exactly,
the in-memory backtest gives the same tables on pandas and Dask, and the policy walk is a
request/resolve loop."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score

from rapidseval.backtest import (DriftSignal, Fold, ModelMonth, ModelPlan, MonthSplitter, PolicyWalk, backtest,
                                 make_policy, register_policy, walk_policies)
from rapidseval.core.errors import SpecError
from rapidseval.replay import replay
from rapidseval.shift import ShiftCalculator
from rapidseval.shift.dask import frame_day_counts, shift

dd = pytest.importorskip("dask.dataframe")

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- engines-example"
#: dask 2026.8's parquet reader calls reset_index(inplace=True), which pandas 3.1 deprecates
DASK_PARQUET_WARNING = "ignore:The inplace keyword in DataFrame.reset_index is deprecated"
FEATURES = ["a", "b", "code"]


def _readme_example() -> str:
    text = README.read_text()
    start = text.index(MARKER)
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert block is not None, "no python block after the engines-example marker"
    return block.group(1)


@pytest.mark.slow
@pytest.mark.filterwarnings(DASK_PARQUET_WARNING)
def test_readme_dask_dataframe_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_readme_example(), "README.md:engines-example", "exec"), namespace)
    weekly, drift, result = namespace["weekly"], namespace["drift"], namespace["result"]
    assert len(weekly) >= 26 and weekly["n"].sum() > 0 and weekly["f1"].between(0, 1).all()
    assert list(drift.windows()["window"]) == [f"2020-0{m}" for m in range(1, 7)]
    assert drift.windows()["window_alarm"].iloc[-1]  # June, after the change, alarms against January
    assert list(result.policies["policy"]) == ["static", "periodic", "drift_triggered"]
    assert set(result.backtest["eval_month"]) == {f"2020-0{m}" for m in range(2, 7)}


def _trips(rows: int = 6000, seed: int = 0) -> pd.DataFrame:
    """Rows over three months with a change in March (``a`` moves, the label follows)."""
    rng = np.random.default_rng(seed)
    t = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 91 * 86_400, rows), unit="s")
    frame = pd.DataFrame({"t": t.astype("datetime64[us]"), "a": rng.random(rows), "b": rng.random(rows),
                          "code": rng.integers(0, 5, rows).astype("float64")})
    march = frame["t"] >= "2020-03-01"
    frame.loc[march, "a"] = frame.loc[march, "a"] * 0.5 + 0.5
    frame["y"] = frame["a"] + 0.4 * rng.random(rows) > 0.8
    frame.loc[rng.random(rows) < 0.02, "b"] = np.nan  # missing values count as the fill value
    return frame.sort_values("t", ignore_index=True)


@pytest.fixture(scope="module")
def trips() -> pd.DataFrame:
    return _trips()


@pytest.fixture(scope="module")
def model(trips):
    january = trips[trips["t"] < "2020-02-01"]
    return LogisticRegression().fit(january[FEATURES].fillna(-1), january["y"])


def _scored(trips, model) -> pd.DataFrame:
    return trips.assign(b=trips["b"].fillna(-1)).assign(
        proba=lambda f: model.predict_proba(f[FEATURES])[:, 1])


@pytest.mark.parametrize("window", ["D", "W", "M"])
def test_replay_on_dask_equals_sklearn_per_window_and_the_pandas_path(trips, model, window):
    frame = _scored(trips, model)
    on_pandas = replay(frame, time_column="t", label="y", proba="proba", threshold=0.5, window=window)
    on_dask = replay(dd.from_pandas(frame.drop(columns="proba"), npartitions=4), time_column="t", label="y",
                     estimator=model, features=FEATURES, threshold=0.5, window=window)
    pd.testing.assert_frame_equal(on_pandas, on_dask)
    for row in on_dask.itertuples():
        rows = frame[(frame["t"] >= row.window_start) & (frame["t"] < row.window_end)]
        predicted = rows["proba"] > 0.5
        assert row.n == len(rows)
        for name, score in (("f1", f1_score), ("precision", precision_score), ("recall", recall_score)):
            expected = score(rows["y"], predicted, zero_division=np.nan)
            assert getattr(row, name) == pytest.approx(expected, abs=1e-12, nan_ok=True), (row.window_start, name)


def test_replay_needs_either_a_probability_column_or_an_estimator(trips, model):
    with pytest.raises(ValueError, match="either proba"):
        replay(trips, time_column="t", label="y")
    with pytest.raises(ValueError, match="either proba"):
        replay(_scored(trips, model), time_column="t", label="y", proba="proba", estimator=model, features=FEATURES)


def test_shift_on_dask_equals_pandas(trips):
    reference, analysis = trips[trips["t"] < "2020-02-01"], trips
    counts = frame_day_counts(trips, time_column="t", features=FEATURES)
    dask_counts = frame_day_counts(dd.from_pandas(trips, npartitions=5), time_column="t", features=FEATURES)
    for name in FEATURES:
        for part in ("day", "value", "count"):
            np.testing.assert_array_equal(getattr(counts[name], part), getattr(dask_counts[name], part))

    def run(ref, cur):
        return shift(ref, cur, time_column="t", calculator=ShiftCalculator(FEATURES, frequency="W", threads=1))

    on_pandas = run(reference, analysis).to_df()
    on_dask = run(dd.from_pandas(reference, npartitions=2), dd.from_pandas(analysis, npartitions=3)).to_df()
    pd.testing.assert_frame_equal(on_pandas, on_dask)
    assert on_pandas.loc[on_pandas["window_start"] >= "2020-03-02", "window_alarm"].all()  # a moved


def test_shift_result_shows_in_one_line_and_as_its_window_verdicts(trips):
    # its dataclass repr printed both tables (and a notebook showed that text)
    result = shift(trips[trips["t"] < "2020-02-01"], trips, time_column="t",
                   calculator=ShiftCalculator(FEATURES, frequency="M", threads=1))
    windows = result.windows()
    assert repr(result) == (f"<ShiftResult: {int(windows['window_alarm'].sum())} of {len(windows)} windows alarm; "
                            f"{len(result.to_df())} tests (to_df(), windows())>")
    assert windows.to_html(index=False) in result._repr_html_()


def test_shift_names_a_missing_column(trips):
    with pytest.raises(SpecError, match="no column nope"):
        frame_day_counts(trips, time_column="t", features=["a", "nope"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(time_column="pickup"), r"replay: the frame has no column 'pickup' \(time_column\); its columns: t, a"),
    (dict(label="hi"), r"no column 'hi' \(label\)"),
    (dict(features=["a", "nope"]), r"no column 'nope' \(features\)"),
])
def test_replay_names_a_missing_column_and_its_argument(trips, model, kwargs, match):
    # these were bare KeyErrors ('pickup', "['nope'] not in index") from deep inside the scoring
    call = dict(time_column="t", label="y", estimator=model, features=FEATURES) | kwargs
    with pytest.raises(SpecError, match=match):
        replay(trips, **call)
    with pytest.raises(SpecError, match=match):
        replay(dd.from_pandas(trips, npartitions=2), **call)


@pytest.mark.parametrize("kwargs, match", [
    (dict(metric="f2"), "backtest metric 'f2' is not one of f1, accuracy, precision, recall"),
    (dict(label="hi"), r"backtest: the frame has no column 'hi' \(label\)"),
])
def test_backtest_refuses_a_bad_metric_or_column_before_fitting(trips, kwargs, match):
    # a bad metric was a KeyError 'f2' once every fold had been fitted
    call = dict(features=FEATURES, label="y", time_column="t", splitter=MonthSplitter(train_months=1, horizon=1)) | kwargs
    with pytest.raises(SpecError, match=match):
        backtest(trips, LogisticRegression(), **call)


@pytest.mark.slow
def test_backtest_on_dask_equals_pandas(trips):
    frame = trips.assign(b=trips["b"].fillna(-1))
    kwargs = dict(features=FEATURES, label="y", time_column="t", splitter=MonthSplitter(train_months=1, horizon=2),
                  policies=["static", make_policy("periodic", {"every": 2}), "drift_triggered"], metric="accuracy",
                  floor=0.5, daily=True)
    on_pandas = backtest(frame, LogisticRegression(), **kwargs)
    on_dask = backtest(dd.from_pandas(frame, npartitions=3), LogisticRegression(), **kwargs)
    for name in ("backtest", "staleness", "policies", "models", "daily"):
        left, right = on_pandas.to_df(name), on_dask.to_df(name)
        timing = [c for c in left.columns if c == "train_seconds"]
        pd.testing.assert_frame_equal(left.drop(columns=timing), right.drop(columns=timing))
    table = on_pandas.backtest
    assert list(table["eval_month"].unique()) == ["2020-02", "2020-03"]
    assert len(on_pandas.staleness) == 3 and len(on_pandas.models) == 2
    assert (on_pandas.daily.groupby(["policy", "eval_month"])["n"].sum().to_numpy() == table["n"].to_numpy()).all()
    with pytest.raises(KeyError, match="choose one of"):
        on_pandas.to_df("nope")


# ---------------------------------------------------------------------------------------
# the walk as a request/resolve loop
# ---------------------------------------------------------------------------------------
def _plans(origins: list[str]) -> list[ModelPlan]:
    months = [f"2020-{m:02d}" for m in range(1, 13)]
    plans = []
    for origin in origins:
        i = months.index(origin)
        plans.append(ModelPlan(f"m-{origin}", Fold(origin, (months[i - 1],), tuple(months[i:i + 1]))))
    return plans


class _Ledger:
    """Evidence that records every resolve; a month's drift signal alarms from June on."""

    def __init__(self):
        self.scores: set = set()
        self.drifts: set = set()
        self.rounds: list = []

    def has_scores(self, pair):
        return pair in self.scores

    def has_drift(self, pair):
        return pair in self.drifts

    def metrics(self, pair):
        assert pair in self.scores
        return {"n": 1, "accuracy": 1 - int(pair.month[5:]) / 12}

    def drift(self, pair):
        assert pair in self.drifts
        alarm = pair.month >= "2020-06"
        return DriftSignal(pair.month, alarm, "a", "ks", 0.5 if alarm else 0.0, 0.1)

    def resolve(self, needs):
        self.rounds.append(needs)
        self.scores |= needs.scores
        self.drifts |= needs.drift


def test_walk_states_what_a_decision_needs_and_continues_after_it_is_resolved():
    plans = _plans(["2020-02", "2020-03", "2020-04", "2020-05", "2020-06", "2020-07"])
    ledger = _Ledger()
    walk = PolicyWalk("drift", make_policy("drift_triggered", {"use_floor": False}), plans, metric="accuracy",
                      floor=0.0, label_delay=0)
    first = walk.advance(ledger)
    # the first origin trains; the second decision needs the drift of the month before it
    assert first.drift == {ModelMonth("m-2020-02", "2020-02")} and not walk.finished
    assert first.scores == {ModelMonth("m-2020-02", "2020-02")}  # the row of the first origin's month
    walk_policies([walk], ledger, ledger.resolve)
    assert walk.finished and not walk.advance(ledger)
    rows = {row.eval_month: row for row in walk.rows()}
    assert [m for m, row in rows.items() if row.retrained] == ["2020-02", "2020-07"]
    assert rows["2020-07"].trigger_month == "2020-06" and rows["2020-07"].retrain_reason.startswith("drift:")
    # a round per decision (each needs the month before it), and one for the last retrain's row
    assert len(ledger.rounds) == 6


def test_policies_that_read_nothing_need_only_their_rows_scores():
    plans = _plans(["2020-02", "2020-03", "2020-04", "2020-05"])
    ledger = _Ledger()
    walks = [PolicyWalk(kind, make_policy(kind, {}), plans, metric="accuracy", floor=0.5, label_delay=0)
             for kind in ("static", "periodic")]
    walk_policies(walks, ledger, ledger.resolve)
    assert len(ledger.rounds) == 1 and not ledger.drifts  # every row known after one round; no drift asked
    assert [row.retrained for row in walks[1].rows()] == [True, False, False, True]


def test_a_policy_reading_what_it_did_not_declare_is_an_error():
    @register_policy("reads_nothing_test", reads=())
    def sneaky(ctx):
        return "floor" if ctx.latest_metrics() else None

    try:
        walk = PolicyWalk("sneaky", make_policy("reads_nothing_test", {}), _plans(["2020-02", "2020-03"]),
                          metric="accuracy", floor=0.5, label_delay=0)
        ledger = _Ledger()
        with pytest.raises(Exception, match="read metrics but declared reads"):
            walk_policies([walk], ledger, ledger.resolve)
    finally:
        from rapidseval.backtest import POLICIES

        POLICIES.pop("reads_nothing_test")
    with pytest.raises(SpecError, match="choose from metrics, drift"):
        register_policy("bad_reads_test", reads=("labels",))


def test_a_user_policy_cannot_replace_a_built_in_one():
    # register_policy("static") silently replaced the built-in for every later job and backtest
    from rapidseval.backtest import POLICIES

    static = POLICIES["static"]
    for name in ("static", "periodic", "drift_triggered"):
        with pytest.raises(SpecError, match=f"policy '{name}' is built in .*; register yours under another name"):
            register_policy(name, reads=())
    assert POLICIES["static"] is static
    try:  # a notebook cell run twice registers its own policy again
        for _ in range(2):
            register_policy("twice_test", reads=())(lambda ctx: None)
    finally:
        POLICIES.pop("twice_test")


# ---------------------------------------------------------------------------------------
# cuDF and dask_cudf frames (a GPU with RAPIDS; skipped elsewhere)
# ---------------------------------------------------------------------------------------
@pytest.mark.rapids
def test_replay_and_shift_on_dask_cudf_equal_pandas(trips, model):
    pytest.importorskip("cudf")
    pytest.importorskip("dask_cudf")
    from rapidseval.backend import get_backend, gpu_available

    ok, why = gpu_available()
    if not ok:
        pytest.skip(why)
    gpu = get_backend("gpu")
    frame = _scored(trips, model)
    on_pandas = replay(frame, time_column="t", label="y", proba="proba", window="W")
    on_gpu = replay(gpu.to_dask(gpu.xdf.DataFrame.from_pandas(frame), npartitions=3), time_column="t", label="y",
                    proba="proba", window="W")
    pd.testing.assert_frame_equal(on_pandas, on_gpu)
    calculator = ShiftCalculator(FEATURES, frequency="W", threads=1)
    expected = shift(trips[trips["t"] < "2020-02-01"], trips, time_column="t", calculator=calculator).to_df()
    cudf_trips = gpu.to_dask(gpu.xdf.DataFrame.from_pandas(trips), npartitions=3)
    got = shift(cudf_trips[cudf_trips["t"] < "2020-02-01"], cudf_trips, time_column="t",
                calculator=ShiftCalculator(FEATURES, frequency="W", threads=1)).to_df()
    pd.testing.assert_frame_equal(expected, got)
