"""MLflow tracking (``output.mlflow``): a real local sqlite:/// store, read back with MlflowClient.

A tiny study and a tiny backtest are logged; what MLflow holds must equal the run directory's
tables exactly (params, tags, metrics with their steps and timestamps, datasets, artifacts).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# MLflow 3 sends usage telemetry unless told not to; a test run has nothing to report
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'rapidseval[mlflow]')")

import rapidseval  # noqa: E402
from rapidseval import RapidsEvalError  # noqa: E402
from rapidseval.checks import check_row, checks_table  # noqa: E402
from rapidseval.core.errors import SpecError  # noqa: E402
from rapidseval.core.time import month_index  # noqa: E402
from rapidseval.io.rundir import check_complete  # noqa: E402
from rapidseval.jobs.checks import load_job  # noqa: E402
from rapidseval.jobs.progress import Reporter  # noqa: E402
from rapidseval.jobs.tracking import MAX_PARAM_VALUE_LENGTH, flat_params, log_run, policies_metrics  # noqa: E402

from _jobs import override  # noqa: E402

# SQLAlchemy 2.1 deprecates the ``noload`` loader strategy that MLflow's sqlite store still uses
# (an SADeprecationWarning from mlflow.store.tracking.sqlalchemy_store): MLflow's, not ours
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning:mlflow.store.tracking.sqlalchemy_store")

MODELS = [{"kind": "random_forest", "name": "forest", "params": {"n_estimators": 5, "max_depth": 4}},
          {"kind": "random_forest", "name": "shallow", "params": {"n_estimators": 3, "max_depth": 2}}]


def _study(out: Path, tracking_uri: str | None, **extra) -> dict:
    job = {
        "name": "tracked", "seed": 1, "backend": "cpu",
        "data": {"source": "synthetic", "start": "2020-01", "end": "2020-03",
                 "synthetic": {"rows_per_month": 3000, "seed": 1}},
        "models": MODELS,
        "evaluation": {"train": ["2020-01"], "test": ["2020-02"], "score": ["2020-03"],
                       "replay": {"months": ["2020-03"], "window": "W"}},
        "cluster": {"kind": "threads", "n_workers": 1},
        "output": {"dir": str(out)},
    }
    if tracking_uri is not None:
        job["output"]["mlflow"] = {"tracking_uri": tracking_uri, "experiment": "studies", "run_name": "tiny study"}
    return override(job, extra)


def _backtest(out: Path, tracking_uri: str, **extra) -> dict:
    job = {
        "name": "tracked-bt", "seed": 1, "backend": "cpu",
        "data": {"source": "synthetic", "start": "2020-01", "end": "2020-04",
                 "synthetic": {"rows_per_month": 3000, "seed": 1}},
        "model": {"params": {"n_estimators": 5, "max_depth": 4}},
        "backtest": {"train_months": 1, "horizon": 2, "metric": "accuracy", "floor": 0.5,
                     "policies": [{"kind": "static"}, {"kind": "periodic", "name": "every2", "params": {"every": 2}}]},
        "cluster": {"kind": "threads", "n_workers": 1},
        "output": {"dir": str(out), "mlflow": {"tracking_uri": tracking_uri, "experiment": "backtests"}},
    }
    return override(job, extra)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def client(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store)


@pytest.fixture(scope="module")
def study(store, client, tmp_path_factory):
    result = rapidseval.run(_study(tmp_path_factory.mktemp("runs") / "study", store))
    experiment = client.get_experiment_by_name("studies")
    (run,) = client.search_runs([experiment.experiment_id])
    return result, run


@pytest.fixture(scope="module")
def backtest(store, client, tmp_path_factory):
    result = rapidseval.run(_backtest(tmp_path_factory.mktemp("runs") / "bt", store))
    experiment = client.get_experiment_by_name("backtests")
    return result, client.search_runs([experiment.experiment_id])


def _history(client, run_id: str, key: str) -> pd.DataFrame:
    rows = [(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key)]
    return pd.DataFrame(rows, columns=["step", "timestamp", "value"]).sort_values("step", ignore_index=True)


def _month_ms(month: str) -> int:
    return int(pd.Timestamp(f"{month}-01", tz="UTC").timestamp() * 1000)


def _numeric(table: pd.DataFrame, keys) -> list[str]:
    return [c for c in table.columns if c not in keys and pd.api.types.is_numeric_dtype(table[c])]


# ---------------------------------------------------------------------------------------
# a study
# ---------------------------------------------------------------------------------------
def test_the_run_is_named_finished_and_its_params_are_the_flattened_job(study):
    result, run = study
    assert run.info.run_name == "tiny study" and run.info.status == "FINISHED"
    params = run.data.params
    assert params == flat_params(result.spec.model_dump(mode="json"))
    assert params["seed"] == "1" and params["data.source"] == "synthetic"
    assert params["evaluation.train"] == '["2020-01"]'
    assert json.loads(params["models"])[1]["params"] == {"n_estimators": 3, "max_depth": 2}
    assert params["output.mlflow.experiment"] == "studies"


def test_tags_name_the_job_hash_commit_backend_and_version(study):
    result, run = study
    tags = run.data.tags
    assert tags["rapidseval.job_hash"] == result.manifest["job_hash"]
    assert tags["rapidseval.backend"] == "cpu" == result.manifest["backend"]
    assert tags["rapidseval.version"] == rapidseval.__version__
    assert tags["rapidseval.job_kind"] == "study"
    assert tags["rapidseval.run_dir"] == str(result.run_dir)
    if result.manifest["git_commit"]:
        assert tags["rapidseval.git_commit"] == tags["mlflow.source.git.commit"] == result.manifest["git_commit"]


def test_metrics_per_month_and_model_equal_monthly_parquet(study, client):
    result, run = study
    monthly = pd.read_parquet(result.run_dir / "monthly.parquet")
    columns = _numeric(monthly, ("model", "month"))
    assert {"f1", "precision", "tp", "n", "roc_auc"} <= set(columns)
    assert sorted(monthly["model"].unique()) == ["forest", "shallow"]
    for model, rows in monthly.groupby("model"):
        rows = rows.assign(step=[month_index(m) for m in rows["month"]]).sort_values("step")
        for column in columns:
            history = _history(client, run.info.run_id, f"monthly.{model}.{column}")
            assert list(history["step"]) == list(rows["step"])
            assert list(history["timestamp"]) == [_month_ms(m) for m in rows["month"]]
            np.testing.assert_array_equal(history["value"].to_numpy(), rows[column].to_numpy(dtype=float))


def test_replay_windows_are_steps_with_their_timestamps(study, client):
    result, run = study
    replay = pd.read_parquet(result.run_dir / "replay.parquet")
    for model, rows in replay.groupby("model"):
        rows = rows.sort_values("window_start")
        assert len(rows) >= 5  # weekly windows over March
        starts_ms = [int(pd.Timestamp(t).tz_localize("UTC").timestamp() * 1000) for t in rows["window_start"]]
        for column in ("f1", "n", "cumulative_f1", "roc_auc"):
            history = _history(client, run.info.run_id, f"replay.{model}.{column}")
            assert list(history["step"]) == list(range(len(rows)))
            assert list(history["timestamp"]) == starts_ms
            np.testing.assert_array_equal(history["value"].to_numpy(), rows[column].to_numpy(dtype=float))


def test_inputs_are_datasets_named_by_month_with_fingerprints_and_roles(study):
    result, run = study
    logged = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    records = {r["month"]: r for r in result.manifest["inputs"]}
    assert set(logged) == set(records) == {"2020-01", "2020-02", "2020-03"}
    for month, record in records.items():
        tags = {t.key: t.value for t in logged[month].tags}
        assert tags["rapidseval.fingerprint"] == record["fingerprint"]
        assert record["fingerprint"].split(":")[1].startswith(logged[month].dataset.digest)
        assert len(logged[month].dataset.digest) == 36
        assert json.loads(logged[month].dataset.source) == {"uri": record["uri"]}
        assert tags["rapidseval.rows"] == str(record["rows"])
    contexts = {m: {t.key: t.value for t in d.tags}["mlflow.data.context"] for m, d in logged.items()}
    # the default shift study compares every month with January
    assert contexts == {"2020-01": "train+shift", "2020-02": "test+shift", "2020-03": "score+replay+shift"}


def test_artifacts_are_the_run_directory_with_the_report(study, client, tmp_path):
    result, run = study
    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    on_disk = {p.name for p in result.run_dir.iterdir()}
    assert listed == on_disk and {"report.html", "monthly.parquet", "manifest.json", "complete.json"} <= listed
    got = Path(client.download_artifacts(run.info.run_id, "monthly.parquet", str(tmp_path)))
    assert got.read_bytes() == (result.run_dir / "monthly.parquet").read_bytes()
    # a sqlite store's artifacts sit beside the database, not in the working directory's ./mlruns
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.endswith("/mlartifacts")
    assert not (Path.cwd() / "mlruns").exists()


def test_a_new_experiment_keeps_its_artifacts_where_artifact_location_says(study, client, tmp_path):
    result, _ = study
    where = tmp_path / "artifacts"
    spec = load_job(result.spec, {"output.mlflow.experiment": "elsewhere",
                                  "output.mlflow.artifact_location": where.as_uri()})
    tracked = log_run(result, spec)
    assert client.get_experiment(tracked.experiment_id).artifact_location == where.as_uri()
    stored = where / tracked.run_id / "artifacts"
    assert {p.name for p in stored.iterdir()} == {p.name for p in result.run_dir.iterdir()}
    assert (stored / "report.html").read_bytes() == (result.run_dir / "report.html").read_bytes()


def test_checks_are_counted_by_status_and_rubric_group(study, client):
    result, _ = study
    rows = [check_row("fare_amount min", "data", "fail", held=False, month="2020-03", value=0.01, threshold=0.0),
            check_row("fare_amount min", "data", "fail", held=True, month="2020-02"),
            check_row("feature auc", "leakage", "fail", held=True),
            check_row("f1 jump", "jumps", "warn", held=False, model="forest"),
            check_row("baseline f1", "baseline", "fail", held=True, model="forest")]
    checked = dataclasses.replace(result, checks=checks_table(rows))
    tracked = log_run(checked, load_job(result.spec, {"output.mlflow.experiment": "checked"}))
    metrics = client.get_run(tracked.run_id).data.metrics
    assert {k: v for k, v in metrics.items() if k.startswith("checks.")} == {
        "checks.pass": 3.0, "checks.warn": 1.0, "checks.fail": 1.0, "checks.total": 5.0,
        "checks.data.pass": 2.0, "checks.data.warn": 0.0, "checks.data.fail": 1.0,
        "checks.model.pass": 1.0, "checks.model.warn": 0.0, "checks.model.fail": 0.0,
        "checks.monitoring.pass": 0.0, "checks.monitoring.warn": 1.0, "checks.monitoring.fail": 0.0}
    assert not checked.failed_checks.empty  # (rapidseval run would exit 3; the tracking is the same)


@pytest.mark.parametrize("where", ["sqlite", "http"])
def test_an_unreachable_store_is_one_line_naming_it_and_the_complete_run_dir(study, tmp_path, monkeypatch, where):
    result, _ = study
    if where == "sqlite":  # a folder when the job is loaded, a file by the time the run is logged
        (tmp_path / "a-file").mkdir()
        bad_uri = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"
    else:  # nothing listens on a port just freed; MLflow's own retry settings, turned down for the test
        from _servers import free_port

        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        bad_uri = f"http://127.0.0.1:{free_port()}"
    spec = load_job(result.spec, {"output.mlflow.tracking_uri": bad_uri})
    if where == "sqlite":
        (tmp_path / "a-file").rmdir()
        (tmp_path / "a-file").write_text("not a directory")
    lines: list[str] = []

    class Lines(Reporter):
        def log(self, message: str) -> None:
            lines.append(message)

    with pytest.raises(RapidsEvalError) as err:
        log_run(result, spec, reporter=Lines())
    # a server is said before MLflow's retries (about four minutes by its defaults) start; a local store is not
    assert lines == ([] if where == "sqlite" else [f"mlflow: logging to {bad_uri} (the run directory is complete; "
                                                   "MLflow retries an unreachable server for minutes: "
                                                   "MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT)"])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"MLflow tracking at {bad_uri} failed")
    assert message.endswith(f"the run directory {result.run_dir} is complete")
    check_complete(result.run_dir)


# ---------------------------------------------------------------------------------------
# a backtest: a parent run and one child per policy
# ---------------------------------------------------------------------------------------
def test_backtest_logs_a_parent_and_one_child_run_per_policy(backtest, client):
    result, runs = backtest
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "tracked-bt" and parent.data.tags["rapidseval.job_kind"] == "backtest"
    assert parent.data.params["backtest.train_months"] == "1"
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {"static", "every2"} == set(result.backtest["policy"])
    assert children["every2"].data.params == {"kind": "periodic", "name": "every2", "params.every": "2"}
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {p.name for p in result.run_dir.iterdir()}
    contexts = {d.dataset.name: {t.key: t.value for t in d.tags}["mlflow.data.context"]
                for d in parent.inputs.dataset_inputs}
    assert contexts == {m: "backtest" for m in ("2020-01", "2020-02", "2020-03", "2020-04")}


def test_backtest_children_metrics_equal_backtest_parquet(backtest, client):
    result, runs = backtest
    table = pd.read_parquet(result.run_dir / "backtest.parquet")
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    columns = _numeric(table, ("policy",))
    assert {"f1", "accuracy", "n", "model_age_months", "below_floor"} <= set(columns)
    for policy, rows in table.groupby("policy"):
        rows = rows.assign(step=[month_index(m) for m in rows["eval_month"]]).sort_values("step")
        for column in columns:
            history = _history(client, children[policy].info.run_id, column)
            assert list(history["step"]) == list(rows["step"])
            assert list(history["timestamp"]) == [_month_ms(m) for m in rows["eval_month"]]
            np.testing.assert_array_equal(history["value"].to_numpy(),
                                          rows[column].to_numpy(dtype=float, na_value=np.nan))


def test_backtest_parent_has_the_policies_summary(backtest):
    result, runs = backtest
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    policies = pd.read_parquet(result.run_dir / "policies.parquet")
    for _, row in policies.iterrows():
        for column in ("mean_f1", "worst_accuracy", "retrains", "months_below_floor"):
            assert parent.data.metrics[f"policies.{row['policy']}.{column}"] == float(row[column])


def test_an_s3_run_directory_is_logged_as_artifacts(s3_bucket, s3_endpoint, store, client, tmp_path):
    bucket, s3 = s3_bucket
    job = _backtest(f"s3://{bucket}/runs/bt", store, **{"output.storage_options": {"endpoint_url": s3_endpoint},
                                                         "output.mlflow.experiment": "s3 backtests"})
    result = rapidseval.run(job)
    experiment = client.get_experiment_by_name("s3 backtests")
    (parent,) = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" not in r.data.tags]
    keys = {o["Key"].rsplit("/", 1)[1] for o in s3.list_objects_v2(Bucket=bucket, Prefix="runs/bt/")["Contents"]}
    assert {"report.html", "backtest.parquet", "complete.json"} <= keys
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == keys
    got = Path(client.download_artifacts(parent.info.run_id, "backtest.parquet", str(tmp_path)))
    assert got.read_bytes() == s3.get_object(Bucket=bucket, Key="runs/bt/backtest.parquet")["Body"].read()
    assert parent.data.tags["rapidseval.run_dir"] == str(result.run_dir) == f"s3://{bucket}/runs/bt"


# ---------------------------------------------------------------------------------------
# configuration, params, and MLflow only when asked
# ---------------------------------------------------------------------------------------
def test_mlflow_is_not_imported_when_not_configured(tmp_path):
    job = json.dumps(_study(tmp_path / "run", None, **{"evaluation.replay": None}))
    code = textwrap.dedent(f"""
        import json, sys
        import rapidseval
        rapidseval.run(json.loads({job!r}))
        print("mlflow imported" if any(m == "mlflow" or m.startswith("mlflow.") for m in sys.modules)
              else "mlflow not imported")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "mlflow not imported"
    assert (tmp_path / "run" / "monthly.parquet").is_file()


