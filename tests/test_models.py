import numpy as np
import pandas as pd
import pytest

from rapidseval import DataError, SpecError, get_backend
from rapidseval.io.lineage import redact
from rapidseval.models import fit, make_model


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
