"""Statistics of many windows against one reference at once.

``calculate`` used to build a :class:`~rapidseval.shift._stats.Dist` per window
and call each statistic per window (a Python loop over windows x features x
statistics).  Here:

* every ordered statistic (KS, Wasserstein, PSI / Jensen-Shannon on quantile
  bins, missing and out-of-range shares) comes from one compiled walk per window
  through its sorted values beside the reference's (:func:`walk`,
  :mod:`._kernels`);
* the statistics on per-category tables (chi-square, Cramer's V, TVD, PSI /
  Jensen-Shannon on categories) take the windows of a feature that share a
  reference (the same weekday mix) as one :class:`Batch` and are a few
  vectorised passes over its dense (window, value) table.

Both use the same formulas as the :class:`Dist` forms in :mod:`._stats` (tests
pin every row of ``calculate`` to them, 1e-12).  A window's entries are its
distinct values, sorted, with their counts (:func:`collapse` makes them for
windows of several days).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as _st

from ._counts import _float_key
from ._stats import PSI_EPS, Dist, RefInfo, _h, clipped_reference, missing_share, reference_bins, reference_range

__all__ = ["Batch", "BATCH_STATISTICS", "Walk", "collapse", "batch_values", "walk", "walk_values", "walked",
           "clipped_wasserstein"]


def collapse(wid: np.ndarray, value: np.ndarray, count: np.ndarray):
    """Distinct ``(window, value)`` pairs with summed counts, sorted by window then value
    (``wid`` is sorted: entries come day after day)."""
    if len(wid) == 0:
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
    """Windows of one feature compared with the same reference ``ref``, for the statistics
    that bin per category (their tables are dense: values x windows).

    values, counts : distinct values (float64) and their counts (int64), window after window
    starts : first entry of every window; wid : window (0..n_windows-1) of every entry
    """

    ref: Dist
    values: np.ndarray
    counts: np.ndarray
    starts: np.ndarray
    wid: np.ndarray

    @classmethod
    def build(cls, ref: Dist, wid: np.ndarray, values: np.ndarray, counts: np.ndarray, n_windows: int) -> "Batch":
        return cls(ref, np.asarray(values, dtype="float64"), counts, np.searchsorted(wid, np.arange(n_windows)), wid)

    @property
    def n_windows(self) -> int:
        return len(self.starts)


# ---------------------------------------------------------------------------------------
# statistics from the compiled walk (every ordered statistic of a window in one pass)
# ---------------------------------------------------------------------------------------
@dataclass
class Walk:
    """What :func:`~._kernels.ordered_windows` leaves for every window of a feature: its
    total count, KS statistic, Wasserstein-1 distance, counts per reference-quantile bin,
    and the counts of missing (fill) values, of present values and of present values
    outside the reference's range."""

    rows: np.ndarray
    ks: np.ndarray
    wasserstein: np.ndarray
    bins: np.ndarray
    missing: np.ndarray
    present: np.ndarray
    outside: np.ndarray

    @classmethod
    def empty(cls, nw: int, nbins: int) -> "Walk":
        z = lambda: np.zeros(nw, "int64")  # noqa: E731
        return cls(z(), np.zeros(nw), np.full(nw, np.nan), np.zeros((nw, nbins)), z(), z(), z())


def walked(name: str, info: RefInfo) -> bool:
    """Statistic ``name`` of this feature comes from the walk (not from a dense per-category table)."""
    if name in ("psi", "jensen_shannon"):
        return not info.categorical_bins
    return name in ("ks", "wasserstein", "wasserstein_norm", "missing_rate", "out_of_range")


def _walk_ref(ref: Dist, info: RefInfo):
    """The reference's arrays for the walk (computed once per reference)."""
    if "walk" not in ref.cache:
        lo, hi = reference_range(ref, info.fill_value) or (np.nan, np.nan)  # NaN: nothing is inside
        ref.cache["walk"] = (np.asarray(ref.values, dtype="float64"), np.asarray(ref.cdf, dtype="float64"), _h(ref),
                             np.asarray(info.edges, dtype="float64"), float(info.fill_value), lo, hi)
    return ref.cache["walk"]


def walk(ref: Dist, info: RefInfo, x: np.ndarray, c: np.ndarray, ws: np.ndarray, we: np.ndarray,
         wsel: np.ndarray, res: Walk, stats: tuple[str, ...]) -> None:
    """Walk the windows ``wsel`` (entries ``x[ws[w]:we[w]]``, sorted, distinct) against ``ref``,
    filling their rows of ``res``."""
    from ._kernels import ordered_windows  # numba: compiled on first use, cached on disk

    want_w = any(s in ("wasserstein", "wasserstein_norm") for s in stats)
    want_bins = not info.categorical_bins and any(s in ("psi", "jensen_shannon") for s in stats)
    ordered_windows(*_walk_ref(ref, info), x, c, ws, we, np.asarray(wsel, dtype="int64"), want_w, want_bins,
                    res.rows, res.ks, res.wasserstein, res.bins, res.missing, res.present, res.outside)


