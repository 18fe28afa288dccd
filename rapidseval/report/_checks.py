"""What the page, the terminal and ``--json`` say about a run's checks and slices.

Built from ``checks.parquet`` (one row per check result: :data:`rapidseval.checks.CHECK_COLUMNS`),
``slices.parquet`` (:data:`rapidseval.checks.SLICE_COLUMNS`) and ``assertions.parquet`` alone.
Check results are grouped like the ML Test Score rubric (:data:`rapidseval.checks.RUBRIC`:
data, model, infrastructure, monitoring); a kind the rubric does not know yet is counted under
``other`` rather than dropped.  Slices are ranked per ``slice_by`` and model among the
*supported* rows (a slice with at least the job's minimum support in that window); the others
are named as unsupported and never ranked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..checks import RUBRIC, STATUSES
from ..metrics import add_metrics
from ._load import RunTables

__all__ = ["GROUPS", "CheckCounts", "check_counts", "checks_by_group", "not_held", "where_label", "named_results",
           "SliceSettings", "slice_settings", "slice_rows", "worst_slices", "worse_than_all", "unsupported_slices",
           "window_label", "slice_name", "slice_groups", "GROUP_TITLES"]

#: the rubric's groups in the order of the page; kinds it does not know go to "other"
GROUPS = ("data", "model", "infrastructure", "monitoring", "other")
#: what each group tests (a heading's words)
GROUP_TITLES = {"data": "Data and features", "model": "Model", "infrastructure": "Infrastructure",
                "monitoring": "Monitoring", "other": "Other checks"}
#: metrics a slice's "whole" (the sum of its slice definition's slices) is computed for from counts
COUNT_METRICS = ("f1", "precision", "recall", "accuracy", "positive_rate")


@dataclass(frozen=True)
class CheckCounts:
    """Results per status, and the distinct checks they came from."""

    passed: int
    warned: int
    failed: int
    checks: int

    @property
    def results(self) -> int:
        return self.passed + self.warned + self.failed


def checks_by_group(run: RunTables) -> pd.DataFrame:
    """``checks.parquet`` with a ``group`` column (empty when the run has none), statuses as plain strings."""
    if not run.has("checks", "check", "kind", "status"):
        return pd.DataFrame()
    checks = run["checks"].copy()
    checks["status"] = checks["status"].astype("string").str.lower().astype(object)
    checks["group"] = checks["kind"].astype(object).map(lambda kind: RUBRIC.get(str(kind), "other"))
    return checks


def check_counts(checks: pd.DataFrame) -> CheckCounts:
    """Counts of pass, warn and fail results of ``checks`` (a frame of :func:`checks_by_group`)."""
    if checks.empty:
        return CheckCounts(0, 0, 0, 0)
    per_status = checks["status"].value_counts()
    distinct = checks[["check", "kind"]].drop_duplicates() if "kind" in checks.columns else checks[["check"]].drop_duplicates()
    return CheckCounts(*(int(per_status.get(status, 0)) for status in STATUSES), checks=len(distinct))


def not_held(checks: pd.DataFrame) -> pd.DataFrame:
    """The results that did not hold: ``fail`` first, then ``warn``; the rubric's group order,
    then the table's own order (the order the job produced them) within each."""
    if checks.empty:
        return checks
    rows = checks[checks["status"].isin(("fail", "warn"))]
    order = pd.DataFrame({"status": (rows["status"] != "fail").astype(int),
                          "group": rows["group"].map(GROUPS.index), "row": np.arange(len(rows))}, index=rows.index)
    return rows.loc[order.sort_values(["status", "group", "row"]).index]


def where_label(month: Any, window_start: Any) -> str:
    """Where a check result was judged: its month, else its window's start, else nothing (the whole run)."""
    if month is not None and not _missing(month) and str(month):
        return str(month)
    if window_start is None or _missing(window_start):
        return ""
    start = pd.Timestamp(window_start)
    return start.strftime("%Y-%m-%d") if start == start.normalize() else start.strftime("%Y-%m-%d %H:%M")


#: models named per check in the summary's checks line (the rest counted)
MODELS_NAMED = 3


def named_results(rows: pd.DataFrame, limit: int) -> tuple[list[str], int]:
    """Up to ``limit`` names of the checks in ``rows``, each once, in order, with the models it
    was judged for and where it first did not hold: ``"fare_amount min (2020-03)"``,
    ``"assertions (random_forest, baseline_logistic_regression)"``, ``"jumps (rf, 2020-03-05 +2 more)"``
    (``+2 more``: results of that check elsewhere; past :data:`MODELS_NAMED` models,
    ``+N more models``); and how many checks were left out."""
    months = rows["month"] if "month" in rows.columns else [None] * len(rows)
    starts = rows["window_start"] if "window_start" in rows.columns else [None] * len(rows)
    models = rows["model"] if "model" in rows.columns else [None] * len(rows)
    seen: dict[str, tuple[dict[str, None], list[str]]] = {}
    for check, model, month, start in zip(rows["check"], models, months, starts):
        check_models, wheres = seen.setdefault(str(check), ({}, []))
        if model is not None and not _missing(model) and str(model):
            check_models[str(model)] = None
        where = where_label(month, start)
        if where:
            wheres.append(where)
    names = []
    for check, (check_models, wheres) in seen.items():
        parts = list(check_models)[:MODELS_NAMED]  # a backtest judges a model per fold: not 27 names on one line
        if len(check_models) > MODELS_NAMED:
            parts[-1] += f" +{len(check_models) - MODELS_NAMED} more models"
        if wheres:
            parts.append(wheres[0] + (f" +{len(wheres) - 1} more" if len(wheres) > 1 else ""))
        names.append(check + (f" ({', '.join(parts)})" if parts else ""))
    return names[:limit], max(0, len(names) - limit)


