"""The tests production teams run on their models, as stages of a job (the job's ``checks:``
section and ``evaluation.slices``).

- :mod:`.data`: invariants of columns and features, reduced per part on the workers and
  merged per month and per replay window (``DataReduce`` / ``DataAccumulator``);
- :mod:`.slices`: confusion counts per slice and window, reduced per part the same way,
  then metrics with bands (``SliceReduce`` / ``SliceAccumulator``); :mod:`.zones` is the
  TLC taxi-zone lookup that ships with rapidseval;
- :mod:`.model`: the assertion set, the baseline, jumps, leakage and consistency, on the
  client from what the job already holds.

Every check gives rows of one table, ``checks.parquet`` (:data:`CHECK_COLUMNS`): one row per
check, model and month or window, with its status (``pass``, ``warn`` or ``fail``). A check
that does not hold takes its severity as its status.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["CHECK_COLUMNS", "SLICE_COLUMNS", "CHECK_KINDS", "RUBRIC", "STATUSES", "check_row", "checks_table",
           "failed_checks"]

#: the columns of ``checks.parquet``
CHECK_COLUMNS = ["check", "kind", "severity", "model", "month", "window_start", "status", "value", "threshold",
                 "detail"]

#: the columns of ``slices.parquet`` (metrics beyond f1 follow the confusion counts)
SLICE_COLUMNS = ["slice_by", "slice", "model", "window_start", "window_end", "n", "tp", "fp", "fn", "tn",
                 "precision", "recall", "f1", "f1_low", "f1_high", "accuracy", "positive_rate", "supported",
                 "worse_than_all"]

#: a check's status: it held (pass), or it did not and this is its severity
STATUSES = ("pass", "warn", "fail")

#: check kind -> the ML Test Score rubric's group it belongs to (the report groups by it)
RUBRIC = {
    "data": "data",
    "leakage": "data",
    "assertions": "model",
    "baseline": "model",
    "slices": "model",
    "consistency": "infrastructure",
    "time_leakage": "infrastructure",
    "jumps": "monitoring",
}
CHECK_KINDS = tuple(RUBRIC)


def check_row(check: str, kind: str, severity: str, *, held: bool, model: str | None = None,
              month: str | None = None, window_start: Any = None, value: float | None = None,
              threshold: float | None = None, detail: str = "") -> dict[str, Any]:
    """One row of ``checks.parquet``: ``status`` is ``pass`` when the check held, else its severity."""
    if kind not in RUBRIC:
        raise ValueError(f"unknown check kind {kind!r}")
    if severity not in ("warn", "fail"):
        raise ValueError(f"unknown severity {severity!r}")
    return {"check": check, "kind": kind, "severity": severity, "model": model, "month": month,
            "window_start": pd.Timestamp(window_start) if window_start is not None else pd.NaT,
            "status": "pass" if held else severity, "value": float("nan") if value is None else float(value),
            "threshold": float("nan") if threshold is None else float(threshold), "detail": detail}


def checks_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """``checks.parquet`` from :func:`check_row` rows, typed (an empty table keeps its columns)."""
    table = pd.DataFrame(rows, columns=CHECK_COLUMNS)
    for col in ("check", "kind", "severity", "model", "month", "status", "detail"):
        table[col] = table[col].astype("string")
    table["window_start"] = pd.to_datetime(table["window_start"])
    for col in ("value", "threshold"):
        table[col] = table[col].astype("float64")
    return table


def failed_checks(table: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of a checks table whose status is ``fail`` (what makes ``run`` exit 3)."""
    if table is None or table.empty:
        return pd.DataFrame(columns=CHECK_COLUMNS)
    return table[table["status"] == "fail"]
