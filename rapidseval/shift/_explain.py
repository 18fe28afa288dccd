"""What moved: each alarmed (window, feature) explained in words, with an effect size.

An alarm says *that* a window's feature differs from the reference; this says
*what* differs, from the same exact per-day value counts the calculator
compared (no raw rows):

* **categorical** features: the categories whose share moved most (value,
  reference share -> window share).  The effect is the total variation
  distance of the category shares, ``0.5 * sum |q - p|``: the share of rows
  that would have to change category.
* **integer** and **continuous** features: the 1st, 50th and 99th percentiles
  of the non-missing values (reference -> window), the share of the window's
  non-missing values outside the reference's ``[min, max]``, and, for integer
  features with few distinct values, the values whose share moved most.  The
  effect is the KS distance ``max |F_ref - F_win|`` over all values: the
  largest share of rows on one side of a cut point that moved across it.
* every kind: the share of missing (filled) values, when either side has any.

Both effects lie in ``[0, 1]`` and read as "a share of rows".  Neither is zero
without a shift: sampling alone gives a zone code with 260 categories a total
variation of ~0.1 on a day of 6,000 trips.  So each effect comes with its
``effect_noise``, what it is on windows without a shift, and features rank
within a window by ``effect - effect_noise`` (rank 1 = the largest excess).
The noise level is the calculator's null mean of that statistic at the window's
size (the reference days' mean size-standardised score, taken back to the
statistic's units for the window's and its reference's row counts), when the
shift table has the statistic; otherwise it is the sampling expectation with
``e = n_ref n_win / (n_ref + n_win)`` rows: ``0.8687 / sqrt(e)`` for KS
(``sqrt(pi / 2) ln 2``, its asymptotic mean), ``0.5 sum_k E|X_k - e p_k| / e``
with ``X_k`` Poisson(``e p_k``) for the total variation.

The reference is the one the window was compared with: with
``calendar="weekday"`` the reference reweighted to the window's weekday mix
(shares and quantiles then use those weights).  Percentiles use the inverted
empirical CDF (Hyndman & Fan's type 1, NumPy's ``method="inverted_cdf"``): the
``q``-th percentile is the smallest value ``v`` with ``F(v) >= q``.

Which pairs are explained is decided in one place, :func:`alarmed_pairs`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
from scipy.special import gammaln

from ..core.time import US_PER_DAY, weekday
from ._counts import DayCounts
from ._stats import Dist, ks_statistic, missing_share
from ._verdict import from_score

__all__ = ["EXPLAIN_COLUMNS", "QUANTILES", "TOP_CATEGORIES", "alarmed_pairs", "explain", "explanation_lines"]

#: columns of the explanation table (``explain.parquet``): one row per reference x window x
#: alarmed feature x item (a category, a percentile, the out-of-range or missing share)
EXPLAIN_COLUMNS = ["reference", "window", "window_start", "window_end", "feature", "kind", "rank", "effect",
                   "effect_noise", "effect_measure", "item", "category", "reference_value", "window_value", "change", "what"]

#: percentiles shown for ordered features
QUANTILES = (0.01, 0.5, 0.99)
#: categories (or integer values) listed per alarmed feature, those whose share moved most
TOP_CATEGORIES = 3

_PAIR_COLUMNS = ["reference", "window", "window_start", "window_end", "feature"]


def alarmed_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """The (reference, window, feature) pairs to explain, from a shift table.

    A pair is alarmed when any of its statistics alarms (the ``alarm`` column) and,
    where the table carries a window-level verdict (``window_alarm``), its window
    alarms too.  This is the one place that decides which pairs are explained.

    Returns
    -------
    DataFrame with columns reference, window, window_start, window_end, feature (one row
    per pair, in the table's order).
    """
    if table is None or table.empty or "alarm" not in table.columns:
        return pd.DataFrame(columns=_PAIR_COLUMNS)
    hit = table["alarm"].fillna(False).astype(bool)
    if "window_alarm" in table.columns:
        hit &= table["window_alarm"].fillna(False).astype(bool)
    cols = [c for c in _PAIR_COLUMNS if c in table.columns]
    return table.loc[hit, cols].drop_duplicates(["reference", "window_start", "feature"]).reset_index(drop=True)


def explain(calculator, counts: Mapping, table: pd.DataFrame, *, pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """What moved in each alarmed (window, feature) of ``table``.

    Parameters
    ----------
    calculator : ShiftCalculator
        Fitted; it produced ``table`` from ``counts``.
    counts : mapping feature -> DayCounts
        The per-day counts ``table``'s windows were computed from.
    table : DataFrame
        The shift table of those windows (:attr:`ShiftResult.table`).
    pairs : DataFrame, optional
        The pairs to explain (default: :func:`alarmed_pairs` of ``table``).

    Returns
    -------
    DataFrame with :data:`EXPLAIN_COLUMNS`, ranked by effect within each window.
    """
    pairs = alarmed_pairs(table) if pairs is None else pairs
    null_mean = _null_means(calculator, table)
    rows: list[dict] = []
    for rec in pairs.to_dict("records"):
        rows += _explain_pair(calculator, counts, rec, null_mean)
    if not rows:
        return empty_explanation()
    return _ranked(pd.DataFrame(rows))


def _explain_pair(calculator, counts: Mapping, rec: dict, null_mean: dict) -> list[dict]:
    """The rows of one alarmed (window, feature) ``rec`` (none when its counts are absent)."""
    f = rec["feature"]
    if f not in counts or f not in calculator.refs_:
        return []
    c = counts[f]
    lo, hi = (int(np.datetime64(pd.Timestamp(rec[k]).to_datetime64(), "us").astype("int64") // US_PER_DAY)
              for k in ("window_start", "window_end"))
    a, b = np.searchsorted(c.day, [lo, hi], side="left")
    if b <= a:
        return []
    part = DayCounts(c.day[a:b], c.value[a:b], c.count[a:b])
    values, weights = part.values()
    win = Dist(values, np.asarray(weights).astype("int64"))
    ref = calculator.reference_for(f, np.bincount(weekday(np.asarray(part.days(), dtype="int64")), minlength=7))
    info = calculator.refs_[f].info
    effect, measure, items = _items(ref, win, kind=info.kind, fill=info.fill_value, few_values=info.categorical_bins)
    noise = null_mean.get((rec["reference"], pd.Timestamp(rec["window_start"]), f, measure), np.nan)
    if not np.isfinite(noise):
        noise = chance_effect(ref, win, measure=measure)
    return [{**{k: rec.get(k) for k in _PAIR_COLUMNS}, "kind": info.kind, "effect": effect,
             "effect_noise": float(noise), "effect_measure": measure, **item} for item in items]


def _ranked(out: pd.DataFrame) -> pd.DataFrame:
    """The explanation rows with each feature's rank within its window (by ``effect -
    effect_noise``), ordered by window, rank, then as listed; typed :data:`EXPLAIN_COLUMNS`."""
    feats = out.drop_duplicates(["reference", "window_start", "feature"])[
        ["reference", "window_start", "feature", "effect", "effect_noise"]]
    feats = feats.assign(_excess=feats["effect"] - feats["effect_noise"])
    feats = feats.sort_values(["reference", "window_start", "_excess", "feature"], ascending=[True, True, False, True],
                              kind="mergesort")
    feats["rank"] = feats.groupby(["reference", "window_start"], sort=False).cumcount().astype("int64") + 1
    out = out.merge(feats[["reference", "window_start", "feature", "rank"]], on=["reference", "window_start", "feature"],
                    how="left", sort=False)
    out["_order"] = np.arange(len(out))
    out = out.sort_values(["reference", "window_start", "rank", "_order"], kind="mergesort")
    out["window_start"] = pd.DatetimeIndex(out["window_start"]).as_unit("us")
    out["window_end"] = pd.DatetimeIndex(out["window_end"]).as_unit("us")
    return out[EXPLAIN_COLUMNS].reset_index(drop=True).astype({"category": "float64", "reference_value": "float64",
                                                               "window_value": "float64", "change": "float64",
                                                               "effect": "float64", "effect_noise": "float64"})


def _null_means(calculator, table: pd.DataFrame | None) -> dict:
    """(reference, window_start, feature, statistic) -> the statistic's mean without a shift at
    that window's sizes: the null's mean size-standardised score (``score_mean``, learned on
    reference days) taken back to the statistic's units for the window's and its reference's
    row counts; where the null has no score (per-test ``alarm: std``/``quantile`` tables of
    older calculators), the table's ``null_mean``."""
    if table is None or table.empty:
        return {}
    keys = list(zip(table["reference"], (pd.Timestamp(w) for w in table["window_start"]), table["feature"],
                    table["statistic"]))
    null = getattr(calculator, "null_", None)
    if null is not None and "score_mean" in null.columns and {"n_reference", "n_window"} <= set(table.columns):
        score_mean = null.set_index(["feature", "statistic"])["score_mean"]
        sm = score_mean.reindex(pd.MultiIndex.from_frame(table[["feature", "statistic"]])).to_numpy(float)
        means = np.full(len(table), np.nan)
        for stat in pd.unique(table["statistic"]):
            at = (table["statistic"] == stat).to_numpy()
            means[at] = from_score(stat, sm[at], table["n_reference"].to_numpy(float)[at],
                                   table["n_window"].to_numpy(float)[at])
        return dict(zip(keys, means))
    if "null_mean" in table.columns:
        return dict(zip(keys, table["null_mean"]))
    return {}


