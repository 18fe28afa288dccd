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

from .core.arrays import require_columns, to_numpy
from .core.confusion import CODES, KeyedCounts, confusion_codes, count_by_key, count_codes, group_keys, sum_by_key
from .core.time import US_PER_HOUR, Window, parse_window
from .metrics import COUNT_COLUMNS, add_metrics
from .models import positive_proba

__all__ = [
    "MAX_WINDOWS",
    "ScoreSummary",
    "ExactScores",
    "summarize_scores",
    "merge_summaries",
    "replay_frame",
    "pooled_metrics",
    "window_counts",
    "merge_window_counts",
    "replay_table",
    "bootstrap_bands",
    "roc_auc_band",
    "mann_whitney_auc",
    "score_quantiles",
]

_EPS = np.finfo(np.float64).eps  # scikit-learn's log_loss clipping for float64
#: most windows one replay table holds (a year of hourly windows is 8,784)
MAX_WINDOWS = 1_000_000

# summary columns: confusion codes 0=tn 1=fp 2=fn 3=tp; loss sums
_SUMS = ("log_loss", "log_loss_sq", "brier", "brier_sq", "proba")


# ---------------------------------------------------------------------------------------
# per-partition summaries (worker side; NumPy or CuPy)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExactScores:
    """Exact scores kept per window: the distinct ``(window, score, label)`` keys, sorted by
    that key, and how many rows have each (host arrays)."""

    window: np.ndarray  # int64 window keys
    score: np.ndarray  # float64 P(y=1)
    label: np.ndarray  # int8 0/1
    count: np.ndarray  # int64 rows

    @classmethod
    def merged(cls, parts: list["ExactScores"]) -> "ExactScores":
        """The exact scores of several summaries' rows together."""
        return _collapse_exact(np.concatenate([p.window for p in parts]), np.concatenate([p.score for p in parts]),
                               np.concatenate([p.label for p in parts]), np.concatenate([p.count for p in parts]), np)


@dataclass
class ScoreSummary:
    """Everything a replay needs from some scored rows, mergeable by addition.

    Attributes
    ----------
    window : window label the histogram is keyed by.
    bins : score bins of the histogram.
    hours : int64 sorted hour keys (hours since the epoch, wall clock).
    counts : int64 ``(len(hours), 4)``, columns in confusion-code order 0=tn 1=fp 2=fn 3=tp
        (:data:`rapidseval.core.confusion.CODES`).
    sums : float64 ``(len(hours), 5)``: log loss, its square, Brier, its square, P(y=1).
    hist_keys, hist_counts : sparse score histogram, key ``(window*bins + bin)*2 + label``.
    exact : :class:`ExactScores` when exact scores were kept, else None.
    """

    window: str
    bins: int
    hours: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    hist_keys: np.ndarray
    hist_counts: np.ndarray
    exact: ExactScores | None = None

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def count_totals(self) -> dict[str, int]:
        """Total ``tp``, ``fp``, ``fn``, ``tn`` of the summary."""
        totals = self.counts.sum(axis=0)
        return {name: int(totals[CODES[name]]) for name in COUNT_COLUMNS}


def _collapse_exact(window, score, label, count, xp) -> ExactScores:
    """Sum ``count`` per distinct ``(window, score, label)``; host arrays sorted by that key."""
    if int(window.shape[0]) == 0:
        return ExactScores(to_numpy(window).astype("int64"), to_numpy(score).astype("float64"),
                           to_numpy(label).astype("int8"), to_numpy(count).astype("int64"))
    order = xp.lexsort(xp.stack([label, score, window]))
    window, score, label, count = window[order], score[order], label[order], count[order]
    first_of_key = xp.ones(int(window.shape[0]), dtype=bool)
    first_of_key[1:] = (window[1:] != window[:-1]) | (score[1:] != score[:-1]) | (label[1:] != label[:-1])
    total = xp.bincount(xp.cumsum(first_of_key) - 1, weights=count)
    return ExactScores(to_numpy(window[first_of_key]).astype("int64"), to_numpy(score[first_of_key]).astype("float64"),
                       to_numpy(label[first_of_key]).astype("int8"), to_numpy(total).astype("int64"))


