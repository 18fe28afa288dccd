"""Attribution: which features' shift tracks the model's loss.

Given the shift table and a windowed metric table (``replay.parquet``:
``window_start, f1, n, ...`` or ``monthly.parquet``: ``month, f1, ...``),
every feature × statistic series is put beside the metric over the windows
both cover, and features are ranked by how their shift follows the metric's
drop: Spearman's rank correlation between the statistic and the metric's
fall below its best window (``drop = max(metric) - metric``).  Alarmed windows
are summarised beside it (their mean metric against the other windows').
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

__all__ = ["attribute", "metric_windows"]

ATTRIBUTION_COLUMNS = ["rank", "feature", "statistic", "metric", "n_windows", "spearman", "n_alarms",
                       "metric_mean_alarm", "metric_mean_quiet", "metric_drop_alarm", "alarm_windows"]


def metric_windows(metrics: pd.DataFrame, metric: str = "f1") -> pd.DataFrame:
    """``window_start -> metric`` from a replay table (windows with rows, inside the replayed
    period) or a monthly table (one window per month)."""
    if metrics is None or metrics.empty or metric not in metrics:
        return pd.DataFrame(columns=["window_start", "metric"])
    m = metrics
    if "window_start" in m:
        if "n" in m:
            m = m[m["n"] > 0]
        if "in_period" in m:
            m = m[m["in_period"].astype(bool)]
        start = pd.to_datetime(m["window_start"]).astype("datetime64[us]")
    elif "month" in m:
        start = pd.to_datetime(m["month"], format="%Y-%m").astype("datetime64[us]")
    else:
        raise ValueError("metric table needs window_start (replay) or month (monthly)")
    out = pd.DataFrame({"window_start": start.to_numpy(), "metric": m[metric].to_numpy(dtype="float64")})
    return out.dropna().groupby("window_start", as_index=False)["metric"].mean()


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3:
        return np.nan
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return np.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def attribute(shift: pd.DataFrame, metrics: pd.DataFrame, *, metric: str = "f1") -> pd.DataFrame:
    """Rank features by how their windowed shift tracks the windowed metric's drop.

    Parameters
    ----------
    shift : the shift table (``window_start, feature, statistic, value, alarm``)
    metrics : replay or monthly table
    metric : column of ``metrics`` (higher = better)

    Returns
    -------
    DataFrame, one row per feature × statistic, best-tracking first (``rank`` 1).
    """
    mw = metric_windows(metrics, metric)
    if shift is None or shift.empty or mw.empty:
        return pd.DataFrame(columns=ATTRIBUTION_COLUMNS)
    s = shift.assign(window_start=pd.to_datetime(shift["window_start"]).astype("datetime64[us]"))
    both = s.merge(mw, on="window_start", how="inner")
    if both.empty:
        return pd.DataFrame(columns=ATTRIBUTION_COLUMNS)
    best = mw["metric"].max()
    rows = []
    for (feature, stat), g in both.groupby(["feature", "statistic"], sort=True):
        g = g.sort_values("window_start")
        ok = np.isfinite(g["value"].to_numpy(dtype="float64"))
        g = g[ok]
        alarm = g["alarm"].astype(bool).to_numpy()
        met = g["metric"].to_numpy(dtype="float64")
        rows.append({
            "feature": feature, "statistic": stat, "metric": metric, "n_windows": len(g),
            "spearman": _spearman(g["value"].to_numpy(dtype="float64"), best - met),
            "n_alarms": int(alarm.sum()),
            "metric_mean_alarm": float(met[alarm].mean()) if alarm.any() else np.nan,
            "metric_mean_quiet": float(met[~alarm].mean()) if (~alarm).any() else np.nan,
            "alarm_windows": ",".join(g["window"][alarm].astype(str)),
        })
    out = pd.DataFrame(rows)
    out["metric_drop_alarm"] = out["metric_mean_quiet"] - out["metric_mean_alarm"]
    out = out.sort_values(["spearman", "metric_drop_alarm"], ascending=False, na_position="last", kind="stable")
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out[ATTRIBUTION_COLUMNS].reset_index(drop=True)
