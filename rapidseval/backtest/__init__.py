"""Rolling-origin backtests across months, with retraining policies.

Public API (implementation in private modules):

* :class:`MonthSplitter` -- calendar splitter, ``split(months)`` yields
  ``(train months, eval months)`` like scikit-learn's ``TimeSeriesSplit``.
* :data:`POLICIES`, :func:`register_policy`, :class:`DecisionContext` --
  retraining policies by name (``static``, ``periodic``, ``drift_triggered``).
* :func:`fit_reference`, :func:`drift_signal` -- the calibrated drift signal drift-triggered policies use.
* :func:`run_backtest` -- the job (``rapidseval.run`` calls it for a job with
  a ``backtest`` section).
"""

from __future__ import annotations

from ._drift import DriftSignal, drift_signal, fit_reference
from ._policies import POLICIES, DecisionContext, make_policy, register_policy
from ._split import Fold, MonthSplitter

__all__ = [
    "MonthSplitter",
    "Fold",
    "POLICIES",
    "DecisionContext",
    "register_policy",
    "make_policy",
    "DriftSignal",
    "drift_signal",
    "fit_reference",
    "run_backtest",
]


def run_backtest(spec, **kwargs):
    """Run a job with a ``backtest`` section; see :func:`rapidseval.jobs.backtest.run_backtest`."""
    from ..jobs.backtest import run_backtest as _run

    return _run(spec, **kwargs)
