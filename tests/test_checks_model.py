"""The model checks (checks.assertions, checks.leakage, checks.consistency): the exact
single-feature AUC, the assertion set (validated early, never fitted on), a planted leak
caught and named, model files written and read back, and ``rapidseval run`` exiting 3 on a
failed ``fail`` check with a complete run directory."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

import rapidseval
from rapidseval import get_backend
from rapidseval.checks.model import exact_auc, feature_aucs, load_assertions, read_assertion_file
from rapidseval.core.errors import DataError, RapidsEvalError, SpecError
from rapidseval.features import FEATURE_KINDS, FEATURES, FeatureSpec, prepare, required_columns
from rapidseval.io.readers import read_month
from rapidseval.io.rundir import COMPLETE_MARKER, IncompleteRunDir, check_complete
from rapidseval.models import fit, make_model, predict_positive_proba

from _jobs import override

ROWS = 3000
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synthetic")


def _job(cache, out, models=None, **extra):
    job = {
        "name": "model-checks",
        "seed": 3,
        "backend": "cpu",
        "data": {"source": "synthetic", "start": "2020-01", "end": "2020-02",
                 "synthetic": {"rows_per_month": ROWS, "seed": 5, "cache_dir": str(cache)}},
        "model": {"kind": "random_forest", "params": {"n_estimators": 5, "max_depth": 6}, "threshold": 0.5},
        "evaluation": {"train": ["2020-01"], "test": ["2020-02"], "score": [],
                       "replay": None, "shift": None},
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out), "report": False},
    }
    if models is not None:
        job["models"] = models
        del job["model"]
    return override(job, extra)


# ---------------------------------------------------------------------------------------
# the exact AUC
# ---------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=300))
def test_exact_auc_equals_sklearn_with_ties(pairs):
    values = np.array([v for v, _ in pairs], dtype="float64") / 3.0  # few distinct values: many ties
    labels = np.array([y for _, y in pairs], dtype=bool)
    if labels.all() or not labels.any():
        assert np.isnan(exact_auc(values, labels))
        return
    assert abs(exact_auc(values, labels) - roc_auc_score(labels, values)) <= 1e-12


def test_feature_aucs_take_either_direction_on_a_seeded_sample():
    be = get_backend("cpu")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000).astype("int8")
    frame = pd.DataFrame({"up": y + rng.normal(0, 0.5, 5000), "down": -y + rng.normal(0, 0.5, 5000),
                          "noise": rng.normal(size=5000), "high_tip": y})
    full = feature_aucs(frame, ["up", "down", "noise"], "high_tip", be, seed=1)
    assert full["up"] == pytest.approx(roc_auc_score(y, frame["up"]), abs=1e-12)
    assert full["down"] == pytest.approx(1 - roc_auc_score(y, frame["down"]), abs=1e-12)
    assert full["down"] > 0.8 and 0.5 <= full["noise"] < 0.55
    sample = feature_aucs(frame, ["up"], "high_tip", be, seed=1, sample_rows=1000)
    again = feature_aucs(frame, ["up"], "high_tip", be, seed=1, sample_rows=1000)
    take = np.sort(np.random.default_rng(1).choice(5000, size=1000, replace=False))
    assert sample == again
    assert sample["up"] == pytest.approx(roc_auc_score(y[take], frame["up"].to_numpy()[take]), abs=1e-12)


def test_a_leak_through_codes_is_caught_and_codes_of_no_label_are_not():
    """Not every leak is monotone: a zone-like code whose even values are positive has an AUC
    of ~0.5 as a raw score and ~1 as its (out-of-fold) label rate; an ID seen once per row,
    or a code unrelated to the label, stays near 0.5."""
    be = get_backend("cpu")
    rng = np.random.default_rng(5)
    n = 20_000
    code = rng.integers(1, 266, n).astype("float32")
    y = (code % 2 == 0).astype("int8")
    frame = pd.DataFrame({"leaky_code": code, "row_id": np.arange(n, dtype="float64"),
                          "zone": rng.integers(1, 266, n).astype("float32"), "high_tip": y})
    assert abs(roc_auc_score(y, code) - 0.5) < 0.02  # invisible as a raw score
    aucs = feature_aucs(frame, ["leaky_code", "row_id", "zone"], "high_tip", be, seed=3)
    assert aucs["leaky_code"] > 0.99
    assert aucs["row_id"] < 0.55 and aucs["zone"] < 0.55


# ---------------------------------------------------------------------------------------
# the assertion set
# ---------------------------------------------------------------------------------------
def _assertion_rows(n=4) -> pd.DataFrame:
    start = pd.Timestamp("2020-02-10 14:00")
    return pd.DataFrame({
        "pickup_datetime": [start + pd.Timedelta(hours=i) for i in range(n)],
        "dropoff_datetime": [start + pd.Timedelta(hours=i, minutes=12) for i in range(n)],
        "passenger_count": [1.0] * n, "trip_distance": [2.5] * n, "pickup_location_id": [161.0] * n,
        "dropoff_location_id": [236.0] * n, "rate_code_id": [1.0] * n, "fare_amount": [11.5] * n,
        "expected": [1] * n, "note": [f"row {i}" for i in range(n)],
    })


def test_builtin_set_reads_and_its_features_are_the_jobs_own():
    fspec = FeatureSpec()
    aset = load_assertions("builtin:high_tip", fspec)
    raw = read_assertion_file("builtin:high_tip")
    assert 20 <= len(aset) <= 40 and set(np.unique(aset.expected)) == {0, 1}
    assert all(aset.notes) and list(aset.features.columns) == list(fspec.features)
    # the same rows through the job's feature code, one at a time
    be = get_backend("cpu")
    for i in (0, len(raw) - 1):
        row = raw.iloc[[i]].copy()
        row["tip_amount"] = 0.0
        for col in ("pickup_datetime", "dropoff_datetime"):
            row[col] = pd.to_datetime(row[col]).astype("datetime64[us]")
        frame, _ = prepare(row.reset_index(drop=True), fspec, month=str(row["pickup_datetime"].iloc[0])[:7],
                           backend=be)
        np.testing.assert_array_equal(frame[list(fspec.features)].to_numpy(), aset.features.iloc[[i]].to_numpy())


class _ConstantModel:
    """P(y=1) = ``p`` for every row (a forest's vote of 2 trees in 4, or a learned threshold's level)."""

    classes_ = np.array([0, 1])

    def __init__(self, p: float):
        self.p = p

    def predict_proba(self, X):
        return np.column_stack([np.full(len(X), 1 - self.p), np.full(len(X), self.p)])


def test_assertions_predict_as_every_table_does_a_proba_at_the_threshold_is_negative():
    from rapidseval.checks.model import score_assertions
    from rapidseval.replay import window_counts

    aset = load_assertions("builtin:high_tip", FeatureSpec())
    be = get_backend("cpu")
    outcome = score_assertions(aset, _ConstantModel(0.5), 0.5, be, model_name="m")
    assert (outcome.table["predicted"] == 0).all()  # P = threshold: not a positive
    assert list(outcome.table["passed"]) == list(aset.expected == 0)
    # the replay's counts of the same probas: no predicted positive either
    counts = window_counts(np.zeros(len(aset), "int64"), aset.expected, np.full(len(aset), 0.5) > 0.5, window="D")
    assert int(counts["tp"].sum() + counts["fp"].sum()) == int(outcome.table["predicted"].sum()) == 0


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns=["trip_distance"]), "missing column(s) trip_distance needed by trip_distance"),
    (lambda t: t.drop(columns=["expected"]), "missing column(s) expected"),
    (lambda t: t.assign(expected=[1, 2, 0, 1]), "row 1: expected must be 0 or 1"),
    (lambda t: t.assign(fare_amount=[11.5, 11.5, -3.0, 11.5]), "row 2: the drop rule fare_not_positive drops it"),
    (lambda t: t.assign(proba_min=[0.2, 0.9, None, None], proba_max=[0.5, 0.1, None, None]),
     "row 1: proba_min 0.9 is above proba_max 0.1"),
    (lambda t: t.assign(trip_distance=["2.5", "far", "1", "1"]), "row 1: column trip_distance: 'far' is not a number"),
])
def test_bad_assertion_file_is_one_line_naming_file_row_and_rule(tmp_path, change, message):
    path = tmp_path / "set.csv"
    change(_assertion_rows()).to_csv(path, index=False)
    with pytest.raises(DataError) as err:
        load_assertions(str(path), FeatureSpec())
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_assertion_file_fails_before_training(cache, tmp_path):
    missing = tmp_path / "nope.parquet"
    job = _job(cache, tmp_path / "run", **{"checks.assertions": {"path": str(missing)}})
    with pytest.raises(RapidsEvalError, match=f"checks.assertions.path: {missing}: no such file"):
        rapidseval.run(job)
    assert not (tmp_path / "run").exists()


def test_parquet_assertion_file_reads_like_csv(tmp_path):
    rows = _assertion_rows()
    rows.to_csv(tmp_path / "set.csv", index=False)
    rows.to_parquet(tmp_path / "set.parquet", index=False)
    a = load_assertions(str(tmp_path / "set.csv"), FeatureSpec())
    b = load_assertions(str(tmp_path / "set.parquet"), FeatureSpec())
    pd.testing.assert_frame_equal(a.features, b.features)
    assert a.notes == b.notes == [f"row {i}" for i in range(4)]


# ---------------------------------------------------------------------------------------
# a study with every model check
# ---------------------------------------------------------------------------------------
CHECKS = {"assertions": {"path": "builtin:high_tip", "severity": "warn", "max_failures": 40},
          "leakage": {"max_feature_auc": 0.99}, "consistency": {"sample_rows": 500}}
MODELS = [{"name": "primary", "kind": "random_forest", "params": {"n_estimators": 5, "max_depth": 6},
           "threshold": 0.5},
          {"name": "shadow", "kind": "logistic_regression", "params": {}, "threshold": 0.5}]


@pytest.fixture(scope="module")
def checked(cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("checked")
    plain = rapidseval.run(_job(cache, root / "plain", models=MODELS))
    with_checks = rapidseval.run(_job(cache, root / "checks", models=MODELS, checks=CHECKS))
    return plain, with_checks


def test_study_writes_check_rows_per_model_and_kind(checked):
    _, result = checked
    checks = result.checks
    for model in ("primary", "shadow"):
        mine = checks[checks["model"] == model]
        assert set(mine["kind"]) == {"assertions", "leakage", "time_leakage", "consistency"}
        assert len(mine[mine["kind"] == "leakage"]) == len(FeatureSpec().features)
        assert (mine[mine["kind"] == "time_leakage"]["status"] == "pass").all()
        assert (mine[mine["kind"] == "consistency"]["status"] == "pass").all()
        assertion = mine[mine["kind"] == "assertions"].iloc[0]
        assert assertion["value"] <= 40 and assertion["status"] == "pass"
    leak = checks[checks["kind"] == "leakage"]
    assert (leak["value"] < 0.99).all() and (leak["status"] == "pass").all() and (leak["month"] == "2020-01").all()
    assert result.failed_checks.empty


def test_model_files_are_listed_and_reload_to_the_same_scores(checked):
    _, result = checked
    marker = check_complete(result.run_dir)
    assert {"models/primary.pkl", "models/shadow.pkl", "assertions.parquet", "checks.parquet"} <= set(marker["files"])
    aset = load_assertions("builtin:high_tip", FeatureSpec())
    be = get_backend("cpu")
    for i, name in enumerate(("primary", "shadow")):
        reloaded = pickle.loads((result.run_dir / "models" / f"{name}.pkl").read_bytes())
        np.testing.assert_array_equal(predict_positive_proba(reloaded, aset.features, be),
                                      predict_positive_proba(result.models[i], aset.features, be))
    table = pd.read_parquet(result.run_dir / "assertions.parquet")
    assert list(table.columns) == ["row", "model", "month", "expected", "proba", "predicted", "passed", "note"]
    assert not table["passed"].any()
    failures = result.checks.set_index(["kind", "model"]).loc[("assertions", "primary"), "value"]
    assert len(table[table["model"] == "primary"]) == failures


def test_assertion_set_is_never_used_for_training(checked, cache):
    plain, with_checks = checked
    assert [m["train_rows"] for m in plain.manifest["models"]] == [m["train_rows"] for m in with_checks.manifest["models"]]
    pd.testing.assert_frame_equal(plain.monthly, with_checks.monthly, check_exact=True)
    # the training frame, rebuilt: its rows are those of 2020-01 alone, none of the set's
    fspec = FeatureSpec()
    source = next(Path(cache).rglob("yellow_tripdata_2020-01.parquet"))
    train, _ = prepare(read_month(str(source), "2020-01", list(required_columns(fspec))).to_pandas(), fspec,
                       month="2020-01", backend=get_backend("cpu"))
    assert plain.manifest["models"][0]["train_rows"] == len(train)
    aset = load_assertions("builtin:high_tip", fspec)
    seen = set(map(tuple, train[list(fspec.features)].to_numpy().tolist()))
    assert not any(tuple(row) in seen for row in aset.features.to_numpy().tolist())
    be = get_backend("cpu")
    for a, b in zip(plain.models, with_checks.models):
        np.testing.assert_array_equal(predict_positive_proba(a, train[list(fspec.features)], be),
                                      predict_positive_proba(b, train[list(fspec.features)], be))


# ---------------------------------------------------------------------------------------
# leakage
# ---------------------------------------------------------------------------------------
@pytest.fixture
def planted_leak(monkeypatch):
    """A test-only feature copied from the label (tip_amount / fare_amount > 0.2), registered
    for this test and removed after it."""
    feature = type(FEATURES["trip_distance"])(
        ("tip_amount", "fare_amount"), lambda c, xp: (c["tip_amount"] / c["fare_amount"] > 0.2).astype("float64"),
        "the label itself (a planted leak)", "categorical")
    monkeypatch.setitem(FEATURES, "tip_leak", feature)
    monkeypatch.setitem(FEATURE_KINDS, "tip_leak", "categorical")
    return "tip_leak"


def test_planted_leak_is_caught_and_named(cache, tmp_path, planted_leak):
    features = [*FeatureSpec().features, planted_leak]
    result = rapidseval.run(_job(cache, tmp_path / "run", features={"features": features},
                                 checks={"leakage": {"max_feature_auc": 0.99}}))
    failed = result.failed_checks
    assert list(failed["check"]) == ["leakage tip_leak"] and list(failed["kind"]) == ["leakage"]
    assert failed["value"].iloc[0] == 1.0 and "tip_leak: AUC 1.0000" in failed["detail"].iloc[0]
    check_complete(result.run_dir)


def test_time_overlap_is_a_check_row_with_the_severity(cache, tmp_path):
    job = _job(cache, tmp_path / "run", checks={"leakage": {"severity": "warn"}})
    job["evaluation"].update({"train": ["2020-01", "2020-02"], "test": ["2020-02"], "allow_overlap": True})
    result = rapidseval.run(job)
    row = result.checks[result.checks["kind"] == "time_leakage"].iloc[0]
    assert row["status"] == "warn" and row["model"] == "random_forest"
    assert "trains on 2020-02, which overlap or follow its evaluation months 2020-02" in row["detail"]
    assert result.failed_checks.empty


# ---------------------------------------------------------------------------------------
# run directory files
# ---------------------------------------------------------------------------------------
def test_run_dir_lists_files_with_their_hash_and_refuses_bad_paths(cache, tmp_path):
    from rapidseval.io.rundir import write_run_dir
    from rapidseval.jobs.checks import load_job

    spec = load_job(_job(cache, tmp_path / "run"))
    table = pd.DataFrame({"a": [1]})
    run_dir = write_run_dir(spec, {"rapidseval_manifest": 1}, {"t": table}, files={"models/m.pkl": b"abc"})
    marker = check_complete(run_dir)
    assert marker["files"]["models/m.pkl"]["bytes"] == 3
    write_run_dir(spec, {"rapidseval_manifest": 1}, {"t": table}, files={"models/m.pkl": b"abcd"})  # replaces its own
    (run_dir / "models" / "m.pkl").write_bytes(b"abce")
    with pytest.raises(IncompleteRunDir, match="models/m.pkl differs"):
        check_complete(run_dir)
    for bad in ("../x.pkl", "models/../../x", "/abs.pkl", "models/.hidden"):
        with pytest.raises(SpecError, match="not a plain file name"):
            write_run_dir(spec, {}, {}, files={bad: b""})


def test_s3_run_dir_uploads_the_files_listed_in_its_marker(cache, tmp_path, s3_bucket, s3_endpoint):
    import json

    from rapidseval.io.rundir import write_run_dir
    from rapidseval.jobs.checks import load_job

    bucket, client = s3_bucket
    job = _job(cache, f"s3://{bucket}/runs/{{name}}", **{"output.storage_options": {"endpoint_url": s3_endpoint}})
    write_run_dir(load_job(job), {"rapidseval_manifest": 1}, {"t": pd.DataFrame({"a": [1]})},
                  files={"models/m.pkl": b"model bytes"})
    prefix = "runs/model-checks/"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert keys == {prefix + n for n in ("t.parquet", "manifest.json", "models/m.pkl", COMPLETE_MARKER)}
    assert client.get_object(Bucket=bucket, Key=prefix + "models/m.pkl")["Body"].read() == b"model bytes"
    marker = json.loads(client.get_object(Bucket=bucket, Key=prefix + COMPLETE_MARKER)["Body"].read())
    assert marker["complete"] is True and marker["files"]["models/m.pkl"]["bytes"] == len(b"model bytes")


def test_a_file_of_someone_else_inside_the_models_folder_is_never_replaced(cache, tmp_path):
    from rapidseval.io.rundir import write_run_dir
    from rapidseval.jobs.checks import load_job

    spec = load_job(_job(cache, tmp_path / "run"))
    run_dir = write_run_dir(spec, {"rapidseval_manifest": 1}, {"t": pd.DataFrame({"a": [1]})},
                            files={"models/m.pkl": b"abc"})
    (run_dir / "models" / "notes.txt").write_text("mine")
    with pytest.raises(RapidsEvalError, match="did not write: models/notes.txt"):
        write_run_dir(spec, {"rapidseval_manifest": 1}, {"t": pd.DataFrame({"a": [2]})})
    assert (run_dir / "models" / "notes.txt").read_text() == "mine"
    (run_dir / "models" / "notes.txt").unlink()
    (run_dir / "models" / "sub").mkdir()
    with pytest.raises(RapidsEvalError, match="did not write: models/sub"):
        write_run_dir(spec, {"rapidseval_manifest": 1}, {"t": pd.DataFrame({"a": [2]})})


def test_s3_run_dir_rewritten_without_its_model_files_drops_them_and_stays_ours(cache, tmp_path, s3_bucket,
                                                                              s3_endpoint):
    from rapidseval.io.rundir import write_run_dir
    from rapidseval.jobs.checks import load_job

    bucket, client = s3_bucket
    job = _job(cache, f"s3://{bucket}/again/{{name}}", **{"output.storage_options": {"endpoint_url": s3_endpoint}})
    spec = load_job(job)
    table = pd.DataFrame({"a": [1]})
    write_run_dir(spec, {"rapidseval_manifest": 1}, {"t": table}, files={"models/m.pkl": b"model bytes"})
    write_run_dir(spec, {"rapidseval_manifest": 1}, {"t": table})  # consistency off: no model file now
    prefix = "again/model-checks/"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert keys == {prefix + n for n in ("t.parquet", "manifest.json", COMPLETE_MARKER)}
    write_run_dir(spec, {"rapidseval_manifest": 1}, {"t": table})  # still a run directory rapidseval wrote
    client.put_object(Bucket=bucket, Key=prefix + "models/theirs.bin", Body=b"x")
    with pytest.raises(RapidsEvalError, match="did not write: models"):
        write_run_dir(spec, {"rapidseval_manifest": 1}, {"t": table}, files={"models/m.pkl": b"model bytes"})


# ---------------------------------------------------------------------------------------
# exit code 3
# ---------------------------------------------------------------------------------------
def _cli(cache, tmp_path, severity, tracking_uri=None, env=None):
    impossible = _assertion_rows(2).assign(proba_min=[1.0, 1.0], proba_max=[1.0, 1.0])  # a forest never says 1.0 here
    path = tmp_path / f"impossible-{severity}.csv"
    impossible.to_csv(path, index=False)
    out = tmp_path / f"run-{severity}"
    job = _job(cache, out, checks={"assertions": {"path": str(path), "severity": severity}})
    if tracking_uri is not None:
        job["output"]["mlflow"] = {"tracking_uri": tracking_uri}
    job_path = tmp_path / f"job-{severity}.yaml"
    job_path.write_text(yaml.safe_dump(job))
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    res = subprocess.run([sys.executable, "-m", "rapidseval", "run", str(job_path)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    return res, out


def test_failed_fail_check_exits_3_with_a_complete_run_dir(cache, tmp_path):
    res, out = _cli(cache, tmp_path, "fail")
    assert res.returncode == 3, res.stderr
    assert "checks failed: 1 fail result(s) (assertions " in res.stderr and "(exit code 3)" in res.stderr
    check_complete(out)
    table = pd.read_parquet(out / "checks.parquet")
    assert list(table["status"]) == ["fail"] and list(table["value"]) == [2.0]


def test_warn_only_failure_exits_0(cache, tmp_path):
    res, out = _cli(cache, tmp_path, "warn")
    assert res.returncode == 0, res.stderr
    assert "checks failed" not in res.stderr
    check_complete(out)
    assert list(pd.read_parquet(out / "checks.parquet")["status"]) == ["warn"]


# ---------------------------------------------------------------------------------------
# a backtest: the checks of every fold, in the fold task
# ---------------------------------------------------------------------------------------
def test_backtest_runs_the_model_checks_per_fold(cache, tmp_path):
    job = _job(cache, tmp_path / "bt", checks=CHECKS)
    del job["evaluation"]
    job["data"]["end"] = "2020-04"
    job["backtest"] = {"train_months": 1, "horizon": 1, "metric": "accuracy", "cache_dir": str(tmp_path / "features"),
                       "policies": [{"kind": "static"}]}
    result = rapidseval.run(job)
    checks = result.checks
    origins = sorted(result.models["origin"]) if "origin" in result.models else None
    months = sorted(set(checks["month"]))
    assert origins is None or months == sorted(origins)
    for month in months:
        fold = checks[checks["month"] == month]
        assert set(fold["kind"]) == {"assertions", "leakage", "time_leakage", "consistency"}
        assert (fold[fold["kind"].isin(["time_leakage", "consistency"])]["status"] == "pass").all()
        assert len(fold[fold["kind"] == "leakage"]) == len(FeatureSpec().features)
    assert (checks["model"] == "random_forest").all()
    marker = check_complete(result.run_dir)
    assert {"checks.parquet", "assertions.parquet"} <= set(marker["files"])
    failing = pd.read_parquet(result.run_dir / "assertions.parquet")
    per_fold = checks[checks["kind"] == "assertions"].set_index("month")["value"]
    assert failing.groupby("month").size().reindex(per_fold.index, fill_value=0).tolist() == per_fold.tolist()


def test_fold_checks_survive_the_fold_marker_json(cache):
    """What a fold keeps in its marker reads back as the same check rows and failing rows
    (a resumed backtest takes them from there)."""
    import json

    from rapidseval.checks import checks_table
    from rapidseval.jobs.check_model import fold_check_tables, fold_checks
    from rapidseval.jobs.checks import load_job

    spec = load_job(_job(cache, "/tmp/unused", checks=CHECKS))
    checks = fold_checks(spec, FeatureSpec())
    rng = np.random.default_rng(0)
    train = pd.DataFrame({f: rng.normal(size=400).astype("float32") for f in FeatureSpec().features})
    train["high_tip"] = rng.integers(0, 2, 400).astype("int8")
    be = get_backend("cpu")
    model = fit(make_model(be, "random_forest", {"n_estimators": 3, "max_depth": 3}, 0),
                train[list(FeatureSpec().features)], train["high_tip"], be)
    made = checks.run(model, pickle.dumps(model), train, 0.5, be, origin="2020-03")
    record = json.loads(json.dumps({"origin": "2020-03", "checks": made}))
    tables = fold_check_tables([record], checks)
    direct = checks_table(made["rows"])
    pd.testing.assert_frame_equal(tables["checks"], direct)
    assert record["checks"]["key"] == checks.key and (direct["month"] == "2020-03").all()
    assert len(tables["assertions"]) == int(direct.set_index("kind").loc["assertions", "value"])


def test_an_edited_assertion_file_changes_the_fold_checks_key(cache, tmp_path):
    """A resumed backtest keeps a fold's outcomes only while its assertion set is the same:
    the same path with other rows is another key (the fold is scored again)."""
    import dataclasses

    from rapidseval.jobs.check_model import fold_checks
    from rapidseval.jobs.checks import load_job

    path = tmp_path / "set.csv"
    _assertion_rows().to_csv(path, index=False)
    spec = load_job(_job(cache, "/tmp/unused", checks={"assertions": {"path": str(path)}}))
    before = fold_checks(spec, FeatureSpec())
    assert fold_checks(spec, FeatureSpec()).key == before.key  # the same file: the same key
    _assertion_rows().assign(expected=[0, 1, 1, 1]).to_csv(path, index=False)
    after = fold_checks(spec, FeatureSpec())
    assert after.key != before.key
    moved = dataclasses.replace(after.assertion_set, proba_min=after.assertion_set.proba_min + 0.0)
    assert moved.fingerprint() == after.assertion_set.fingerprint()


# ---------------------------------------------------------------------------------------
# the GPU (skipped without cuDF, cuML and a GPU)
# ---------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.rapids
def test_gpu_study_model_checks_reload_exactly_and_compare_with_the_cpu_twin(cache, tmp_path):
    pytest.importorskip("cudf")
    pytest.importorskip("cuml")
    from rapidseval.backend import gpu_available

    ok, why = gpu_available()
    if not ok:
        pytest.skip(why)
    job = _job(cache, tmp_path / "gpu", checks=CHECKS, backend="gpu", **{"cluster.kind": "local",
                                                                          "cluster.n_workers": 1})
    result = rapidseval.run(job)
    checks = result.checks
    reload = checks[checks["check"] == "consistency reload"]
    assert (reload["status"] == "pass").all() and (reload["value"] == 0).all()
    twin = checks[checks["check"] == "consistency gpu-cpu"]
    assert len(twin) == 1 and twin["status"].iloc[0] == "pass"  # within the tolerance, or "not compared: ..."
    cpu_leak = rapidseval.run(_job(cache, tmp_path / "cpu", checks=CHECKS)).checks
    gpu_auc = checks[checks["kind"] == "leakage"].set_index("check")["value"]
    cpu_auc = cpu_leak[cpu_leak["kind"] == "leakage"].set_index("check")["value"]
    pd.testing.assert_series_equal(gpu_auc.sort_index(), cpu_auc.sort_index(), rtol=0, atol=1e-12)  # same rows, exact


@pytest.mark.parametrize("severity, code", [("fail", 3), ("warn", 2)])
def test_a_failed_tracking_keeps_the_summary_and_the_checks_verdict(cache, tmp_path, severity, code):
    """MLflow failing after a complete run is an error line, not the end of the story: the
    summary is printed, and failed fail checks still exit 3 (a CI gate on 3 must not miss them
    because the tracking store was down); otherwise the tracking failure exits 2."""
    pytest.importorskip("mlflow")
    from _servers import free_port

    # nothing listens on a port just freed; MLflow's retries turned down (by default it waits minutes)
    res, out = _cli(cache, tmp_path, severity, tracking_uri=f"http://127.0.0.1:{free_port()}",
                    env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
                         "MLFLOW_DISABLE_TELEMETRY": "true"})
    assert res.returncode == code, res.stderr
    assert "error: MLflow tracking at http://127.0.0.1:" in res.stderr
    assert ("checks failed: 1 fail result(s)" in res.stderr) == (severity == "fail")
    assert "checks: " in res.stdout and str(out) in res.stdout  # the summary, read back from the run directory
    check_complete(out)

