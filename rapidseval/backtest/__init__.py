"""Rolling-origin backtests across months, with retraining policies.

Public API (implementation in private modules):

* :class:`MonthSplitter` -- calendar splitter, ``split(months)`` yields
  ``(train months, eval months)`` like scikit-learn's ``TimeSeriesSplit``.
* :data:`POLICIES`, :func:`register_policy`, :class:`DecisionContext` --
  retraining policies by name (``static``, ``periodic``, ``drift_triggered``).
* :func:`fit_reference`, :func:`drift_signal` -- the calibrated drift signal drift-triggered policies use.
* :class:`PolicyWalk`, :func:`walk_policies` -- each policy replayed over the origins as a
  request/resolve loop: the walk says which (model, month) scores and drift signals its
  decisions lack (:class:`Needs`), the caller resolves them.
* :func:`backtest_table`, :func:`staleness_table`, :func:`policy_table`, :func:`models_table`, :func:`daily_table` --
  the tables of a backtest, from the walks.
* :func:`backtest` -- the whole backtest of a user's estimator on a pandas, cuDF or Dask
  DataFrame, in this process (the job, ``rapidseval.run`` on a job with a ``backtest``
  section, is :mod:`rapidseval.jobs.backtest`).
"""

from __future__ import annotations

from ._drift import DriftSignal, drift_signal, fit_reference
from ._engine import BacktestTables, backtest
from ._policies import POLICIES, READS, BoundPolicy, DecisionContext, make_policy, policy_reads, register_policy
from ._split import Fold, MonthSplitter
from ._tables import (BACKTEST_COLUMNS, METRIC_COLUMNS, MODEL_COLUMNS, POLICY_COLUMNS, STALENESS_COLUMNS,
                      backtest_table, daily_table, metrics_of_counts, models_table, policy_table, staleness_table)
from ._walk import Evidence, ModelMonth, ModelPlan, Needs, PolicyMonth, PolicyWalk, decision_spans, walk_policies

__all__ = [
    "MonthSplitter",
    "Fold",
    "POLICIES",
    "READS",
    "DecisionContext",
    "BoundPolicy",
    "register_policy",
    "make_policy",
    "policy_reads",
    "DriftSignal",
    "drift_signal",
    "fit_reference",
    "ModelMonth",
    "ModelPlan",
    "Needs",
    "Evidence",
    "PolicyMonth",
    "PolicyWalk",
    "walk_policies",
    "decision_spans",
    "BACKTEST_COLUMNS",
    "STALENESS_COLUMNS",
    "POLICY_COLUMNS",
    "MODEL_COLUMNS",
    "METRIC_COLUMNS",
    "metrics_of_counts",
    "backtest_table",
    "staleness_table",
    "policy_table",
    "daily_table",
    "models_table",
    "backtest",
    "BacktestTables",
]
