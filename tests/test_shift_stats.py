"""Shift statistics from counts equal scipy on the expanded samples (tolerances stated per test)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from rapidseval.core.errors import SpecError
from rapidseval.shift import (PSI_EPS, STATISTICS, DayCounts, Dist, ShiftCalculator, attribute, chi2_test,
                              contingency, day_value_counts, ks_2samp)
from rapidseval.shift._ks import _scipy_ks
from rapidseval.shift._stats import _proportions, ref_info

samples = st.lists(st.integers(-5, 5) | st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=200)


def _info(feature, ref):
    return ref_info(feature, ref, fill_value=-1.0, bins=10, max_categories=64)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_ks_and_wasserstein_from_counts_equal_scipy(a, b):
    a, b = np.array(a, dtype="float32"), np.array(b, dtype="float32")
    A, B = Dist.from_sample(a), Dist.from_sample(b)
    d, p = STATISTICS["ks"].fn(A, B, _info("trip_distance", A))
    ref = _scipy_ks(a, b)
    assert abs(d - ref.statistic) <= 1e-12
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    w, _ = STATISTICS["wasserstein"].fn(A, B, _info("trip_distance", A))
    span = float(max(a.max(), b.max()) - min(a.min(), b.min()))
    # the running integral cancels; error bounded by a few ulps of the value span
    assert w == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-12 * max(span, 1.0))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=2, max_size=300), st.lists(st.integers(0, 14), min_size=2, max_size=300))
def test_categorical_statistics_equal_scipy_and_formulas(a, b):
    A, B = Dist.from_sample(a), Dist.from_sample(b)
    info = _info("PULocationID", A)
    table = contingency(A, B)
    if table.shape[1] >= 2:
        ref = stats.chi2_contingency(table)
        chi2, p, dof = chi2_test(table)
        assert chi2 == pytest.approx(ref.statistic, rel=1e-9, abs=1e-12) and dof == ref.dof
        assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
        v, _ = STATISTICS["cramers_v"].fn(A, B, info)
        assert v == pytest.approx(stats.contingency.association(table.astype(int), method="cramer"), rel=1e-9, abs=1e-12)
    p_, q_ = _proportions(A, B, info)
    assert STATISTICS["tvd"].fn(A, B, info)[0] == pytest.approx(0.5 * np.abs(p_ - q_).sum(), abs=1e-12)
    assert STATISTICS["jensen_shannon"].fn(A, B, info)[0] == pytest.approx(jensenshannon(p_, q_, base=2), rel=1e-9, abs=1e-7)
    pp, qq = np.maximum(p_, PSI_EPS), np.maximum(q_, PSI_EPS)
    assert STATISTICS["psi"].fn(A, B, info)[0] == pytest.approx(np.sum((qq - pp) * np.log(qq / pp)), rel=1e-12, abs=1e-15)


def test_psi_on_reference_quantile_bins_direct_formula():
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 1, 20_000).astype("float32"), rng.lognormal(0.1, 1, 5_000).astype("float32")
    A, B = Dist.from_sample(a), Dist.from_sample(b)
    info = _info("trip_distance", A)
    edges = np.quantile(a.astype("float64"), np.arange(1, 10) / 10, method="inverted_cdf")
    assert np.array_equal(info.edges, edges)
    p = np.bincount(np.searchsorted(edges, a, side="right"), minlength=10) / len(a)
    q = np.bincount(np.searchsorted(edges, b, side="right"), minlength=10) / len(b)
    assert STATISTICS["psi"].fn(A, B, info)[0] == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_day_counts_paths_agree_and_merge_by_addition(seed, discrete):
    rng = np.random.default_rng(seed)
    n = 5_000
    day = rng.integers(18_000, 18_040, n)
    v = rng.integers(-1, 40, n).astype("float32") if discrete else rng.normal(0, 3, n).astype("float32")
    whole = day_value_counts(day, v)
    parts = DayCounts.merge(day_value_counts(day[i::3], v[i::3]) for i in range(3))
    for c in (whole, parts):
        assert c.n == n
        ref_v, ref_c = np.unique(np.stack([day, v.astype("float64")]), axis=1, return_counts=True)
        assert np.array_equal(c.day, ref_v[0]) and np.array_equal(c.value.astype("float64"), ref_v[1])
        assert np.array_equal(c.count, ref_c)
    # counts path == sort path: KS from a window of day counts equals scipy on the rows
    sel = (day >= 18_010) & (day < 18_017)
    vals, cnts = whole.select(range(18_010, 18_017)).values()
    d, p = STATISTICS["ks"].fn(Dist(*whole.values()), Dist(vals, cnts), None)
    ref = stats.ks_2samp(v, v[sel])
    assert abs(d - ref.statistic) <= 1e-12 and p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert abs(ks_2samp(v, v[sel])[0] - d) <= 1e-12


def test_registry_errors_list_choices():
    with pytest.raises(SpecError, match="choose from ks, wasserstein"):
        ShiftCalculator(per_feature={"trip_distance": ["kss"]}).statistics_for("trip_distance")
    with pytest.raises(SpecError, match="does not apply to trip_distance"):
        ShiftCalculator(per_feature={"trip_distance": ["chi2"]}).statistics_for("trip_distance")
    with pytest.raises(SpecError, match="choose one of D, W, M"):
        ShiftCalculator(frequency="Q")


def test_attribution_ranks_the_feature_that_tracks_the_metric():
    import pandas as pd

    starts = pd.date_range("2020-03-01", periods=10, freq="D").astype("datetime64[us]")
    f1 = np.array([0.8, 0.8, 0.79, 0.8, 0.7, 0.6, 0.5, 0.5, 0.45, 0.4])
    rows = []
    for i, s in enumerate(starts):
        rows.append({"window": str(s)[:10], "window_start": s, "feature": "a", "statistic": "ks", "value": 0.8 - f1[i], "alarm": f1[i] < 0.6})
        rows.append({"window": str(s)[:10], "window_start": s, "feature": "b", "statistic": "ks", "value": (i * 7) % 5 / 10, "alarm": False})
    replay = pd.DataFrame({"window_start": starts, "f1": f1, "n": 100, "in_period": True})
    out = attribute(pd.DataFrame(rows), replay)
    assert list(out["feature"]) == ["a", "b"] and out["spearman"].iloc[0] == pytest.approx(1.0)
    assert out["n_alarms"].iloc[0] == 4 and out["metric_drop_alarm"].iloc[0] > 0.2


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["trip_distance", "pickup_hour", "PULocationID"]), st.booleans(),
       st.booleans())
def test_grid_statistics_equal_their_dist_forms(seed, feature, weighted, with_fill):
    """Calibration's grid forms (both sides counted on the reference's values) give what the
    Dist forms give for the same two distributions: 1e-12 relative, or absolute for
    statistics near 0 (Wasserstein also scaled by the value span)."""
    from rapidseval.shift._grid import GRID_STATISTICS, Grid, grid_value

    rng = np.random.default_rng(seed)
    nv = int(rng.integers(1, 60))
    v = np.unique(np.concatenate([rng.integers(0, 80, nv).astype("float64") * 0.5, [-1.0] if with_fill else []]))
    nv = len(v)
    R = rng.integers(0, 50, nv) * (rng.random(nv) < 0.8)
    R[rng.integers(nv)] += 1
    W = rng.integers(0, 40, nv) * (rng.random(nv) < 0.5)
    W[rng.integers(nv)] += 1
    n_eff = float(R.sum())
    if weighted:
        R = R * rng.uniform(0.5, 1.5, nv)
        n_eff = 0.8 * float(R.sum())
    ref = Dist(v, R, n_eff=n_eff) if weighted else Dist(v, R)
    nz = np.flatnonzero(W)
    win = Dist(v[nz], W[nz])
    info = ref_info(feature, Dist(v, np.maximum(np.rint(R), 1).astype("int64")), fill_value=-1.0, bins=5, max_categories=64)
    grid = Grid.build(v, info)
    span = float(v[-1] - v[0]) or 1.0
    for name in GRID_STATISTICS:
        st_ = STATISTICS[name]
        if info.kind not in st_.kinds:
            continue
        want = st_.value_of(ref, win, info)
        got = grid_value(name, grid, R.astype("float64"), W.astype("float64"), n_eff, weighted=weighted)
        if np.isnan(want):
            assert np.isnan(got), name
            continue
        tol = 1e-12 * max(abs(want), 1.0) * (span if name.startswith("wasserstein") else 1.0)
        assert abs(got - want) <= tol, (name, got, want)


@pytest.mark.parametrize("freq, days", [("M", 31), ("W", 28), ("D", 12)])
def test_calibration_null_is_each_block_against_the_rest(freq, days):
    """calendar="none": the null is scipy's KS of each block of consecutive reference days
    against all other reference rows (a day missing from the reference breaks blocks)."""
    rng = np.random.default_rng(7)
    day0 = 18262  # 2020-01-01
    all_days = [d for d in range(day0, day0 + days) if d != day0 + 9]  # a gap on the 10th
    rows = {d: rng.normal(0.01 * (d - day0), 1, int(rng.integers(30, 60))).round(1).astype("float32") for d in all_days}
    counts = DayCounts.merge([day_value_counts(np.full(len(x), d), x) for d, x in rows.items()])
    calc = ShiftCalculator(["trip_distance"], statistics=["ks"], frequency=freq, calendar="none").fit({"trip_distance": counts})
    null = calc.null_.set_index("statistic").loc["ks"]
    L = int(null["block_days"])
    want = []
    for i in range(len(all_days) - L + 1):
        block = all_days[i:i + L]
        if block[-1] - block[0] != L - 1:
            continue
        inside = np.concatenate([rows[d] for d in block])
        rest = np.concatenate([rows[d] for d in all_days if d not in block])
        want.append(stats.ks_2samp(rest, inside).statistic)
    assert int(null["n_null"]) == len(want)
    assert null["null_mean"] == pytest.approx(np.mean(want), rel=1e-12)
    assert null["null_std"] == pytest.approx(np.std(want, ddof=1), rel=1e-9)


def _window_dists(counts: DayCounts, freq: str):
    """Each window's Dist, one by one (the per-window form the batch path replaced)."""
    from rapidseval.shift import window_keys

    days = counts.days()
    keys = window_keys(days, freq)
    for k in np.unique(keys):
        sub = counts.select(days[keys == k])
        v, w = sub.values()
        yield days[keys == k], Dist(v, w.astype("int64"))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["D", "W", "M"]), st.sampled_from(["weekday", "none"]),
       st.sampled_from([40, 900]), st.booleans())
