"""Statistics of two count vectors on one value grid (the reference's distinct values).

Calibration compares reference sub-windows with the reference minus them: both
sides are counts over the reference's own sorted values, so every statistic is
a few vectorised passes over that grid (cumulative sums, bin sums) and no
search is needed.  Written against the array module of its inputs, so the same
code runs on CuPy.

Each function returns what the :class:`~rapidseval.shift._stats.Statistic` of
the same name returns as its value for ``Dist(values, R)`` against
``Dist(values[W > 0], W[W > 0])`` (tested to 1e-12).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._stats import PSI_EPS, RefInfo

__all__ = ["Grid", "GRID_STATISTICS", "grid_value"]


@dataclass
class Grid:
    """A feature's value grid and what its statistics precompute from it."""

    values: Any  # sorted distinct float64 (xp)
    info: RefInfo
    bins: Any  # quantile-bin index of every grid value (non-categorical binning)
    n_bins: int
    cuts: Any  # bin k holds grid values cuts[k]:cuts[k + 1] (bins is sorted)
    fill: int  # grid index of the fill value, or -1
    xp: Any

    @classmethod
    def build(cls, values, info: RefInfo, xp=np) -> "Grid":
        v = xp.asarray(values, dtype=xp.float64)
        edges = xp.asarray(info.edges, dtype=xp.float64)
        bins = xp.searchsorted(edges, v, side="right")
        n_bins = len(info.edges) + 1
        cuts = xp.searchsorted(bins, xp.arange(n_bins + 1), side="left")
        hv = np.asarray(values, dtype="float64")
        i = int(np.searchsorted(hv, info.fill_value))
        fill = i if i < len(hv) and hv[i] == info.fill_value else -1
        return cls(v, info, bins, n_bins, cuts, fill, xp)


def _bin_sums(g: Grid, x):
    """Sums of ``x`` per quantile bin, from one cumulative sum: no atomic adds, so the GPU
    gives the same bits every run (integer counts: exactly)."""
    xp = g.xp
    cs = xp.concatenate([xp.zeros(1, dtype=xp.float64), xp.cumsum(x, dtype=xp.float64)])
    return xp.diff(cs[g.cuts])


def _ks(g: Grid, R, W, n_eff, weighted=False) -> float:
    xp = g.xp
    fr = xp.cumsum(R) / R.sum()
    fw = xp.cumsum(W) / W.sum()
    return float(xp.abs(fr - fw).max())


def _wasserstein(g: Grid, R, W, n_eff, weighted=False) -> float:
    xp = g.xp
    if len(g.values) < 2:
        return 0.0
    fr = xp.cumsum(R)[:-1] / R.sum()
    fw = xp.cumsum(W)[:-1] / W.sum()
    return float((xp.abs(fr - fw) * xp.diff(g.values)).sum())


def _wasserstein_norm(g: Grid, R, W, n_eff, weighted=False) -> float:
    return _wasserstein(g, R, W, n_eff, weighted) / g.info.std if g.info.std > 0 else float("nan")


def _wasserstein_clipped(g: Grid, R, W, n_eff, weighted=False) -> float:
    """Wasserstein-1 of both sides clipped to [clip_lo, clip_hi] (reference values, so grid
    points): the integral of |F_ref - F_win| over the grid's stretches inside that range."""
    xp = g.xp
    info = g.info
    if not info.clip_std > 0:
        return float("nan")
    if len(g.values) < 2:
        return 0.0
    fr = xp.cumsum(R)[:-1] / R.sum()
    fw = xp.cumsum(W)[:-1] / W.sum()
    inside = (g.values[:-1] >= info.clip_lo) & (g.values[1:] <= info.clip_hi)
    return float((xp.abs(fr - fw) * xp.diff(g.values) * inside).sum()) / info.clip_std


def _proportions(g: Grid, R, W, categorical: bool):
    xp = g.xp
    if categorical:
        p, q = R.astype(xp.float64), W.astype(xp.float64)
    else:
        p, q = _bin_sums(g, R), _bin_sums(g, W)
    return p / p.sum(), q / q.sum()


