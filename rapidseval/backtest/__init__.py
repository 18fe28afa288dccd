"""Rolling-origin backtests across months, with retraining policies.

Public API (implementation in private modules):

* :class:`MonthSplitter` -- calendar splitter, ``split(months)`` yields
  ``(train months, eval months)`` like scikit-learn's ``TimeSeriesSplit``.
* :data:`POLICIES`, :func:`register_policy`, :class:`DecisionContext` --
  retraining policies by name (``static``, ``periodic``, ``drift_triggered``).
* :func:`fit_reference`, :func:`drift_signal` -- the calibrated drift signal drift-triggered policies use.

The backtest job (``rapidseval.run`` for a job with a ``backtest`` section) is
:mod:`rapidseval.jobs.backtest`, in the jobs layer above this package.
"""

from __future__ import annotations

from ._drift import DriftSignal, drift_signal, fit_reference
from ._policies import POLICIES, DecisionContext, NeedScores, make_policy, register_policy
from ._split import Fold, MonthSplitter

__all__ = [
    "MonthSplitter",
    "Fold",
    "POLICIES",
    "DecisionContext",
    "register_policy",
    "make_policy",
    "NeedScores",
    "DriftSignal",
    "drift_signal",
    "fit_reference",
]
