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

# the one confusion-count engine lives in core; its per-row codes are part of this module's face
from .core.confusion import confusion_codes

__all__ = ["COUNT_COLUMNS", "confusion_codes", "add_metrics", "learn_threshold"]

#: the count columns of every table, in the order the tables show them
COUNT_COLUMNS = ("tp", "fp", "fn", "tn")


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
    tp, fp, fn, tn = (table[c].to_numpy(dtype="int64") for c in COUNT_COLUMNS)
    n = tp + fp + fn + tn
    columns = {c: table[c].to_numpy() for c in table.columns}
    columns.update({"n": n, "positives": tp + fn, "predicted_positives": tp + fp})
    metrics = {
        "precision": _divide(tp, tp + fp),
        "recall": _divide(tp, tp + fn),
        "f1": _divide(2 * tp, 2 * tp + fp + fn),
        "accuracy": _divide(tp + tn, n),
        "positive_rate": _divide(tp + fn, n),
        "predicted_positive_rate": _divide(tp + fp, n),
    }
    empty = n == 0
    for name, values in metrics.items():
        values[empty] = np.nan
        columns[name] = values
    return pd.DataFrame(columns, index=table.index)


def learn_threshold(scores, labels, counts, *, how: str = "max_f1", target: float | None = None) -> dict[str, float]:
    """The threshold ``t`` (predict positive when ``score > t``) chosen on validation rows.

    Parameters
    ----------
    scores, labels, counts : exact ``(score, label)`` counts of the validation rows.
    how : ``"max_f1"`` (the F1-maximising threshold; ties go to the higher threshold)
        or ``"precision"`` (the lowest threshold whose precision reaches ``target``,
        i.e. the most recall at that precision).

    Returns ``{"threshold", "precision", "recall", "f1"}`` on the validation rows.
    Every distinct score is a candidate, so the result is exact, not a grid search.
    """
    scores = np.asarray(scores, dtype="float64")
    labels = np.asarray(labels)
    counts = np.asarray(counts, dtype="int64")
    uniq, inv = np.unique(scores, return_inverse=True)
    pos = np.bincount(inv, weights=counts * (labels == 1), minlength=len(uniq))
    neg = np.bincount(inv, weights=counts * (labels == 0), minlength=len(uniq))
    P = pos.sum()
    if P == 0 or neg.sum() == 0:
        raise ValueError("learning a threshold needs both classes in the validation months")
    # candidate t = uniq[i]: positives are scores above it; t just below the minimum = all positive
    tp = P - np.cumsum(pos)
    fp = neg.sum() - np.cumsum(neg)
    lowest = np.nextafter(uniq[0], -np.inf)
    cand = np.concatenate([[max(lowest, 0.0) if uniq[0] > 0 else lowest], uniq])
    tp = np.concatenate([[P], tp])
    fp = np.concatenate([[neg.sum()], fp])
    valid = cand >= 0
    f1 = np.where(valid, 2 * tp / np.maximum(2 * tp + fp + (P - tp), 1), -1)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
    if how == "max_f1":
        i = len(f1) - 1 - int(np.argmax(f1[::-1]))
    elif how == "precision":
        ok = np.nonzero(valid & (precision >= target) & (tp > 0))[0]
        if not len(ok):
            raise ValueError(
                f"no threshold reaches precision {target} on the validation months "
                f"(best {precision[valid & (tp > 0)].max():.4f})"
            )
        i = int(ok[0])
    else:
        raise ValueError(f"unknown threshold rule {how!r}; choose max_f1 or precision")
    return {
        "threshold": float(cand[i]),
        "precision": float(precision[i]),
        "recall": float(tp[i] / P),
        "f1": float(2 * tp[i] / (2 * tp[i] + fp[i] + (P - tp[i]))),
    }
