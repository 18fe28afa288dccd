"""Distribution shift statistics.

:func:`ks_2samp` is the two-sample Kolmogorov-Smirnov test with the meaning
of ``scipy.stats.ks_2samp(a, b)`` (two-sided, ``method="auto"``), on NumPy or
CuPy arrays.  The statistic is computed where the data lives; the p-value is
scipy's own formula (exact for ``max(n1, n2) <= 10000``, else Smirnov's
``kstwo.sf(d, round(n1*n2/(n1+n2)))``).

:func:`value_counts` and :func:`ks_from_counts` give the same statistic from
exact value counts, which merge across partitions by addition: a month is
counted once, part by part, and reused against every other month.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..core.arrays import array_namespace, to_numpy

__all__ = ["KSResult", "ks_2samp", "ks_from_counts", "ks_pvalue", "ks_pvalues", "kstwo_sf", "smirnov_sf", "merge_counts", "value_counts", "MAX_EXACT_N"]

#: scipy's ``MAX_AUTO_N``: method "auto" is exact up to this many rows per sample
MAX_EXACT_N = 10_000


def _scipy_ks(a, b):
    """scipy's own answer for small samples.  Its exact method can fall back to
    the asymptotic one with a RuntimeWarning; the result is still scipy's, so
    the warning is not passed on."""
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        return stats.ks_2samp(a, b)


def ks_pvalue(d: float, n1: int, n2: int, *, sample1=None, sample2=None) -> float:
    """Two-sided p-value of KS statistic ``d`` as ``scipy.stats.ks_2samp(method="auto")``.

    For ``max(n1, n2) <= 10000`` scipy uses the exact distribution; pass the
    samples (host arrays, at most 10000 values each) and scipy computes it.
    """
    if max(n1, n2) <= MAX_EXACT_N:
        if sample1 is None or sample2 is None:
            raise ValueError("the exact p-value (n <= 10000) needs both samples")
        return float(_scipy_ks(sample1, sample2).pvalue)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(kstwo_sf(d, np.round(en))[0], 0, 1))


#: scipy's ``kstwo.sf`` sums Smirnov's exact series (O(n) per call: 0.1-0.3 s at n = 200k)
#: for 140 < n <= this and 2.2 <= n d**2 < 370; above it scipy itself is asymptotic
SMIRNOV_EXACT_MAX_N = 1_000_000

_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def _stirlerr(k: np.ndarray) -> np.ndarray:
    """``log(k!) - (k log k - k + log(2 pi k) / 2)`` for ``k >= 1`` (small: no cancellation)."""
    from scipy import special

    k = np.asarray(k, dtype="float64")
    out = np.empty_like(k)
    small = k < 15
    ks = k[small]
    out[small] = special.gammaln(ks + 1) - (ks * np.log(ks) - ks + 0.5 * np.log(ks) + _HALF_LOG_2PI)
    i = 1.0 / k[~small]
    i2 = i * i
    out[~small] = i * (1 / 12 - i2 * (1 / 360 - i2 * (1 / 1260 - i2 * (1 / 1680 - i2 / 1188))))
    return out


def _log_terms(n: int, x: float, v: np.ndarray, stirl_n: float) -> np.ndarray:
    """``log A_v``, ``A_v = C(n, v) (1 - x - v/n)**(n - v) (x + v/n)**(v - 1)`` for
    ``1 <= v < n (1 - x)``, written so that no large logarithms cancel: the ``n log n``
    parts of the binomial and the powers are gathered into two ``log1p`` terms of
    size ``~ n x``, and the factorials' Stirling errors are small numbers."""
    v = np.asarray(v, dtype="float64")
    w = n - v
    nx = n * x
    return (0.5 * np.log(n / (v * w)) - _HALF_LOG_2PI + stirl_n - _stirlerr(v) - _stirlerr(w)
            + w * np.log1p(-nx / w) + v * np.log1p(nx / v) - np.log(x + v / n))


