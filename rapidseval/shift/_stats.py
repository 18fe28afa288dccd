"""Shift statistics, registered by name, computed from (weighted) value counts.

Every statistic compares a reference distribution with a window's, both given
as sorted distinct values with counts (:class:`Dist`).  Nothing needs the raw
rows: KS, Wasserstein-1 and the binned statistics are evaluated at the
window's values against the reference's cumulative counts (``O(m log n)`` for a
window of ``m`` distinct values), so a 6-million-row reference is prepared once
and a small window costs little.

With plain integer counts the results equal scipy's on the expanded samples
(``ks_2samp``, ``wasserstein_distance``, ``jensenshannon``,
``chi2_contingency``).  A calendar-adjusted reference carries real-valued
weights; p-values then use Kish's effective sample size (an approximation,
said so in the table's ``p_method`` column).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Callable, Mapping

import numpy as np
from scipy import stats as _st

from ..core.errors import SpecError
from ._ks import MAX_EXACT_N, ks_pvalue, kstwo_sf

__all__ = ["Dist", "RefInfo", "Statistic", "STATISTICS", "KINDS", "DEFAULT_STATISTICS", "chi2_test", "contingency",
           "PSI_EPS", "CLIP_QUANTILES", "feature_kind", "default_statistics", "clip_dist"]

#: proportions below this are raised to it before PSI's logarithm (the empty-bin rule)
PSI_EPS = 1e-4

#: the reference quantiles ``wasserstein_clipped`` clips both sides to: rows beyond them move
#: it by at most their share times the clipped range (``out_of_range`` reports the far tail)
CLIP_QUANTILES = (0.01, 0.99)

#: the kinds a feature can be declared as (the job's ``features.kinds``): which statistics apply
KINDS: dict[str, str] = {
    "categorical": "codes without an order: per-category statistics",
    "integer": "ordered whole numbers: order-based statistics, per-value bins when few",
    "continuous": "measurements: order-based statistics, reference-quantile bins",
}

#: statistics computed for a feature of each kind unless the job says otherwise.  No KS on
#: categories: their order is arbitrary (the study's job lists it explicitly).
DEFAULT_STATISTICS: dict[str, tuple[str, ...]] = {
    "categorical": ("cramers_v", "psi", "tvd", "missing_rate"),
    "integer": ("ks", "jensen_shannon", "psi", "missing_rate"),
    "continuous": ("ks", "wasserstein_clipped", "psi", "missing_rate", "out_of_range"),
}


def feature_kind(name: str, kinds: Mapping[str, str] | None = None) -> str:
    """The kind of feature ``name``: as declared in ``kinds`` (feature -> kind, e.g. a job's
    ``features.kinds`` resolved), else the default of the feature registry
    (:data:`rapidseval.features.FEATURE_KINDS`), else continuous."""
    if kinds is not None and name in kinds:
        kind = kinds[name]
        if kind not in KINDS:
            raise SpecError(f"feature {name}: unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
        return kind
    from ..features import FEATURE_KINDS

    return FEATURE_KINDS.get(name, "continuous")


def default_statistics(name: str, kinds: Mapping[str, str] | None = None) -> tuple[str, ...]:
    return DEFAULT_STATISTICS[feature_kind(name, kinds)]


class Dist:
    """A distribution as sorted distinct values and their (possibly weighted) counts.

    Parameters
    ----------
    values : sorted, distinct float64 array
    weights : counts (int64: an ordinary sample) or real weights (float64) >= 0
    n_eff : effective sample size for p-values (default: the total count)
    """

    def __init__(self, values, weights, n_eff: float | None = None):
        self.values = np.asarray(values, dtype="float64")
        self.weights = np.asarray(weights)
        self.exact = self.weights.dtype.kind in "iu"
        self.total = self.weights.sum()
        self.n_eff = float(self.total if n_eff is None else n_eff)
        self.cache: dict = {}

    @classmethod
    def from_sample(cls, x) -> "Dist":
        v, c = np.unique(np.asarray(x, dtype="float64"), return_counts=True)
        return cls(v, c.astype("int64"))

    @cached_property
    def cum(self) -> np.ndarray:
        return np.cumsum(self.weights)

    @cached_property
    def cdf(self) -> np.ndarray:
        return self.cum / self.total

    @cached_property
    def present(self) -> np.ndarray:
        """Values carrying weight (a weighted reference keeps zero-weight values)."""
        return self.weights > 0

    def sample(self) -> np.ndarray:
        """The expanded sample (only for small exact distributions)."""
        return np.repeat(self.values, self.weights)

    @property
    def n(self) -> int:
        return int(round(float(self.total))) if self.exact else int(round(self.n_eff))


@dataclass(frozen=True)
class RefInfo:
    """What a statistic needs to know about the feature beyond the two distributions."""

    feature: str
    kind: str
    fill_value: float
    edges: np.ndarray  # interior quantile bin edges of the reference (continuous binning)
    std: float  # standard deviation of the whole reference
    categorical_bins: bool  # each value its own bin (categorical or few distinct values)
    clip_lo: float = float("nan")  # the reference's CLIP_QUANTILES (reference values)
    clip_hi: float = float("nan")
    clip_std: float = float("nan")  # standard deviation of the reference clipped to [clip_lo, clip_hi]


# ---------------------------------------------------------------------------------------
# the statistics
# ---------------------------------------------------------------------------------------
def ks_statistic(ref: Dist, win: Dist, info: RefInfo | None = None) -> float:
    """The KS statistic alone (no p-value: calibration needs only values)."""
    r, x = ref.values, win.values
    cr = np.concatenate([[0], ref.cum])
    cx = np.concatenate([[0], win.cum])
    # |F_ref - F_win| is largest at a window value or just before one: F_win is flat between them
    right = cr[np.searchsorted(r, x, side="right")] / ref.total - cx[1:] / win.total
    left = cr[np.searchsorted(r, x, side="left")] / ref.total - cx[:-1] / win.total
    return float(max(np.clip(-min(right.min(), left.min()), 0, 1), max(right.max(), left.max())))


def ks_effective_n(ref: Dist, win: Dist) -> float:
    """``round(m n / (m + n))`` of scipy's asymptotic p-value (Kish's effective sizes when weighted)."""
    m, n = sorted([float(ref.total), float(win.total)] if ref.exact and win.exact else [ref.n_eff, win.n_eff],
                  reverse=True)
    return max(1.0, float(np.round(m * n / (m + n))))


def ks_needs_exact(ref: Dist, win: Dist) -> bool:
    """scipy's method "auto" is exact here (the p-value needs the samples)."""
    return bool(ref.exact and win.exact and max(int(ref.total), int(win.total)) <= MAX_EXACT_N)


