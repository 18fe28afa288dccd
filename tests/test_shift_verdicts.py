"""Window-level verdicts (issue 14): size-standardised scores, the fitted null, the family rule,
the clipped Wasserstein; and the bars on generated months at a small size (the larger sizes:
benchmarks/bench_false_alarms.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rapidseval.shift import (STATISTICS, DayCounts, Dist, FamilyThreshold, ShiftCalculator, StandardDeviationThreshold,
                              count_days, day_value_counts)
from rapidseval.shift._stats import CLIP_QUANTILES, ref_info
from rapidseval.shift._verdict import SCALINGS, NullFit, from_score, prediction_factor, scores


# ---------------------------------------------------------------------------------------
# scores and the null fit
# ---------------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(st.sampled_from(sorted(SCALINGS)), st.floats(1e-6, 2.0), st.integers(10, 10**7), st.integers(10, 10**7))
def test_from_score_inverts_scores(statistic, value, n_ref, n_win):
    z = scores(statistic, value, n_ref, n_win)
    assert float(from_score(statistic, z, n_ref, n_win)) == pytest.approx(value, rel=1e-9)


def test_ks_score_is_scipys_scaled_statistic():
    """The KS score is ``sqrt(m n / (m + n)) * D``: the quantity whose null limit is Kolmogorov's."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=3000), rng.normal(size=700)
    d = stats.ks_2samp(a, b).statistic
    assert float(scores("ks", d, 3000, 700)) == pytest.approx(d * np.sqrt(3000 * 700 / 3700), rel=1e-12)


def test_null_fit_threshold_and_p_value_agree():
    """A score alarms at level a exactly when its calibrated p-value is at most a; the
    threshold lies above the plain gamma quantile by the Student-t prediction factor."""
    rng = np.random.default_rng(2)
    z = stats.kstwobign.rvs(size=31, random_state=rng)
    fit = NullFit.of(z)
    alpha = 0.01 / 40
    thr = fit.threshold(alpha)
    k, theta = (fit.mean / fit.std) ** 2, fit.std ** 2 / fit.mean
    plain = stats.gamma.isf(alpha, k, scale=theta)
    assert thr == pytest.approx(fit.mean + (plain - fit.mean) * prediction_factor(31, alpha), rel=1e-12)
    assert thr > plain
    probe = np.array([thr * 0.999, thr * 1.001, fit.mean * 0.5])
    p = fit.p_value(probe, alpha)
    assert p[0] > alpha and p[1] <= alpha and p[2] == 1.0
    assert fit.exceedance(probe[1:2], thr)[0] > 0


def test_sampling_shape_scaled_by_overdispersion():
    """The null's shape is sampling's; the blocks stretch it by sqrt(phi) when they vary more
    than sampling (phi > 1), never shrink it (phi < 1: stratified or smoother than random)."""
    rng = np.random.default_rng(8)
    sampling = stats.kstwobign.rvs(size=200, random_state=rng)
    for scale, stretched in ((2.0, True), (0.5, False)):
        blocks = scale * stats.kstwobign.rvs(size=31, random_state=rng)
        fit = NullFit.of_sampling(blocks, sampling)
        phi = np.mean(blocks ** 2) / np.mean(sampling ** 2)
        c = np.sqrt(phi) if stretched else 1.0
        assert fit.overdispersion == pytest.approx(phi, rel=1e-12)
        assert fit.mean == pytest.approx(c * sampling.mean(), rel=1e-12)
        assert fit.std == pytest.approx(c * sampling.std(ddof=1), rel=1e-12) and fit.n_blocks == 31


def test_a_constant_null_calibrates_nothing():
    """A null without variation (a feature the day fixes, such as its weekday) gives no threshold."""
    fit = NullFit.of_sampling(np.zeros(30), np.linspace(0.1, 2.0, 200))
    assert not fit.ok and fit.threshold(0.001) == np.inf and np.isnan(fit.p_value(np.ones(2), 0.001)).all()