def smirnov_sf(n: int, x: float, *, rel: float = 1e-20, block: int = 16384) -> float:
    """One-sided Smirnov ``P(D+_n >= x)`` by the Birnbaum-Tingey series (what
    ``scipy.special.smirnov(n, x)`` sums for ``n <= 1e6``), summing only the terms that
    matter: ``x * sum_{v=0}^{n - floor(n x) - 1} A_v``.

    The terms are positive; the largest is found on a coarse grid and the sum walks
    outward from it, a vectorised block at a time, until a block's terms are all below
    ``rel`` times the largest.  Each term is accurate to ~1e-13 relative (see
    :func:`_log_terms`), so the sum matches scipy's double-double one to ~1e-13 for
    results above ~1e-300.  For ``1 < n x``, ``x < 0.5``, ``n x**2 >= 2.2``.
    """
    n = int(n)
    vmax = n - int(np.floor(n * x)) - 1
    log0 = n * np.log1p(-x) - np.log(x)  # v = 0: (1 - x)**n / x
    if vmax < 1:
        return float(x * np.exp(log0))
    stirl_n = float(_stirlerr(np.array([float(n)]))[0])
    grid = np.unique(np.linspace(1, vmax, min(vmax, 2049)).astype(np.int64))
    lg = _log_terms(n, x, grid, stirl_n)
    peak = int(grid[np.argmax(lg)])
    cut = max(float(lg.max()), log0) + np.log(rel)
    parts = [np.array([log0])]
    hi = peak
    while hi <= vmax:  # upward from the peak
        t = _log_terms(n, x, np.arange(hi, min(hi + block, vmax + 1)), stirl_n)
        parts.append(t)
        hi += block
        if t.max() < cut:
            break
    lo = peak
    while lo > 1:  # downward
        t = _log_terms(n, x, np.arange(max(1, lo - block), lo), stirl_n)
        parts.append(t)
        lo -= block
        if t.max() < cut:
            break
    terms = np.concatenate(parts)
    m = terms.max()
    return float(x * np.exp(m) * np.exp(terms - m).sum())


def _series_band(d: np.ndarray, en: np.ndarray) -> np.ndarray:
    """Where ``kstwo.sf(d, en)`` is ``2 * smirnov(en, d)`` summed as a series (scipy's
    ``_kolmogn`` for n > 140, x < 0.5, 1 < n x < n - 1, 2.2 <= n x**2 < 370; smirnov
    sums for n <= 1e6)."""
    nx2 = en * d * d
    return ((en > 140) & (en <= SMIRNOV_EXACT_MAX_N) & (en == np.floor(en)) & (nx2 >= 2.2) & (nx2 < 370)
            & (d < 0.5) & (en * d > 1) & (en * d < en - 1))


def _below_series(d: np.ndarray, en: np.ndarray) -> np.ndarray:
    """Where scipy's ``kstwo.sf`` is ``1 - `` a CDF (``_kolmogn``, n > 140: x < 0.5,
    1 < n x < n - 1, n x**2 < 2.2): the Durbin matrix's where :func:`_durbin_region`,
    Pelz-Good's elsewhere."""
    nx2 = en * d * d
    return (en > 140) & (en == np.floor(en)) & (nx2 < 2.2) & (d < 0.5) & (en * d > 1) & (en * d < en - 1)


def _durbin_region(d: np.ndarray, en: np.ndarray) -> np.ndarray:
    return (en <= 100000) & (en * d ** 1.5 <= 1.4)


def _pelz_good_band(d: np.ndarray, en: np.ndarray) -> np.ndarray:
    """Where scipy's ``kstwo.sf`` is ``1 - `` its Pelz-Good CDF."""
    return _below_series(d, en) & ~_durbin_region(d, en)


def _durbin_band(d: np.ndarray, en: np.ndarray) -> np.ndarray:
    """Where scipy's ``kstwo.sf`` is ``1 - `` its Durbin-matrix CDF (n <= 100000 and
    n x**1.5 <= 1.4)."""
    return _below_series(d, en) & _durbin_region(d, en)