def _ks(ref: Dist, win: Dist, info: RefInfo) -> tuple[float, float]:
    d = ks_statistic(ref, win, info)
    if ks_needs_exact(ref, win):
        return d, ks_pvalue(d, int(ref.total), int(win.total), sample1=ref.sample(), sample2=win.sample())
    if ref.exact and win.exact:
        return d, ks_pvalue(d, int(ref.total), int(win.total))
    return d, float(np.clip(kstwo_sf(d, ks_effective_n(ref, win))[0], 0, 1))


def _h(ref: Dist):
    """Running integral of the reference CDF at its own values."""
    if "h" not in ref.cache:
        r, f = ref.values, ref.cdf
        ref.cache["h"] = np.concatenate([[0.0], np.cumsum(f[:-1] * np.diff(r))])
    return ref.cache["h"]


def _wasserstein(ref: Dist, win: Dist, info: RefInfo) -> tuple[float, float]:
    """Wasserstein-1 = integral of |F_ref - F_win|, summed over the window's flat stretches."""
    r, fr, g = ref.values, ref.cdf, _h(ref)
    x, fx = win.values, win.cdf

    def integral(t):  # integral of F_ref from -inf to t
        k = np.searchsorted(r, t, side="right") - 1
        kk = np.maximum(k, 0)
        return np.where(k < 0, 0.0, g[kk] + fr[kk] * (t - r[kk]))

    lo, hi = min(r[0], x[0]), max(r[-1], x[-1])
    a = np.concatenate([[lo], x])
    b = np.concatenate([x, [hi]])
    c = np.concatenate([[0.0], fx[:-1], [1.0]])
    j = np.searchsorted(fr, c, side="left")  # F_ref >= c from r[j] on
    t = np.where(j < len(r), r[np.minimum(j, len(r) - 1)], np.inf)
    t = np.clip(t, a, b)
    ha, hb, ht = integral(a), integral(b), integral(t)
    parts = c * (t - a) - (ht - ha) + (hb - ht) - c * (b - t)
    return float(max(parts.sum(), 0.0)), np.nan


def _wasserstein_norm(ref, win, info):
    w, _ = _wasserstein(ref, win, info)
    return (w / info.std if info.std > 0 else np.nan), np.nan


def clip_dist(d: Dist, lo: float, hi: float) -> Dist:
    """``d`` with its values clipped to ``[lo, hi]`` (the weights of values beyond an end
    merged onto it); a weighted distribution keeps its effective size."""
    v = np.clip(d.values, lo, hi)
    u, inv = np.unique(v, return_inverse=True)
    if len(u) == len(v):
        return Dist(u, d.weights, n_eff=None if d.exact else d.n_eff)
    w = np.bincount(inv.ravel(), weights=d.weights, minlength=len(u))
    return Dist(u, np.rint(w).astype("int64"), None) if d.exact else Dist(u, w, n_eff=d.n_eff)


