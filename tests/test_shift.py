"""KS equals scipy.stats.ks_2samp: statistic to 1e-12, p-value to 1e-9 relative."""

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from scipy import stats

from rapidseval.shift import KSResult, ks_2samp, ks_from_counts, merge_counts, value_counts
from rapidseval.shift._ks import _scipy_ks

STAT_TOL = 1e-12
P_RTOL = 1e-9


def _close(res, ref):
    assert abs(res[0] - ref.statistic) <= STAT_TOL
    assert res[1] == pytest.approx(ref.pvalue, rel=P_RTOL, abs=1e-300)


samples = st.lists(st.integers(-5, 5) | st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_ks_small_samples_equal_scipy(a, b):
    a, b = np.array(a, dtype="float64"), np.array(b, dtype="float64")
    ref = _scipy_ks(a, b)  # scipy.stats.ks_2samp, its "exact failed" RuntimeWarning silenced
    _close(ks_2samp(a, b), ref)
    _close(ks_from_counts(*value_counts(a), *value_counts(b)), ref)


@settings(max_examples=15, deadline=None)
@given(st.integers(10_001, 40_000), st.integers(500, 40_000), st.integers(0, 2**32 - 1), st.booleans())
def test_ks_large_samples_equal_scipy(n1, n2, seed, discrete):
    rng = np.random.default_rng(seed)
    if discrete:
        a, b = rng.integers(0, 30, n1).astype("float32"), rng.integers(0, 31, n2).astype("float32")
    else:
        a, b = rng.normal(0, 1, n1), rng.normal(0.02, 1, n2)
    ref = stats.ks_2samp(a, b)
    _close(ks_2samp(a, b), ref)
    # counts path == sort path, also after merging partition counts by addition
    pa = [value_counts(x) for x in np.array_split(a, 3)]
    pb = [value_counts(x) for x in np.array_split(b, 4)]
    _close(ks_from_counts(*merge_counts(pa), *merge_counts(pb)), ref)


def test_ks_identical_and_disjoint():
    a = np.arange(20_000.0)
    assert ks_2samp(a, a) == (0.0, 1.0)
    d, p = ks_2samp(a, a + 1e6)
    assert d == 1.0 and p == stats.ks_2samp(a, a + 1e6).pvalue


def test_ks_2samp_result_reads_like_scipys():
    # the README says "== scipy.stats.ks_2samp(a, b)": .statistic and .pvalue, as scipy's
    # KstestResult (it was a bare tuple), and still a (statistic, pvalue) pair
    a, b = np.random.default_rng(0).normal(size=(2, 50_000))
    res, ref = ks_2samp(a, b), stats.ks_2samp(a, b)
    assert isinstance(res, KSResult) and tuple(res) == (res.statistic, res.pvalue)
    _close(res, ref)


def test_ks_empty_raises():
    with pytest.raises(ValueError):
        ks_2samp(np.array([]), np.array([1.0]))


@pytest.mark.cupy
def test_ks_on_cupy_equals_scipy(cp):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=50_000), rng.normal(0.01, 1, size=60_000)
    _close(ks_2samp(cp.asarray(a), cp.asarray(b)), stats.ks_2samp(a, b))


@pytest.mark.cupy
def test_calibration_on_cupy_equals_numpy(cp):
    """The calculator's calibration (grid arithmetic) on CuPy gives NumPy's null and thresholds."""
    from rapidseval.shift import ShiftCalculator, count_days

    rng = np.random.default_rng(5)
    n = 200_000
    day = 18262 + rng.integers(0, 31, n)
    cols = {"trip_distance": rng.gamma(2, 1.5, n).round(2).astype("float32"),
            "pickup_hour": rng.integers(0, 24, n).astype("float32"),
            "PULocationID": rng.integers(1, 266, n).astype("float32")}
    counts = count_days(day, cols)
    host = ShiftCalculator(list(cols)).fit(counts).null_
    dev = ShiftCalculator(list(cols), xp=cp).fit(counts).null_
    assert host[["feature", "statistic", "n_null"]].equals(dev[["feature", "statistic", "n_null"]])
    for c in ("null_mean", "null_std", "threshold"):
        np.testing.assert_allclose(dev[c].to_numpy(), host[c].to_numpy(), rtol=1e-12, atol=1e-15)


@settings(max_examples=30, deadline=None)
@given(st.floats(np.log(141), np.log(2e6)), st.floats(2.2, 370))
def test_kstwo_sf_series_equals_scipy(log_n, nx2):
    """Smirnov's series summed outward from its largest term equals scipy's kstwo.sf
    (which sums all of it; asymptotic above n = 1e6) to 1e-9 relative."""
    from rapidseval.shift import kstwo_sf

    n = float(np.floor(np.exp(log_n)))
    note(f"n={n:.0f} n*d^2={nx2}")
    d = float(np.sqrt(nx2 / n))
    assert kstwo_sf(d, n)[0] == pytest.approx(stats.kstwo.sf(d, n), rel=P_RTOL, abs=1e-300)


