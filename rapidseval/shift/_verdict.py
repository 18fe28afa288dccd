"""Window-level verdicts: size-standardised scores, a fitted null, a family-wise threshold.

Three steps turn a statistic's value into an alarm a user can act on (README, "How
alarms are decided"):

1. **Standardise by sample size.**  Under no shift a statistic shrinks with the
   sizes it compares: KS, Wasserstein, Jensen-Shannon, total variation and the
   missing share as ``1 / sqrt(n_eff)`` (``n_eff = m n / (m + n)``, the reference's
   Kish size when it is reweighted), PSI as ``1 / n_eff``, Cramer's V as
   ``1 / sqrt(m + n)``; the out-of-range share as ``1 / m``.  The *score* multiplies
   that scaling away (:func:`scores`), so a null learned on one-day reference
   blocks applies to a week or a month: the variance both of sampling and of
   independent day-to-day effects scales the same way with the number of days.
2. **Fit the null.**  ~30 day blocks cannot tell a 1-in-4000 tail.  Its *shape* comes
   from sampling: ``SAMPLING_DRAWS`` pairs of multinomial draws from the reference at a
   compared window's size and its reference's give each statistic's null under pure
   sampling, fitted with a gamma by its moments (drawn at the window's sizes, so sparse
   categories are as sparse as in the window).  Its *scale* comes from the reference's
   leave-one-out day blocks: their mean square score over that of draws at the blocks'
   sizes is the overdispersion ``phi`` (days differ by more than sampling: weather,
   events), and the gamma is stretched by ``sqrt(max(phi, 1))`` (:class:`NullFit`).  The distance of the upper quantile above
   the mean is widened by ``t_{N-1}(a) / z(a) * sqrt(1 + 1/N)``, the Student-t
   prediction factor for a scale estimated from ``N`` blocks.
3. **Control the family.**  A window holds ``T`` tests (features x statistics).  Each
   test alarms when its calibrated p-value is at most ``rate / T`` (Bonferroni); the
   window alarms when any test does.  That is Holm's first step, so the window's
   false-alarm rate is at most ``rate`` whatever the dependence between tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special as _sp
from scipy import stats as _st

__all__ = ["SCALINGS", "scaling_of", "scores", "from_score", "NullFit", "prediction_factor", "SAMPLING_DRAWS"]

#: multinomial draws from the reference that give each statistic's sampling null (its shape)
SAMPLING_DRAWS = 200

#: statistic -> how its null value shrinks with the sizes compared (see the module doc)
SCALINGS: dict[str, str] = {
    "ks": "root_n", "wasserstein": "root_n", "wasserstein_norm": "root_n", "wasserstein_clipped": "root_n",
    "jensen_shannon": "root_n", "tvd": "root_n", "missing_rate": "root_n",
    "psi": "n", "cramers_v": "root_total", "chi2": "none", "out_of_range": "reference",
}


def scaling_of(statistic: str) -> str:
    return SCALINGS.get(statistic, "root_n")


def _n_eff(n_ref, n_win):
    n_ref, n_win = np.asarray(n_ref, dtype="float64"), np.asarray(n_win, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_ref > 0) & (n_win > 0), n_ref * n_win / (n_ref + n_win), np.nan)


def scores(statistic: str, value, n_ref, n_win) -> np.ndarray:
    """The size-standardised score of ``value`` (a window of ``n_win`` rows against a reference
    of ``n_ref``, its effective size when reweighted); monotone increasing in ``value``."""
    v = np.asarray(value, dtype="float64")
    kind = scaling_of(statistic)
    if kind == "root_n":
        return v * np.sqrt(_n_eff(n_ref, n_win))
    if kind == "n":
        return np.sqrt(np.maximum(v, 0.0) * _n_eff(n_ref, n_win))
    if kind == "root_total":
        return v * np.sqrt(np.asarray(n_ref, dtype="float64") + np.asarray(n_win, dtype="float64"))
    if kind == "reference":
        return v * np.asarray(n_ref, dtype="float64")
    return np.sqrt(np.maximum(v, 0.0))


def from_score(statistic: str, score, n_ref, n_win) -> np.ndarray:
    """The value whose score is ``score`` (the inverse of :func:`scores`): a score threshold
    in the statistic's own units for a window of ``n_win`` rows."""
    z = np.asarray(score, dtype="float64")
    kind = scaling_of(statistic)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "root_n":
            return z / np.sqrt(_n_eff(n_ref, n_win))
        if kind == "n":
            return z * z / _n_eff(n_ref, n_win)
        if kind == "root_total":
            return z / np.sqrt(np.asarray(n_ref, dtype="float64") + np.asarray(n_win, dtype="float64"))
        if kind == "reference":
            return z / np.asarray(n_ref, dtype="float64")
    return z * z