def chance_effect(ref: Dist, win: Dist, *, measure: str) -> float:
    """The effect's expectation without a shift, from sampling alone (see the module's text)."""
    m = float(ref.total) if ref.exact else ref.n_eff
    n = float(win.total)
    e = m * n / (m + n) if m > 0 and n > 0 else 0.0
    if e <= 0:
        return np.nan
    if measure == "ks":
        return float(np.sqrt(np.pi / 2) * np.log(2) / np.sqrt(e))
    p = ref.weights[ref.present] / ref.total
    lam = e * p
    k = np.floor(lam)
    # mean absolute deviation of a Poisson(lam): 2 exp(-lam) lam^(floor(lam) + 1) / floor(lam)!
    with np.errstate(divide="ignore"):
        log_mad = np.log(2.0) - lam + (k + 1) * np.log(lam) - gammaln(k + 1)
    mad = np.where(lam > 0, np.exp(log_mad), 0.0)
    return float(0.5 * mad.sum() / e)


def empty_explanation() -> pd.DataFrame:
    """An explanation table without rows (typed columns)."""
    return pd.DataFrame({
        "reference": pd.Series(dtype=object), "window": pd.Series(dtype=object),
        "window_start": pd.Series(dtype="datetime64[us]"), "window_end": pd.Series(dtype="datetime64[us]"),
        "feature": pd.Series(dtype=object), "kind": pd.Series(dtype=object), "rank": pd.Series(dtype="int64"),
        "effect": pd.Series(dtype="float64"), "effect_noise": pd.Series(dtype="float64"), "effect_measure": pd.Series(dtype=object), "item": pd.Series(dtype=object),
        "category": pd.Series(dtype="float64"), "reference_value": pd.Series(dtype="float64"),
        "window_value": pd.Series(dtype="float64"), "change": pd.Series(dtype="float64"),
        "what": pd.Series(dtype=object)}, columns=EXPLAIN_COLUMNS)


