"""Model factory: the job's ``model`` section -> an estimator of the backend.

Models are registered by name; each builder receives the backend, the
user's params and the job seed, and returns an unfitted estimator with the
scikit-learn ``fit`` / ``predict_proba`` interface (scikit-learn on CPU,
cuML on GPU).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .core.errors import DataError, SpecError

__all__ = ["MODELS", "make_model", "fit", "predict_positive_proba"]


def _random_forest(backend, params: dict[str, Any], seed: int):
    params = dict(params)
    params.setdefault("n_estimators", 100)
    params.setdefault("max_depth", 10)
    params.setdefault("random_state", seed)
    if backend.name == "cpu":
        params.setdefault("n_jobs", -1)
    else:
        params.setdefault("n_streams", 1)  # cuML forests are reproducible per seed only with one stream
    return backend.random_forest_classifier(**params)


class MajorityClassifier:
    """Baseline: P(y = 1) is the training positive rate for every row (so it predicts
    the majority class at threshold 0.5).  Works on pandas and cuDF alike."""

    def __init__(self):
        self.positive_rate_ = None

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def fit(self, X, y):
        self.positive_rate_ = float(y.mean())
        return self

    def predict_proba(self, X):
        p = np.full(len(X), self.positive_rate_, dtype="float64")
        return np.stack([1 - p, p], axis=1)


def _majority(backend, params: dict[str, Any], seed: int):
    if params:
        raise TypeError(f"the majority baseline takes no params (got {', '.join(params)})")
    return MajorityClassifier()


def _logistic_regression(backend, params: dict[str, Any], seed: int):
    from sklearn.pipeline import Pipeline

    params = dict(params)
    params.setdefault("max_iter", 1000)
    if backend.name == "cpu":
        params.setdefault("random_state", seed)
    return Pipeline([("scale", backend.standard_scaler()), ("model", backend.logistic_regression(**params))])


MODELS: dict[str, Callable[..., Any]] = {
    "random_forest": _random_forest,
    "logistic_regression": _logistic_regression,
    "majority": _majority,
}


def make_model(backend, kind: str, params: dict[str, Any], seed: int):
    """Build (not fit) the model; a bad parameter name or value is a :class:`SpecError`."""
    try:
        builder = MODELS[kind]
    except KeyError:
        raise SpecError(f"model.kind: unknown model kind {kind!r}; choose one of {', '.join(MODELS)}") from None
    try:
        model = builder(backend, params, seed)
        for est in [model, *(step for _, step in getattr(model, "steps", []))]:
            if hasattr(est, "_validate_params"):  # scikit-learn checks values only at fit otherwise
                est._validate_params()
    except (TypeError, ValueError) as exc:
        raise SpecError(f"model.params: {exc}") from exc
    return model


def fit(model, X, y, backend):
    """Fit on a feature frame and a 0/1 target (int32 labels, as cuML wants)."""
    classes = backend.to_host(y.unique())
    if len(classes) < 2:
        raise DataError(
            f"the training months hold only one class of the target ({list(classes)}); "
            "a classifier needs both — check the training months and the drop rules"
        )
    model.fit(X, y.astype("int32"))
    return model


def predict_positive_proba(model, X, backend):
    """P(y = 1) as a backend array (numpy or cupy)."""
    proba = model.predict_proba(X)
    if hasattr(proba, "iloc"):
        proba = proba.iloc[:, 1]
        return backend.asarray(proba, dtype="float64")
    proba = backend.xp.asarray(proba)
    if proba.ndim == 2:
        proba = proba[:, 1]
    return proba.astype(np.float64)
