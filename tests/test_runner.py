"""The study job end to end on small generated months: exactness, determinism,
schedulers, sources (local, S3 on a moto server, HTTP), row accounting, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import f1_score

import rapidseval
from rapidseval import RapidsEvalError, SchemaError, SourceError, get_backend
from rapidseval.io.readers import read_month
from rapidseval.data.synthetic import generate
from rapidseval.features import FeatureSpec, prepare, required_columns
from rapidseval.models import predict_positive_proba

from _jobs import override
from _servers import DUMMY_SECRET

ROWS = 12_000
MONTHS = ("2020-01", "2020-03")


@pytest.fixture(scope="module")
def months_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tlc")
    generate(out, *MONTHS, ROWS, scenario="march2020", seed=7)
    return out


def _job(source, out, **extra):
    job = {
        "name": "e2e",
        "seed": 3,
        "backend": "cpu",
        "data": {"source": str(source), "start": MONTHS[0], "end": MONTHS[1], "partition_rows": 10_000},
        "model": {"kind": "random_forest", "params": {"n_estimators": 15, "max_depth": 8}},
        "evaluation": {
            "train": ["2020-01"], "test": ["2020-02"], "score": ["2020-03"],
            "replay": {"months": ["2020-03"], "window": "D"},
            # KS on every feature, as the study ran it (the categorical defaults have none)
            "shift": {"reference": "2020-01", "compare": ["2020-02", "2020-03"], "calendar": "none",
                      "per_feature": {f: ["ks", "cramers_v", "tvd", "missing_rate"] for f in
                                      ("pickup_weekday", "work_hours", "PULocationID", "DOLocationID", "RatecodeID")}},
        },
        "cluster": {"kind": "threads", "n_workers": 2},
        "output": {"dir": str(out)},
    }
    return override(job, extra)


@pytest.fixture(scope="module")
def local_run(months_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "local"
    return rapidseval.run(_job(months_dir / "yellow_tripdata_{month}.parquet", out))


def _tables(result):
    return result.monthly, result.replay, result.shift


def _assert_same_tables(a, b):
    for x, y in zip(_tables(a), _tables(b)):
        pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True), check_exact=True)


def _month_features(months_dir, month):
    be = get_backend("cpu")
    spec = FeatureSpec()
    table = read_month(str(months_dir / f"yellow_tripdata_{month}.parquet"), month, list(required_columns(spec)))
    return prepare(table.to_pandas(), spec, month=month, backend=be)


def test_run_directory_is_complete(local_run):
    d = local_run.run_dir
    for name in ("manifest.json", "monthly.parquet", "replay.parquet", "shift.parquet", "report.html"):
        assert (d / name).exists(), name
    man = json.loads((d / "manifest.json").read_text())
    assert man["complete"] and man["backend"] == "cpu" and man["seed"] == 3
    assert len(man["job_hash"]) == 64 and man["packages"]["pandas"]
    assert {i["month"] for i in man["inputs"]} == {"2020-01", "2020-02", "2020-03"}
    for i in man["inputs"]:
        assert i["bytes"] > 0 and i["rows"] > 0 and i["fingerprint"]
    for month, acc in man["rows"]["by_month"].items():
        assert acc["rows_read"] == acc["rows_used"] + sum(acc["dropped_by_rule"].values())
    assert set(man["timings_s"]) >= {"train", "score_reduce", "total"}
    html = (d / "report.html").read_text()
    assert "<img" in html and "http://" not in html and "https://" not in html


def test_the_result_is_the_study_kind_with_its_tables_by_name(local_run):
    assert isinstance(local_run, rapidseval.StudyResult) and local_run.model is local_run.models[0]
    assert local_run.to_df() is local_run.monthly and local_run.to_df("shift") is local_run.shift
    with pytest.raises(KeyError, match="no table 'backtest'; its tables: monthly, replay, shift, attribution, explain"):
        local_run.to_df("backtest")
    html = local_run._repr_html_()
    assert "StudyResult: e2e" in html and str(local_run.run_dir) in html
    assert all(f"<code>{name}</code>" in html for name in local_run.TABLES)
    assert local_run.monthly.head().to_html(index=False, max_cols=12) in html


def test_a_backtest_result_names_its_own_tables(tmp_path):
    from rapidseval.spec import load_job

    spec = load_job(_job(tmp_path / "unused_{month}.parquet", tmp_path / "run"))
    result = rapidseval.BacktestResult(spec, tmp_path / "run", {}, policies=pd.DataFrame({"policy": ["static"]}))
    assert result.to_df("policies")["policy"].tolist() == ["static"] and result.to_df().empty  # backtest
    with pytest.raises(KeyError, match="its tables: backtest, staleness, policies, models"):
        result.to_df("monthly")
    assert "<code>policies</code> (1 × 1)" in result._repr_html_()
    # one line in a terminal, not the dataclass repr of the spec, manifest and tables (~18k characters)
    assert repr(result) == (f"<BacktestResult {spec.name!r}: {tmp_path / 'run'}; "
                            "tables backtest 0×0, staleness 0×0, policies 1×1, models 0×0, checks 0×0>")


def test_in_memory_backtest_tables_give_the_main_table_without_a_name():
    from rapidseval.backtest import BacktestTables

    frames = {name: pd.DataFrame({name: [1]}) for name in ("backtest", "staleness", "policies", "models")}
    tables = BacktestTables(**frames)
    assert tables.to_df() is tables.to_df(None) is frames["backtest"]  # as a job result's to_df()
    assert repr(tables) == "<BacktestTables: backtest 1×1, staleness 1×1, policies 1×1, models 1×1, daily 0×0>"


def test_monthly_and_daily_f1_equal_sklearn_on_the_same_rows(local_run, months_dir):
    model = local_run.model
    for month in ("2020-01", "2020-02", "2020-03"):
        frame, st = _month_features(months_dir, month)
        pred = predict_positive_proba(model, frame[list(FeatureSpec().features)], get_backend("cpu")) > 0.5
        row = local_run.monthly.set_index("month").loc[month]
        assert row.n == len(frame) == st.rows_used
        assert abs(row.f1 - f1_score(frame.high_tip, pred)) <= 1e-12
        if month == "2020-03":
            day = frame.dropoff_datetime.dt.floor("D")
            replay = local_run.replay
            assert replay["n"].sum() == len(frame)  # daily counts sum to the month's rows used
            for r in replay.itertuples():
                sel = (day == r.window_start).to_numpy()
                assert r.n == sel.sum()
                if r.n:
                    assert abs(r.f1 - f1_score(frame.high_tip[sel], pred[sel], zero_division=0)) <= 1e-12
            march = replay[replay.window_start < pd.Timestamp("2020-04-01")]
            assert len(march) == 31
            assert abs(replay.cumulative_f1.iloc[-1] - row.f1) <= 1e-12


def test_shift_equals_scipy(local_run, months_dir):
    jan, _ = _month_features(months_dir, "2020-01")
    for month in ("2020-02", "2020-03"):
        other, _ = _month_features(months_dir, month)
        rows = local_run.shift[(local_run.shift.window == month) & (local_run.shift.statistic == "ks")].set_index("feature")
        assert len(rows) == 11
        for feat, r in rows.iterrows():
            ref = stats.ks_2samp(jan[feat].to_numpy(), other[feat].to_numpy())
            assert abs(r.value - ref.statistic) <= 1e-12, feat
            assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300), feat


def test_alarms_are_explained_from_the_same_rows(local_run, months_dir):
    """explain.parquet: written and listed as complete; per alarmed (month, feature), category shares,
    percentiles (inverted CDF) and the effect equal pandas / NumPy / scipy on the prepared rows."""
    d = local_run.run_dir
    assert "explain.parquet" in json.loads((d / "complete.json").read_text())["files"]
    ex = pd.read_parquet(d / "explain.parquet")
    pd.testing.assert_frame_equal(ex, local_run.explain, check_exact=True)
    assert not ex.empty and set(ex["window"]) <= {"2020-02", "2020-03"}
    jan, _ = _month_features(months_dir, "2020-01")
    for (month, feat), rows in ex.groupby(["window", "feature"]):
        cur, _ = _month_features(months_dir, month)
        a, b = jan[feat].to_numpy("float64"), cur[feat].to_numpy("float64")
        kind = rows["kind"].iloc[0]
        if kind == "categorical":
            p, q = pd.Series(a).value_counts(normalize=True), pd.Series(b).value_counts(normalize=True)
            assert abs(rows["effect"].iloc[0] - 0.5 * p.sub(q, fill_value=0).abs().sum()) <= 1e-12, feat
            for r in rows.itertuples():
                assert abs(r.reference_value - p.get(r.category, 0.0)) <= 1e-12
                assert abs(r.window_value - q.get(r.category, 0.0)) <= 1e-12
        else:
            assert abs(rows["effect"].iloc[0] - stats.ks_2samp(a, b).statistic) <= 1e-12, feat
            med = rows.set_index("item").loc["p50"]
            assert med.reference_value == np.quantile(a[a != -1], 0.5, method="inverted_cdf")
            assert med.window_value == np.quantile(b[b != -1], 0.5, method="inverted_cdf")
    assert "What moved" in (d / "report.html").read_text()


def test_same_seed_same_tables(local_run, months_dir, tmp_path):
    again = rapidseval.run(_job(months_dir / "yellow_tripdata_{month}.parquet", tmp_path / "again"))
    _assert_same_tables(local_run, again)


def test_local_cluster_processes_equal_threads(local_run, months_dir, tmp_path):
    dist = rapidseval.run(_job(months_dir / "yellow_tripdata_{month}.parquet", tmp_path / "dist",
                               **{"cluster.kind": "local", "cluster.n_workers": 2}))
    assert dist.manifest["cluster"]["kind"] == "local"
    assert dist.manifest["cluster_started"].startswith("LocalCluster: 2 worker processes")  # what really ran
    _assert_same_tables(local_run, dist)


def test_s3_source_gives_the_same_tables(local_run, months_dir, s3_bucket, s3_endpoint, tmp_path):
    bucket, client = s3_bucket
    for f in sorted(months_dir.glob("*.parquet")):
        client.upload_file(str(f), bucket, f"trips/{f.name}")
    res = rapidseval.run(_job(f"s3://{bucket}/trips/yellow_tripdata_{{month}}.parquet", tmp_path / "s3",
                              **{"data.storage_options": {"endpoint_url": s3_endpoint}}))
    _assert_same_tables(local_run, res)
    assert DUMMY_SECRET not in (res.run_dir / "manifest.json").read_text()


def test_s3_missing_key_and_bucket(months_dir, s3_bucket, s3_endpoint, tmp_path):
    bucket, _ = s3_bucket
    opts = {"data.storage_options": {"endpoint_url": s3_endpoint}}
    with pytest.raises(SourceError, match=r"2020-01.*yellow_tripdata_2020-01.parquet") as err:
        rapidseval.run(_job(f"s3://{bucket}/nothing/yellow_tripdata_{{month}}.parquet", tmp_path / "x", **opts))
    assert DUMMY_SECRET not in str(err.value)
    with pytest.raises(SourceError, match=r"no-such-bucket"):
        rapidseval.run(_job("s3://no-such-bucket-rapidseval/yellow_tripdata_{month}.parquet", tmp_path / "y", **opts))


def test_http_source_gives_the_same_tables(local_run, months_dir, http_server, tmp_path):
    for f in months_dir.glob("*.parquet"):
        shutil.copy(f, http_server.root / f.name)
    res = rapidseval.run(_job(http_server.url + "/yellow_tripdata_{month}.parquet", tmp_path / "http",
                              **{"data.cache_dir": str(tmp_path / "cache")}))
    _assert_same_tables(local_run, res)
    gets = http_server.requests.count("GET")
    rapidseval.run(_job(http_server.url + "/yellow_tripdata_{month}.parquet", tmp_path / "http2",
                        **{"data.cache_dir": str(tmp_path / "cache")}))
    assert http_server.requests.count("GET") == gets  # the re-run downloaded nothing


def test_csv_and_parquet_give_the_same_tables(local_run, tmp_path):
    csv_dir = tmp_path / "csv"
    generate(csv_dir, *MONTHS, ROWS, scenario="march2020", seed=7, fmt="csv")
    res = rapidseval.run(_job(csv_dir / "yellow_tripdata_{month}.csv", tmp_path / "csvrun"))
    _assert_same_tables(local_run, res)


def test_schema_change_month_fails_naming_file_and_column(tmp_path):
    d = tmp_path / "sc"
    generate(d, *MONTHS, 3000, scenario="schema_change", seed=1, scenario_month="2020-02")
    with pytest.raises(SchemaError, match=r"yellow_tripdata_2020-02.parquet.*2020-02.*fare_amount"):
        rapidseval.run(_job(d / "yellow_tripdata_{month}.parquet", tmp_path / "out"))


def test_missing_local_month_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match=r"2020-01.*nowhere"):
        rapidseval.run(_job(tmp_path / "nowhere" / "yellow_tripdata_{month}.parquet", tmp_path / "out"))


def test_unreachable_scheduler_fails_fast(months_dir, tmp_path):
    with pytest.raises(RapidsEvalError, match="cannot reach Dask scheduler"):
        rapidseval.run(_job(months_dir / "yellow_tripdata_{month}.parquet", tmp_path / "o",
                            **{"cluster.timeout": 2}), scheduler="tcp://127.0.0.1:1")


def test_weekly_windows_overlapping_the_period_are_in_period(months_dir, tmp_path):
    res = rapidseval.run(_job(months_dir / "yellow_tripdata_{month}.parquet", tmp_path / "w",
                              **{"evaluation.replay": {"months": ["2020-03"], "window": "W"}}))
    r = res.replay
    first = r.iloc[0]
    assert str(first.window_start)[:10] == "2020-02-24" and first.in_period and first.n > 0
    assert r.loc[r.in_period, "n"].sum() == res.monthly.set_index("month").loc["2020-03", "n"]


def test_out_refuses_to_replace_a_directory_that_is_not_a_run(months_dir, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(RapidsEvalError, match="not a run directory"):
        rapidseval.run(_job(months_dir / "yellow_tripdata_{month}.parquet", precious))
    assert (precious / "notes.txt").read_text() == "keep me"


def test_bad_model_params_fail_before_reading(months_dir, tmp_path):
    with pytest.raises(rapidseval.SpecError, match="model.params"):
        rapidseval.run(_job(months_dir / "yellow_tripdata_{month}.parquet", tmp_path / "p",
                            **{"model.params": {"bogus": 1}}))