def test_gamma_threshold_holds_its_level_on_kolmogorov_nulls():
    """Thresholds fitted from 31 Kolmogorov-distributed null scores (KS under no shift): averaged
    over many fits, the rate a fresh score exceeds them is within 4x of the nominal level
    (without the prediction factor it is ~7x)."""
    rng = np.random.default_rng(3)
    alpha = 0.01 / 40
    rates = [stats.kstwobign.sf(NullFit.of(stats.kstwobign.rvs(size=31, random_state=rng)).threshold(alpha))
             for _ in range(300)]
    assert np.mean(rates) < 4 * alpha


# ---------------------------------------------------------------------------------------
# wasserstein_clipped
# ---------------------------------------------------------------------------------------
def test_wasserstein_clipped_equals_scipy_on_clipped_samples():
    rng = np.random.default_rng(4)
    ref = rng.lognormal(0, 1, 5000).round(2)
    win = rng.lognormal(0.1, 1, 800).round(2)
    R, W = Dist.from_sample(ref), Dist.from_sample(win)
    info = ref_info("trip_distance", R, fill_value=-1.0, bins=10, max_categories=64)
    lo, hi = np.quantile(ref, CLIP_QUANTILES, method="inverted_cdf")
    assert (info.clip_lo, info.clip_hi) == (lo, hi)
    rc, wc = np.clip(ref, lo, hi), np.clip(win, lo, hi)
    want = stats.wasserstein_distance(rc, wc) / rc.std()
    got = STATISTICS["wasserstein_clipped"].value_of(R, W, info)
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("k", [1, 5, 10])
def test_a_few_absurd_rows_move_clipped_wasserstein_by_at_most_their_share(k):
    """k absurd rows (a 20-mile trip in 13 s: 5,500 mph) in a quiet 10k-row window: the clipped
    Wasserstein moves by at most k / n times the clipped range over the clipped std, while the
    plain normalised Wasserstein moves by orders of magnitude more."""
    rng = np.random.default_rng(5)
    ref = rng.lognormal(2.3, 0.4, 50_000).round(2)
    quiet = rng.lognormal(2.3, 0.4, 10_000).round(2)
    bad = quiet.copy()
    bad[:k] = 5_500.0
    R = Dist.from_sample(ref)
    info = ref_info("trip_speed", R, fill_value=-1.0, bins=10, max_categories=64)
    clipped = STATISTICS["wasserstein_clipped"]
    plain = STATISTICS["wasserstein_norm"]
    moved = clipped.value_of(R, Dist.from_sample(bad), info) - clipped.value_of(R, Dist.from_sample(quiet), info)
    bound = k / len(bad) * (info.clip_hi - info.clip_lo) / info.clip_std
    assert abs(moved) <= bound + 1e-12
    assert plain.value_of(R, Dist.from_sample(bad), info) > 100 * abs(moved)


# ---------------------------------------------------------------------------------------
# the calculator's verdicts
# ---------------------------------------------------------------------------------------
def _days(rng, first_day, days, shift=0.0, per_day=2_000, features=("x", "y", "z")):
    day = np.repeat(np.arange(first_day, first_day + days), per_day)
    cols = {f: (rng.normal(size=len(day)) + (shift if f == "x" else 0.0)).round(2).astype("float32") for f in features}
    return count_days(day, cols)


@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_window_alarm_is_any_test_alarm_and_thresholds_follow_the_size(freq):
    rng = np.random.default_rng(6)
    ref = _days(rng, 18262, 31)
    calc = ShiftCalculator(["x", "y", "z"], statistics=["ks", "wasserstein_clipped"], frequency=freq).fit(ref)
    null = calc.null_
    assert (null["n_tests"] == 6).all() and (null["block_days"] == 1).all() and (null["n_null"] == 31).all()
    assert null["alpha_test"].iloc[0] == pytest.approx(0.01 / 6)
    t = calc.calculate(_days(rng, 18293, 29, shift=0.3)).table
    g = t.groupby("window_start")
    assert (g["alarm"].any() == g["window_alarm"].all()).all() and (g["window_alarm"].nunique() == 1).all()
    assert (t["alarm"] == (t["score"] > t["score_threshold"])).all()
    assert (t["alarm"] == (t["value"] > t["threshold"])).all()
    assert (t["alarm"] == (t["p_null"] <= 0.01 / 6)).all()
    assert np.allclose(t["threshold"], [float(from_score(s, z, m, n)) for s, z, m, n in
                                        zip(t["statistic"], t["score_threshold"], t["n_reference"], t["n_window"])])
    assert t.loc[t["feature"] == "x", "alarm"].all() and not t.loc[t["feature"] != "x", "alarm"].any()
    windows = calc.calculate(_days(rng, 18293, 29, shift=0.3)).windows()
    assert windows["window_alarm"].all() and (windows["top_feature"] == "x").all()
    assert (windows["n_tests"] == 6).all()


