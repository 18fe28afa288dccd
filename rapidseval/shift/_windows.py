"""Statistics of many windows against one reference at once.

``calculate`` used to build a :class:`~rapidseval.shift._stats.Dist` per window
and call each statistic per window (a Python loop over windows x features x
statistics).  Here the windows of a feature that share a reference (the same
weekday mix) are one :class:`Batch`: their distinct values, window after window,
each window's values sorted.  Every statistic is then a few vectorised passes
over the batch's entries (searches in the reference, cumulative sums, per-window
reductions with ``reduceat`` / ``bincount``), with the same formulas as the
:class:`Dist` forms in :mod:`._stats` (tests pin the two together, 1e-12).

Entries of a batch are distinct within each window: ``(window, value)`` pairs with
their counts, sorted by window and value (:func:`collapse`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as _st

from ._counts import _float_key
from ._stats import PSI_EPS, Dist, RefInfo, _h

__all__ = ["Batch", "BATCH_STATISTICS", "collapse", "batch_values"]


def collapse(wid: np.ndarray, value: np.ndarray, count: np.ndarray, single: bool):
    """Distinct ``(window, value)`` pairs with summed counts, sorted by window then value.

    ``wid`` is sorted (entries come day after day); ``single``: every window is one day,
    whose entries are already distinct and sorted by value.
    """
    if single or len(wid) == 0:
        return wid, value.astype("float64"), count.astype("int64")
    fkey = _float_key(np.ascontiguousarray(value, dtype=np.float32), np).astype(np.uint64)
    wbits, ebits = int(wid[-1]).bit_length(), (len(wid) - 1).bit_length()
    if wbits + 32 + ebits <= 64:
        # (window, value, position) packed in one word: a plain (vectorised) sort is the argsort
        packed = (wid.astype(np.uint64) << np.uint64(32 + ebits)) | (fkey << np.uint64(ebits))
        packed |= np.arange(len(wid), dtype=np.uint64)
        packed.sort()
        order = (packed & np.uint64((1 << ebits) - 1)).astype(np.intp)
        key = packed >> np.uint64(ebits)
    else:
        key = (wid.astype(np.uint64) << np.uint64(32)) | fkey
        order = np.argsort(key, kind="stable")
        key = key[order]
    flag = np.empty(len(key), bool)
    flag[0] = True
    np.not_equal(key[1:], key[:-1], out=flag[1:])
    starts = np.flatnonzero(flag)
    summed = np.add.reduceat(count[order], starts)
    return wid[order][starts], value[order][starts].astype("float64"), summed.astype("int64")


@dataclass
class Batch:
    """Windows of one feature compared with the same reference ``ref``.

    x, c : distinct values (float64) and counts (int64), window after window
    starts : first entry of every window; wid : window (0..nw-1) of every entry
    n : int64 total count of every window
    lo : ``searchsorted(ref.values, x, "left")``; eq : ``x`` is a reference value
    """

    ref: Dist
    x: np.ndarray
    c: np.ndarray
    starts: np.ndarray
    wid: np.ndarray
    n: np.ndarray
    lo: np.ndarray
    eq: np.ndarray

    @classmethod
    def build(cls, ref: Dist, wid: np.ndarray, x: np.ndarray, c: np.ndarray, nw: int) -> "Batch":
        starts = np.searchsorted(wid, np.arange(nw))
        n = np.add.reduceat(c, starts) if len(c) else np.zeros(nw, "int64")
        r = ref.values
        lo = np.searchsorted(r, x, side="left")
        eq = np.zeros(len(x), bool)
        inside = lo < len(r)
        eq[inside] = r[lo[inside]] == x[inside]
        return cls(ref, x, c, starts, wid, n, lo, eq)

    @property
    def nw(self) -> int:
        return len(self.starts)

    @property
    def cum(self) -> np.ndarray:
        """Each entry's cumulative count within its window (int64, exact)."""
        if not hasattr(self, "_cum"):
            cs = np.cumsum(self.c)
            base = cs[self.starts] - self.c[self.starts]
            self._cum = cs - base[self.wid]
        return self._cum

    def last(self) -> np.ndarray:
        """Index of every window's last entry."""
        return np.append(self.starts[1:], len(self.x)) - 1