# ---------------------------------------------------------------------------------------
# slices
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SliceSettings:
    """The job's ``evaluation.slices`` as the report uses it (defaults as the spec's)."""

    metric: str = "f1"
    worst: int = 5
    min_support: int = 200


def slice_settings(run: RunTables) -> SliceSettings:
    """The resolved job's slice settings (the spec's defaults where the manifest has none); the
    metric the table itself says it judged by (its ``metric`` column) comes first."""
    spec = ((run.job.get("evaluation") or {}).get("slices")) or {}
    default = SliceSettings()
    judged = run["slices"]["metric"].dropna() if run.has("slices", "metric") else pd.Series(dtype=object)
    return SliceSettings(metric=str(judged.iloc[0] if len(judged) else spec.get("metric") or default.metric),
                         worst=int(spec.get("worst") or default.worst),
                         min_support=int(spec.get("min_support") or default.min_support))


def slice_rows(run: RunTables) -> pd.DataFrame:
    """``slices.parquet`` with ``<metric>``, ``<metric>_low``/``_high`` and ``whole_<metric>``: the
    metric of the sum of the slice definition's slices in that window and model (what
    ``worse_than_all`` compares with); empty when absent.

    The table's own judged columns come first (``value``, ``value_low``/``value_high``, ``all_value``
    beside ``metric``); where it has none, the whole's metrics are computed from the counts."""
    if not run.has("slices", "slice_by", "slice", "n"):
        return pd.DataFrame()
    slices = run["slices"].copy()
    if "supported" not in slices.columns:
        slices["supported"] = slices["n"] >= slice_settings(run).min_support
    slices["supported"] = slices["supported"].fillna(False).astype(bool)
    if "worse_than_all" in slices.columns:
        slices["worse_than_all"] = slices["worse_than_all"].fillna(False).astype(bool)
    counts = ("tp", "fp", "fn", "tn")
    if all(c in slices.columns for c in counts):
        keys = [c for c in ("slice_by", "model", "window_start") if c in slices.columns]
        whole = slices.groupby(keys, dropna=False, sort=False)[list(counts)].transform("sum")
        whole_metrics = add_metrics(whole)  # a window's slices hold rows: no empty whole
        for metric in COUNT_METRICS:
            slices[f"whole_{metric}"] = whole_metrics[metric].to_numpy()
    metric = slice_settings(run).metric
    judged = {"value": metric, "value_low": f"{metric}_low", "value_high": f"{metric}_high", "all_value": f"whole_{metric}"}
    for column, name in judged.items():
        if column in slices.columns and (name not in slices.columns or column == "all_value"):
            slices[name] = slices[column]
    return slices


def _ranked(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rows by the metric, lowest first; ties: more rows first, then by name and window."""
    keys = [c for c in (metric, "n", "slice", "window_start") if c in rows.columns]
    return rows.sort_values(keys, ascending=[c != "n" for c in keys], na_position="last", kind="stable")


def slice_groups(slices: pd.DataFrame):
    """``(slice_by, model), rows`` in the table's order (model None where the table has none)."""
    keys = ["slice_by", "model"] if "model" in slices.columns else ["slice_by"]
    for key, rows in slices.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        yield (key[0], key[1] if len(key) > 1 else None), rows


def worst_slices(slices: pd.DataFrame, settings: SliceSettings) -> pd.DataFrame:
    """Per ``slice_by`` and model, the ``settings.worst`` supported (slice, window) rows lowest on the metric."""
    if slices.empty or settings.metric not in slices.columns:
        return pd.DataFrame()
    picked = [_ranked(rows[rows["supported"] & rows[settings.metric].notna()], settings.metric).head(settings.worst)
              for _, rows in slice_groups(slices)]
    return pd.concat(picked) if picked else pd.DataFrame()


def worse_than_all(slices: pd.DataFrame, settings: SliceSettings) -> pd.DataFrame:
    """The supported rows significantly worse than their whole, per ``slice_by`` and model, lowest first."""
    if slices.empty or "worse_than_all" not in slices.columns:
        return pd.DataFrame()
    picked = [_ranked(rows[rows["worse_than_all"] & rows["supported"]], settings.metric) if settings.metric in rows.columns
              else rows[rows["worse_than_all"] & rows["supported"]] for _, rows in slice_groups(slices)]
    return pd.concat(picked) if picked else pd.DataFrame()


def unsupported_slices(slices: pd.DataFrame) -> pd.DataFrame:
    """One row per ``slice_by``, model and slice that fell below the minimum support in some window:
    how many windows, and the most rows it had in one of them."""
    if slices.empty:
        return pd.DataFrame()
    rows = slices[~slices["supported"]]
    keys = [c for c in ("slice_by", "model", "slice") if c in rows.columns]
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "windows", "most_rows"])
    return (rows.groupby(keys, sort=False, dropna=False)
            .agg(windows=("n", "size"), most_rows=("n", "max")).reset_index())


def slice_name(slice_by: Any, slice_label: Any) -> str:
    """``"PULocationID/taxi_zone_borough=Staten Island"``."""
    return f"{slice_by}={slice_label}"


def window_label(start: Any, end: Any = None) -> str:
    """A slice window by its start: ``2020-03`` for a calendar month, a date for a day or week,
    to the minute otherwise; ``all`` for a row without a window."""
    if start is None or _missing(start):
        return "all"
    start = pd.Timestamp(start)
    if end is not None and not _missing(end) and start.day == 1 and start == start.normalize() \
            and pd.Timestamp(end) == start + pd.offsets.MonthBegin(1):
        return start.strftime("%Y-%m")
    return start.strftime("%Y-%m-%d") if start == start.normalize() else start.strftime("%Y-%m-%d %H:%M")


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
