import numpy as np
import pandas as pd
import pytest

from rapidseval import DataError, SpecError, get_backend
from rapidseval.io.lineage import redact
from rapidseval.models import fit, make_model, set_threads


def test_bad_model_params_are_spec_errors():
    be = get_backend("cpu")
    with pytest.raises(SpecError, match="model.params: .*bogus"):
        make_model(be, "random_forest", {"bogus": 1}, 0)
    with pytest.raises(SpecError, match="model.params: .*max_depth"):
        make_model(be, "random_forest", {"max_depth": -1}, 0)
    with pytest.raises(SpecError, match="choose one of random_forest"):
        make_model(be, "xgb", {}, 0)


def test_single_class_training_data_is_a_clear_error():
    be = get_backend("cpu")
    model = make_model(be, "random_forest", {"n_estimators": 2}, 0)
    X = pd.DataFrame({"a": np.arange(10, dtype="float32")})
    with pytest.raises(DataError, match="only one class"):
        fit(model, X, pd.Series(np.zeros(10, dtype="int8")), be)


def test_seed_comes_from_the_job():
    m = make_model(get_backend("cpu"), "random_forest", {}, 123)
    assert m.random_state == 123 and m.n_estimators == 100 and m.max_depth == 10


def test_redact_masks_user_info_and_signatures(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    text = "https://alice:hunter2@host/x?sig=abc&X-Amz-Signature=def&month=1 key=s3cr3t-value"
    out = redact(text)
    for secret in ("hunter2", "abc", "def", "s3cr3t-value"):
        assert secret not in out
    assert "month=1" in out


def test_bad_values_fail_at_build_time_without_sklearn_private_checks():
    """The factory fits a copy on a few rows: the estimator's own checks run before any data is read."""
    be = get_backend("cpu")
    with pytest.raises(SpecError, match="model.params: .*criterion"):
        make_model(be, "random_forest", {"criterion": "nope"}, 0)
    with pytest.raises(SpecError, match="model.params: .*'C' parameter"):
        make_model(be, "logistic_regression", {"C": -1.0}, 0)
    model = make_model(be, "random_forest", {"n_estimators": 3, "max_features": 50}, 0)  # more than the probe's 2
    assert not hasattr(model, "estimators_"), "the model itself comes back unfitted"


def test_threads_are_a_factory_argument():
    be = get_backend("cpu")
    assert make_model(be, "random_forest", {"n_estimators": 2}, 0).n_jobs == -1
    assert make_model(be, "random_forest", {"n_estimators": 2, "n_jobs": 2}, 0).n_jobs == 2
    assert make_model(be, "random_forest", {"n_estimators": 2, "n_jobs": 2}, 0, n_jobs=1).n_jobs == 1
    assert make_model(be, "majority", {}, 0, n_jobs=1).get_params() == {}


def test_set_threads_changes_only_models_with_threads():
    be = get_backend("cpu")
    forest = make_model(be, "random_forest", {"n_estimators": 2}, 0)
    assert set_threads(forest, 1) is forest and forest.n_jobs == 1
    pipeline = make_model(be, "logistic_regression", {}, 0)
    assert set_threads(pipeline, 1).get_params() == pipeline.get_params()
