"""checks.baseline and checks.jumps: the baseline model scored beside the primary, its check
rows per month and replay window; jumps between consecutive windows, with a planted step
change found in the right window and direction and a measured false-jump rate on quiet
streams; the same checks per fold and month in a backtest."""

from __future__ import annotations

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
    # every model: at least one row (a pass row when no pair jumped)
    assert set(jumps["model"]) == {"random_forest", "baseline_logistic_regression"}
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
