"""Replay: a simulated deployment, reduced to exact per-window tables.

Each partition is scored where it lives and reduced to a :class:`ScoreSummary`:
confusion counts and loss sums per *hour*, and a score histogram (or, when
asked, exact score counts) per *window*.  Summaries merge by addition, so only
these small tables travel, and every window metric is computed from them on
the host:

* precision, recall, F1, accuracy, rates — from the counts, with
  scikit-learn's formulas (equal to ``sklearn.metrics`` on the same rows);
* ROC AUC — Mann-Whitney from per-value positive/negative counts: exact when
  the summary holds exact score counts (equal to ``roc_auc_score``), otherwise
  from ``bins`` equal-width score bins (ties within a bin count one half), and
  the table says which;
* log loss and Brier score — sums of per-row losses (scikit-learn's clipping);
* predicted-probability quantiles — exact, or interpolated within a bin;
* 95% bands — a multinomial bootstrap of each window's counts (the exact
  nonparametric bootstrap of its rows, for count metrics), Hanley-McNeil for
  AUC and the normal approximation for mean losses;
* cumulative and trailing-N views, and the label-delay view: what a monitor
  whose labels arrive ``label_delay`` after the event knew at each window end.

Windows are half-open ``[window_start, window_end)`` in the data's clock: TLC
times are naive New York wall-clock times, so a day is a local calendar day.
``hours_in_window`` gives each window's real length (23 or 25 hours on DST
days).  Because counts are kept per hour, every window (hour, day, week,
month, multiples) and every whole-hour label delay is exact.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .metrics import COUNT_COLUMNS, add_metrics, confusion_codes
from .core.time import US_PER_HOUR, Window, parse_window

__all__ = [
    "MAX_WINDOWS",
    "ScoreSummary",
    "summarize_scores",
    "merge_summaries",
    "replay_frame",
    "pooled_metrics",
    "window_counts",
    "merge_window_counts",
    "replay_table",
]

_EPS = np.finfo(np.float64).eps  # scikit-learn's log_loss clipping for float64
#: most windows one replay table holds (a year of hourly windows is 8,784)
MAX_WINDOWS = 1_000_000

# summary columns: confusion codes 0=tn 1=fp 2=fn 3=tp; loss sums
_SUMS = ("log_loss", "log_loss_sq", "brier", "brier_sq", "proba")


# ---------------------------------------------------------------------------------------
# per-partition summaries (worker side; NumPy or CuPy)
# ---------------------------------------------------------------------------------------
@dataclass
class ScoreSummary:
    """Everything a replay needs from some scored rows, mergeable by addition.

    Attributes
    ----------
    window : window label the histogram is keyed by.
    bins : score bins of the histogram.
    hours : int64 sorted hour keys (hours since the epoch, wall clock).
    counts : int64 ``(len(hours), 4)``, confusion codes 0=tn 1=fp 2=fn 3=tp.
    sums : float64 ``(len(hours), 5)``: log loss, its square, Brier, its square, P(y=1).
    hist_keys, hist_counts : sparse score histogram, key ``(window*bins + bin)*2 + label``.
    exact : ``(window, score, label, count)`` sorted arrays when exact scores were kept.
    """

    window: str
    bins: int
    hours: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    hist_keys: np.ndarray
    hist_counts: np.ndarray
    exact: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def count_totals(self) -> dict[str, int]:
        c = self.counts.sum(axis=0)
        return {"tp": int(c[3]), "fp": int(c[1]), "fn": int(c[2]), "tn": int(c[0])}


def _host(x):
    return x.get() if hasattr(x, "get") and not isinstance(x, np.ndarray) else np.asarray(x)


def _group(keys, xp, dense_limit: int):
    """Group index of each key: (index, group keys, number of groups), dense when the range is small."""
    lo = int(keys.min())
    span = int(keys.max()) - lo + 1
    if span <= dense_limit:
        return keys - lo, None, lo, span
    uniq, inv = xp.unique(keys, return_inverse=True)
    return inv.reshape(-1), uniq, lo, int(uniq.shape[0])


def _collapse_exact(w, p, y, c, xp) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sum counts ``c`` per distinct ``(window, score, label)``; host arrays sorted by that key."""
    if int(w.shape[0]) == 0:
        return _host(w).astype("int64"), _host(p).astype("float64"), _host(y).astype("int8"), _host(c).astype("int64")
    order = xp.lexsort(xp.stack([y, p, w]))
    w, p, y, c = w[order], p[order], y[order], c[order]
    new = xp.ones(int(w.shape[0]), dtype=bool)
    new[1:] = (w[1:] != w[:-1]) | (p[1:] != p[:-1]) | (y[1:] != y[:-1])
    total = xp.bincount(xp.cumsum(new) - 1, weights=c)
    return (_host(w[new]).astype("int64"), _host(p[new]).astype("float64"), _host(y[new]).astype("int8"),
            _host(total).astype("int64"))


