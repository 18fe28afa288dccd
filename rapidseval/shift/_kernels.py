"""Compiled per-window passes: every ordered statistic of a window in one walk.

Daily windows over a year are tens of millions of ``(day, value)`` entries for a
continuous feature (a trip speed has about one distinct value per two rows).
Written as NumPy passes, KS, Wasserstein, the binned proportions, the missing
and out-of-range shares are ~40 memory-bound passes over those entries plus a
binary search per entry.  Here one compiled loop per window (numba, no GIL, so
the calculator's threads run windows in parallel) walks the window's sorted
values once:

* the place of each value in the reference's sorted values is found by
  scanning forward from the previous value's place, galloping when the gap is
  long (the values are sorted, so the steps are short and cache-local), which gives the reference CDF just
  below and at the value: the KS statistic's two sides;
* each flat stretch of the window's CDF between two of its values is one piece
  of the Wasserstein integral, split where the reference CDF crosses the
  window's level, searched for only when the crossing lies inside the piece;
* the quantile bin, the fill value and the reference's range are followed on
  the way.

The formulas are those of the :class:`~rapidseval.shift._stats.Dist` forms
operation for operation (``tests/test_shift_stats.py`` pins every row of
``calculate`` to them): KS values are bit-equal, sums differ by summation order
only (the pieces of a window are added in order, ~1e-16 relative).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["ordered_windows"]

#: forward steps a search scans before it gallops
_SCAN = 32


@njit(cache=True, nogil=True, inline="always")
def _lower_bound(a, v, lo):
    """First index i >= lo with a[i] >= v, for sorted ``a`` and a[lo - 1] < v.

    A window's values are sorted and usually a few reference values apart, so the first
    ``_SCAN`` steps are a plain forward scan (its branch is predictable; a binary search's
    is a coin toss per step); beyond that, galloping (1, 2, 4, ... ahead) and bisecting
    the last step keeps a sparse window at O(log gap) per value."""
    n = a.shape[0]
    stop = min(lo + _SCAN, n)
    while lo < stop and a[lo] < v:
        lo += 1
    if lo < stop or lo == n:
        return lo
    below = lo - 1  # a[below] < v
    step = 1
    hi = lo
    while hi < n and a[hi] < v:
        below = hi
        step *= 2
        hi = below + step
    return _bisect(a, v, below + 1, min(hi, n))


@njit(cache=True, nogil=True, inline="always")
def _bisect(a, v, lo, hi):
    """First index i in [lo, hi) with a[i] >= v (hi if none), for sorted ``a``."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, inline="always")
def _integral(r, fr, g, t, k):
    """Integral of the reference CDF from -inf to t; k = (reference values <= t) - 1."""
    if k < 0:
        return 0.0
    return g[k] + fr[k] * (t - r[k])


@njit(cache=True, nogil=True, inline="always")
def _piece(r, fr, g, a, b, c, ha, hb, below_a, upto_b):
    """Integral of |F_ref - c| over [a, b] (F_ref's integral ha, hb at the ends): split at
    t = r[j], j the first reference value where F_ref reaches c, clipped to [a, b].
    ``below_a`` / ``upto_b``: reference values < a / <= b (j is searched for only when it
    falls inside)."""
    if below_a > 0 and fr[below_a - 1] >= c:  # r[j] < a
        t, ht = a, ha
    elif upto_b == 0 or fr[upto_b - 1] < c:  # r[j] > b, or no such value
        t, ht = b, hb
    else:
        j = _bisect(fr, c, below_a, upto_b - 1)  # fr[upto_b - 1] >= c
        t, ht = r[j], g[j] + fr[j] * 0.0
    return c * (t - a) - (ht - ha) + (hb - ht) - c * (b - t)