def _durbin_cdf(n: int, d: float) -> float:
    """scipy's ``_kolmogn_DMTW(n, d)`` (Marsaglia, Tsang & Wang's form of Durbin's matrix):
    the same matrix and the same scaled squarings (float64, exact scalings by 2**128), with
    the ``n! / n**n`` factor taken from Stirling's series in one step instead of scipy's
    Python loop of ``n`` multiplications (~3 ms at n = 10000): within ~1e-12 relative."""
    nd = n * d
    k = int(np.ceil(nd))
    h = k - nd
    m = 2 * k - 1
    intm = np.arange(1, m + 1)
    fac = np.concatenate([[1.0], np.cumprod(1.0 / intm)])  # 1 / j!, as scipy's running division
    w = fac[:m]
    v = (1.0 - h ** intm) * fac[1:]
    v[-1] = (1.0 + (max(2 * h - 1.0, 0) ** m - 2 * h ** m)) * fac[m]
    r, c = np.indices((m, m))
    H = np.zeros((m, m))
    below = (c >= 1) & (r >= c - 1)
    H[below] = w[(r - c + 1)[below]]
    H[:, 0] = v
    H[-1, :] = v[::-1]
    hpwr = np.eye(m)
    nn, expnt, hexpnt = n, 0, 0
    big = 2.0 ** 128
    while nn > 0:
        if nn % 2:
            hpwr = hpwr @ H
            expnt += hexpnt
            # scipy scales only H; the product of up to log2(n) scaled factors can pass float64's
            # range (seen at 200k rows/month: overflow, then inf).  Scaling by 2**128 is exact, so
            # where scipy's product stays finite the value is the same to the last bit.
            if np.abs(hpwr).max() > big:
                hpwr /= big
                expnt += 128
        H = H @ H
        hexpnt *= 2
        if abs(H[k - 1, k - 1]) > big:
            H /= big
            hexpnt += 128
        nn //= 2
    p = float(hpwr[k - 1, k - 1])
    if p <= 0:
        return 0.0
    # log(n! / n**n) = -n + log(2 pi n) / 2 + stirlerr(n); its multiple of log 2 goes to the exponent
    lf = -n + 0.5 * np.log(2 * np.pi * n) + float(_stirlerr(np.array([float(n)]))[0])
    q = int(np.floor(lf / np.log(2)))
    return float(np.ldexp(p * np.exp(lf - q * np.log(2)), expnt + q))


def _pelz_good_sf(n: np.ndarray, x: np.ndarray) -> np.ndarray:
    """scipy's ``_kolmogn_PelzGood(n, x)`` (Pelz & Good's series for the KS CDF) for
    arrays, as ``1 - cdf`` clipped: the same terms in the same order, one Horner step
    per ``k`` for all values at once (scipy evaluates it per value in Python)."""
    pi2, pi4, pi6 = np.pi ** 2, np.pi ** 4, np.pi ** 6
    sqrt2pi = np.sqrt(2 * np.pi)
    z = np.sqrt(n) * x
    z2, z3, z4, z6 = z ** 2, z ** 3, z ** 4, z ** 6
    qlog = -pi2 / 8 / z2
    tiny = qlog < -708  # scipy: CDF 0
    q = np.exp(qlog)
    k1a, k1b = -z2, pi2 / 4
    k2a, k2b, k2c = 6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * pi2 / 4, pi4 * (1 - 2 * z2) / 16
    k3d = pi6 * (5 - 30 * z2) / 64
    k3c = pi4 * (-60 * z2 + 212 * z4) / 16
    k3b = pi2 * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z ** 8
    maxk = np.ceil(16 * z / np.pi).astype(np.int64)
    K = np.zeros((4,) + z.shape)
    for k in range(int(maxk.max(initial=0)), 0, -1):
        on = k <= maxk
        m = 2 * k - 1
        m2, m4, m6 = m ** 2, m ** 4, m ** 6
        qp = np.power(q, 8 * k)
        coeffs = (1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6)
        for i in range(4):
            K[i] = np.where(on, K[i] * qp + coeffs[i], K[i])
    K *= q
    K *= sqrt2pi
    K /= np.stack([z, 6 * z4, 72 * z ** 7, 6480 * z ** 10])
    q = np.exp(-pi2 / 2 / z2)
    sqrt3z = np.sqrt(3) * z
    k2extra = np.zeros(z.shape)
    k3extra = np.zeros(z.shape)
    for k in range(int(maxk.max(initial=0)), 0, -1):
        on = k <= maxk
        qk = q ** (k * k)
        kspi = np.pi * k
        k2extra = np.where(on, k2extra + (k * k) * qk, k2extra)
        k3extra = np.where(on, k3extra + (sqrt3z + kspi) * (sqrt3z - kspi) * (k * k) * qk, k3extra)
    K[2] += k2extra * (pi2 * sqrt2pi / (-36 * z3))
    K[3] += k3extra * (pi2 * sqrt2pi / (216 * z6))
    K /= np.stack([np.ones_like(n), np.sqrt(n), n, n ** 1.5])
    cdf = ((K[0] + K[1]) + K[2]) + K[3]
    return np.clip(np.where(tiny, 1.0, 1.0 - cdf), 0.0, 1.0)