def _as_us(event_time, xp):
    """datetime64 or int64 microseconds -> int64 microseconds (no copy when already so)."""
    t_us = xp.asarray(event_time)
    if t_us.dtype.kind == "M":
        t_us = t_us.astype("datetime64[us]", copy=False).view("int64")
    return t_us


def _split_rows(fn, threads: int, *arrays):
    """``[fn(*chunk) for chunk]`` over ``threads`` contiguous row chunks, in a shared thread pool."""
    cuts = np.linspace(0, int(arrays[0].shape[0]), threads + 1).astype(int)
    arrays = [np.asarray(a) for a in arrays]
    return list(_pool(threads).map(lambda i: fn(*(a[cuts[i]:cuts[i + 1]] for a in arrays)), range(threads)))


def _summarize(t_us, y_true, proba, threshold: float, window: Window, bins: int, exact: bool, xp) -> ScoreSummary:
    n = int(t_us.shape[0])
    if n == 0:
        return _empty_summary(window, bins, exact)
    y = xp.asarray(y_true)
    y = y.view(xp.int8) if y.dtype == bool else (y != 0).astype(xp.int8)
    p = xp.asarray(proba, dtype=xp.float64)
    pred = p > threshold
    code = confusion_codes(y, pred, xp)
    limit = max(4 * n, 1 << 20)

    hour = t_us // US_PER_HOUR
    idx, uniq, lo, groups = _group(hour, xp, limit // 4)
    counts = xp.bincount(idx * 4 + code, minlength=4 * groups).reshape(groups, 4)
    # scikit-learn's log_loss: [1-p, p] clipped to [eps, 1-eps], rows renormalised
    p1 = xp.clip(p, _EPS, 1 - _EPS)
    p0 = xp.clip(1 - p, _EPS, 1 - _EPS)
    yb = y.astype(bool)
    ll = -xp.log(xp.where(yb, p1, p0) / (p0 + p1))
    br = (y - p) ** 2
    # float sums in row order on the host: a GPU's atomic adds round in a different order on
    # every run, so the same seed would give tables differing in the last bits (D2H of 6
    # columns costs a few ms per million rows; on the CPU _host is a no-op)
    idx_h = _host(idx)
    sums = np.stack(
        [np.bincount(idx_h, weights=_host(w), minlength=groups) for w in (ll, ll * ll, br, br * br, p)], axis=1
    )
    present = counts.sum(axis=1) > 0
    hours = (xp.arange(groups, dtype=xp.int64) + lo) if uniq is None else uniq
    hours, counts, sums = hours[present], counts[present], sums[_host(present)]

    wkey = window.keys(t_us, xp)
    b = xp.clip((p * bins).astype(xp.int64), 0, bins - 1)
    hkey = (wkey * bins + b) * 2 + y
    hidx, huniq, hlo, hgroups = _group(hkey, xp, limit)
    hc = xp.bincount(hidx, minlength=hgroups)
    if huniq is None:
        nz = xp.nonzero(hc)[0]
        hist_keys, hist_counts = nz + hlo, hc[nz]
    else:
        hist_keys, hist_counts = huniq, hc

    ex = _collapse_exact(wkey, p, y, xp.ones(n, dtype=xp.int64), xp) if exact else None
    return ScoreSummary(
        window.label, bins, _host(hours).astype("int64"), _host(counts).astype("int64"),
        _host(sums).astype("float64"), _host(hist_keys).astype("int64"), _host(hist_counts).astype("int64"), ex,
    )


def _empty_summary(window: Window, bins: int, exact: bool) -> ScoreSummary:
    z = np.zeros(0, dtype="int64")
    ex = (z, np.zeros(0), np.zeros(0, "int8"), z) if exact else None
    return ScoreSummary(window.label, bins, z, np.zeros((0, 4), "int64"), np.zeros((0, 5)), z, z, ex)


def summarize_scores(event_time, y_true, proba, *, threshold: float, window: str | Window = "D", bins: int = 1000,
                     exact: bool = False, xp=np, threads: int = 1) -> ScoreSummary:
    """Reduce scored rows to a :class:`ScoreSummary`.

    Parameters
    ----------
    event_time : datetime64 or int64 microseconds since the epoch (wall clock).
    y_true : 0/1 labels.
    proba : P(y = 1); predicted positive when ``proba > threshold``.
    window : window length for the score histogram (counts are hourly).
    bins : equal-width score bins for the binned AUC and quantiles.
    exact : also keep exact ``(window, score, label)`` counts (exact AUC and quantiles;
        as many entries as distinct scores per window).
    xp : numpy or cupy.
    threads : NumPy only: split the rows over this many threads (NumPy releases the GIL).
    """
    w = parse_window(window)
    t_us = _as_us(event_time, xp)
    if xp is np and threads > 1 and int(t_us.shape[0]) >= 2 * 500_000:
        return merge_summaries(_split_rows(
            lambda t, y, p: _summarize(t, y, p, threshold, w, bins, exact, np), threads, t_us, y_true, proba))
    return _summarize(t_us, y_true, proba, threshold, w, bins, exact, xp)


def _sum_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(keys, return_inverse=True)
    if values.ndim == 1:
        return uniq, np.bincount(inv, weights=values, minlength=len(uniq))
    out = np.zeros((len(uniq), values.shape[1]), dtype=values.dtype)
    np.add.at(out, inv, values)
    return uniq, out


def merge_summaries(summaries) -> ScoreSummary:
    """Add summaries (of the same window and bins) together."""
    summaries = list(summaries)
    if not summaries:
        raise ValueError("nothing to merge")
    first = summaries[0]
    if any(s.window != first.window or s.bins != first.bins for s in summaries):
        raise ValueError("summaries with different windows or bins cannot be merged")
    if len(summaries) == 1:
        return first
    hours = np.concatenate([s.hours for s in summaries])
    hours_u, counts = _sum_by_key(hours, np.concatenate([s.counts for s in summaries]))
    _, sums = _sum_by_key(hours, np.concatenate([s.sums for s in summaries]))
    hk, hc = _sum_by_key(np.concatenate([s.hist_keys for s in summaries]),
                         np.concatenate([s.hist_counts for s in summaries]).astype("float64"))
    ex = None
    if all(s.exact is not None for s in summaries):
        ex = _collapse_exact(*(np.concatenate([s.exact[i] for s in summaries]) for i in range(4)), np)
    return ScoreSummary(first.window, first.bins, hours_u.astype("int64"), counts.astype("int64"), sums,
                        hk.astype("int64"), hc.astype("int64"), ex)


# ---------------------------------------------------------------------------------------
# metrics from summaries (host side)
# ---------------------------------------------------------------------------------------
def _count_frame(counts: np.ndarray) -> pd.DataFrame:
    """(…, 4) code counts -> add_metrics table (tp, fp, fn, tn first)."""
    counts = np.asarray(counts, dtype="int64").reshape(-1, 4)
    return add_metrics(pd.DataFrame({"tp": counts[:, 3], "fp": counts[:, 1], "fn": counts[:, 2], "tn": counts[:, 0]}))


def _f1_like(reps: np.ndarray) -> dict[str, np.ndarray]:
    """Count metrics of bootstrap replicates ``(..., 4)`` (zero division -> 0, as sklearn)."""
    tn, fp, fn, tp = (reps[..., i].astype("float64") for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        def div(a, b):
            return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)

        return {
            "precision": div(tp, tp + fp),
            "recall": div(tp, tp + fn),
            "f1": div(2 * tp, 2 * tp + fp + fn),
            "accuracy": div(tp + tn, tp + tn + fp + fn),
        }


def bootstrap_bands(counts: np.ndarray, *, level: float = 0.95, replicates: int = 1000,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Percentile bootstrap bands of count metrics per window.

    Resampling a window's rows with replacement gives multinomial counts, so
    the bootstrap is drawn from the counts directly (exact, and cheap).
    Returns ``{metric_low: array, metric_high: array}``; NaN for empty windows.
    """
    counts = np.asarray(counts, dtype="int64").reshape(-1, 4)
    n = counts.sum(axis=1)
    out = {f"{m}_{s}": np.full(len(counts), np.nan) for m in ("precision", "recall", "f1", "accuracy") for s in ("low", "high")}
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    idx = np.nonzero(n > 0)[0]
    for chunk in np.array_split(idx, max(1, len(idx) // 256)):
        if not len(chunk):
            continue
        pvals = counts[chunk] / n[chunk, None]
        reps = rng.multinomial(n[chunk], pvals, size=(replicates, len(chunk)))
        for m, values in _f1_like(reps).items():
            lo, hi = np.quantile(values, [alpha, 1 - alpha], axis=0)
            out[f"{m}_low"][chunk], out[f"{m}_high"][chunk] = lo, hi
    return out


def _auc(values: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> float:
    """Mann-Whitney AUC from (value, label, count) entries sorted by value (ties count 1/2)."""
    uniq, inv = np.unique(values, return_inverse=True)
    pos = np.bincount(inv, weights=counts * (labels == 1), minlength=len(uniq))
    neg = np.bincount(inv, weights=counts * (labels == 0), minlength=len(uniq))
    P, N = pos.sum(), neg.sum()
    if P == 0 or N == 0:
        return np.nan
    below = np.cumsum(neg) - neg
    return float((pos * (2 * below + neg)).sum() / (2 * P * N))


def _hanley_mcneil(auc: np.ndarray, pos: np.ndarray, neg: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        q1 = auc / (2 - auc)
        q2 = 2 * auc**2 / (1 + auc)
        var = (auc * (1 - auc) + (pos - 1) * (q1 - auc**2) + (neg - 1) * (q2 - auc**2)) / (pos * neg)
        se = np.sqrt(np.maximum(var, 0))
    return np.clip(auc - z * se, 0, 1), np.clip(auc + z * se, 0, 1)


def _quantiles(values: np.ndarray, counts: np.ndarray, qs, *, width: float | None) -> list[float]:
    """Quantiles (numpy's 'linear' rule) of a sample given as sorted distinct values and counts;
    with ``width`` the values are bin lower edges and the rank is interpolated inside the bin."""
    n = int(counts.sum())
    if n == 0:
        return [np.nan] * len(qs)
    cum = np.cumsum(counts)

    def order_stat(i: int) -> float:
        j = int(np.searchsorted(cum, i, side="right"))
        if width is None:
            return float(values[j])
        before = cum[j] - counts[j]  # the bin's rows are taken as evenly spread inside it
        return float(values[j] + (i - before + 0.5) / counts[j] * width)

    out = []
    for q in qs:
        pos = (n - 1) * q
        lo_i = int(np.floor(pos))
        hi_i = min(lo_i + 1, n - 1)
        a, b = order_stat(lo_i), order_stat(hi_i)
        out.append(a + (pos - lo_i) * (b - a))
    return out


QUANTILES = (0.5, 0.9, 0.99)


def _decode_hist(s: ScoreSummary):
    key = s.hist_keys
    label = (key % 2).astype("int8")
    wb = key // 2
    return wb // s.bins, wb % s.bins, label, s.hist_counts


def _score_entries(s: ScoreSummary):
    """(window, value, label, count, width) for the threshold-free metrics."""
    if s.exact is not None:
        w, p, y, c = s.exact
        return w, p, y, c, None
    w, b, y, c = _decode_hist(s)
    return w, b / s.bins, y, c, 1.0 / s.bins


def score_quantiles(s: ScoreSummary, qs=QUANTILES) -> list[float]:
    """Quantiles of P(y=1) over all rows of a summary (exact or binned)."""
    _, v, _, c, width = _score_entries(s)
    uniq, inv = np.unique(v, return_inverse=True)
    return _quantiles(uniq, np.bincount(inv, weights=c, minlength=len(uniq)), qs, width=width)


def pooled_metrics(s: ScoreSummary) -> dict[str, float]:
    """Whole-summary metrics (a month): counts metrics, AUC, log loss, Brier."""
    row = _count_frame(s.counts.sum(axis=0)).iloc[0].to_dict()
    _, v, y, c, _ = _score_entries(s)
    n = row["n"]
    row["roc_auc"] = _auc(v, y, c) if len(c) else np.nan
    row["roc_auc_method"] = "exact" if s.exact is not None else f"binned{s.bins}"
    sums = s.sums.sum(axis=0)
    row["log_loss"] = sums[0] / n if n else np.nan
    row["brier"] = sums[2] / n if n else np.nan
    row["mean_proba"] = sums[4] / n if n else np.nan
    return row


def replay_frame(s: ScoreSummary, *, fill_from: int | None = None, fill_to: int | None = None,
                 trailing: int = 7, label_delay_hours: int = 0, bands: bool = True, level: float = 0.95,
                 replicates: int = 1000, seed: int = 0, train: ScoreSummary | None = None,
                 timezone: str | None = "America/New_York") -> pd.DataFrame:
    """The replay table of one model: one row per window, empty windows kept.

    Parameters
    ----------
    s : merged summary of the replayed rows.
    fill_from, fill_to : window keys of the period; exactly the windows in between appear
        (n = 0, NaN metrics where empty), whatever times the rows carry; rows outside them
        are counted in ``table.attrs["rows_outside_windows"]``.  Without them the windows
        span the rows' first to last hour (at most :data:`MAX_WINDOWS`).
    trailing : the ``trailing_*`` columns pool the last ``trailing`` windows.
    label_delay_hours : labels arrive this long after the event; ``known_*`` columns are
        what a monitor had at each window's end (an event at ``t`` is labelled by the end
        ``e`` when ``t + delay < e``).
    bands : add ``*_low``/``*_high`` columns (``level`` two-sided).
    train : summary of the training rows, for ``train_proba_p*`` reference quantiles.
    timezone : the data's wall clock, for ``hours_in_window`` (DST days have 23/25 hours).
    """
    w = parse_window(s.window)
    hour_keys = s.hours
    outside = 0
    if fill_from is not None and fill_to is not None:
        # the windows come from the period, never from the data: a row dated 2200 (or
        # garbage) cannot size the table; rows outside the period's windows are counted
        lo, hi = int(fill_from), int(fill_to)
        wk_of_hour = w.keys(hour_keys * US_PER_HOUR) if len(hour_keys) else np.zeros(0, "int64")
        out_of_range = (wk_of_hour < lo) | (wk_of_hour > hi)
        outside = int(s.counts[out_of_range].sum())
    else:
        if not len(hour_keys):
            return pd.DataFrame()
        wk_of_hour = w.keys(hour_keys[[0, -1]] * US_PER_HOUR)
        lo, hi = int(wk_of_hour[0]), int(wk_of_hour[-1])
        if hi - lo + 1 > MAX_WINDOWS:
            raise ValueError(f"the rows span {hi - lo + 1:,} {w.label} windows (more than {MAX_WINDOWS:,}); "
                             "give fill_from and fill_to, the period's window keys")
    if hi - lo + 1 > MAX_WINDOWS:
        raise ValueError(f"the period spans {hi - lo + 1:,} {w.label} windows (more than {MAX_WINDOWS:,}); use a longer window")
    keys = np.arange(lo, hi + 1, dtype="int64")
    start, end = w.bounds(keys)
    start_h = start.view("int64") // US_PER_HOUR
    end_h = end.view("int64") // US_PER_HOUR

    # prefix sums over hours make every span query (window, cumulative, trailing, known) exact
    pre_c = np.vstack([np.zeros((1, 4), "int64"), np.cumsum(s.counts, axis=0)])
    pre_s = np.vstack([np.zeros((1, 5)), np.cumsum(s.sums, axis=0)])

    def span(a_h, b_h, pre):
        b_h = np.maximum(b_h, a_h)
        return pre[np.searchsorted(hour_keys, b_h)] - pre[np.searchsorted(hour_keys, a_h)]

    counts = span(start_h, end_h, pre_c)
    sums = span(start_h, end_h, pre_s)
    out = _count_frame(counts)
    out.insert(0, "window_start", start)
    out.insert(1, "window_end", end)
    if timezone:
        out.insert(2, "hours_in_window", _real_hours(start, end, timezone))
    n = out["n"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        nz = np.where(n > 0, n, np.nan)
        out["log_loss"] = sums[:, 0] / nz
        out["brier"] = sums[:, 2] / nz
        out["mean_proba"] = sums[:, 4] / nz
        z = _z(level)
        for name, i in (("log_loss", 0), ("brier", 2)):
            mean = sums[:, i] / nz
            var = np.maximum(sums[:, i + 1] / nz - mean**2, 0) * (nz / np.maximum(nz - 1, 1))
            half = z * np.sqrt(var / nz)
            if bands:
                out[f"{name}_low"], out[f"{name}_high"] = mean - half, mean + half

    # threshold-free metrics per window
    ew, ev, ey, ec, width = _score_entries(s)
    auc = np.full(len(keys), np.nan)
    qs = np.full((len(keys), len(QUANTILES)), np.nan)
    pos = out["positives"].to_numpy().astype("float64")
    neg = (n - out["positives"].to_numpy()).astype("float64")
    if len(ew):
        bounds = np.searchsorted(ew, np.concatenate([keys, [keys[-1] + 1]]))
        for i in range(len(keys)):
            a, b = bounds[i], bounds[i + 1]
            if a == b:
                continue
            auc[i] = _auc(ev[a:b], ey[a:b], ec[a:b])
            uniq, inv = np.unique(ev[a:b], return_inverse=True)
            qs[i] = _quantiles(uniq, np.bincount(inv, weights=ec[a:b], minlength=len(uniq)), QUANTILES, width=width)
    out["roc_auc"] = auc
    out["roc_auc_method"] = "exact" if s.exact is not None else f"binned{s.bins}"
    if bands:
        out["roc_auc_low"], out["roc_auc_high"] = _hanley_mcneil(auc, pos, neg, _z(level))
    for j, q in enumerate(QUANTILES):
        out[f"proba_p{round(q * 100)}"] = qs[:, j]
    if train is not None:
        for q, v in zip(QUANTILES, score_quantiles(train)):
            out[f"train_proba_p{round(q * 100)}"] = v
    if bands:
        for col, values in bootstrap_bands(counts, level=level, replicates=replicates, seed=seed).items():
            out[col] = values

    # cumulative, trailing and label-delay views
    first_h = start_h[0]
    cum = _count_frame(span(np.full_like(end_h, first_h), end_h, pre_c))
    for name in ("n", "precision", "recall", "f1"):
        out[f"cumulative_{name}"] = cum[name].to_numpy()
    trailing = max(1, int(trailing))
    t_start = start_h[np.maximum(np.arange(len(keys)) - trailing + 1, 0)]
    tr = _count_frame(span(t_start, end_h, pre_c))
    out["trailing_windows"] = trailing
    out["trailing_n"] = tr["n"].to_numpy()
    out["trailing_f1"] = tr["f1"].to_numpy()
    known_end = end_h - label_delay_hours
    kw = _count_frame(span(start_h, known_end, pre_c))
    kc = _count_frame(span(np.full_like(end_h, first_h), known_end, pre_c))
    kt = _count_frame(span(t_start, known_end, pre_c))
    out["label_delay_hours"] = label_delay_hours
    with np.errstate(divide="ignore", invalid="ignore"):
        out["labels_known_fraction"] = kw["n"].to_numpy() / nz
    out["known_f1"] = kw["f1"].to_numpy()
    out["known_cumulative_n"] = kc["n"].to_numpy()
    out["known_cumulative_f1"] = kc["f1"].to_numpy()
    out["known_trailing_f1"] = kt["f1"].to_numpy()
    out["labels_complete_at"] = end + np.timedelta64(label_delay_hours, "h")
    out.attrs["rows_outside_windows"] = outside
    return out


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def _real_hours(start: np.ndarray, end: np.ndarray, tz: str) -> np.ndarray:
    """Elapsed hours between wall-clock bounds in ``tz`` (an ambiguous wall time is
    taken as its first, DST, occurrence; a skipped one as the next real instant)."""
    def utc(x):
        return pd.DatetimeIndex(x).tz_localize(tz, ambiguous=np.ones(len(x), bool), nonexistent="shift_forward")

    return ((utc(end) - utc(start)) / pd.Timedelta(hours=1)).to_numpy()


# ---------------------------------------------------------------------------------------
# counts-only helpers (kept for callers that only need confusion counts)
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    """A process-wide pool for splitting one array reduction over threads (NumPy releases the GIL)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="rapidseval-reduce")


def _count_table(t_us, y_true, y_pred, w: Window, xp) -> tuple[np.ndarray, np.ndarray]:
    """(window keys, (k, 4) code counts) of some rows, all windows between the extremes."""
    codes = confusion_codes(y_true, y_pred, xp)  # int8
    keys = w.keys(t_us, xp)
    if int(keys.max()) < (1 << 22):
        # small absolute keys (days, hours since 1970): count them in place, with no
        # offset pass; bincount refuses negative keys, which take the general path
        keys *= 4
        keys += codes
        try:
            flat = _host(xp.bincount(keys)).reshape(-1, 4)
        except ValueError:
            keys -= codes
            keys //= 4
        else:
            lo = int(np.argmax(flat.any(axis=1)))
            return np.arange(lo, len(flat), dtype="int64"), flat[lo:]
    idx, uniq, lo, groups = _group(keys, xp, max(int(t_us.shape[0]), 1 << 20))
    table = _host(xp.bincount(idx * 4 + codes, minlength=4 * groups).reshape(groups, 4))
    return (np.arange(groups, dtype="int64") + lo if uniq is None else _host(uniq)), table


def window_counts(event_time, y_true, y_pred, *, window: str | Window, xp=np, threads: int = 1) -> pd.DataFrame:
    """Confusion counts per window of one partition (host pandas table).

    ``event_time`` is datetime64 or int64 microseconds since the epoch; returns
    columns ``window`` (int64 key), ``tp``, ``fp``, ``fn``, ``tn``.  ``threads``
    (NumPy only) splits the rows over threads and adds the counts.
    """
    w = parse_window(window)
    t_us = _as_us(event_time, xp)
    n = int(t_us.shape[0])
    if n == 0:
        return pd.DataFrame({c: np.zeros(0, dtype="int64") for c in ("window", *COUNT_COLUMNS)})
    if xp is np and threads > 1 and n >= 2 * 500_000:
        pieces = _split_rows(lambda t, y, p: _count_table(t, y, p, w, np), threads, t_us, y_true, y_pred)
        keys, table = _sum_by_key(np.concatenate([k for k, _ in pieces]), np.concatenate([t for _, t in pieces]))
    else:
        keys, table = _count_table(t_us, y_true, y_pred, w, xp)
    present = table.sum(axis=1) > 0
    table, keys = table[present], keys[present]
    return pd.DataFrame({"window": keys, "tp": table[:, 3], "fp": table[:, 1], "fn": table[:, 2], "tn": table[:, 0]})


def merge_window_counts(tables, by=("window",)) -> pd.DataFrame:
    """Sum count tables (from many partitions) per key."""
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame({c: np.zeros(0, dtype="int64") for c in (*by, *COUNT_COLUMNS)})
    both = pd.concat(tables, ignore_index=True)
    return both.groupby(list(by), as_index=False, sort=True)[list(COUNT_COLUMNS)].sum()


def replay_table(counts: pd.DataFrame, *, window: str | Window, fill_from=None, fill_to=None) -> pd.DataFrame:
    """Count metrics per window with cumulative-since-start columns, empty windows kept."""
    w = parse_window(window)
    keys = counts["window"].to_numpy(dtype="int64")
    values = {c: counts[c].to_numpy(dtype="int64") for c in COUNT_COLUMNS}
    if len(keys) > 1 and (np.diff(keys) < 0).any():
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], {c: v[order] for c, v in values.items()}
    if fill_from is not None and fill_to is not None:
        lo, hi = fill_from, fill_to
        if len(keys):
            lo, hi = min(lo, int(keys[0])), max(hi, int(keys[-1]))
        full = np.arange(lo, hi + 1, dtype="int64")
        filled = {c: np.zeros(len(full), dtype="int64") for c in COUNT_COLUMNS}
        for c in COUNT_COLUMNS:
            np.add.at(filled[c], keys - lo, values[c])
        keys, values = full, filled
    start, end = w.bounds(keys)
    out = add_metrics(pd.DataFrame(values))
    out.insert(0, "window_start", start)
    out.insert(1, "window_end", end)
    cum = add_metrics(pd.DataFrame({c: np.cumsum(v) for c, v in values.items()}))
    for name in ("n", "precision", "recall", "f1"):
        out[f"cumulative_{name}"] = cum[name].to_numpy()
    return out