def _as_us(event_time, xp):
    """datetime64 or int64 microseconds -> int64 microseconds (no copy when already so)."""
    t_us = xp.asarray(event_time)
    if t_us.dtype.kind == "M":
        t_us = t_us.astype("datetime64[us]", copy=False).view("int64")
    return t_us


@functools.lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    """A process-wide pool for splitting one array reduction over threads (NumPy releases the GIL)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="rapidseval-reduce")


def _split_rows(fn, threads: int, *arrays):
    """``[fn(*chunk) for chunk]`` over ``threads`` contiguous row chunks, in a shared thread pool."""
    cuts = np.linspace(0, int(arrays[0].shape[0]), threads + 1).astype(int)
    arrays = [np.asarray(a) for a in arrays]
    return list(_pool(threads).map(lambda i: fn(*(a[cuts[i]:cuts[i + 1]] for a in arrays)), range(threads)))


def _summarize(t_us, y_true, proba, threshold: float, window: Window, bins: int, exact: bool, xp) -> ScoreSummary:
    n = int(t_us.shape[0])
    if n == 0:
        return _empty_summary(window, bins, exact)
    label = xp.asarray(y_true)
    label = label.view(xp.int8) if label.dtype == bool else (label != 0).astype(xp.int8)
    proba = xp.asarray(proba, dtype=xp.float64)
    hours, counts, sums = _hourly_tables(t_us, label, proba, threshold, xp)
    window_keys = window.keys(t_us, xp)
    hist_keys, hist_counts = _score_histogram(window_keys, label, proba, bins, xp)
    exact_counts = _collapse_exact(window_keys, proba, label, xp.ones(n, dtype=xp.int64), xp) if exact else None
    return ScoreSummary(window.label, bins, hours, counts, sums, hist_keys, hist_counts, exact_counts)


def _hourly_tables(t_us, label, proba, threshold: float, xp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Host ``(hours, counts, sums)`` of the hours that have rows: confusion counts and loss sums."""
    codes = confusion_codes(label, proba > threshold, xp)
    groups = group_keys(t_us // US_PER_HOUR, dense_limit=max(int(t_us.shape[0]), 1 << 18), xp=xp)
    counts = count_codes(groups, codes, xp)
    # float sums in row order on the host: a GPU's atomic adds round in a different order on
    # every run, so the same seed would give tables differing in the last bits (D2H of 6
    # columns costs a few ms per million rows; on the CPU to_numpy is a no-op)
    index = to_numpy(groups.index)
    sums = np.stack([np.bincount(index, weights=to_numpy(values), minlength=groups.n_groups)
                     for values in _row_losses(label, proba, xp)], axis=1)
    present = counts.sum(axis=1) > 0
    hours = groups.keys(xp)[present]
    return (to_numpy(hours).astype("int64"), to_numpy(counts[present]).astype("int64"),
            sums[to_numpy(present)].astype("float64"))


def _row_losses(label, proba, xp) -> tuple:
    """Per row, in :data:`_SUMS` order: log loss, its square, Brier, its square, P(y=1)."""
    # scikit-learn's log_loss: [1-p, p] clipped to [eps, 1-eps], rows renormalised
    p1 = xp.clip(proba, _EPS, 1 - _EPS)
    p0 = xp.clip(1 - proba, _EPS, 1 - _EPS)
    log_loss = -xp.log(xp.where(label.astype(bool), p1, p0) / (p0 + p1))
    brier = (label - proba) ** 2
    return log_loss, log_loss * log_loss, brier, brier * brier, proba


def _score_histogram(window_keys, label, proba, bins: int, xp) -> tuple[np.ndarray, np.ndarray]:
    """Host sparse histogram of the scores: keys ``(window * bins + bin) * 2 + label`` and counts."""
    score_bin = xp.clip((proba * bins).astype(xp.int64), 0, bins - 1)
    hist_key = (window_keys * bins + score_bin) * 2 + label
    groups = group_keys(hist_key, dense_limit=max(4 * int(hist_key.shape[0]), 1 << 20), xp=xp)
    per_group = xp.bincount(groups.index, minlength=groups.n_groups)
    if groups.unique_keys is None:
        nonzero = xp.nonzero(per_group)[0]
        keys, counts = nonzero + groups.first_key, per_group[nonzero]
    else:
        keys, counts = groups.unique_keys, per_group
    return to_numpy(keys).astype("int64"), to_numpy(counts).astype("int64")


def _empty_summary(window: Window, bins: int, exact: bool) -> ScoreSummary:
    z = np.zeros(0, dtype="int64")
    ex = ExactScores(z, np.zeros(0), np.zeros(0, "int8"), z) if exact else None
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
    hours_u, counts = sum_by_key(hours, np.concatenate([s.counts for s in summaries]))
    _, sums = sum_by_key(hours, np.concatenate([s.sums for s in summaries]))
    hk, hc = sum_by_key(np.concatenate([s.hist_keys for s in summaries]),
                         np.concatenate([s.hist_counts for s in summaries]).astype("float64"))
    ex = None
    if all(s.exact is not None for s in summaries):
        ex = ExactScores.merged([s.exact for s in summaries])
    return ScoreSummary(first.window, first.bins, hours_u.astype("int64"), counts.astype("int64"), sums,
                        hk.astype("int64"), hc.astype("int64"), ex)


# ---------------------------------------------------------------------------------------
# metrics from summaries (host side)
# ---------------------------------------------------------------------------------------
def _count_frame(counts: np.ndarray) -> pd.DataFrame:
    """(…, 4) code counts -> add_metrics table (tp, fp, fn, tn first)."""
    counts = np.asarray(counts, dtype="int64").reshape(-1, 4)
    return add_metrics(pd.DataFrame({name: counts[:, CODES[name]] for name in COUNT_COLUMNS}))


def _f1_like(reps: np.ndarray) -> dict[str, np.ndarray]:
    """Count metrics of bootstrap replicates ``(..., 4)`` (zero division -> 0, as sklearn)."""
    tn, fp, fn, tp = (reps[..., CODES[name]].astype("float64") for name in ("tn", "fp", "fn", "tp"))
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


def mann_whitney_auc(values: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> float:
    """ROC AUC of ``values`` as a score for 0/1 ``labels`` from (value, label, count) entries
    (Mann-Whitney: ties count 1/2; what :func:`sklearn.metrics.roc_auc_score` gives); NaN when
    one class is absent."""
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


def roc_auc_band(auc, positives, negatives, *, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The two-sided ``level`` Hanley-McNeil band of ROC AUC per window (the replay table's
    ``roc_auc_low`` / ``roc_auc_high``) from each window's positives and negatives."""
    return _hanley_mcneil(np.asarray(auc, dtype="float64"), np.asarray(positives, dtype="float64"),
                          np.asarray(negatives, dtype="float64"), _z(level))


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
        return s.exact.window, s.exact.score, s.exact.label, s.exact.count, None
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
    row["roc_auc"] = mann_whitney_auc(v, y, c) if len(c) else np.nan
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
    span = _table_windows(s, w, fill_from, fill_to)
    if span is None:
        return pd.DataFrame()
    windows = _TableWindows.between(w, span.first, span.last)
    hours = _HourSpans(s)
    counts = hours.counts(windows.start_hour, windows.end_hour)
    out = _count_frame(counts)
    out.insert(0, "window_start", windows.start)
    out.insert(1, "window_end", windows.end)
    if timezone:
        out.insert(2, "hours_in_window", _real_hours(windows.start, windows.end, timezone))
    _add_loss_columns(out, hours.sums(windows.start_hour, windows.end_hour), level=level, bands=bands)
    _add_score_columns(out, s, windows.keys, level=level, bands=bands, train=train)
    if bands:
        for col, values in bootstrap_bands(counts, level=level, replicates=replicates, seed=seed).items():
            out[col] = values
    trailing_start = _add_running_columns(out, hours, windows, trailing)
    _add_label_delay_columns(out, hours, windows, trailing_start, label_delay_hours)
    out.attrs["rows_outside_windows"] = span.rows_outside
    return out


@dataclass(frozen=True)
class _WindowSpan:
    """The window keys ``first..last`` a replay table shows, and the rows outside them."""

    first: int
    last: int
    rows_outside: int


def _table_windows(s: ScoreSummary, w: Window, fill_from: int | None, fill_to: int | None) -> _WindowSpan | None:
    """The table's windows: the period's when given, else the rows' first to last hour
    (``None`` when there are no rows); at most :data:`MAX_WINDOWS` of them."""
    hour_keys = s.hours
    if fill_from is not None and fill_to is not None:
        # the windows come from the period, never from the data: a row dated 2200 (or
        # garbage) cannot size the table; rows outside the period's windows are counted
        first, last = int(fill_from), int(fill_to)
        window_of_hour = w.keys(hour_keys * US_PER_HOUR) if len(hour_keys) else np.zeros(0, "int64")
        out_of_range = (window_of_hour < first) | (window_of_hour > last)
        outside = int(s.counts[out_of_range].sum())
    else:
        if not len(hour_keys):
            return None
        window_of_hour = w.keys(hour_keys[[0, -1]] * US_PER_HOUR)
        first, last, outside = int(window_of_hour[0]), int(window_of_hour[-1]), 0
        if last - first + 1 > MAX_WINDOWS:
            raise ValueError(f"the rows span {last - first + 1:,} {w.label} windows (more than {MAX_WINDOWS:,}); "
                             "give fill_from and fill_to, the period's window keys")
    if last - first + 1 > MAX_WINDOWS:
        raise ValueError(f"the period spans {last - first + 1:,} {w.label} windows (more than {MAX_WINDOWS:,}); "
                         "use a longer window")
    return _WindowSpan(first, last, outside)


@dataclass(frozen=True)
class _TableWindows:
    """The rows of a replay table: window keys, bounds (datetime64[us]) and bounds in hours."""

    keys: np.ndarray
    start: np.ndarray
    end: np.ndarray
    start_hour: np.ndarray
    end_hour: np.ndarray

    @classmethod
    def between(cls, w: Window, first: int, last: int) -> _TableWindows:
        keys = np.arange(first, last + 1, dtype="int64")
        start, end = w.bounds(keys)
        return cls(keys, start, end, start.view("int64") // US_PER_HOUR, end.view("int64") // US_PER_HOUR)


class _HourSpans:
    """Counts and loss sums of any span of hours ``[start, end)`` of a summary: prefix sums
    over its hours make every span query (window, cumulative, trailing, known) exact."""

    def __init__(self, s: ScoreSummary):
        self._hours = s.hours
        self._counts = np.vstack([np.zeros((1, 4), "int64"), np.cumsum(s.counts, axis=0)])
        self._sums = np.vstack([np.zeros((1, 5)), np.cumsum(s.sums, axis=0)])

    def _span(self, start_hour, end_hour, prefix):
        end_hour = np.maximum(end_hour, start_hour)
        return prefix[np.searchsorted(self._hours, end_hour)] - prefix[np.searchsorted(self._hours, start_hour)]

    def counts(self, start_hour, end_hour) -> np.ndarray:
        """``(len, 4)`` confusion counts (codes 0=tn 1=fp 2=fn 3=tp) per span."""
        return self._span(start_hour, end_hour, self._counts)

    def sums(self, start_hour, end_hour) -> np.ndarray:
        """``(len, 5)`` loss sums per span (the columns of :data:`_SUMS`)."""
        return self._span(start_hour, end_hour, self._sums)

    def metrics(self, start_hour, end_hour) -> pd.DataFrame:
        """Count metrics (precision, recall, F1, ...) per span."""
        return _count_frame(self.counts(start_hour, end_hour))


def _add_loss_columns(out: pd.DataFrame, sums: np.ndarray, *, level: float, bands: bool) -> None:
    """Mean log loss, Brier score and P(y=1) per window; normal-approximation bands."""
    n = out["n"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        nz = np.where(n > 0, n, np.nan)
        out["log_loss"] = sums[:, 0] / nz
        out["brier"] = sums[:, 2] / nz
        out["mean_proba"] = sums[:, 4] / nz
        if not bands:
            return
        z = _z(level)
        for name, i in (("log_loss", 0), ("brier", 2)):
            mean = sums[:, i] / nz
            var = np.maximum(sums[:, i + 1] / nz - mean**2, 0) * (nz / np.maximum(nz - 1, 1))
            half = z * np.sqrt(var / nz)
            out[f"{name}_low"], out[f"{name}_high"] = mean - half, mean + half


def _add_score_columns(out: pd.DataFrame, s: ScoreSummary, keys: np.ndarray, *, level: float, bands: bool,
                       train: ScoreSummary | None) -> None:
    """The threshold-free metrics per window: ROC AUC (Hanley-McNeil bands) and score quantiles."""
    auc, quantiles = _threshold_free_metrics(s, keys)
    out["roc_auc"] = auc
    out["roc_auc_method"] = "exact" if s.exact is not None else f"binned{s.bins}"
    if bands:
        n, positives = out["n"].to_numpy(), out["positives"].to_numpy()
        out["roc_auc_low"], out["roc_auc_high"] = _hanley_mcneil(
            auc, positives.astype("float64"), (n - positives).astype("float64"), _z(level))
    for j, q in enumerate(QUANTILES):
        out[f"proba_p{round(q * 100)}"] = quantiles[:, j]
    if train is not None:
        for q, v in zip(QUANTILES, score_quantiles(train)):
            out[f"train_proba_p{round(q * 100)}"] = v


def _threshold_free_metrics(s: ScoreSummary, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUC ``(len(keys),)`` and :data:`QUANTILES` ``(len(keys), 3)`` per window; NaN where empty."""
    entry_window, value, label, count, width = _score_entries(s)
    auc = np.full(len(keys), np.nan)
    quantiles = np.full((len(keys), len(QUANTILES)), np.nan)
    if not len(entry_window):
        return auc, quantiles
    bounds = np.searchsorted(entry_window, np.concatenate([keys, [keys[-1] + 1]]))
    for i in range(len(keys)):
        a, b = bounds[i], bounds[i + 1]
        if a == b:
            continue
        auc[i] = mann_whitney_auc(value[a:b], label[a:b], count[a:b])
        uniq, inv = np.unique(value[a:b], return_inverse=True)
        quantiles[i] = _quantiles(uniq, np.bincount(inv, weights=count[a:b], minlength=len(uniq)), QUANTILES,
                                  width=width)
    return auc, quantiles


def _add_running_columns(out: pd.DataFrame, hours: _HourSpans, windows: _TableWindows, trailing: int) -> np.ndarray:
    """Cumulative (since the first window) and trailing (last ``trailing`` windows) metrics;
    returns each row's trailing start hour."""
    since_first = np.full_like(windows.end_hour, windows.start_hour[0])
    cumulative = hours.metrics(since_first, windows.end_hour)
    for name in ("n", "precision", "recall", "f1"):
        out[f"cumulative_{name}"] = cumulative[name].to_numpy()
    trailing = max(1, int(trailing))
    trailing_start = windows.start_hour[np.maximum(np.arange(len(windows.keys)) - trailing + 1, 0)]
    recent = hours.metrics(trailing_start, windows.end_hour)
    out["trailing_windows"] = trailing
    out["trailing_n"] = recent["n"].to_numpy()
    out["trailing_f1"] = recent["f1"].to_numpy()
    return trailing_start


def _add_label_delay_columns(out: pd.DataFrame, hours: _HourSpans, windows: _TableWindows,
                             trailing_start: np.ndarray, label_delay_hours: int) -> None:
    """What a monitor whose labels arrive ``label_delay_hours`` late knew at each window's end."""
    known_end = windows.end_hour - label_delay_hours
    since_first = np.full_like(windows.end_hour, windows.start_hour[0])
    in_window = hours.metrics(windows.start_hour, known_end)
    cumulative = hours.metrics(since_first, known_end)
    recent = hours.metrics(trailing_start, known_end)
    n = out["n"].to_numpy()
    out["label_delay_hours"] = label_delay_hours
    with np.errstate(divide="ignore", invalid="ignore"):
        out["labels_known_fraction"] = in_window["n"].to_numpy() / np.where(n > 0, n, np.nan)
    out["known_f1"] = in_window["f1"].to_numpy()
    out["known_cumulative_n"] = cumulative["n"].to_numpy()
    out["known_cumulative_f1"] = cumulative["f1"].to_numpy()
    out["known_trailing_f1"] = recent["f1"].to_numpy()
    out["labels_complete_at"] = windows.end + np.timedelta64(label_delay_hours, "h")


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
# counts-only tables (for callers that only need confusion counts: the backtest)
# ---------------------------------------------------------------------------------------
def _count_windows(t_us, y_true, y_pred, window: Window, xp) -> KeyedCounts:
    """Confusion counts per window key of some rows (the windows that have rows)."""
    codes = confusion_codes(y_true, y_pred, xp)
    # the window keys are a fresh array: the engine may count in place in it
    return count_by_key(window.keys(t_us, xp), codes, xp=xp, overwrite_keys=True)


def window_counts(event_time, y_true, y_pred, *, window: str | Window, xp=np, threads: int = 1) -> pd.DataFrame:
    """Confusion counts per window of one partition (host pandas table).

    ``event_time`` is datetime64 or int64 microseconds since the epoch; returns
    columns ``window`` (int64 key), ``tp``, ``fp``, ``fn``, ``tn``, one row per window
    that has rows.  ``threads`` (NumPy only) splits the rows over threads and adds the counts.
    """
    w = parse_window(window)
    t_us = _as_us(event_time, xp)
    n = int(t_us.shape[0])
    if n == 0:
        return pd.DataFrame({c: np.zeros(0, dtype="int64") for c in ("window", *COUNT_COLUMNS)})
    if xp is np and threads > 1 and n >= 2 * 500_000:
        pieces = _split_rows(lambda t, y, p: _count_windows(t, y, p, w, np), threads, t_us, y_true, y_pred)
        counted = KeyedCounts(*sum_by_key(np.concatenate([piece.keys for piece in pieces]),
                                          np.concatenate([piece.counts for piece in pieces])))
    else:
        counted = _count_windows(t_us, y_true, y_pred, w, xp)
    return pd.DataFrame({"window": counted.keys, **{name: counted.column(name) for name in COUNT_COLUMNS}})


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
    return func(part, positive_proba(proba, be), be)


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
    window : {"h", "D", "W", "M", ...}
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
    require_columns(frame, {"time_column": time_column, "label": label, "proba": proba, "features": features},
                    what="replay")
    summarize = functools.partial(_summarize_partition, time_column=time_column, label=label, proba_column=proba,
                                  threshold=threshold, window=window)
    stream = merge_summaries(map_scored_partitions(frame, summarize, estimator=estimator, features=features))
    table = replay_frame(stream, trailing=trailing, bands=bands, level=level, replicates=replicates if bands else 0,
                         seed=seed, timezone=timezone)
    if len(table.columns):
        table.insert(0, "window", parse_window(window).label)
        table.insert(1, "threshold", float(threshold))
    return table
