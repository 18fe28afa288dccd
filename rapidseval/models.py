"""Model factory: the job's ``model`` section -> an estimator of the backend.

Models are registered by name; each builder receives the backend, the
user's params and the job seed, and returns an unfitted estimator with the
scikit-learn ``fit`` / ``predict_proba`` interface (scikit-learn on CPU,
cuML on GPU).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import DataError, SpecError

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


MODELS: dict[str, Callable[..., Any]] = {"random_forest": _random_forest}


def make_model(backend, kind: str, params: dict[str, Any], seed: int):
    """Build (not fit) the model; a bad parameter name or value is a :class:`SpecError`."""
    try:
        builder = MODELS[kind]
    except KeyError:
        raise SpecError(f"model.kind: unknown model kind {kind!r}; choose one of {', '.join(MODELS)}") from None
    try:
        model = builder(backend, params, seed)
        if hasattr(model, "_validate_params"):  # scikit-learn checks values only at fit otherwise
            model._validate_params()
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