def test_a_missing_extra_is_said_before_any_work(monkeypatch, tmp_path, store):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what Python does for a module that cannot be imported
    with pytest.raises(RapidsEvalError, match=r"output.mlflow needs MLflow, which is not installed: "
                                              r"pip install 'rapidseval\[mlflow\]'"):
        rapidseval.run(_study(tmp_path / "never", store))
    assert not (tmp_path / "never").exists()


def test_tracking_uri_refuses_credentials(tmp_path):
    job = _study(tmp_path / "run", "http://user:secret@mlflow.example:5000")
    with pytest.raises(SpecError, match="output.mlflow.tracking_uri.*MLFLOW_TRACKING_USERNAME"):
        load_job(job)


def test_flat_params_keeps_every_value_within_mlflow_limits():
    long_list = list(range(3000))
    params = flat_params({"a": {"b": 1.5, "c": [1, 2], "d": None, "e": True, "f": "x"},
                          "mapping": {"1": "Bronx", "bad key?": "x"}, "empty": {}, "long": long_list,
                          "dotted": {"b.c": 1, "b": {"c": 2}}})
    assert params["a.b"] == "1.5" and params["a.c"] == "[1, 2]" and params["a.d"] == "null"
    assert params["a.e"] == "true" and params["a.f"] == "x" and params["empty"] == "{}"
    # keys MLflow would refuse stay inside one JSON value rather than being renamed
    assert json.loads(params["mapping"]) == {"1": "Bronx", "bad key?": "x"}
    # a key with a dot would make two paths one key (dotted.b.c): the mapping stays one JSON value
    assert json.loads(params["dotted"]) == {"b.c": 1, "b": {"c": 2}} and "dotted.b.c" not in params
    assert len(params["long"]) == MAX_PARAM_VALUE_LENGTH and params["long"].endswith("manifest.json)")
    assert params["long"].startswith(json.dumps(long_list)[:100])


