"""Windowed metrics equal scikit-learn's on the same rows (tolerance 1e-12)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from rapidseval.metrics import add_metrics
from rapidseval.core.time import window_key_range
from rapidseval.replay import merge_window_counts, replay_table, window_counts

TOL = 1e-12


def _stream(seed=0, n=20_000):
    rng = np.random.default_rng(seed)
    start = np.datetime64("2020-03-01T00:00:00", "us")
    # days 1..31 with two empty days (10 and 20) to exercise empty windows
    offsets = rng.integers(0, 31 * 86_400_000_000, n)
    t = start + offsets.astype("timedelta64[us]")
    day = (t.astype("datetime64[D]") - np.datetime64("2020-03-01")).astype(int) + 1
    keep = (day != 10) & (day != 20)
    t = t[keep]
    y = rng.integers(0, 2, keep.sum())
    p = np.where(rng.random(keep.sum()) < 0.7, y, 1 - y)
    return t, y, p


@pytest.mark.parametrize("window", ["h", "D", "W", "M"])
def test_window_metrics_equal_sklearn(window):
    t, y, p = _stream()
    parts = np.array_split(np.arange(len(t)), 5)
    counts = merge_window_counts([window_counts(t[i], y[i], p[i], window=window) for i in parts])
    lo, hi = window_key_range("2020-03", window)
    table = replay_table(counts, window=window, fill_from=lo, fill_to=hi)
    ts = pd.Series(t)
    assert table["n"].sum() == len(t)
    for row in table.itertuples():
        sel = ((ts >= row.window_start) & (ts < row.window_end)).to_numpy()
        assert row.n == sel.sum()
        if row.n == 0:
            assert np.isnan(row.f1) and np.isnan(row.precision)
            continue
        yt, yp = y[sel], p[sel]
        assert abs(row.f1 - f1_score(yt, yp, zero_division=0)) <= TOL
        assert abs(row.precision - precision_score(yt, yp, zero_division=0)) <= TOL
        assert abs(row.recall - recall_score(yt, yp, zero_division=0)) <= TOL
        assert abs(row.accuracy - accuracy_score(yt, yp)) <= TOL
        upto = (ts < row.window_end).to_numpy()
        assert abs(row.cumulative_f1 - f1_score(y[upto], p[upto], zero_division=0)) <= TOL


def test_empty_days_are_kept_with_nan():
    t, y, p = _stream()
    lo, hi = window_key_range("2020-03", "D")
    table = replay_table(window_counts(t, y, p, window="D"), window="D", fill_from=lo, fill_to=hi)
    assert len(table) == 31
    empty = table[table["n"] == 0]
    assert list(pd.to_datetime(empty["window_start"]).dt.day) == [10, 20]
    assert empty["f1"].isna().all()


def test_cumulative_f1_at_end_equals_whole_month():
    t, y, p = _stream(seed=3)
    table = replay_table(window_counts(t, y, p, window="D"), window="D")
    assert abs(table["cumulative_f1"].iloc[-1] - f1_score(y, p)) <= TOL
    assert table["n"].sum() == len(t)


def test_zero_division_matches_sklearn():
    counts = pd.DataFrame({"tp": [0, 0], "fp": [0, 3], "fn": [0, 0], "tn": [5, 2]})
    out = add_metrics(counts)
    assert out["f1"].tolist() == [0.0, 0.0]
    assert f1_score([0] * 5, [0] * 5, zero_division=0) == 0.0