def _ks(b: Batch, info: RefInfo) -> np.ndarray:
    ref = b.ref
    cr = np.concatenate([[0], ref.cum])
    tot = b.n[b.wid]
    cx = b.cum
    right = cr[b.lo + b.eq] / ref.total - cx / tot
    left = cr[b.lo] / ref.total - (cx - b.c) / tot
    mn = np.minimum.reduceat(np.minimum(right, left), b.starts)
    mx = np.maximum.reduceat(np.maximum(right, left), b.starts)
    return np.maximum(np.clip(-mn, 0, 1), mx)


def _wasserstein(b: Batch, info: RefInfo) -> np.ndarray:
    """The Dist form's pieces (one per flat stretch of the window's CDF, the first from
    ``min(ref, window)`` to the window's first value), laid out window after window so
    every window's pieces are summed as one contiguous run.

    The reference integral at the pieces' ends is taken at the batch's values, whose
    places in the reference are known (``lo``, ``eq``), and at reference values (where
    it is the running integral itself): one search per piece, in the reference CDF."""
    ref = b.ref
    r, fr, g = ref.values, ref.cdf, _h(ref)
    nr = len(r)
    nw, ne = b.nw, len(b.x)
    last = b.last()

    def integral(t, k):  # integral of F_ref up to t, k = searchsorted(r, t, "right") - 1
        kk = np.maximum(k, 0)
        return np.where(k < 0, 0.0, g[kk] + fr[kk] * (t - r[kk]))

    ix = integral(b.x, b.lo + b.eq - 1)
    first = b.x[b.starts]
    lo_w = np.minimum(r[0], first)
    hi_w = np.maximum(r[-1], b.x[last])
    i_lo = np.where(lo_w == first, ix[b.starts], integral(lo_w, np.zeros(nw, "int64")))  # lo_w == r[0] otherwise
    i_hi = np.where(hi_w == b.x[last], ix[last], integral(hi_w, np.full(nw, nr - 1)))  # hi_w == r[-1] otherwise
    # window j's pieces: the first one (lo_w -> its first value, c = 0), then one per entry
    # (x_k -> x_k+1, or hi_w after the last; c = the window's CDF at x_k, 1 at the last)
    nxt, inxt = np.empty(ne), np.empty(ne)
    nxt[:-1], inxt[:-1] = b.x[1:], ix[1:]
    nxt[last], inxt[last] = hi_w, i_hi
    c = b.cum / b.n[b.wid]
    c[last] = 1.0
    # reference values below each piece's start, and up to its end
    below_a = b.lo
    upto_b = np.empty(ne, np.int64)
    upto_b[:-1] = (b.lo + b.eq)[1:]
    upto_b[last] = nr
    first_part = _pieces(r, fr, g, lo_w, first, np.zeros(nw), i_lo, ix[b.starts])
    parts = _pieces(r, fr, g, b.x, nxt, c, ix, inxt, below_a, upto_b)
    return np.maximum(first_part + np.add.reduceat(parts, b.starts), 0.0)


def _pieces(r, fr, g, a, bb, c, ha, hb, below_a=None, upto_b=None):
    """Integral of |F_ref - c| over [a, b] (F_ref's integral ha, hb at the ends): split at
    t = r[j], the first reference value where F_ref reaches c (the integral there is g[j]),
    clipped to [a, b].

    With ``below_a`` / ``upto_b`` (how many reference values are < a / <= b), j is only
    searched for where it falls inside [a, b] (about 1% of a day's pieces): r[j] < a
    exactly when F_ref already reaches c at the last reference value below a, and
    r[j] > b exactly when it has not reached c at the last one up to b."""
    nr = len(r)
    if below_a is None:
        j = np.searchsorted(fr, c, side="left")
        jj = np.minimum(j, nr - 1)
        t0 = np.where(j < nr, r[jj], np.inf)
        t = np.clip(t0, a, bb)
        ht = np.where(t0 < a, ha, np.where(t0 > bb, hb, g[jj] + fr[jj] * 0.0))
    else:
        before = (below_a > 0) & (fr[np.maximum(below_a - 1, 0)] >= c)  # r[j] < a
        after = (upto_b == 0) | (fr[np.maximum(upto_b - 1, 0)] < c)  # r[j] > b (or no such r)
        t = np.where(before, a, bb)
        ht = np.where(before, ha, hb)
        inside = np.flatnonzero(~before & ~after)
        j = np.searchsorted(fr, c[inside], side="left")
        t[inside] = r[j]
        ht[inside] = g[j] + fr[j] * 0.0
    return c * (t - a) - (ht - ha) + (hb - ht) - c * (bb - t)


