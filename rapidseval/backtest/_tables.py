"""The backtest's tables, from the policy walks and the (model, month) metrics.

Both the backtest job and the in-memory engine build their tables here, so the two give the
same columns: ``backtest`` (one row per policy x month), ``staleness`` (every fold's model on
its horizon), ``policies`` (one row per policy), ``models`` (one row per fitted model) and the
optional per-day ``backtest_daily``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from ..metrics import COUNT_COLUMNS, add_metrics
from ..core.time import months_between
from ._walk import ModelMonth, ModelPlan, PolicyWalk

__all__ = ["BACKTEST_COLUMNS", "STALENESS_COLUMNS", "POLICY_COLUMNS", "MODEL_COLUMNS", "METRIC_COLUMNS",
           "metrics_of_counts", "backtest_table", "daily_table", "staleness_table", "policy_table", "models_table"]

METRIC_COLUMNS = ("n", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "accuracy", "positive_rate")
BACKTEST_COLUMNS = ("policy", "origin", "train_start", "train_end", "eval_month", "model_age_months",
                    *METRIC_COLUMNS, "below_floor", "retrained", "retrain_reason", "train_seconds", "trigger_month",
                    "trigger_true")
STALENESS_COLUMNS = ("origin", "train_start", "train_end", "eval_month", "model_age_months", *METRIC_COLUMNS)
POLICY_COLUMNS = ("policy", "kind", "months", "mean_f1", "worst_f1", "worst_month", "mean_accuracy",
                  "worst_accuracy", "metric", "floor", "months_below_floor", "retrains", "train_seconds",
                  "drift_retrains", "true_drift_retrains", "false_drift_retrains")
MODEL_COLUMNS = ("origin", "train_start", "train_end", "train_months", "train_rows", "train_seconds", "model_key")
_INTEGER_COLUMNS = ("n", "tp", "fp", "fn", "tn", "model_age_months")


def models_table(plans: Sequence[ModelPlan], *, train_rows: Mapping[str, int],
                 train_seconds: Mapping[str, float]) -> pd.DataFrame:
    """One row per fitted model, in the order of ``plans``: its origin, training window, rows
    and seconds (``train_rows`` / ``train_seconds``: model key -> value)."""
    return pd.DataFrame([
        {"origin": p.fold.origin, "train_start": p.fold.train_start, "train_end": p.fold.train_end,
         "train_months": len(p.fold.train), "train_rows": train_rows[p.key], "train_seconds": train_seconds[p.key],
         "model_key": p.key}
        for p in plans
    ], columns=list(MODEL_COLUMNS))

Metrics = Callable[[ModelMonth], Mapping[str, Any]]


def metrics_of_counts(counts: pd.DataFrame) -> dict[str, Any]:
    """The metrics of a month from its per-window confusion counts (summed)."""
    total = {c: int(counts[c].sum()) for c in COUNT_COLUMNS}
    return add_metrics(pd.DataFrame([total])).iloc[0].to_dict()


def backtest_table(walks: Sequence[PolicyWalk], metrics: Metrics, *, metric: str, floor: float,
                   train_seconds: Mapping[str, float]) -> pd.DataFrame:
    """One row per policy x month: the governing model, its metrics, and whether it was retrained.

    ``train_seconds`` maps a model key to its fitting time (counted in the month it was retrained).
    """
    rows = []
    for walk in walks:
        for month in walk.rows():
            values = metrics(ModelMonth(month.model_key, month.eval_month))
            row = month.to_row()
            row.update({c: values[c] for c in METRIC_COLUMNS})
            row["below_floor"] = bool(values["n"] > 0 and values[metric] < floor)
            row["train_seconds"] = float(train_seconds[month.model_key]) if month.retrained else 0.0
            rows.append(row)
    table = pd.DataFrame(rows, columns=list(BACKTEST_COLUMNS))
    table["trigger_true"] = table["trigger_true"].astype("boolean")
    for c in _INTEGER_COLUMNS:
        table[c] = table[c].astype("int64")
    return table


def daily_table(walks: Sequence[PolicyWalk], counts: Callable[[ModelMonth], pd.DataFrame]) -> pd.DataFrame:
    """Per-day metrics of every policy x month (``counts``: a pair's per-day confusion counts)."""
    from ..replay import replay_table

    parts = []
    for walk in walks:
        for month in walk.rows():
            day = replay_table(counts(ModelMonth(month.model_key, month.eval_month)), window="D")
            day.insert(0, "policy", walk.label)
            day.insert(1, "origin", month.origin)
            day.insert(2, "eval_month", month.eval_month)
            parts.append(day)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def staleness_table(plans: Sequence[ModelPlan], metrics: Metrics) -> pd.DataFrame:
    """Every fold's model on its horizon months: how a model ages."""
    rows = []
    for plan in plans:
        for month in plan.fold.eval:
            values = metrics(ModelMonth(plan.key, month))
            rows.append({"origin": plan.fold.origin, "train_start": plan.fold.train_start,
                         "train_end": plan.fold.train_end, "eval_month": month,
                         "model_age_months": months_between(plan.fold.train_end, month),
                         **{c: values[c] for c in METRIC_COLUMNS}})
    table = pd.DataFrame(rows, columns=list(STALENESS_COLUMNS))
    for c in _INTEGER_COLUMNS:
        table[c] = table[c].astype("int64")
    return table


def policy_table(kinds: Mapping[str, str], backtest: pd.DataFrame, *, metric: str, floor: float,
                 truth_known: bool = False) -> pd.DataFrame:
    """One row per policy (``kinds``: label -> kind, in the order of the rows): means, worst
    month, months below the floor, retrains and what triggered them."""
    rows = [_policy_row(label, kind, backtest[backtest["policy"] == label], metric=metric, floor=floor,
                        truth_known=truth_known)
            for label, kind in kinds.items()]
    out = pd.DataFrame(rows, columns=list(POLICY_COLUMNS))
    for c in ("true_drift_retrains", "false_drift_retrains"):
        out[c] = out[c].astype("Int64")
    return out


def _policy_row(label: str, kind: str, months: pd.DataFrame, *, metric: str, floor: float,
                truth_known: bool) -> dict[str, Any]:
    scored = months[months["n"] > 0]
    worst = scored.loc[scored["f1"].idxmin()] if len(scored) else None
    return {
        "policy": label, "kind": kind, "months": int(len(months)),
        "mean_f1": float(scored["f1"].mean()) if len(scored) else float("nan"),
        "worst_f1": float(worst["f1"]) if worst is not None else float("nan"),
        "worst_month": worst["eval_month"] if worst is not None else "",
        "mean_accuracy": float(scored["accuracy"].mean()) if len(scored) else float("nan"),
        "worst_accuracy": float(scored["accuracy"].min()) if len(scored) else float("nan"),
        "metric": metric, "floor": floor,
        "months_below_floor": int(months["below_floor"].sum()),
        "retrains": int(months["retrained"].sum()),
        "train_seconds": float(months["train_seconds"].sum()),
        "drift_retrains": int((months["trigger_month"] != "").sum()),
        "true_drift_retrains": int(months["trigger_true"].fillna(False).sum()) if truth_known else pd.NA,
        "false_drift_retrains": int((~months["trigger_true"].fillna(True)).sum()) if truth_known else pd.NA,
    }
