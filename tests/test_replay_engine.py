"""The replay engine against scikit-learn on the same rows (tolerance 1e-12, CPU)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from rapidseval.core.time import parse_delay_hours, parse_window, window_key_range
from rapidseval.replay import (
    merge_summaries,
    pooled_metrics,
    replay_frame,
    summarize_scores,
)

TOL = 1e-12
H = np.timedelta64(1, "h")


def _stream(seed=0, n=30_000, month="2020-03", empty_days=(10, 20)):
    """Random scored rows over a month with ties in the scores and empty days."""
    rng = np.random.default_rng(seed)
    start = np.datetime64(f"{month}-01T00:00:00", "us")
    days = pd.Period(month).days_in_month
    t = start + rng.integers(0, days * 86_400_000_000, n).astype("timedelta64[us]")
    day = (t.astype("datetime64[D]") - np.datetime64(f"{month}-01")).astype(int) + 1
    keep = ~np.isin(day, empty_days)
    t = t[keep]
    y = rng.integers(0, 2, keep.sum())
    # scores on a coarse grid (many ties), pulled towards the label; some exactly 0 and 1
    p = np.round(np.clip(0.5 * y + rng.random(keep.sum()) * 0.7 - 0.1, 0, 1), 2)
    return t, y, p


def _summary(t, y, p, *, window="D", parts=5, exact=True, threshold=0.5, bins=1000):
    idx = np.array_split(np.arange(len(t)), parts)
    return merge_summaries(
        [summarize_scores(t[i], y[i], p[i], threshold=threshold, window=window, exact=exact, bins=bins) for i in idx]
    )


@pytest.mark.parametrize("window", ["h", "6h", "D", "W", "M"])
def test_every_window_metric_equals_sklearn(window):
    t, y, p = _stream()
    lo, hi = window_key_range("2020-03", window)
    table = replay_frame(_summary(t, y, p, window=window), fill_from=lo, fill_to=hi, bands=False)
    ts = pd.Series(t)
    assert table["n"].sum() == len(t)
    pred = p > 0.5
    checked = 0
    for row in table.itertuples():
        sel = ((ts >= row.window_start) & (ts < row.window_end)).to_numpy()
        assert row.n == sel.sum()
        if row.n == 0:
            assert np.isnan(row.f1) and np.isnan(row.roc_auc) and np.isnan(row.log_loss)
            continue
        yt, yp, pp = y[sel], pred[sel], p[sel]
        assert abs(row.f1 - f1_score(yt, yp, zero_division=0)) <= TOL
        assert abs(row.precision - precision_score(yt, yp, zero_division=0)) <= TOL
        assert abs(row.recall - recall_score(yt, yp, zero_division=0)) <= TOL
        assert abs(row.accuracy - accuracy_score(yt, yp)) <= TOL
        assert abs(row.log_loss - log_loss(yt, pp, labels=[0, 1])) <= TOL
        assert abs(row.brier - brier_score_loss(yt, pp, labels=[0, 1])) <= TOL
        if len(np.unique(yt)) == 2:
            assert abs(row.roc_auc - roc_auc_score(yt, pp)) <= TOL
        else:
            assert np.isnan(row.roc_auc)
        np.testing.assert_allclose([row.proba_p50, row.proba_p90, row.proba_p99],
                                   np.quantile(pp, [0.5, 0.9, 0.99]), rtol=0, atol=TOL)
        upto = (ts < row.window_end).to_numpy()
        assert abs(row.cumulative_f1 - f1_score(y[upto], pred[upto], zero_division=0)) <= TOL
        checked += 1
    assert checked >= 1
    assert (table["roc_auc_method"] == "exact").all()


def test_binned_auc_and_quantiles_are_close_and_labelled():
    t, y, p = _stream(seed=5)
    p = np.clip(p + np.random.default_rng(1).normal(0, 0.01, len(p)), 0, 1)  # break ties
    table = replay_frame(_summary(t, y, p, exact=False, bins=1000), bands=False)
    ts = pd.Series(t)
    assert (table["roc_auc_method"] == "binned1000").all()
    for row in table[table["n"] > 0].itertuples():
        sel = ((ts >= row.window_start) & (ts < row.window_end)).to_numpy()
        assert abs(row.roc_auc - roc_auc_score(y[sel], p[sel])) < 2e-3
        assert abs(row.proba_p90 - np.quantile(p[sel], 0.9)) <= 1e-3 + 1e-9


def test_month_end_cumulative_equals_month_and_days_sum_to_rows():
    t, y, p = _stream(seed=3, empty_days=())
    s = _summary(t, y, p, window="D")
    lo, hi = window_key_range("2020-03", "D")
    table = replay_frame(s, fill_from=lo, fill_to=hi)
    assert len(table) == 31
    assert table["n"].sum() == len(t) == pooled_metrics(s)["n"]
    assert abs(table["cumulative_f1"].iloc[-1] - f1_score(y, p > 0.5)) <= TOL
    month = pooled_metrics(s)
    assert abs(month["f1"] - f1_score(y, p > 0.5)) <= TOL
    assert abs(month["roc_auc"] - roc_auc_score(y, p)) <= TOL
    assert abs(month["log_loss"] - log_loss(y, p)) <= TOL


def test_summaries_merge_in_any_split():
    t, y, p = _stream(seed=9)
    a = replay_frame(_summary(t, y, p, parts=1), bands=False)
    b = replay_frame(_summary(t, y, p, parts=7), bands=False)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-12)
    threaded = summarize_scores(t, y, p, threshold=0.5, window="D", threads=2)
    single = summarize_scores(t, y, p, threshold=0.5, window="D")
    np.testing.assert_array_equal(threaded.counts, single.counts)
    np.testing.assert_array_equal(threaded.hist_counts, single.hist_counts)


def test_label_delay_view_matches_hand_computation():
    """Two days of hourly rows; labels arrive 12 hours late."""
    day0 = np.datetime64("2021-06-01T00:30", "us")
    # day 1: 24 rows, all true positives; day 2: 24 rows, all false negatives
    t = day0 + np.arange(48) * H
    y = np.ones(48, int)
    p = np.r_[np.ones(24), np.zeros(24)]
    s = summarize_scores(t, y, p, threshold=0.5, window="D")
    table = replay_frame(s, trailing=1, label_delay_hours=12, bands=False)
    assert list(table["n"]) == [24, 24]
    # end of day 1: labels for events before 12:00 are in (rows 00:30..11:30 -> 12 TPs)
    assert table["known_cumulative_n"].tolist() == [12, 36]
    assert table["known_cumulative_f1"].iloc[0] == 1.0
    # end of day 2: 24 TPs + 12 FNs known -> F1 = 48 / 60
    assert abs(table["known_cumulative_f1"].iloc[1] - 48 / 60) <= TOL
    assert table["labels_known_fraction"].tolist() == [0.5, 0.5]
    assert table["known_f1"].iloc[1] == 0.0  # day 2's known rows are all misses
    # the eventual truth: cumulative F1 at end of day 2 = 48 / 72
    assert abs(table["cumulative_f1"].iloc[1] - 48 / 72) <= TOL
    assert table["labels_complete_at"].iloc[0] == pd.Timestamp("2021-06-02T12:00")


def test_trailing_windows_pool_the_last_n():
    t, y, p = _stream(seed=4, empty_days=())
    table = replay_frame(_summary(t, y, p), trailing=7, bands=False)
    ts, pred = pd.Series(t), p > 0.5
    row = table.iloc[10]
    sel = ((ts >= table["window_start"].iloc[4]) & (ts < row.window_end)).to_numpy()
    assert row.trailing_n == sel.sum()
    assert abs(row.trailing_f1 - f1_score(y[sel], pred[sel])) <= TOL


def test_bands_bracket_the_estimate_and_narrow_with_n():
    t, y, p = _stream(seed=2, n=60_000, empty_days=())
    table = replay_frame(_summary(t, y, p, window="D"), seed=1)
    for m in ("f1", "precision", "recall", "accuracy", "roc_auc", "log_loss", "brier"):
        assert (table[f"{m}_low"] <= table[m] + 1e-12).all() and (table[m] <= table[f"{m}_high"] + 1e-12).all(), m
    # a thin window has a wider band than a full one
    thin = summarize_scores(t[:200], y[:200], p[:200], threshold=0.5, window="M")
    full = summarize_scores(t, y, p, threshold=0.5, window="M")
    w_thin = replay_frame(thin, seed=1)
    w_full = replay_frame(full, seed=1)
    assert (w_thin["f1_high"] - w_thin["f1_low"]).iloc[0] > 3 * (w_full["f1_high"] - w_full["f1_low"]).iloc[0]
    # deterministic for a seed
    pd.testing.assert_frame_equal(replay_frame(full, seed=1), w_full)


def test_dst_days_have_their_real_length():
    t = np.array(["2020-03-08T12:00", "2020-11-01T12:00", "2020-11-02T12:00"], dtype="datetime64[us]")
    s = summarize_scores(t, np.ones(3, int), np.ones(3), threshold=0.5, window="D")
    table = replay_frame(s, bands=False)
    hours = dict(zip(pd.to_datetime(table["window_start"]).dt.strftime("%m-%d"), table["hours_in_window"]))
    assert hours["03-08"] == 23 and hours["11-01"] == 25 and hours["11-02"] == 24
    hourly = replay_frame(summarize_scores(t[1:2], np.ones(1, int), np.ones(1), threshold=0.5, window="h"),
                          fill_from=int(np.datetime64("2020-11-01T00", "h").astype("int64")),
                          fill_to=int(np.datetime64("2020-11-01T03", "h").astype("int64")), bands=False)
    assert hourly["hours_in_window"].tolist()[:4] == [1, 2, 1, 1]  # 01:00-02:00 happens twice


@pytest.mark.parametrize("text, unit, count", [("D", "D", 1), ("6h", "h", 6), ("H", "h", 1), ("2W", "W", 1 * 2), ("MS", "M", 1)])
def test_parse_window(text, unit, count):
    w = parse_window(text)
    assert (w.unit, w.count) == (unit, count)


def test_bad_window_and_delay_are_clear():
    with pytest.raises(ValueError, match="unknown window 'Q'"):
        parse_window("Q")
    assert parse_delay_hours("7D") == 168 and parse_delay_hours("36h") == 36 and parse_delay_hours(0) == 0
    with pytest.raises(ValueError, match="whole number of hours"):
        parse_delay_hours("90min")