def _psi(g: Grid, R, W, n_eff, weighted=False) -> float:
    xp = g.xp
    p, q = _proportions(g, R, W, g.info.categorical_bins)
    p, q = xp.maximum(p, PSI_EPS), xp.maximum(q, PSI_EPS)
    return float(((q - p) * xp.log(q / p)).sum())


def _rel_entr(p, q, xp):
    safe = xp.where(p > 0, p, 1.0)
    return xp.where(p > 0, p * xp.log(safe / xp.where(p > 0, q, 1.0)), 0.0)


def _js(g: Grid, R, W, n_eff, weighted=False) -> float:
    xp = g.xp
    p, q = _proportions(g, R, W, g.info.categorical_bins)
    m = (p + q) / 2
    js = (_rel_entr(p, m, xp).sum() + _rel_entr(q, m, xp).sum()) / 2
    return float(np.sqrt(max(float(js), 0.0) / np.log(2)))


def _tvd(g: Grid, R, W, n_eff, weighted=False) -> float:
    p, q = _proportions(g, R, W, True)
    return float(0.5 * g.xp.abs(p - q).sum())


def _table(g: Grid, R, W, n_eff, weighted):
    xp = g.xp
    keep = (R > 0) | (W > 0)
    r = R[keep].astype(xp.float64)
    if weighted:
        r = r * (n_eff / float(R.sum()))
    return xp.stack([r, W[keep].astype(xp.float64)])


def _chi2_value(table, xp, correction: bool) -> float:
    n = table.sum()
    expected = xp.outer(table.sum(axis=1), table.sum(axis=0)) / n
    dof = expected.size - sum(expected.shape) + expected.ndim - 1
    if dof == 0:
        return 0.0
    if dof == 1 and correction:
        diff = expected - table
        table = table + xp.minimum(0.5, xp.abs(diff)) * xp.sign(diff)
    return float(((table - expected) ** 2 / expected).sum())


def _chi2(g: Grid, R, W, n_eff, weighted) -> float:
    return _chi2_value(_table(g, R, W, n_eff, weighted), g.xp, True)


def _cramers_v(g: Grid, R, W, n_eff, weighted) -> float:
    table = _table(g, R, W, n_eff, weighted)
    if table.shape[1] < 2:
        return 0.0
    return float(np.sqrt(_chi2_value(table, g.xp, False) / float(table.sum())))


def _missing_rate(g: Grid, R, W, n_eff, weighted=False) -> float:
    if g.fill < 0:
        return 0.0
    return abs(float(W[g.fill]) / float(W.sum()) - float(R[g.fill]) / float(R.sum()))


def _out_of_range(g: Grid, R, W, n_eff, weighted=False) -> float:
    xp = g.xp
    keep = R > 0
    if g.fill >= 0:
        keep[g.fill] = False
    idx = xp.flatnonzero(keep)
    if int(idx.shape[0]) == 0:
        return float("nan")
    lo, hi = int(idx[0]), int(idx[-1])
    wkeep = W > 0
    if g.fill >= 0:
        wkeep[g.fill] = False
    n = float(W[wkeep].sum())
    if n == 0:
        return 0.0
    return float((W[:lo][wkeep[:lo]].sum() + W[hi + 1:][wkeep[hi + 1:]].sum()) / n)


#: statistics with a grid form; others fall back to their Dist form
GRID_STATISTICS: dict[str, Callable[..., float]] = {
    "ks": _ks, "wasserstein": _wasserstein, "wasserstein_norm": _wasserstein_norm,
    "wasserstein_clipped": _wasserstein_clipped, "psi": _psi,
    "jensen_shannon": _js, "tvd": _tvd, "chi2": _chi2, "cramers_v": _cramers_v,
    "missing_rate": _missing_rate, "out_of_range": _out_of_range,
}


def grid_value(name: str, g: Grid, R, W, n_eff: float, *, weighted: bool = False) -> float:
    """Statistic ``name`` of window counts ``W`` against reference counts ``R`` (both on ``g``).

    ``weighted``: ``R`` is a reweighted reference (real weights, effective size ``n_eff``),
    not plain counts; only the contingency statistics scale by it.
    """
    return GRID_STATISTICS[name](g, R, W, n_eff, weighted)