def _wasserstein_norm(b: Batch, info: RefInfo) -> np.ndarray:
    w = _wasserstein(b, info)
    return w / info.std if info.std > 0 else np.full(b.nw, np.nan)


def _union_dense(b: Batch):
    """Reference weights and window counts on the union of reference values and the
    batch's window values: (K,) and (nw, K), plus the mask of each window's own union
    (reference values present, or carrying window counts)."""
    ref = b.ref
    u = np.union1d(ref.values, b.x)
    pw = np.zeros(len(u))
    pw[np.searchsorted(u, ref.values)] = ref.weights
    present = np.zeros(len(u), bool)
    present[np.searchsorted(u, ref.values[ref.present])] = True
    q = np.zeros((b.nw, len(u)))
    q[b.wid, np.searchsorted(u, b.x)] = b.c
    mask = present[None, :] | (q > 0)
    return pw, present, q, mask


def _proportions(b: Batch, info: RefInfo, categorical: bool | None = None):
    """(p, q): reference proportions (1 or nw rows) and window proportions (nw rows), and
    the mask of terms that count (None: all)."""
    ref = b.ref
    if info.categorical_bins if categorical is None else categorical:
        pw, present, q, mask = _union_dense(b)
        p = np.where(present, pw, 0.0)
        return (p / p.sum())[None, :], q / q.sum(axis=1, keepdims=True), mask
    nb = len(info.edges) + 1
    if "bins" not in ref.cache:
        ref.cache["bins"] = np.bincount(np.searchsorted(info.edges, ref.values, side="right"),
                                        weights=ref.weights, minlength=nb)
    p = ref.cache["bins"]
    bins = np.searchsorted(info.edges, b.x, side="right")
    q = np.bincount(b.wid * nb + bins, weights=b.c, minlength=b.nw * nb).reshape(b.nw, nb)
    return (p / p.sum())[None, :], q / q.sum(axis=1, keepdims=True), None


def _msum(x, mask):
    return (x if mask is None else np.where(mask, x, 0.0)).sum(axis=1)


def _psi(b: Batch, info: RefInfo) -> np.ndarray:
    p, q, mask = _proportions(b, info)
    p, q = np.maximum(p, PSI_EPS), np.maximum(q, PSI_EPS)
    return _msum((q - p) * np.log(q / p), mask)


def _rel_entr(p, q):
    pos = p > 0
    return np.where(pos, p * np.log(np.where(pos, p, 1.0) / np.where(pos, q, 1.0)), 0.0)


def _js(b: Batch, info: RefInfo) -> np.ndarray:
    p, q, mask = _proportions(b, info)
    p = np.broadcast_to(p, q.shape)
    m = (p + q) / 2
    js = (_msum(_rel_entr(p, m), mask) + _msum(_rel_entr(q, m), mask)) / 2
    return np.sqrt(np.maximum(js, 0.0) / np.log(2))


def _tvd(b: Batch, info: RefInfo) -> np.ndarray:
    p, q, mask = _proportions(b, info, categorical=True)
    return 0.5 * _msum(np.abs(p - q), mask)


