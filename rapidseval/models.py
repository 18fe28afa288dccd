"""Model factory: the job's ``model`` section -> an estimator of the backend.

Models are registered by name; each builder receives the backend, the
user's params, the job seed and the CPU threads the model may use, and returns
an unfitted estimator with the scikit-learn ``fit`` / ``predict_proba``
interface (scikit-learn on CPU, cuML on GPU).
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Callable

import numpy as np

from .core.errors import DataError, SpecError

__all__ = ["MODELS", "ALL_CORES", "make_model", "set_threads", "fit", "positive_proba", "predict_positive_proba"]

#: ``n_jobs`` for a model that may use every core (scikit-learn's -1)
ALL_CORES = -1


def _random_forest(backend, params: dict[str, Any], seed: int, *, n_jobs: int | None):
    params = dict(params)
    params.setdefault("n_estimators", 100)
    params.setdefault("max_depth", 10)
    params.setdefault("random_state", seed)
    if backend.name == "cpu":
        if n_jobs is None:
            params.setdefault("n_jobs", ALL_CORES)
        else:
            params["n_jobs"] = n_jobs
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


def _majority(backend, params: dict[str, Any], seed: int, *, n_jobs: int | None):
    if params:
        raise TypeError(f"the majority baseline takes no params (got {', '.join(params)})")
    return MajorityClassifier()


def _logistic_regression(backend, params: dict[str, Any], seed: int, *, n_jobs: int | None):
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


def make_model(backend, kind: str, params: dict[str, Any], seed: int, *, n_jobs: int | None = None):
    """Build (not fit) the model; a bad parameter name or value is a :class:`SpecError`.

    Parameters
    ----------
    backend : Backend
        Where the model runs (scikit-learn on "cpu", cuML on "gpu").
    kind : str
        A name of :data:`MODELS`.
    params : dict
        The job's ``model.params``, passed to the estimator.
    seed : int
        The job's seed (the estimator's ``random_state`` unless ``params`` give one).
    n_jobs : int, optional
        CPU threads of a model that has them (the random forest), for fitting and scoring:
        1 for a model fitted inside a worker; by default ``params``' ``n_jobs``, else every core.

    Raises
    ------
    SpecError
        An unknown kind, or a parameter the estimator refuses: its name, or (on the CPU
        backend, where a copy is fitted on a few rows) its value; cuML checks values when fitting.
    """
    try:
        builder = MODELS[kind]
    except KeyError:
        raise SpecError(f"model.kind: unknown model kind {kind!r}; choose one of {', '.join(MODELS)}") from None
    try:
        model = builder(backend, params, seed, n_jobs=n_jobs)
        probe_key = json.dumps([kind, params, seed, n_jobs], sort_keys=True, default=repr)
        if backend.name == "cpu" and probe_key not in _PASSED_PROBES:
            _check_params_by_fitting(model)
            _PASSED_PROBES.add(probe_key)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"model.params: {exc}") from exc
    return model


#: the (kind, params, seed, n_jobs) whose probe fit passed in this process: a backtest builds
#: the same model for every fold, and its values were checked before any data was read
_PASSED_PROBES: set[str] = set()
#: the probe data of :func:`_check_params_by_fitting`: 8 rows, 2 features, both classes
_PROBE_X = np.array([[0, 0], [1, 0], [0, 1], [1, 1], [2, 0], [0, 2], [2, 2], [3, 1]], dtype="float32")
_PROBE_Y = np.array([0, 1] * 4, dtype="int32")


def _check_params_by_fitting(model) -> None:
    """Fit a copy of the model on 8 rows, so that a bad parameter value fails now,
    before any data is read: scikit-learn checks its parameters' values (against each
    estimator's declared constraints) only when fitting.  The copy has the user's
    values, unaltered; on 8 rows even the default forest fits in a fraction of a second."""
    from sklearn.base import clone

    probe = clone(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a linear model that has not converged on 8 rows
        probe.fit(_PROBE_X, _PROBE_Y)


def set_threads(model, n_jobs: int):
    """Set the CPU threads a fitted model scores with (a model with no ``n_jobs`` is left as is).

    The study fits its forests on every core, in the main process, then scores them
    inside worker threads, one each: a forest that spawned its own threads there would
    oversubscribe the cores.
    """
    if "n_jobs" in model.get_params():
        model.set_params(n_jobs=n_jobs)
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


def positive_proba(proba, backend):
    """P(y = 1) from ``predict_proba``'s output (an (n, 2) array or frame, or already the
    positive class's column) as a float64 backend array (numpy or cupy)."""
    if hasattr(proba, "iloc"):
        return backend.asarray(proba.iloc[:, 1], dtype="float64")
    proba = backend.xp.asarray(proba)
    if proba.ndim == 2:
        proba = proba[:, 1]
    return proba.astype(np.float64)


def predict_positive_proba(model, X, backend):
    """P(y = 1) of ``model`` on ``X`` as a backend array (numpy or cupy)."""
    return positive_proba(model.predict_proba(X), backend)