def test_calculate_equals_per_window_dist_forms(seed, freq, calendar, per_day, with_fill):
    """``calculate`` evaluates all windows of a feature at once; every row equals the
    statistic's Dist form on that window against the window's reference (the reference
    reweighted to its weekday mix): KS value and p-value to 1e-12 / 1e-9 relative (small
    samples: scipy's exact p), the others to 1e-12 relative (absolute near 0), chi-square
    p-values to 1e-9."""
    from rapidseval.shift._stats import _ks

    rng = np.random.default_rng(seed)
    day0 = 18262 + int(rng.integers(0, 7))

    def counts(ndays, shift, features):
        out = {}
        for f in features:
            rows = []
            for d in range(ndays):
                if rng.random() < 0.1:
                    continue  # a missing day
                n = int(rng.integers(per_day // 2, per_day))
                if f == "trip_distance":
                    x = rng.lognormal(shift, 1, n).round(2)
                elif f == "pickup_hour":
                    x = rng.integers(0, 24 if shift == 0 else 26, n).astype(float)
                else:
                    x = rng.integers(1, 12 + int(shift * 10), n).astype(float)
                if with_fill:
                    x[rng.random(n) < 0.05] = -1.0
                rows.append(day_value_counts(np.full(n, day0 + d + (0 if shift == 0 else 60)), x))
            out[f] = DayCounts.merge(rows)
        return out

    feats = ["trip_distance", "pickup_hour", "PULocationID"]
    stats_all = {"trip_distance": ["ks", "wasserstein", "wasserstein_norm", "wasserstein_clipped", "psi", "jensen_shannon", "missing_rate",
                                   "out_of_range"],
                 "pickup_hour": ["ks", "psi", "jensen_shannon", "chi2", "cramers_v", "tvd", "missing_rate"],
                 "PULocationID": ["ks", "chi2", "cramers_v", "tvd", "psi", "missing_rate"]}
    ref_counts = counts(28, 0.0, feats)
    win_counts = counts(int(rng.integers(3, 40)), float(rng.choice([0.0, 0.3])), feats)
    calc = ShiftCalculator(feats, per_feature=stats_all, frequency=freq, calendar=calendar).fit(ref_counts)
    table = calc.calculate(win_counts).table
    k = 0
    for f in feats:
        info = calc.refs_[f].info
        for wdays, win in _window_dists(win_counts[f], freq):
            ref = calc.reference_for(f, np.bincount((wdays + 3) % 7, minlength=7))
            for s in stats_all[f]:
                row = table.iloc[k]
                k += 1
                assert (row.feature, row.statistic) == (f, s)
                assert row.n_window == win.n and row.n_reference == ref.n
                want, want_p = (_ks if s == "ks" else STATISTICS[s].fn)(ref, win, info)
                tol = 1e-12 * max(abs(want), 1.0)
                assert (np.isnan(row.value) and np.isnan(want)) or abs(row.value - want) <= tol, (f, s, row.value, want)
                if s in ("ks", "chi2", "cramers_v"):
                    assert row.p_value == pytest.approx(want_p, rel=1e-9, abs=1e-300), (f, s)
                else:
                    assert np.isnan(row.p_value)
    assert k == len(table)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 5, 200, 3000]), st.sampled_from(["plain", "real", "subset"]),
       st.booleans(), st.booleans())