# ---------------------------------------------------------------------------------------
# the items of one (window, feature)
# ---------------------------------------------------------------------------------------
def _items(ref: Dist, win: Dist, *, kind: str, fill: float, few_values: bool) -> tuple[float, str, list[dict]]:
    """The effect, its measure and the items (dicts of the item columns) of one pair."""
    items: list[dict] = []
    if kind == "categorical":
        u, p, q = shares(ref, win)
        effect, measure = float(0.5 * np.abs(q - p).sum()), "tvd"
        items += _top_moved(u, p, q, fill=fill, item="category")
    else:
        effect, measure = float(ks_statistic(ref, win)), "ks"
        rq, wq = quantiles(ref, QUANTILES, fill=fill), quantiles(win, QUANTILES, fill=fill)
        for qq, a, b in zip(QUANTILES, rq, wq):
            name = f"p{round(qq * 100):d}"
            items.append(_item(name, np.nan, a, b, f"{name} {_num(a)} → {_num(b)}"))
        out = out_of_range_share(ref, win, fill=fill)
        items.append(_item("out_of_range", np.nan, 0.0, out, f"outside the reference's range {_pct(out)}"))
        if few_values:
            u, p, q = shares(ref, win)
            items += _top_moved(u, p, q, fill=fill, item="value")
    mr, mw = missing_share(ref, fill), missing_share(win, fill)
    if (mr > 0 or mw > 0) and not (kind == "categorical" or few_values):  # there, missing is a category
        items.append(_item("missing", np.nan, mr, mw, f"missing {_pct(mr)} → {_pct(mw)}"))
    return effect, measure, items


