"""Replay: confusion counts per time window, merged across partitions.

A partition is scored where it lives and reduced to a small table of counts
per window (``tp, fp, fn, tn``); only those tables travel.  Windows are
half-open ``[window_start, window_end)`` in the data's own clock (TLC times
are naive New York wall-clock times).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import COUNT_COLUMNS, add_metrics, confusion_codes
from .months import month_bounds

__all__ = ["WINDOWS", "window_counts", "merge_window_counts", "replay_table"]

_US_PER_H = 3_600_000_000
_US_PER_DAY = 24 * _US_PER_H

#: window code -> description
WINDOWS = {"h": "hour", "D": "day", "W": "week starting Monday", "M": "calendar month"}


def _months_since_epoch(days):
    """Calendar months since 1970-01 from days since the epoch (integer ops only,
    so it runs on CuPy too; H. Hinnant's civil_from_days)."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 - 12 * (mp >= 10)
    y = yoe + era * 400 + (m <= 2)
    return (y - 1970) * 12 + (m - 1)


def _window_index(t_us, window: str, xp):
    """int64 window keys: hours/days/weeks (Monday)/months since the epoch."""
    if window == "h":
        return t_us // _US_PER_H
    days = t_us // _US_PER_DAY
    if window == "D":
        return days
    if window == "W":
        return (days + 3) // 7  # 1970-01-01 is a Thursday: week 0 starts Monday 1969-12-29
    if window == "M":
        return _months_since_epoch(days)
    raise ValueError(f"unknown window {window!r}; choose one of {', '.join(WINDOWS)}")


def _window_bounds(keys: np.ndarray, window: str) -> tuple[np.ndarray, np.ndarray]:
    keys = np.asarray(keys, dtype="int64")
    if window == "h":
        start = (keys * _US_PER_H).astype("datetime64[us]")
        return start, start + np.timedelta64(1, "h")
    if window == "D":
        start = (keys * _US_PER_DAY).astype("datetime64[us]")
        return start, start + np.timedelta64(1, "D")
    if window == "W":
        start = ((keys * 7 - 3) * _US_PER_DAY).astype("datetime64[us]")
        return start, start + np.timedelta64(7, "D")
    start = keys.astype("datetime64[M]")
    return start.astype("datetime64[us]"), (start + 1).astype("datetime64[us]")


def window_counts(event_time, y_true, y_pred, *, window: str, xp=np) -> pd.DataFrame:
    """Confusion counts per window of one partition (host pandas table).

    ``event_time`` is datetime64 or int64 microseconds since the epoch.

    Returns columns ``window`` (int64 key), ``tp``, ``fp``, ``fn``, ``tn``.
    """
    t_us = xp.asarray(event_time)
    if t_us.dtype.kind == "M":
        t_us = t_us.astype("datetime64[us]").view("int64")
    keys = _window_index(t_us, window, xp)
    codes = confusion_codes(y_true, y_pred, xp).astype("int64")
    if keys.size == 0:
        return pd.DataFrame({c: np.zeros(0, dtype="int64") for c in ("window", *COUNT_COLUMNS)})
    lo = int(keys.min())
    combined = (keys - lo) * 4 + codes
    uniq, counts = xp.unique(combined, return_counts=True)
    if hasattr(uniq, "get"):
        uniq, counts = uniq.get(), counts.get()
    table = np.zeros((int(uniq.max()) // 4 + 1, 4), dtype="int64")
    table[uniq // 4, uniq % 4] = counts
    present = table.sum(axis=1) > 0
    idx = np.nonzero(present)[0]
    return pd.DataFrame(
        {
            "window": idx + lo,
            "tp": table[idx, 3],
            "fp": table[idx, 1],
            "fn": table[idx, 2],
            "tn": table[idx, 0],
        }
    )


def merge_window_counts(tables, by=("window",)) -> pd.DataFrame:
    """Sum count tables (from many partitions) per key."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame({c: np.zeros(0, dtype="int64") for c in (*by, *COUNT_COLUMNS)})
    both = pd.concat(tables, ignore_index=True)
    return both.groupby(list(by), as_index=False, sort=True)[list(COUNT_COLUMNS)].sum()


def replay_table(counts: pd.DataFrame, *, window: str, fill_from=None, fill_to=None) -> pd.DataFrame:
    """Windowed metrics with cumulative-since-start F1, empty windows kept.

    Parameters
    ----------
    counts : DataFrame with ``window`` keys and ``tp, fp, fn, tn``.
    fill_from, fill_to : int window keys; every window in between appears,
        with ``n == 0`` and NaN metrics where nothing happened.
    """
    counts = counts.sort_values("window")
    if fill_from is not None and fill_to is not None:
        full = pd.DataFrame({"window": np.arange(fill_from, fill_to + 1, dtype="int64")})
        if len(counts):
            lo, hi = counts["window"].min(), counts["window"].max()
            full = pd.DataFrame({"window": np.arange(min(fill_from, lo), max(fill_to, hi) + 1, dtype="int64")})
        counts = full.merge(counts, on="window", how="left").fillna(0)
        for c in COUNT_COLUMNS:
            counts[c] = counts[c].astype("int64")
    start, end = _window_bounds(counts["window"].to_numpy(), window)
    out = add_metrics(counts.reset_index(drop=True))
    out.insert(0, "window_start", start)
    out.insert(1, "window_end", end)
    cum = add_metrics(out[list(COUNT_COLUMNS)].cumsum())
    for name in ("n", "precision", "recall", "f1"):
        out[f"cumulative_{name}"] = cum[name].to_numpy()
    return out.drop(columns=["window"])


def window_key_range(month: str, window: str) -> tuple[int, int]:
    """First and last window keys covering a calendar month."""
    lo, end = month_bounds(month)
    both = np.array([lo, end - np.timedelta64(1, "us")]).view("int64")
    keys = _window_index(both, window, np)
    return int(keys[0]), int(keys[1])