def clipped_reference(ref: Dist, info: RefInfo) -> Dist:
    """The reference clipped to the feature's clip range (computed once per reference)."""
    if "clipped" not in ref.cache:
        ref.cache["clipped"] = clip_dist(ref, info.clip_lo, info.clip_hi)
    return ref.cache["clipped"]


def _wasserstein_clipped(ref, win, info):
    """Wasserstein-1 of both sides clipped to the reference's outer quantiles (``CLIP_QUANTILES``),
    divided by the clipped reference's std: k rows in a window of n move it by at most
    ``k / n * (clip_hi - clip_lo) / clip_std``, however far out they lie."""
    if not info.clip_std > 0:
        return np.nan, np.nan
    w, _ = _wasserstein(clipped_reference(ref, info), clip_dist(win, info.clip_lo, info.clip_hi), info)
    return w / info.clip_std, np.nan


def _proportions(ref: Dist, win: Dist, info: RefInfo) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window proportions on common bins: one bin per value for categorical
    features, the reference's quantile bins otherwise."""
    if info.categorical_bins:
        u = np.union1d(ref.values[ref.present], win.values)
        p = np.zeros(len(u))
        q = np.zeros(len(u))
        p[np.searchsorted(u, ref.values[ref.present])] = ref.weights[ref.present]
        q[np.searchsorted(u, win.values)] = win.weights
    else:
        p = reference_bins(ref, info)
        q = np.bincount(np.searchsorted(info.edges, win.values, side="right"), weights=win.weights,
                        minlength=len(p))
    return p / p.sum(), q / q.sum()


def reference_bins(ref: Dist, info: RefInfo) -> np.ndarray:
    """The reference's (weighted) counts in its quantile bins (computed once per reference)."""
    if "bins" not in ref.cache:
        ref.cache["bins"] = np.bincount(np.searchsorted(info.edges, ref.values, side="right"),
                                        weights=ref.weights, minlength=len(info.edges) + 1)
    return ref.cache["bins"]


def _psi(ref, win, info):
    p, q = _proportions(ref, win, info)
    p, q = np.maximum(p, PSI_EPS), np.maximum(q, PSI_EPS)
    return float(np.sum((q - p) * np.log(q / p))), np.nan


def _js(ref, win, info):
    p, q = _proportions(ref, win, info)
    m = (p + q) / 2
    js = (np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))) / 2
    return float(np.sqrt(max(js, 0.0) / np.log(2))), np.nan


def _rel_entr(p, q):
    out = np.zeros_like(p)
    pos = p > 0
    out[pos] = p[pos] * np.log(p[pos] / q[pos])
    return out


def _tvd(ref, win, info):
    p, q = _proportions(ref, win, _cat(info))
    return float(0.5 * np.abs(p - q).sum()), np.nan


def _cat(info: RefInfo) -> RefInfo:
    return info if info.categorical_bins else replace(info, categorical_bins=True)


def contingency(ref: Dist, win: Dist) -> np.ndarray:
    """2 x K table of reference and window counts over the values seen in either
    (a weighted reference scaled to its effective size)."""
    u = np.union1d(ref.values[ref.present], win.values)
    table = np.zeros((2, len(u)))
    w = ref.weights[ref.present]
    table[0, np.searchsorted(u, ref.values[ref.present])] = w if ref.exact else w * (ref.n_eff / ref.total)
    table[1, np.searchsorted(u, win.values)] = win.weights
    return table


def chi2_test(table: np.ndarray, correction: bool = True) -> tuple[float, float, int]:
    """Pearson's chi-square of a contingency table as ``scipy.stats.chi2_contingency``
    (Yates' correction when there is one degree of freedom)."""
    observed = np.asarray(table, dtype="float64")
    n = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    dof = expected.size - sum(expected.shape) + expected.ndim - 1
    if dof == 0:
        return 0.0, 1.0, 0
    if dof == 1 and correction:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    return chi2, float(_st.chi2.sf(chi2, dof)), dof


def _chi2(ref, win, info):
    chi2, p, _ = chi2_test(contingency(ref, win))
    return chi2, p


def _cramers_v(ref, win, info):
    table = contingency(ref, win)
    if table.shape[1] < 2:
        return 0.0, 1.0
    chi2, _, _ = chi2_test(table, correction=False)
    _, p, _ = chi2_test(table)
    return float(np.sqrt(chi2 / table.sum())), p  # min(rows, cols) - 1 == 1 for two samples


def missing_share(d: Dist, fill: float) -> float:
    """Share of ``d``'s weight on the fill value."""
    i = np.searchsorted(d.values, fill)
    hit = i < len(d.values) and d.values[i] == fill
    return float(d.weights[i] / d.total) if hit else 0.0