def _item(item: str, category: float, ref_value: float, win_value: float, what: str) -> dict:
    return {"item": item, "category": float(category), "reference_value": float(ref_value),
            "window_value": float(win_value), "change": float(win_value - ref_value)
            if np.isfinite(ref_value) and np.isfinite(win_value) else np.nan, "what": what}


def _top_moved(u: np.ndarray, p: np.ndarray, q: np.ndarray, *, fill: float, item: str) -> list[dict]:
    """The ``TOP_CATEGORIES`` values whose share moved most (ties: the smaller value first)."""
    d = np.abs(q - p)
    order = np.lexsort((u, -d))
    out = []
    for i in order[:TOP_CATEGORIES]:
        if d[i] == 0:
            break
        label = "missing" if u[i] == fill else _num(u[i])
        out.append(_item(item, u[i], p[i], q[i], f"{label}: {_pct(p[i])} → {_pct(q[i])}"))
    return out


def shares(ref: Dist, win: Dist) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct values of either side and their shares in the reference and the window."""
    rv, rw = ref.values[ref.present], ref.weights[ref.present]
    u = np.union1d(rv, win.values)
    p = np.zeros(len(u))
    q = np.zeros(len(u))
    p[np.searchsorted(u, rv)] = rw
    q[np.searchsorted(u, win.values)] = win.weights
    return u, p / p.sum(), q / q.sum()


def quantiles(d: Dist, qs, *, fill: float) -> np.ndarray:
    """Percentiles of ``d``'s values other than ``fill``, by the inverted CDF (NaN: none)."""
    keep = (d.values != fill) & (d.weights > 0)
    v, w = d.values[keep], d.weights[keep].astype("float64")
    if not len(v):
        return np.full(len(qs), np.nan)
    cum = np.cumsum(w)
    # the smallest value whose cumulative weight reaches q of the total (in integer counts when exact)
    target = np.asarray(qs, dtype="float64") * cum[-1]
    if d.weights.dtype.kind == "f":  # real weights: their sums carry rounding, forgive it
        target = target * (1 - 1e-12)
    idx = np.searchsorted(cum, target, side="left")
    return v[np.minimum(idx, len(v) - 1)]


def out_of_range_share(ref: Dist, win: Dist, *, fill: float) -> float:
    """Share of the window's values other than ``fill`` outside the reference's (others') [min, max]."""
    keep = ref.present & (ref.values != fill)
    wkeep = win.values != fill
    n = win.weights[wkeep].sum()
    if not keep.any() or n == 0:
        return 0.0
    lo, hi = ref.values[keep][0], ref.values[keep][-1]
    return float(win.weights[wkeep & ((win.values < lo) | (win.values > hi))].sum() / n)


def _pct(x: float) -> str:
    x = 100.0 * float(x)
    return f"{x:.1f}%" if x == 0 or abs(x) >= 0.1 else f"{x:.2g}%"


def _num(v: float) -> str:
    v = float(v)
    if not np.isfinite(v):
        return "–"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.4g}"


# ---------------------------------------------------------------------------------------
# one line per (window, feature), for the terminal and the report
# ---------------------------------------------------------------------------------------
def explanation_lines(explain_table: pd.DataFrame) -> pd.DataFrame:
    """One row per (reference, window, feature) of an explanation table, ranked within each
    window: reference, window, window_start, feature, kind, rank, effect, effect_measure, what
    (the items that moved, in words)."""
    cols = ["reference", "window", "window_start", "feature", "kind", "rank", "effect", "effect_noise", "effect_measure",
            "what"]
    t = explain_table
    if t is None or t.empty or not {"feature", "rank", "what", "window_start"} <= set(t.columns):
        return pd.DataFrame(columns=cols)
    moved = t
    if "item" in t.columns and "change" in t.columns:
        # percentiles and out-of-range that did not move are not worth a word
        quiet = t["item"].isin(["p1", "p50", "p99", "out_of_range"]) & (t["change"].fillna(0) == 0)
        moved = t[~quiet]
    keys = ["reference", "window_start", "feature"]
    words = moved.groupby(keys, sort=False)["what"].agg("; ".join)
    first = t.drop_duplicates(keys).set_index(keys)
    first = first.assign(what=words.reindex(first.index).fillna("")).reset_index()
    first = first.sort_values(["reference", "window_start", "rank"], kind="mergesort")
    return first[[c for c in cols if c in first.columns]].reset_index(drop=True)