def _chi2_many(b: Batch, correction: bool):
    """Pearson's chi-square of every window's 2 x K table (:func:`~._stats.chi2_test`):
    (chi2, dof, K) per window."""
    ref = b.ref
    pw, present, q, mask = _union_dense(b)
    r = np.where(present, pw if ref.exact else pw * (ref.n_eff / ref.total), 0.0)[None, :]
    k = mask.sum(axis=1)
    rs = _msum(np.broadcast_to(r, q.shape), mask)
    ws = q.sum(axis=1)
    n = rs + ws
    col = r + q
    e0 = rs[:, None] * col / n[:, None]
    e1 = ws[:, None] * col / n[:, None]
    dof = k - 1
    o0, o1 = np.broadcast_to(r, q.shape), q
    if correction:
        yates = (dof == 1)[:, None]
        d0, d1 = e0 - o0, e1 - o1
        o0 = np.where(yates, o0 + np.minimum(0.5, np.abs(d0)) * np.sign(d0), o0)
        o1 = np.where(yates, o1 + np.minimum(0.5, np.abs(d1)) * np.sign(d1), o1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(mask, (o0 - e0) ** 2 / e0 + (o1 - e1) ** 2 / e1, 0.0)
    chi2 = np.where(dof == 0, 0.0, terms.sum(axis=1))
    return chi2, dof, k, n


def _chi2_p(chi2, dof):
    p = np.ones(len(chi2))
    ok = dof > 0
    p[ok] = _st.chi2.sf(chi2[ok], dof[ok])
    return p


def _chi2(b: Batch, info: RefInfo):
    chi2, dof, _, _ = _chi2_many(b, True)
    return chi2, _chi2_p(chi2, dof)


def _cramers_v(b: Batch, info: RefInfo):
    raw, _, k, n = _chi2_many(b, False)
    chi2, dof, _, _ = _chi2_many(b, True)
    v = np.where(k < 2, 0.0, np.sqrt(raw / n))
    return v, np.where(k < 2, 1.0, _chi2_p(chi2, dof))


def _missing_ref(ref: Dist, fill: float) -> float:
    i = np.searchsorted(ref.values, fill)
    return float(ref.weights[i] / ref.total) if i < len(ref.values) and ref.values[i] == fill else 0.0


def _missing_rate(b: Batch, info: RefInfo) -> np.ndarray:
    win = np.add.reduceat(np.where(b.x == info.fill_value, b.c, 0), b.starts) / b.n
    return np.abs(win - _missing_ref(b.ref, info.fill_value))


def _out_of_range(b: Batch, info: RefInfo) -> np.ndarray:
    ref = b.ref
    keep = ref.present & (ref.values != info.fill_value)
    if not keep.any():
        return np.full(b.nw, np.nan)
    lo, hi = ref.values[keep][0], ref.values[keep][-1]
    fine = b.x != info.fill_value
    n = np.add.reduceat(np.where(fine, b.c, 0), b.starts)
    out = np.add.reduceat(np.where(fine & ((b.x < lo) | (b.x > hi)), b.c, 0), b.starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n == 0, 0.0, out / n)


def _no_p(fn):
    def wrapped(b, info):
        return fn(b, info), np.full(b.nw, np.nan)
    return wrapped


#: statistic name -> ``fn(batch, info) -> (values, p_values)`` per window (KS: p-values
#: are left to the caller, which computes them for all rows at once)
BATCH_STATISTICS: dict[str, Callable[[Batch, RefInfo], tuple[np.ndarray, np.ndarray]]] = {
    "ks": _no_p(_ks), "wasserstein": _no_p(_wasserstein), "wasserstein_norm": _no_p(_wasserstein_norm),
    "psi": _no_p(_psi), "jensen_shannon": _no_p(_js), "tvd": _no_p(_tvd), "chi2": _chi2, "cramers_v": _cramers_v,
    "missing_rate": _no_p(_missing_rate), "out_of_range": _no_p(_out_of_range),
}


def batch_values(name: str, b: Batch, info: RefInfo) -> tuple[np.ndarray, np.ndarray]:
    """Statistic ``name`` of every window of ``b`` against its reference: (values, p-values)."""
    return BATCH_STATISTICS[name](b, info)