def test_walk_equals_dist_forms(seed, per_window, weights, float64_ref, with_fill):
    """The compiled walk (:mod:`rapidseval.shift._kernels`) against every ordered statistic's
    Dist form, window by window: sparse windows (its searches gallop past the forward scan)
    and dense ones, values outside the reference on both sides, references with zero-weight
    values (flat CDF stretches, at the ends too: the calendar's subsets of days) and real
    weights, a reference that is not float32-exact.  KS
    bit-equal; the rest to 1e-12 relative (absolute near 0)."""
    from rapidseval.shift._windows import Walk, walk, walk_values

    rng = np.random.default_rng(seed)
    rv = np.unique(rng.normal(0, 1, 4000).astype("float32")).astype("float64")
    if float64_ref:
        rv = np.unique(rv + 1e-9 * rng.random(len(rv)))
    if with_fill:
        rv = np.unique(np.append(rv, -1.0))
    rw = rng.integers(1, 20, len(rv))
    if weights == "real":
        rw = rw * rng.choice([0.0, 0.5, 1.7], len(rv), p=[0.2, 0.4, 0.4])
        rw[0] = 1.0
    elif weights == "subset":  # some days left out: integer counts with zeros, often a zero tail
        rw = rw * (rng.random(len(rv)) < 0.6)
        rw[-int(rng.integers(1, 50)):] = 0
        rw[int(rng.integers(0, 100))] = 1
    ref = Dist(rv, rw)
    info = ref_info("trip_speed", Dist(rv, np.ones(len(rv), "int64")), fill_value=-1.0, bins=10, max_categories=64)
    xs, cs, ws = [], [], []
    pos = 0
    for _ in range(9):
        m = int(rng.integers(1, per_window + 1))
        pool = np.concatenate([rng.normal(0, 1.5, m).astype("float32"), rng.choice(rv, m)])
        if with_fill:
            pool = np.append(pool, -1.0)
        x = np.unique(rng.choice(pool, m))
        xs.append(x)
        cs.append(rng.integers(1, 5, len(x)))
        ws.append(pos)
        pos += len(x)
    x, c = np.concatenate(xs), np.concatenate(cs).astype("int64")
    if not float64_ref:
        x = x.astype("float32")  # as daily windows' values come (DayCounts)
    ws = np.asarray(ws, "int64")
    we = np.append(ws[1:], len(x))
    stats_ = ("ks", "wasserstein", "wasserstein_norm", "psi", "jensen_shannon", "missing_rate", "out_of_range")
    res = Walk.empty(len(ws), len(info.edges) + 1)
    sel = rng.permutation(len(ws))
    walk(ref, info, x, c, ws, we, sel[:5], res, stats_)  # two calls, windows in any order
    walk(ref, info, x, c, ws, we, sel[5:], res, stats_)
    for s in stats_:
        got = walk_values(s, ref, info, res, np.arange(len(ws)))
        for j in range(len(ws)):
            want = STATISTICS[s].fn(ref, Dist(x[ws[j]:we[j]], c[ws[j]:we[j]]), info)[0]
            if s == "ks":
                assert got[j] == want, (s, j)
            else:
                assert abs(got[j] - want) <= 1e-12 * max(abs(want), 1.0), (s, j, got[j], want)
    assert list(res.rows) == [int(c[a:b].sum()) for a, b in zip(ws, we)]


