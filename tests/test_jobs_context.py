"""The jobs layer's shared parts: stage timings, the generic feature cache, single-threaded models."""

from __future__ import annotations

import dataclasses
import time

import pandas as pd

from rapidseval import get_backend
from rapidseval.io.feature_cache import ComputedMonth, cache_key, cached_month, read_counts, read_month_features
from rapidseval.jobs.context import JobContext, stopwatch
from rapidseval.jobs.progress import Reporter
from rapidseval.models import make_model, set_threads
from rapidseval.spec import load_job


def test_a_stage_timed_in_pieces_adds_up(tmp_path):
    ctx = JobContext(load_job({"output": {"dir": str(tmp_path / "{name}")}}), Reporter(), get_backend("cpu"))
    for _ in range(2):
        with ctx.timed("train") as clock:
            time.sleep(0.01)
        assert clock.seconds >= 0.01
    with ctx.timed("assemble"):
        pass
    assert list(ctx.timings) == ["train", "assemble"] and ctx.timings["train"] >= 0.02
    with stopwatch() as clock:
        time.sleep(0.01)
    assert clock.seconds >= 0.01


@dataclasses.dataclass
class _Stats:
    rows: int


def test_the_feature_cache_computes_a_month_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return ComputedMonth(pd.DataFrame({"x": [1.0, 2.0]}), pd.DataFrame({"day": [1], "count": [2]}), _Stats(2))

    key = cache_key("fingerprint", "2020-01", "spec-hash")
    assert key.startswith("2020-01-") and key != cache_key("fingerprint", "2020-01", "other-spec")
    first = cached_month("2020-01", key, root=str(tmp_path), compute=compute, stats_type=_Stats)
    again = cached_month("2020-01", key, root=str(tmp_path), compute=compute, stats_type=_Stats)
    assert len(calls) == 1 and not first.hit and again.hit and again.stats == _Stats(2)
    assert read_month_features(again, get_backend("cpu"))["x"].tolist() == [1.0, 2.0]
    assert read_counts(again)["count"].tolist() == [2]


def test_models_scored_inside_workers_run_one_thread_on_cpu():
    backend = get_backend("cpu")
    model = make_model(backend, "random_forest", {"n_estimators": 2}, 0)
    assert model.get_params()["n_jobs"] == -1  # the study fits on every core
    assert set_threads(model, 1) is model and model.get_params()["n_jobs"] == 1  # then scores on one
    assert make_model(backend, "random_forest", {"n_estimators": 2}, 0, n_jobs=1).get_params()["n_jobs"] == 1  # folds
    linear = make_model(backend, "logistic_regression", {}, 0)
    assert set_threads(linear, 1) is linear