def clipped_wasserstein(ref: Dist, info: RefInfo, x: np.ndarray, c: np.ndarray, ws: np.ndarray, we: np.ndarray,
                        wsel: np.ndarray) -> np.ndarray:
    """``wasserstein_clipped`` of the windows ``wsel``: their entries clipped to the clip range
    (the runs at either end merged: entries stay sorted and distinct) and walked against the
    clipped reference (the Dist form's formula on the same two clipped distributions)."""
    wsel = np.asarray(wsel, dtype="int64")
    if not info.clip_std > 0:
        return np.full(len(wsel), np.nan)
    lens = we[wsel] - ws[wsel]
    idx = np.repeat(ws[wsel] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(int(lens.sum()))
    wid = np.repeat(np.arange(len(wsel)), lens)
    xc = np.clip(x[idx], info.clip_lo, info.clip_hi)
    flag = np.ones(len(xc), bool)
    flag[1:] = (wid[1:] != wid[:-1]) | (xc[1:] != xc[:-1])
    starts = np.flatnonzero(flag)
    xs, cs, ids = xc[starts], np.add.reduceat(c[idx], starts), wid[starts]
    cws = np.searchsorted(ids, np.arange(len(wsel)))
    cwe = np.append(cws[1:], len(xs))
    res = Walk.empty(len(wsel), len(info.edges) + 1)
    walk(clipped_reference(ref, info), info, xs, cs.astype("int64"), cws, cwe, np.arange(len(wsel)), res, ("wasserstein",))
    return res.wasserstein / info.clip_std


def walk_values(name: str, ref: Dist, info: RefInfo, res: Walk, wsel: np.ndarray) -> np.ndarray:
    """Statistic ``name`` of the windows ``wsel`` from their walk (the Dist forms' formulas)."""
    if name == "ks":
        return res.ks[wsel]
    if name == "wasserstein":
        return res.wasserstein[wsel]
    if name == "wasserstein_norm":
        return res.wasserstein[wsel] / info.std if info.std > 0 else np.full(len(wsel), np.nan)
    if name == "missing_rate":
        return np.abs(res.missing[wsel] / res.rows[wsel] - missing_share(ref, info.fill_value))
    if name == "out_of_range":
        if reference_range(ref, info.fill_value) is None:
            return np.full(len(wsel), np.nan)
        present, outside = res.present[wsel], res.outside[wsel]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(present == 0, 0.0, outside / present)
    p = reference_bins(ref, info)
    q = res.bins[wsel]
    p, q = (p / p.sum())[None, :], q / q.sum(axis=1, keepdims=True)
    return _psi_pq(p, q, None) if name == "psi" else _js_pq(p, q, None)


# ---------------------------------------------------------------------------------------
# statistics on dense per-category tables
# ---------------------------------------------------------------------------------------
def _union_dense(b: Batch):
    """Reference weights and window counts on the union of reference values and the
    batch's window values: (K,) and (nw, K), plus the mask of each window's own union
    (reference values present, or carrying window counts)."""
    ref = b.ref
    u = np.union1d(ref.values, b.values)
    pw = np.zeros(len(u))
    pw[np.searchsorted(u, ref.values)] = ref.weights
    present = np.zeros(len(u), bool)
    present[np.searchsorted(u, ref.values[ref.present])] = True
    q = np.zeros((b.n_windows, len(u)))
    q[b.wid, np.searchsorted(u, b.values)] = b.counts
    mask = present[None, :] | (q > 0)
    return pw, present, q, mask


def _proportions(b: Batch, info: RefInfo):
    """(p, q, mask): reference proportions (one row) and window proportions (nw rows) over
    the union of values, and the mask of each window's terms."""
    pw, present, q, mask = _union_dense(b)
    p = np.where(present, pw, 0.0)
    return (p / p.sum())[None, :], q / q.sum(axis=1, keepdims=True), mask


def _msum(x, mask):
    return (x if mask is None else np.where(mask, x, 0.0)).sum(axis=1)


def _psi_pq(p, q, mask):
    p, q = np.maximum(p, PSI_EPS), np.maximum(q, PSI_EPS)
    return _msum((q - p) * np.log(q / p), mask)


def _rel_entr(p, q):
    pos = p > 0
    return np.where(pos, p * np.log(np.where(pos, p, 1.0) / np.where(pos, q, 1.0)), 0.0)


def _js_pq(p, q, mask):
    p = np.broadcast_to(p, q.shape)
    m = (p + q) / 2
    js = (_msum(_rel_entr(p, m), mask) + _msum(_rel_entr(q, m), mask)) / 2
    return np.sqrt(np.maximum(js, 0.0) / np.log(2))


def _psi(b: Batch, info: RefInfo) -> np.ndarray:
    return _psi_pq(*_proportions(b, info))


def _js(b: Batch, info: RefInfo) -> np.ndarray:
    return _js_pq(*_proportions(b, info))


def _tvd(b: Batch, info: RefInfo) -> np.ndarray:
    p, q, mask = _proportions(b, info)
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


def _no_p(fn):
    def wrapped(b, info):
        return fn(b, info), np.full(b.n_windows, np.nan)
    return wrapped


#: statistic name -> ``fn(batch, info) -> (values, p_values)`` per window, for the statistics
#: on dense per-category tables (:func:`walked` says which come from the walk instead)
BATCH_STATISTICS: dict[str, Callable[[Batch, RefInfo], tuple[np.ndarray, np.ndarray]]] = {
    "psi": _no_p(_psi), "jensen_shannon": _no_p(_js), "tvd": _no_p(_tvd), "chi2": _chi2, "cramers_v": _cramers_v,
}


def batch_values(name: str, b: Batch, info: RefInfo) -> tuple[np.ndarray, np.ndarray]:
    """Statistic ``name`` of every window of ``b`` against its reference: (values, p-values)."""
    return BATCH_STATISTICS[name](b, info)