def _missing_rate(ref, win, info):
    return abs(missing_share(win, info.fill_value) - missing_share(ref, info.fill_value)), np.nan


def reference_range(ref: Dist, fill: float) -> tuple[float, float] | None:
    """Smallest and largest value carrying reference weight other than the fill value (None: none)."""
    keep = ref.present & (ref.values != fill)
    if not keep.any():
        return None
    return float(ref.values[keep][0]), float(ref.values[keep][-1])


def _out_of_range(ref, win, info):
    rng = reference_range(ref, info.fill_value)
    if rng is None:
        return np.nan, np.nan
    lo, hi = rng
    wkeep = win.values != info.fill_value
    n = win.weights[wkeep].sum()
    if n == 0:
        return 0.0, np.nan
    out = win.weights[wkeep & ((win.values < lo) | (win.values > hi))].sum()
    return float(out / n), np.nan


@dataclass(frozen=True)
class Statistic:
    """A registered statistic: ``fn(ref, win, info) -> (value, p_value)``; larger = more shift."""

    name: str
    fn: Callable[[Dist, Dist, RefInfo], tuple[float, float]]
    kinds: tuple[str, ...]
    doc: str
    p_value: bool = field(default=False)
    #: ``value(ref, win, info) -> float`` without the p-value, where that is cheaper
    value: Callable[[Dist, Dist, RefInfo], float] | None = field(default=None)

    def value_of(self, ref: Dist, win: Dist, info: RefInfo) -> float:
        return self.value(ref, win, info) if self.value is not None else self.fn(ref, win, info)[0]


_ALL = ("categorical", "integer", "continuous")
_ORDERED = ("integer", "continuous")
_DISCRETE = ("categorical", "integer")

STATISTICS: dict[str, Statistic] = {s.name: s for s in (
    Statistic("ks", _ks, _ALL, "two-sample Kolmogorov-Smirnov D (scipy.stats.ks_2samp)", True, ks_statistic),
    Statistic("wasserstein", _wasserstein, _ORDERED, "Wasserstein-1 distance in the feature's units"),
    Statistic("wasserstein_norm", _wasserstein_norm, _ORDERED, "Wasserstein-1 divided by the reference's std"),
    Statistic("wasserstein_clipped", _wasserstein_clipped, _ORDERED,
              f"Wasserstein-1 of both sides clipped to the reference's {CLIP_QUANTILES[0]:g} and {CLIP_QUANTILES[1]:g} "
              "quantiles, divided by the clipped reference's std (a few rows move it by at most their share "
              "times the clipped range; out_of_range carries the tail)"),
    Statistic("jensen_shannon", _js, _ALL, "Jensen-Shannon distance, base 2 (0..1), on categories or reference-quantile bins"),
    Statistic("psi", _psi, _ALL, f"population stability index on categories or reference-quantile bins; "
              f"proportions below {PSI_EPS:g} are raised to {PSI_EPS:g}"),
    Statistic("chi2", _chi2, _DISCRETE, "Pearson chi-square of the 2 x K table (scipy.stats.chi2_contingency)", True),
    Statistic("cramers_v", _cramers_v, _DISCRETE, "Cramer's V of the 2 x K table (p-value of its chi-square)", True),
    Statistic("tvd", _tvd, _DISCRETE, "total variation distance of the category proportions"),
    Statistic("missing_rate", _missing_rate, _ALL, "absolute change in the share of filled (missing) values"),
    Statistic("out_of_range", _out_of_range, _ORDERED, "share of window values outside the reference's [min, max]"),
)}


def ref_info(feature: str, full: Dist, *, fill_value: float, bins: int, max_categories: int,
             kind: str | None = None) -> RefInfo:
    """Bins and scale of a feature of ``kind`` (default: :func:`feature_kind`), from its whole
    (unweighted) reference."""
    kind = feature_kind(feature) if kind is None else kind
    cdf = full.cdf
    qs = np.arange(1, bins) / bins
    edges = np.unique(full.values[np.minimum(np.searchsorted(cdf, qs, side="left"), len(cdf) - 1)])
    mean = float(np.sum(full.values * full.weights) / full.total)
    var = float(np.sum(full.weights * (full.values - mean) ** 2) / full.total)
    cat = kind == "categorical" or (kind == "integer" and len(full.values) <= max_categories)
    lo, hi = full.values[np.minimum(np.searchsorted(cdf, CLIP_QUANTILES, side="left"), len(cdf) - 1)]
    clipped = np.clip(full.values, lo, hi)
    cmean = float(np.sum(clipped * full.weights) / full.total)
    cvar = float(np.sum(full.weights * (clipped - cmean) ** 2) / full.total)
    return RefInfo(feature, kind, float(fill_value), edges, float(np.sqrt(var)), cat, float(lo), float(hi),
                   float(np.sqrt(cvar)))
