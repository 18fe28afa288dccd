"""Confusion counts and the metrics derived from them.

Metrics are computed from integer counts, never per row in Python, so a
window's F1 is one division away from four sums that merge across partitions
by addition.  The formulas are scikit-learn's, so a window's precision,
recall and F1 equal ``sklearn.metrics`` on the same rows (with
``zero_division=0``); an empty window gets NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["COUNT_COLUMNS", "confusion_codes", "add_metrics"]

COUNT_COLUMNS = ("tp", "fp", "fn", "tn")


def confusion_codes(y_true, y_pred, xp=np):
    """Per-row code 0=tn, 1=fp, 2=fn, 3=tp (so counts come from one bincount)."""
    return 2 * xp.asarray(y_true, dtype="int8") + xp.asarray(y_pred, dtype="int8")


def _divide(num, den):
    num = np.asarray(num, dtype="float64")
    den = np.asarray(den, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def add_metrics(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``n``, precision, recall, f1, accuracy and positive rates to a count table.

    ``table`` has integer columns ``tp, fp, fn, tn``.  A row with ``n == 0``
    gets NaN metrics (an empty window is shown, never dropped).
    """
    out = table.copy()
    tp, fp, fn, tn = (out[c].to_numpy(dtype="int64") for c in COUNT_COLUMNS)
    n = tp + fp + fn + tn
    out["n"] = n
    out["positives"] = tp + fn
    out["predicted_positives"] = tp + fp
    metrics = {
        "precision": _divide(tp, tp + fp),
        "recall": _divide(tp, tp + fn),
        "f1": _divide(2 * tp, 2 * tp + fp + fn),
        "accuracy": _divide(tp + tn, n),
        "positive_rate": _divide(tp + fn, n),
        "predicted_positive_rate": _divide(tp + fp, n),
    }
    for name, values in metrics.items():
        out[name] = np.where(n > 0, values, np.nan)
    return out