def kstwo_sf(d, en) -> np.ndarray:
    """``scipy.stats.kstwo.sf(d, en)``, vectorised; in scipy's slow band (Smirnov's
    series, 0.1-2.5 s per value) the series is summed by :func:`smirnov_sf` (~10-100 ms),
    Pelz-Good's series (~0.15 ms per value in scipy) for all values at once
    (:func:`_pelz_good_sf`), elsewhere scipy's own value.  Equal to scipy to 1e-9
    relative (tested)."""
    from scipy import stats

    d = np.atleast_1d(np.asarray(d, dtype="float64"))
    en = np.atleast_1d(np.asarray(en, dtype="float64"))
    d, en = np.broadcast_arrays(d, en)
    band = _series_band(d, en)
    pg = _pelz_good_band(d, en)
    durbin = _durbin_band(d, en)
    p = np.empty(d.shape)
    for i in np.flatnonzero(band):
        p[i] = min(max(2 * smirnov_sf(int(en[i]), float(d[i])), 0.0), 1.0)
    for i in np.flatnonzero(durbin):
        p[i] = min(max(1.0 - _durbin_cdf(int(en[i]), float(d[i])), 0.0), 1.0)
    if pg.any():
        p[pg] = _pelz_good_sf(en[pg], d[pg])
    rest = ~band & ~pg & ~durbin
    if rest.any():
        p[rest] = stats.kstwo.sf(d[rest], en[rest])
    return p