@pytest.mark.parametrize("case", ["whole", "negative_zero", "one_fraction_last", "fraction_min", "fraction_max"])
def test_dense_counting_falls_back_exactly(case):
    """The compiled whole-number pass stops at the first fraction and the sort path counts
    instead; either way the counts are np.unique's of the rows, and threads keep the
    features' order and counts."""
    from rapidseval.shift import count_days

    rng = np.random.default_rng(7)
    n = 20_000
    day = rng.integers(18_000, 18_030, n)
    v = rng.integers(-3, 50, n).astype("float32")
    if case == "negative_zero":
        v[::7] = -0.0
    elif case == "one_fraction_last":
        v[-1] = 2.5
    elif case == "fraction_min":
        v[5] = -3.5  # below every whole value: the bins would start at the wrong place
    elif case == "fraction_max":
        v[n // 2] = 49.5
    c = day_value_counts(day, v)
    want_v, want_c = np.unique(np.stack([day, v.astype("float64") + 0.0]), axis=1, return_counts=True)
    assert np.array_equal(c.day, want_v[0]) and np.array_equal(c.value.astype("float64"), want_v[1])
    assert np.array_equal(c.count, want_c)
    cols = {"a": v, "b": rng.normal(0, 1, n).astype("float32"), "c": v[::-1].copy()}
    one, two = count_days(day, cols, threads=1), count_days(day, cols, threads=2)
    assert list(two) == ["a", "b", "c"]
    for f in cols:
        assert np.array_equal(one[f].value, two[f].value) and np.array_equal(one[f].count, two[f].count)
