"""The backtest on a frame in this process: a user's estimator, refitted per fold, policies walked.

:func:`backtest` takes the rows a user already has (pandas, cuDF, or a Dask DataFrame from
``dask.dataframe`` or dask_cudf), the months their ``time_column`` spans, a
:class:`~rapidseval.backtest.MonthSplitter` and retraining policies.  It fits a clone of
the estimator per fold (on the fold's training months, gathered into one frame), then
walks the policies (:class:`~rapidseval.backtest.PolicyWalk`), resolving what they ask
for directly: a model's daily confusion counts on months (scored by the model, over a Dask
DataFrame with dask-ml's ``ParallelPostFit``), a month's drift signal against a model's
training months (per-day counts, :mod:`rapidseval.shift.dask`).  The tables are those of
the backtest job (:mod:`rapidseval.backtest._tables`).
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..core.arrays import require_columns
from ..core.errors import SpecError
from ..core.time import month_bounds, month_range, parse_window
from ..replay import map_scored_partitions, merge_window_counts, window_counts
from ..shift import DayCounts, ShiftCalculator
from ..shift.dask import frame_day_counts, is_dask_frame
from ._drift import DriftSignal, drift_signal, fit_reference
from ._policies import BoundPolicy, make_policy
from ._split import MonthSplitter
from ._tables import backtest_table, daily_table, metrics_of_counts, models_table, policy_table, staleness_table
from ._walk import ModelMonth, ModelPlan, Needs, PolicyWalk, walk_policies

__all__ = ["backtest", "BacktestTables"]

_TABLES = ("backtest", "staleness", "policies", "models", "daily")


@dataclass(frozen=True)
class BacktestTables:
    """The tables of an in-memory backtest (the backtest job's, with the same columns)."""

    backtest: pd.DataFrame
    staleness: pd.DataFrame
    policies: pd.DataFrame
    models: pd.DataFrame
    daily: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_df(self, name: str | None = "backtest") -> pd.DataFrame:
        """One of the tables by name: ``backtest`` (the default, also for ``None``, as a job
        result's ``to_df()``), ``staleness``, ``policies``, ``models``, ``daily``."""
        name = "backtest" if name is None else name
        if name not in _TABLES:
            raise KeyError(f"no table {name!r}; choose one of {', '.join(_TABLES)}")
        return getattr(self, name)

    def __repr__(self) -> str:
        """One line (the dataclass repr printed every table): each table's shape."""
        shapes = ", ".join(f"{name} {len(t):,}×{len(t.columns)}" for name in _TABLES for t in [getattr(self, name)])
        return f"<BacktestTables: {shapes}>"

    def _repr_html_(self) -> str:
        return "<h4>backtest: policies</h4>" + self.policies.to_html(index=False)


@dataclass(frozen=True)
class _Columns:
    """Where the frame keeps what the backtest reads."""

    time: str
    label: str
    features: tuple[str, ...]


def _month_span(frame, time_column: str) -> list[str]:
    """The calendar months from the first row's to the last row's."""
    first, last = frame[time_column].min(), frame[time_column].max()
    if is_dask_frame(frame):
        import dask

        first, last = dask.compute(first, last)
    if pd.isna(first):
        raise SpecError(f"backtest: the frame has no rows with a {time_column}")
    return month_range(pd.Timestamp(first).strftime("%Y-%m"), pd.Timestamp(last).strftime("%Y-%m"))


def _rows_of(frame, columns: _Columns, first: str, last: str):
    """The rows whose time falls in the months ``first`` .. ``last``."""
    start, end = month_bounds(first, last)
    at = frame[columns.time]
    return frame[(at >= pd.Timestamp(start)) & (at < pd.Timestamp(end))]


@dataclass(frozen=True)
class _FittedModel:
    model: Any
    train_rows: int
    train_seconds: float


def _fit_fold(estimator, frame, columns: _Columns, train_months: Sequence[str]) -> _FittedModel:
    """A clone of ``estimator`` fitted on the training months' rows."""
    from sklearn.base import clone

    rows = _rows_of(frame, columns, train_months[0], train_months[-1])[[*columns.features, columns.label]]
    if is_dask_frame(rows):
        rows = rows.compute()
    if len(rows) == 0:
        raise SpecError(f"backtest: no rows in the training months {train_months[0]}..{train_months[-1]}")
    model = clone(estimator)
    started = time.perf_counter()
    model.fit(rows[list(columns.features)], rows[columns.label])
    return _FittedModel(model, int(len(rows)), time.perf_counter() - started)


def _daily_counts(part, proba, be, *, columns: _Columns, threshold: float) -> pd.DataFrame:
    if proba is None:
        proba = be.xp.zeros(len(part), dtype="float64")
    return window_counts(be.time_us(part[columns.time]), be.asarray(part[columns.label]), proba > threshold,
                         window="D", xp=be.xp)


def _split_by_month(counts: pd.DataFrame, months: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Daily counts of several months -> each month's (a month without rows: an empty table)."""
    start, _ = parse_window("D").bounds(counts["window"].to_numpy(dtype="int64"))
    month_of_day = np.datetime_as_string(start.astype("datetime64[M]"), unit="M")
    return {m: counts[month_of_day == m].reset_index(drop=True) for m in months}


class _FrameEvidence:
    """What the in-memory backtest knows, and how it resolves what the walks ask for."""

    def __init__(self, frame, columns: _Columns, models: Mapping[str, Any], plans: Sequence[ModelPlan], *,
                 threshold: float, drift: ShiftCalculator | None):
        self.frame, self.columns, self.models, self.threshold = frame, columns, models, threshold
        self.plans = {plan.key: plan for plan in plans}
        self.drift_template = drift
        self.counts: dict[ModelMonth, pd.DataFrame] = {}
        self.signals: dict[ModelMonth, DriftSignal] = {}
        self._metrics: dict[ModelMonth, dict[str, Any]] = {}
        self._references: dict[str, ShiftCalculator] = {}
        self._day_counts: dict[str, DayCounts] | None = None

    # -- Evidence ---------------------------------------------------------------------------
    def has_scores(self, pair: ModelMonth) -> bool:
        return pair in self.counts

    def has_drift(self, pair: ModelMonth) -> bool:
        return pair in self.signals

    def metrics(self, pair: ModelMonth) -> dict[str, Any]:
        if pair not in self._metrics:
            self._metrics[pair] = metrics_of_counts(self.counts[pair])
        return self._metrics[pair]

    def drift(self, pair: ModelMonth) -> DriftSignal:
        return self.signals[pair]

    def daily_counts(self, pair: ModelMonth) -> pd.DataFrame:
        return self.counts[pair]

    # -- resolving --------------------------------------------------------------------------
    def resolve(self, needs: Needs) -> None:
        """Score every (model, month) of ``needs.scores`` (one pass per model over its months'
        rows) and compute the drift signals of ``needs.drift``."""
        months_by_model: dict[str, set[str]] = {}
        for pair in needs.scores - set(self.counts):
            months_by_model.setdefault(pair.model_key, set()).add(pair.month)
        for key, months in sorted(months_by_model.items()):
            self._score(key, sorted(months))
        for pair in sorted(needs.drift - set(self.signals)):
            self.signals[pair] = drift_signal(self._reference(pair.model_key), self._month_day_counts(pair.month),
                                              month=pair.month)

    def _score(self, key: str, months: list[str]) -> None:
        rows = _rows_of(self.frame, self.columns, months[0], months[-1])
        count = functools.partial(_daily_counts, columns=self.columns, threshold=self.threshold)
        per_partition = map_scored_partitions(rows, count, estimator=self.models[key],
                                              features=list(self.columns.features))
        by_month = _split_by_month(merge_window_counts(per_partition), months)
        self.counts.update({ModelMonth(key, m): by_month[m] for m in months})

    def _month_day_counts(self, month: str) -> dict[str, DayCounts]:
        if self._day_counts is None:  # every month's per-day counts, in one pass over the frame
            self._day_counts = frame_day_counts(self.frame, time_column=self.columns.time,
                                                features=self.drift_template.features,
                                                fill_value=self.drift_template.fill_value)
        start, end = month_bounds(month)
        days = range(int(start.astype("datetime64[D]").astype("int64")), int(end.astype("datetime64[D]").astype("int64")))
        return {name: counts.select(days) for name, counts in self._day_counts.items()}

    def _reference(self, key: str) -> ShiftCalculator:
        """The drift reference of a model: a copy of the calculator fitted on its training months."""
        if key not in self._references:
            train = self.plans[key].fold.train
            self._references[key] = fit_reference([self._month_day_counts(m) for m in train],
                                                  copy.copy(self.drift_template),
                                                  label=f"training months {train[0]}..{train[-1]}")
        return self._references[key]


def _bind_policies(policies) -> dict[str, BoundPolicy]:
    """label -> policy, from names, bound policies (:func:`make_policy`) or a mapping of them."""
    items = policies.items() if isinstance(policies, Mapping) else (
        (p if isinstance(p, str) else p.kind, p) for p in policies)
    bound = {}
    for label, policy in items:
        if label in bound:
            raise SpecError(f"backtest: two policies are labelled {label!r}; give a mapping label -> policy")
        bound[label] = make_policy(policy, {}) if isinstance(policy, str) else policy
    if not bound:
        raise SpecError("backtest: give at least one policy")
    return bound


#: the metrics a floor and the policies can read (``metric=``), as the job's ``backtest.metric``
METRICS = ("f1", "accuracy", "precision", "recall")


def backtest(frame, estimator, *, features: Sequence[str], label: str, time_column: str,
             policies: Sequence[str | BoundPolicy] | Mapping[str, str | BoundPolicy] = ("static",),
             splitter: MonthSplitter | None = None, metric: str = "f1", floor: float = 0.0, label_delay: int = 0,
             threshold: float = 0.5, drift: ShiftCalculator | None = None, daily: bool = False) -> BacktestTables:
    """Rolling-origin backtest of ``estimator`` on ``frame``, retraining by ``policies``.

    Parameters
    ----------
    frame : pandas.DataFrame, cudf.DataFrame or dask.dataframe.DataFrame
        The rows; ``time_column`` (datetime) places each in its month.
    estimator : classifier with ``fit`` and ``predict_proba``
        Cloned (``sklearn.base.clone``) and fitted once per fold on its training months.
    features, label : the model's input columns and the 0/1 target column.
    policies : names, bound policies (:func:`make_policy`) or a mapping label -> either
    splitter : MonthSplitter, default ``MonthSplitter()`` (12 training months, horizon 3)
    metric, floor, label_delay : what the policies are told (:class:`DecisionContext`).
    threshold : predicted positive when P(y = 1) > threshold.
    drift : ShiftCalculator, optional
        The drift reference's calculator (a copy is fitted per model); default:
        ``ShiftCalculator(features)``.  Used only when a policy reads drift.
    daily : also return per-day metrics of every policy x month (``daily``).
    """
    if metric not in METRICS:  # before any fitting, not as a KeyError after it
        raise SpecError(f"backtest metric {metric!r} is not one of {', '.join(METRICS)}")
    require_columns(frame, {"time_column": time_column, "label": label, "features": features}, what="backtest")
    columns = _Columns(time_column, label, tuple(features))
    bound = _bind_policies(policies)
    months = _month_span(frame, time_column)
    folds = (splitter or MonthSplitter()).folds(months)
    plans = [ModelPlan(fold.origin, fold) for fold in folds]
    fits = {plan.key: _fit_fold(estimator, frame, columns, plan.fold.train) for plan in plans}
    reads_drift = any("drift" in policy.reads for policy in bound.values())
    evidence = _FrameEvidence(frame, columns, {key: fit.model for key, fit in fits.items()}, plans,
                              threshold=threshold,
                              drift=(drift or ShiftCalculator(columns.features)) if reads_drift else None)
    evidence.resolve(Needs(scores=frozenset(ModelMonth(p.key, m) for p in plans for m in p.fold.eval)))
    walks = [PolicyWalk(name, policy, plans, metric=metric, floor=floor, label_delay=label_delay)
             for name, policy in bound.items()]
    walk_policies(walks, evidence, evidence.resolve)
    table = backtest_table(walks, evidence.metrics, metric=metric, floor=floor,
                           train_seconds={key: fit.train_seconds for key, fit in fits.items()})
    return BacktestTables(
        backtest=table,
        staleness=staleness_table(plans, evidence.metrics),
        policies=policy_table({name: policy.kind for name, policy in bound.items()}, table, metric=metric, floor=floor),
        models=models_table(plans, train_rows={key: fit.train_rows for key, fit in fits.items()},
                            train_seconds={key: fit.train_seconds for key, fit in fits.items()}),
        daily=daily_table(walks, evidence.daily_counts) if daily else pd.DataFrame(),
    )