def ks_pvalues(d, en, *, exact_tail: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised ``kstwo.sf(d, en)`` (Smirnov's two-sided p-value for ``en`` effective rows).

    Where scipy would sum Smirnov's exact series at large ``en`` (``140 < en <=
    1e6``, ``2.2 <= en * d**2 < 370``: p below ~0.025), the series is summed by
    :func:`kstwo_sf` when ``exact_tail`` (10-100 ms per value; scipy: 0.1-2.5 s);
    otherwise the p-value is Maag & Dicaire's approximation
    ``2 exp(-(6 en d + 1)**2 / (18 en))`` there (relative error < 2e-3 for
    ``p >= 1e-9``, en >= 20000; larger deep in the tail).  Everything else is
    scipy's own value.

    Returns
    -------
    p : float64 array
    approximate : bool array, True where the approximation was used
    """
    d = np.atleast_1d(np.asarray(d, dtype="float64"))
    en = np.atleast_1d(np.asarray(en, dtype="float64"))
    approx = _series_band(d, en)
    if exact_tail:
        approx[:] = False
    p = np.empty_like(d)
    p[approx] = 2 * np.exp(-(6 * en[approx] * d[approx] + 1) ** 2 / (18 * en[approx]))
    rest = ~approx
    if rest.any():
        p[rest] = kstwo_sf(d[rest], en[rest])
    return np.clip(p, 0, 1), approx


class KSResult(NamedTuple):
    """What :func:`ks_2samp` returns: ``statistic`` and ``pvalue``, by name as scipy's
    ``KstestResult`` or unpacked as a pair."""

    statistic: float
    pvalue: float


def ks_2samp(a, b) -> KSResult:
    """Two-sample KS test: ``(statistic, pvalue)`` as ``scipy.stats.ks_2samp(a, b)``.

    Parameters
    ----------
    a, b : numpy or cupy arrays, 1-D, non-empty, no NaN.

    Returns
    -------
    KSResult
        ``.statistic`` and ``.pvalue`` (as scipy's result), also a ``(statistic, pvalue)`` pair.
    """
    xp = array_namespace(a)
    a = xp.sort(xp.asarray(a).ravel())
    b = xp.sort(xp.asarray(b).ravel())
    n1, n2 = int(a.shape[0]), int(b.shape[0])
    if min(n1, n2) == 0:
        raise ValueError("Data passed to ks_2samp must not be empty")
    if max(n1, n2) <= MAX_EXACT_N:
        res = _scipy_ks(to_numpy(a), to_numpy(b))
        return KSResult(float(res.statistic), float(res.pvalue))
    both = xp.concatenate([a, b])
    cdf1 = xp.searchsorted(a, both, side="right") / n1
    cdf2 = xp.searchsorted(b, both, side="right") / n2
    diff = cdf1 - cdf2
    d = float(max(float(xp.clip(-diff.min(), 0, 1)), float(diff.max())))
    return KSResult(d, ks_pvalue(d, n1, n2))


def value_counts(x, xp=np) -> tuple[Any, Any]:
    """Sorted distinct values of ``x`` and their counts (int64)."""
    values, counts = xp.unique(xp.asarray(x), return_counts=True)
    return values, counts.astype("int64")


def merge_counts(pairs) -> tuple[np.ndarray, np.ndarray]:
    """Merge ``(values, counts)`` pairs (host arrays) into one sorted pair."""
    pairs = [(np.asarray(v), np.asarray(c)) for v, c in pairs if len(v)]
    if not pairs:
        return np.zeros(0), np.zeros(0, dtype="int64")
    values = np.concatenate([v for v, _ in pairs])
    counts = np.concatenate([c for _, c in pairs])
    uniq, inverse = np.unique(values, return_inverse=True)
    return uniq, np.bincount(inverse, weights=counts, minlength=len(uniq)).astype("int64")


def ks_from_counts(values1, counts1, values2, counts2) -> tuple[float, float]:
    """KS ``(statistic, pvalue)`` from exact value counts of two samples.

    Equal to ``scipy.stats.ks_2samp`` on the expanded samples: the empirical
    CDFs at every observed value are the same integer counts divided by the
    same sizes.
    """
    values1, counts1 = np.asarray(values1), np.asarray(counts1, dtype="int64")
    values2, counts2 = np.asarray(values2), np.asarray(counts2, dtype="int64")
    n1, n2 = int(counts1.sum()), int(counts2.sum())
    if min(n1, n2) == 0:
        raise ValueError("Data passed to ks_2samp must not be empty")
    if max(n1, n2) <= MAX_EXACT_N:
        return ks_2samp(np.repeat(values1, counts1), np.repeat(values2, counts2))
    union = np.union1d(values1, values2)
    cum1 = np.concatenate([[0], np.cumsum(counts1)])
    cum2 = np.concatenate([[0], np.cumsum(counts2)])
    cdf1 = cum1[np.searchsorted(values1, union, side="right")] / n1
    cdf2 = cum2[np.searchsorted(values2, union, side="right")] / n2
    diff = cdf1 - cdf2
    d = float(max(float(np.clip(-diff.min(), 0, 1)), float(diff.max())))
    return d, ks_pvalue(d, n1, n2)