@pytest.mark.parametrize("n", [140, 141, 1000, 999_999, 1_000_000, 1_000_001])
def test_kstwo_sf_at_the_series_band_edges(n):
    """Both sides of every edge of scipy's series band (n = 140 / 1e6, n d^2 = 2.2 / 370,
    n d = 1, d = 0.5) give scipy's value."""
    from rapidseval.shift import kstwo_sf

    eps = 1e-9
    ds = [np.sqrt(z / n) for z in (2.2 * (1 - eps), 2.2, 2.2 * (1 + eps), 5.0, 369.999, 370.0, 370.001)]
    ds += [(1 + eps) / n, (1 - eps) / n, 0.5 * (1 - eps), 0.5]
    want = np.array([stats.kstwo.sf(d, n) for d in ds])
    got = kstwo_sf(np.array(ds), float(n))
    np.testing.assert_allclose(got, want, rtol=P_RTOL, atol=1e-300)


def test_kstwo_sf_pelz_good_band_equals_scipy():
    """Where scipy's kstwo.sf is 1 - its Pelz-Good series (n x^2 < 2.2, beyond the Durbin
    matrix region), the vectorised series gives scipy's values (1e-12 relative here; the
    public bar is 1e-9), including the region's edges."""
    from rapidseval.shift._ks import _pelz_good_band

    rng = np.random.default_rng(5)
    en = np.exp(rng.uniform(np.log(141), np.log(5e7), 3000)).round()
    d = np.sqrt(rng.uniform(1e-3, 2.3, 3000) / en)
    edge_n = np.array([100000.0, 100001.0, 141.0, 1e6, 1e6 + 1, 3.2e6, 100000.0, 100000.0])
    edge_d = np.sqrt(np.array([2.2 * (1 - 1e-12), 2.2 * (1 - 1e-12), 2.19, 1.0, 0.05, 0.01, 0, 0]) / edge_n)
    edge_d[-2:] = (1.4 / 100000) ** (2 / 3) * np.array([1 - 1e-12, 1 + 1e-12])  # the Durbin region's edge
    en, d = np.concatenate([en, edge_n]), np.concatenate([d, edge_d])
    band = _pelz_good_band(d, en)
    assert band.sum() > 2000
    keep = band.copy()
    keep[-len(edge_n):] = True  # the edges, in the band or not (scipy's Durbin matrix is slow: only these)
    en, d = en[keep], d[keep]
    from rapidseval.shift import kstwo_sf

    np.testing.assert_allclose(kstwo_sf(d, en), stats.kstwo.sf(d, en), rtol=1e-12, atol=1e-300)


@settings(max_examples=40, deadline=None)
@given(st.floats(np.log(141), np.log(30_000)), st.floats(0.0, 1.0))
def test_kstwo_sf_durbin_band_equals_scipy(log_n, where):
    """Where scipy's kstwo.sf is 1 - its Durbin-matrix CDF (n <= 1e5, n x^1.5 <= 1.4,
    n x^2 < 2.2: daily windows of ~1M-row months), the same matrix with n!/n^n from
    Stirling's series gives scipy's value to 1e-9 relative (scipy: a Python loop of n
    steps per value)."""
    from rapidseval.shift import kstwo_sf
    from rapidseval.shift._ks import _durbin_band

    n = float(np.floor(np.exp(log_n)))
    lo, hi = 1.0 / n, min((1.4 / n) ** (2 / 3), np.sqrt(2.2 / n))
    d = lo + (hi - lo) * (0.001 + 0.998 * where)
    note(f"n={n:.0f} d={d}")
    assert _durbin_band(np.array([d]), np.array([n]))[0]
    assert kstwo_sf(d, n)[0] == pytest.approx(stats.kstwo.sf(d, n), rel=P_RTOL, abs=1e-300)


@pytest.mark.parametrize("n", [141, 5000, 100_000, 100_001])
def test_kstwo_sf_at_the_durbin_band_edges(n):
    """Both sides of the Durbin region's edges (n x^1.5 = 1.4, n x^2 = 2.2, n x = 1) give
    scipy's value."""
    from rapidseval.shift import kstwo_sf

    eps = 1e-9
    ds = [(1.4 / n) ** (2 / 3) * (1 + s) for s in (-eps, eps)] + [np.sqrt(2.2 / n) * (1 + s) for s in (-eps, eps)]
    ds += [(1 + eps) / n, 1.5 / n]
    want = np.array([stats.kstwo.sf(d, n) for d in ds])
    np.testing.assert_allclose(kstwo_sf(np.array(ds), float(n)), want, rtol=P_RTOL, atol=1e-300)


def test_durbin_matrix_power_does_not_overflow_where_scipy_does():
    """scipy scales only the squared matrix, so the running product can overflow (scipy 1.x:
    kstwo.sf(5.84e-5, 32314) is 0.0 after a RuntimeWarning, for a KS distance far below any
    shift).  Our product is rescaled by exact powers of two: no warning, and the value is
    Pelz-Good's (the same distribution's other series) and its neighbours'."""
    import warnings

    from rapidseval.shift import kstwo_sf
    from rapidseval.shift._ks import _pelz_good_sf

    n, d = 32314, 5.8378784937464164e-05
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = kstwo_sf(d, n)[0]
    assert got == pytest.approx(float(_pelz_good_sf(np.array([float(n)]), np.array([d]))[0]), abs=1e-12)
    assert got == pytest.approx(1.0, abs=1e-12)
    assert got == pytest.approx(stats.kstwo.sf(d * 1.001, n), abs=1e-6)  # scipy's finite neighbour