# ---------------------------------------------------------------------------------------
# the engine on the frames people have: pandas, cuDF, Dask DataFrames (dask.dataframe or
# dask_cudf), scored from a probability column or by a fitted estimator
# ---------------------------------------------------------------------------------------
__all__ += ["replay", "map_scored_partitions"]


def _positive_proba(proba, xp):
    """P(y = 1) from ``predict_proba``'s output (an (n, 2) array or frame), as float64."""
    if hasattr(proba, "iloc"):
        proba = proba.iloc[:, 1]
        return proba.to_cupy(dtype="float64") if hasattr(proba, "to_cupy") else proba.to_numpy(dtype="float64")
    proba = xp.asarray(proba)
    return (proba[:, 1] if proba.ndim == 2 else proba).astype(xp.float64)


class _EmptyPartitionsScored:
    """A fitted classifier that answers a partition without rows with no scores (scikit-learn
    refuses to predict on 0 rows; a Dask DataFrame filtered by time has such partitions)."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.classes_ = estimator.classes_

    def predict_proba(self, X):
        if len(X) == 0:
            return np.zeros((0, len(self.classes_)), dtype="float64")
        return self.estimator.predict_proba(X)


def _score_partition(func, part, proba, *, estimator, features):
    """``func(part, P(y = 1))`` of one pandas or cuDF frame (``proba``: already predicted, or None)."""
    from .backend import frame_backend, get_backend

    be = get_backend(frame_backend(part))
    if proba is None and estimator is not None and len(part):
        proba = estimator.predict_proba(part[list(features)])
    if proba is None:
        return func(part, None, be)
    if len(proba) != len(part):
        raise ValueError(f"a partition of {len(part)} rows got {len(proba)} scores: the scored frame and the "
                         "frame were partitioned differently")
    return func(part, _positive_proba(proba, be.xp), be)


def map_scored_partitions(frame, func, *, estimator=None, features=None) -> list:
    """``func(partition, proba, backend)`` for every partition of ``frame``, computed.

    A pandas or cuDF frame is one partition.  A Dask DataFrame's partitions are visited where
    they live, in one ``dask.compute``; with an ``estimator`` (fitted, with ``predict_proba``),
    its P(y = 1) on ``features`` is ``proba`` (``None`` otherwise): over a Dask DataFrame, by
    dask-ml's :class:`~dask_ml.wrappers.ParallelPostFit`, partition by partition.  ``backend``
    is the partition's :class:`~rapidseval.backend.Backend` (cuDF partitions: the GPU's).
    """
    import dask

    if estimator is not None and not features:
        raise ValueError("scoring with an estimator needs its features (features=[...])")
    score = functools.partial(_score_partition, func, estimator=estimator, features=features)
    if not dask.is_dask_collection(frame):
        return [score(frame, None)]
    import dask.dataframe as dd
    from dask_ml.wrappers import ParallelPostFit

    if not isinstance(frame, dd.DataFrame):
        raise TypeError(f"expected a pandas, cuDF or Dask DataFrame, got {type(frame).__name__}")
    # one optimised expression for the rows and their scores, so both have the same partitions
    # (each optimised on its own, the scores' fewer columns may fuse more file pieces per partition)
    frame = frame.optimize()
    parts = frame.to_delayed()
    if estimator is None:
        probas = [None] * len(parts)
    else:
        scorer = ParallelPostFit(estimator=_EmptyPartitionsScored(estimator))
        probas = list(scorer.predict_proba(frame[list(features)]).to_delayed().ravel())
    if len(probas) != len(parts):
        raise ValueError(f"the frame has {len(parts)} partitions but its scores {len(probas)}")
    score = functools.partial(_score_partition, func, estimator=None, features=None)
    return list(dask.compute(*[dask.delayed(score)(part, proba) for part, proba in zip(parts, probas)]))


def _summarize_partition(part, proba, be, *, time_column: str, label: str, proba_column: str | None,
                         threshold: float, window: str) -> ScoreSummary:
    scores = be.asarray(part[proba_column], dtype="float64") if proba_column is not None else proba
    if scores is None:  # an empty partition, not scored
        scores = be.xp.zeros(len(part), dtype="float64")
    return summarize_scores(be.time_us(part[time_column]), be.asarray(part[label]), scores, threshold=threshold,
                            window=window, xp=be.xp)


def replay(frame, *, time_column: str, label: str, proba: str | None = None, estimator=None,
           features=None, threshold: float = 0.5, window: str = "D", trailing: int = 7, bands: bool = False,
           level: float = 0.95, replicates: int = 1000, seed: int = 0,
           timezone: str | None = "America/New_York") -> pd.DataFrame:
    """The replay table of scored rows: one row per window from the first row's to the last's.

    Parameters
    ----------
    frame : pandas.DataFrame, cudf.DataFrame or dask.dataframe.DataFrame
        Rows with an event time, a 0/1 label and either a probability column or the
        features an ``estimator`` scores (a Dask DataFrame is reduced partition by
        partition, where it lives).
    time_column, label : str
        The datetime column that places a row in its window; the 0/1 (or boolean) label.
    proba : str, optional
        The column holding P(y = 1); or give ``estimator`` and ``features``.
    estimator : fitted classifier, optional
        Scored with ``predict_proba`` on ``features`` (over a Dask DataFrame by dask-ml's
        ``ParallelPostFit``).
    threshold : float
        Predicted positive when P(y = 1) > threshold.
    window : {"H", "D", "W", "M", ...}
    trailing, bands, level, replicates, seed, timezone
        As :func:`replay_frame` (``bands``: bootstrap bands, off by default).

    Returns
    -------
    pandas.DataFrame
        The columns of ``replay.parquet`` (:func:`replay_frame`: ``window_start``,
        ``window_end``, ``n``, ``tp``, ``fp``, ``fn``, ``tn``, ``precision``, ``recall``,
        ``f1``, ``cumulative_f1``, ...), after ``window`` and ``threshold``; empty when the
        frame has no rows.
    """
    if (proba is None) == (estimator is None):
        raise ValueError("give either proba (a column of P(y = 1)) or estimator and features")
    summarize = functools.partial(_summarize_partition, time_column=time_column, label=label, proba_column=proba,
                                  threshold=threshold, window=window)
    stream = merge_summaries(map_scored_partitions(frame, summarize, estimator=estimator, features=features))
    table = replay_frame(stream, trailing=trailing, bands=bands, level=level, replicates=replicates if bands else 0,
                         seed=seed, timezone=timezone)
    if len(table.columns):
        table.insert(0, "window", parse_window(window).label)
        table.insert(1, "threshold", float(threshold))
    return table
