"""Replay through the study job: several models side by side, learned thresholds,
label delay, floors, exactness against scikit-learn on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, log_loss, roc_auc_score

import rapidseval
from rapidseval import get_backend
from rapidseval.io.readers import read_month
from rapidseval.data.synthetic import generate
from rapidseval.features import FeatureSpec, prepare, required_columns
from rapidseval.metrics import learn_threshold
from rapidseval.models import predict_positive_proba

TOL = 1e-12


@pytest.fixture(scope="module")
def months_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tlc-replay")
    generate(out, "2020-01", "2020-03", 10_000, scenario="march2020", seed=5)
    return out


def _job(months_dir, out, **replay):
    return {
        "name": "replay",
        "seed": 1,
        "backend": "cpu",
        "data": {"source": str(months_dir / "yellow_tripdata_{month}.parquet"), "start": "2020-01", "end": "2020-03",
                 "partition_rows": 10_000},
        "models": [
            {"name": "current", "kind": "random_forest", "params": {"n_estimators": 10, "max_depth": 6}},
            {"name": "candidate", "kind": "random_forest", "params": {"n_estimators": 10, "max_depth": 6},
             "train": ["2020-02"], "threshold": {"learn": "max_f1", "months": ["2020-02"]}},
            {"name": "logit", "kind": "logistic_regression", "params": {"C": 1.0}},
            {"name": "majority", "kind": "majority", "params": {}},
        ],
        "evaluation": {
            "train": ["2020-01"], "test": ["2020-02"], "score": ["2020-03"],
            "replay": {"months": ["2020-03"], "window": "D", "auc": "exact", "label_delay": "2D", "trailing": 3,
                       "floor": 0.6, "min_window_rows": 50, **replay},
            "shift": None,
            "allow_overlap": True,  # the candidate trains on the test month February
        },
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out), "report": False},
    }


@pytest.fixture(scope="module")
def run(months_dir, tmp_path_factory):
    return rapidseval.run(_job(months_dir, tmp_path_factory.mktemp("run") / "r"))


def _features(months_dir, month):
    spec = FeatureSpec()
    table = read_month(str(months_dir / f"yellow_tripdata_{month}.parquet"), month, list(required_columns(spec)))
    frame, _ = prepare(table.to_pandas(), spec, month=month, backend=get_backend("cpu"))
    return frame


def test_models_side_by_side_equal_sklearn_per_window(run, months_dir):
    march = _features(months_dir, "2020-03")
    X = march[list(FeatureSpec().features)]
    day = march.dropoff_datetime.dt.floor("D")
    replay = run.replay
    assert list(replay["model"].unique()) == ["current", "candidate", "logit", "majority"]
    thresholds = {m["name"]: m["threshold"] for m in run.manifest["models"]}
    for i, name in enumerate(["current", "candidate", "logit", "majority"]):
        proba = predict_positive_proba(run.models[i], X, get_backend("cpu"))
        pred = proba > thresholds[name]
        table = replay[replay.model == name]
        assert table["n"].sum() == len(march)
        for r in table.itertuples():
            sel = (day == r.window_start).to_numpy()
            assert r.n == sel.sum()
            if not r.n:
                continue
            y = march.high_tip[sel]
            assert abs(r.f1 - f1_score(y, pred[sel], zero_division=0)) <= TOL
            assert abs(r.log_loss - log_loss(y, proba[sel], labels=[0, 1])) <= TOL
            if y.nunique() == 2:
                assert abs(r.roc_auc - roc_auc_score(y, proba[sel])) <= TOL
    # per-window differences against the primary model
    cur = replay[replay.model == "current"].set_index("window_start")
    cand = replay[replay.model == "candidate"].set_index("window_start")
    np.testing.assert_allclose(cand["delta_f1"], cand["f1"] - cur["f1"], atol=TOL)
    assert (cur["delta_f1"].dropna() == 0).all()
    # the majority baseline predicts one class everywhere: AUC 0.5 in every two-class window
    maj = replay[(replay.model == "majority") & replay.roc_auc.notna()]
    assert np.allclose(maj["roc_auc"], 0.5)


def test_learned_threshold_is_the_validation_max_f1(run, months_dir):
    feb = _features(months_dir, "2020-02")
    proba = predict_positive_proba(run.models[1], feb[list(FeatureSpec().features)], get_backend("cpu"))
    info = next(m for m in run.manifest["models"] if m["name"] == "candidate")
    t = info["threshold"]
    best = f1_score(feb.high_tip, proba > t)
    assert abs(info["threshold_learned"]["f1"] - best) <= TOL
    # no other threshold does better on February (every distinct score tried)
    for cand in np.unique(proba)[::7]:
        assert f1_score(feb.high_tip, proba > cand) <= best + TOL
    row = run.monthly[(run.monthly.model == "candidate") & (run.monthly.month == "2020-03")].iloc[0]
    assert row.threshold == t  # frozen for later months


def test_label_delay_and_floor(run):
    cur = run.replay[(run.replay.model == "current") & run.replay.in_period].reset_index(drop=True)
    # with a 2-day delay, at the end of day d the monitor knows the rows up to day d-2
    for d in range(3, len(cur)):
        assert cur.known_cumulative_n[d] == cur.cumulative_n[d - 2]
        assert abs(cur.known_cumulative_f1[d] - cur.cumulative_f1[d - 2]) <= TOL
    assert cur.known_cumulative_n[0] == 0 and np.isnan(cur.known_cumulative_f1[0])
    summary = run.manifest["replay_summary"]["models"]["current"]
    below = cur[(cur.f1 < 0.6) & (cur.n >= 50)]
    assert summary["windows_below_floor"] == len(below)
    if len(below):
        assert summary["first_below_floor"]["window_start"] == str(below.window_start.iloc[0])
    worst = cur[cur.n >= 50].nsmallest(3, "f1")
    assert [w["f1"] for w in summary["worst_windows"]] == list(worst.f1)


def test_learn_threshold_against_brute_force():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    p = np.round(np.clip(0.4 * y + rng.random(3000) * 0.7, 0, 1), 2)
    vals, inv = np.unique(np.c_[p, y], axis=0, return_inverse=True)
    counts = np.bincount(inv.ravel())
    got = learn_threshold(vals[:, 0], vals[:, 1].astype(int), counts)
    brute = max((f1_score(y, p > t), t) for t in np.unique(p))
    assert abs(got["f1"] - brute[0]) <= TOL
    prec = learn_threshold(vals[:, 0], vals[:, 1].astype(int), counts, how="precision", target=0.8)
    pred = p > prec["threshold"]
    assert (y[pred] == 1).mean() >= 0.8
    lower = [t for t in np.unique(p) if t < prec["threshold"]]
    assert all((y[p > t] == 1).mean() < 0.8 for t in lower)
    # every threshold lets the 0.9 negative through: the best precision is 3/4 (all positive)
    with pytest.raises(ValueError, match=r"no threshold reaches precision 0.9 .*best 0.7500"):
        learn_threshold([0.1, 0.5, 0.9, 0.9], [1, 1, 1, 0], [1, 1, 1, 1], how="precision", target=0.9)


def test_spec_errors_name_the_field(months_dir, tmp_path):
    job = _job(months_dir, tmp_path / "x")
    job["model"] = {"kind": "random_forest"}
    with pytest.raises(rapidseval.SpecError, match="either model or models"):
        rapidseval.run(job)
    job = _job(months_dir, tmp_path / "x", window="Q")
    with pytest.raises(rapidseval.SpecError, match="evaluation.replay.window: unknown window 'Q'"):
        rapidseval.run(job)
    job = _job(months_dir, tmp_path / "x", label_delay="90min")
    with pytest.raises(rapidseval.SpecError, match="whole number of hours"):
        rapidseval.run(job)
    job = _job(months_dir, tmp_path / "x")
    job["models"][2]["kind"] = "xgboost"
    with pytest.raises(rapidseval.SpecError, match="models.2.kind: unknown model kind 'xgboost'; choose one of random_forest"):
        rapidseval.run(job)