@lru_cache(maxsize=256)
def prediction_factor(n: int, alpha: float) -> float:
    """``t_{n-1}.isf(alpha) / norm.isf(alpha) * sqrt(1 + 1/n)``: how much further than the
    fitted quantile a threshold from ``n`` null values goes (a normal prediction bound's
    widening, applied to the gamma's distance above the mean)."""
    if n < 3:
        return np.inf
    return float(_st.t.isf(alpha, n - 1) / _st.norm.isf(alpha) * np.sqrt(1.0 + 1.0 / n))


@dataclass(frozen=True)
class NullFit:
    """A gamma with this mean and standard deviation, widened for estimation from ``n_blocks`` blocks
    (module doc); ``overdispersion``: the blocks' mean square score over sampling's."""

    mean: float
    std: float
    n_blocks: int
    overdispersion: float = float("nan")

    @classmethod
    def of(cls, z: np.ndarray) -> "NullFit":
        """The moments of the null scores ``z`` themselves."""
        z = np.asarray(z, dtype="float64")
        z = z[np.isfinite(z)]
        return cls(float(z.mean()) if len(z) else np.nan, float(z.std(ddof=1)) if len(z) > 1 else np.nan, len(z))

    @classmethod
    def of_sampling(cls, blocks: np.ndarray, sampling: np.ndarray, window_sampling: np.ndarray | None = None
                    ) -> "NullFit":
        """The shape of sampling's null at a compared window's sizes (``window_sampling``:
        scores of multinomial draws from the reference; default ``sampling``), scaled by the
        blocks' overdispersion ``phi = mean(z_b^2) / mean(z_s^2)`` against draws at the
        blocks' own sizes (``sampling``) when above 1 (days vary more than sampling alone
        makes them: weather, events, ...).  The blocks must vary (see :attr:`ok`); ``n_blocks`` is
        their number."""
        z = np.asarray(blocks, dtype="float64")
        z = z[np.isfinite(z)]
        zs = np.asarray(sampling, dtype="float64")
        zs = zs[np.isfinite(zs)]
        zw = zs if window_sampling is None else np.asarray(window_sampling, dtype="float64")
        zw = zw[np.isfinite(zw)]
        if len(z) < 3 or not np.std(z) > 0:  # too few blocks, or all alike: not ok
            return cls.of(z)
        if len(zs) < 3 or not np.mean(zs * zs) > 0 or len(zw) < 3 or not np.std(zw) > 0:
            return cls.of(z)  # no sampling shape: the blocks' own moments
        phi = float(np.mean(z * z) / np.mean(zs * zs))
        c = np.sqrt(max(phi, 1.0))
        return cls(float(c * zw.mean()), float(c * zw.std(ddof=1)), len(z), phi)

    @property
    def ok(self) -> bool:
        """Enough null values, and they vary: a constant null (a calendar feature such as the
        weekday, which one day holds one value of) cannot calibrate a threshold."""
        return self.n_blocks >= 3 and np.isfinite(self.mean) and np.isfinite(self.std) and self.std > 0 and self.mean > 0

    def threshold(self, alpha: float) -> float:
        """Score above which a test alarms at level ``alpha`` (inf: too few null values)."""
        if not self.ok:
            return np.inf
        k, theta = (self.mean / self.std) ** 2, self.std ** 2 / self.mean
        q = float(_st.gamma.isf(alpha, k, scale=theta))
        return self.mean + (q - self.mean) * prediction_factor(self.n_blocks, alpha)

    def p_value(self, z, alpha: float) -> np.ndarray:
        """Calibrated p-value of scores ``z``: the gamma's tail at the score pulled back by the
        widening (so ``p <= alpha`` exactly when ``z`` exceeds :meth:`threshold` at ``alpha``)."""
        z = np.asarray(z, dtype="float64")
        if not self.ok:
            return np.full(z.shape, np.nan)
        k, theta = (self.mean / self.std) ** 2, self.std ** 2 / self.mean
        f = prediction_factor(self.n_blocks, alpha)
        back = self.mean + (z - self.mean) / f
        return np.where(z <= self.mean, 1.0, _sp.gammaincc(k, np.maximum(back, 0.0) / theta))  # gamma.sf

    def exceedance(self, z, threshold: float) -> np.ndarray:
        """Null standard deviations by which ``z`` exceeds ``threshold`` (> 0: alarm)."""
        z = np.asarray(z, dtype="float64")
        if not np.isfinite(threshold):
            return np.full(z.shape, -np.inf)
        return (z - threshold) / self.std