def test_free_text_policy_names_give_distinct_metric_keys_mlflow_accepts(client):
    table = pd.DataFrame({"policy": ["every 2 months!", "every 2 months?", "static"], "mean_f1": [0.5, 0.6, 0.7]})
    metrics = policies_metrics(table)
    want = {"policies.every 2 months_.mean_f1": 0.5, "policies.every 2 months__2.mean_f1": 0.6,
            "policies.static.mean_f1": 0.7}
    assert {m.key: m.value for m in metrics} == want
    run_id = client.create_run(client.create_experiment("policy keys")).info.run_id
    client.log_batch(run_id, metrics=metrics)  # "!" or "?" in a key: MLflow would refuse the batch
    assert client.get_run(run_id).data.metrics == want


def test_a_sqlite_store_in_a_missing_folder_is_said_at_load_not_after_the_run(tmp_path):
    """``validate`` and ``run`` say it before any work: MLflow creates the database file, not its folder."""
    from rapidseval.core.errors import SpecError

    uri = f"sqlite:///{tmp_path / 'no-such-folder' / 'mlflow.db'}"
    with pytest.raises(SpecError) as err:
        load_job(_study(tmp_path / "r", uri))
    message = str(err.value)
    assert "output.mlflow.tracking_uri" in message and "does not exist" in message and "\n" not in message
    load_job(_study(tmp_path / "r", f"sqlite:///{tmp_path / 'mlflow.db'}"))  # an existing folder is fine