@njit(cache=True, nogil=True)
def ordered_windows(r, fr, g, edges, fill, rng_lo, rng_hi, x, c, ws, we, wsel, want_w, want_bins,
                    out_n, out_ks, out_w, out_bins, out_miss, out_fine, out_out):
    """Every ordered statistic's ingredients for the windows ``wsel`` against one reference.

    Reference: sorted distinct values ``r`` (float64), ``fr`` its CDF (cumulative weights / total weight, float64), ``g`` the running integral
    of ``fr`` at its values, ``edges`` the quantile bins' interior edges, ``fill`` the missing-value fill, ``rng_lo`` / ``rng_hi`` the range of its
    non-fill values (NaN: none).

    Windows: window ``w``'s entries are ``x[ws[w]:we[w]]`` (strictly increasing) with counts
    ``c`` (int64 > 0).  Results go to index ``w`` of the ``out_*`` arrays: the window's
    total count, KS statistic, Wasserstein-1 (if ``want_w``), weighted counts per bin
    (row ``w`` of ``out_bins``, ``len(edges) + 1`` columns, if ``want_bins``), and the
    counts of fill values, of other values, and of other values outside the range.

    One loop, kept whole (80 lines): every statistic reads the walk's shared running state
    (search position, both CDFs, the open Wasserstein piece), so a split would pass that
    state through each entry's call.
    """
    nr = r.shape[0]
    nb = edges.shape[0]
    for i in range(wsel.shape[0]):
        w = wsel[i]
        s, e = ws[w], we[w]
        n = 0
        for k in range(s, e):
            n += c[k]
        nf = float(n)
        # KS: |F_ref - F_win| is largest at a window value or just before one
        mn, mx = np.inf, -np.inf
        cum = 0
        lo = 0
        # Wasserstein: the first piece runs from min(r[0], x[0]) to x[0] at level 0
        x0 = float(x[s])
        xl = float(x[e - 1])
        wsum = 0.0
        prev_x = 0.0
        prev_ix = 0.0
        prev_below = 0
        prev_c = 0.0
        bn = 0
        miss = 0
        fine = 0
        outside = 0
        for k in range(s, e):
            v = float(x[k])
            ck = c[k]
            lo = _lower_bound(r, v, lo)
            eq = 1 if (lo < nr and r[lo] == v) else 0
            prev = cum
            cum += ck
            # fr[i] = cum[i] / total, the reference CDF at r[i]: at (lo + eq - 1) and (lo - 1)
            right = (fr[lo + eq - 1] if lo + eq > 0 else 0.0) - cum / nf
            left = (fr[lo - 1] if lo > 0 else 0.0) - prev / nf
            mn = min(mn, min(right, left))
            mx = max(mx, max(right, left))
            if want_w:
                ix = _integral(r, fr, g, v, lo + eq - 1)
                if k == s:
                    lo_w = min(r[0], v)
                    i_lo = ix if lo_w == v else _integral(r, fr, g, lo_w, 0)
                    wsum += _piece(r, fr, g, lo_w, v, 0.0, i_lo, ix, 0, lo + eq)
                else:  # the stretch from the previous value to this one, at the previous level
                    wsum += _piece(r, fr, g, prev_x, v, prev_c, prev_ix, ix, prev_below, lo + eq)
                prev_x, prev_ix, prev_below, prev_c = v, ix, lo, cum / nf
            if want_bins:
                while bn < nb and edges[bn] <= v:
                    bn += 1
                out_bins[w, bn] += ck
            if v == fill:
                miss += ck
            else:
                fine += ck
                if v < rng_lo or v > rng_hi:
                    outside += ck
        if want_w:  # the last stretch, at level 1, to max(r[-1], x[-1])
            hi_w = max(r[nr - 1], xl)
            i_hi = prev_ix if hi_w == xl else _integral(r, fr, g, hi_w, nr - 1)
            wsum += _piece(r, fr, g, prev_x, hi_w, 1.0, prev_ix, i_hi, prev_below, nr)
            out_w[w] = max(wsum, 0.0)
        out_n[w] = n
        out_ks[w] = max(min(max(-mn, 0.0), 1.0), mx)
        out_miss[w] = miss
        out_fine[w] = fine
        out_out[w] = outside