def test_quiet_windows_of_every_size_alarm_rarely():
    """Independent draws, same process: with 1% per window and 8 seeds x (29 daily + 5 weekly
    + 1 monthly) windows, at most 3% alarm at any frequency."""
    per = {"D": [0, 0], "W": [0, 0], "M": [0, 0]}
    for seed in range(8):
        rng = np.random.default_rng(100 + seed)
        ref, cur = _days(rng, 18262, 31, per_day=500), _days(rng, 18293, 29, per_day=500)
        for freq in per:
            calc = ShiftCalculator(["x", "y", "z"], statistics=["ks", "wasserstein_clipped", "psi"],
                                   frequency=freq).fit(ref)
            w = calc.calculate(cur).windows()
            per[freq][0] += int(w["window_alarm"].sum())
            per[freq][1] += len(w)
    print({f: f"{a}/{n}" for f, (a, n) in per.items()})
    for freq, (a, n) in per.items():
        assert a <= 0.03 * n, (freq, a, n)


def test_legacy_per_test_methods_still_threshold_the_score():
    rng = np.random.default_rng(7)
    ref = _days(rng, 18262, 31)
    calc = ShiftCalculator(["x"], statistics=["ks"], frequency="D",
                           threshold=StandardDeviationThreshold(std_multiplier=3.0)).fit(ref)
    row = calc.null_.iloc[0]
    assert row["score_threshold"] == pytest.approx(row["score_mean"] + 3 * row["score_std"], rel=1e-12)
    assert np.isnan(row["alpha_test"])
    t = calc.calculate(_days(rng, 18293, 5)).table
    assert (t["alarm"] == (t["score"] > t["score_threshold"])).all() and t["p_null"].isna().all()


def test_window_alarm_rate_is_validated():
    from rapidseval.core.errors import SpecError

    with pytest.raises(SpecError, match="window_alarm_rate"):
        ShiftCalculator(["x"], threshold=FamilyThreshold(window_alarm_rate=1.5))


def test_default_statistics_of_categories_are_not_ordered():
    from rapidseval.shift import DEFAULT_STATISTICS

    assert "ks" not in DEFAULT_STATISTICS["categorical"]
    assert "wasserstein_clipped" in DEFAULT_STATISTICS["continuous"]
    assert "wasserstein_norm" not in DEFAULT_STATISTICS["continuous"]


def test_sampling_grid_keeps_bins_fill_clip_range_and_tails():
    """The sampling null's coarser grid (about 4096 groups) keeps every quantile bin's weight,
    the fill value alone, the clip range's ends and the 256 smallest and largest values."""
    from rapidseval.shift._calculator import SAMPLING_GRID, _coarse_grid

    rng = np.random.default_rng(9)
    x = np.concatenate([rng.lognormal(1, 1, 200_000).round(3), -np.ones(3_000)])
    d = Dist.from_sample(x)
    info = ref_info("trip_speed", d, fill_value=-1.0, bins=10, max_categories=64)
    v, w = _coarse_grid(d.values, d.weights, info)
    assert len(d.values) > SAMPLING_GRID >= len(v) - 600 and w.sum() == d.weights.sum()
    bins = lambda values, weights: np.bincount(np.searchsorted(info.edges, values, side="right"),  # noqa: E731
                                               weights=weights, minlength=len(info.edges) + 1)
    assert np.array_equal(bins(v, w), bins(d.values, d.weights))
    assert v[0] == -1.0 and w[0] == 3_000 and {info.clip_lo, info.clip_hi} <= set(v)
    assert np.array_equal(v[:256], d.values[:256]) and np.array_equal(v[-256:], d.values[-256:])
