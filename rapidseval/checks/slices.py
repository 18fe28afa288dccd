"""Windowed metrics per slice: confusion counts per (slice, window, model) reduced per part on
the workers, merged on the client, then metrics with bands.

- :class:`SliceDef`: one resolved way to slice (a feature's values, bins, or a mapping);
- :class:`SliceReduce` (picklable; runs on the workers): ``reduce(frame, probas, thresholds,
  backend=)`` returns a host-side :class:`SliceCounts` for one part (``frame`` is the
  prepared frame: features, target, event times; ``probas`` one P(y=1) array per model);
- :class:`SliceAccumulator` (client): ``add(counts)``, then ``table()``: ``slices.parquet``
  (:data:`rapidseval.checks.SLICE_COLUMNS` then :data:`SLICE_EXTRA_COLUMNS`), ``rows()``: check
  rows of kind ``slices`` for the slices significantly worse than the whole, and ``worst(n)``.

The slice of a row (:meth:`SliceDef.codes`):

- by a feature's values: the value as a label (``"3"`` for 3.0, ``"0.5"``), the job's fill
  value (a missing feature) ``"missing"``;
- by ``bins`` (edges ``e0 < e1 < ...``): ``"[a, b)"`` when ``a <= value < b``; a value in no bin
  (below the first edge, at or above the last) ``"outside bins"``; the fill value ``"missing"``;
- by a mapping (value -> label): its label; a value the mapping does not name (the fill value
  included, unless the mapping names it) ``unmapped`` (``"other"``; ``"unknown"`` for the
  shipped taxi-zone mappings).

A row is predicted positive when ``proba > threshold``, as everywhere in rapidseval, so a
window's slices add up to the replay's and the monthly table's counts. The counts come from
:mod:`rapidseval.core.confusion` (one ``bincount`` of ``(slice, window)`` keys per model).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..core.arrays import to_numpy
from ..core.confusion import CODES, confusion_codes, count_by_key, sum_by_key
from ..core.time import month_index, parse_window
from ..metrics import COUNT_COLUMNS, add_metrics
from ..replay import bootstrap_bands
from . import SLICE_COLUMNS, check_row
from .compare import metric_variance

__all__ = ["SliceDef", "SliceReduce", "SliceCounts", "SliceDefCounts", "SliceAccumulator", "SLICE_METRICS",
           "SLICE_EXTRA_COLUMNS", "MISSING", "OUTSIDE_BINS"]

#: the metrics a slice is judged by (all from its confusion counts)
SLICE_METRICS = ("f1", "precision", "recall", "accuracy")
#: the label of the job's fill value (a missing feature) when slicing by values or bins
MISSING = "missing"
#: the label of a value in no bin
OUTSIDE_BINS = "outside bins"
#: columns of ``slices.parquet`` after :data:`rapidseval.checks.SLICE_COLUMNS`: the judged
#: ``metric``, the slice's ``value`` and band, the whole's (every slice of that slice_by, model
#: and window) ``all_n`` and ``all_value``, ``gap = value - all_value``, the rest's (the
#: window's other rows) ``rest_value`` and ``p_worse``, the one-sided p-value of the slice
#: being worse than the rest (NaN where not judged)
SLICE_EXTRA_COLUMNS = ["metric", "value", "value_low", "value_high", "all_n", "all_value", "gap", "rest_value",
                       "p_worse"]
_COUNT_ORDER = tuple(sorted(CODES, key=CODES.get))  # tn, fp, fn, tp: the columns of every count array here


def _number_label(value: float) -> str:
    """``3.0`` -> ``"3"``, ``0.5`` -> ``"0.5"``, float32 values at their shortest."""
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return np.format_float_positional(np.float32(value) if np.float32(value) == value else value, trim="-")


@dataclass(frozen=True)
class SliceDef:
    """One way to slice the rows of a job.

    Attributes
    ----------
    label : the ``slice_by`` of its rows (e.g. ``PULocationID/taxi_zone_borough``).
    feature : the job's feature it slices by.
    bins : increasing edges (``[a, b)`` bins), or None.
    mapping : ``(value, label)`` pairs, or None.
    unmapped : the label of a value the mapping does not name.
    """

    label: str
    feature: str
    bins: tuple[float, ...] | None = None
    mapping: tuple[tuple[float, str], ...] | None = None  # (value, label) pairs; unmapped values: `unmapped`
    unmapped: str = "other"

    def __post_init__(self):
        if self.bins is not None and self.mapping is not None:
            raise ValueError(f"slice {self.label}: bins or a mapping, not both")
        if self.bins is not None and (len(self.bins) < 2 or any(b >= c for b, c in zip(self.bins, self.bins[1:]))):
            raise ValueError(f"slice {self.label}: bins must be at least two increasing edges")
        if self.mapping is not None and len({v for v, _ in self.mapping}) != len(self.mapping):
            raise ValueError(f"slice {self.label}: a value is mapped twice")

    def fixed_labels(self) -> tuple[str, ...] | None:
        """The labels of the codes of bins and mappings (None when slicing by values)."""
        if self.bins is not None:
            edges = [_number_label(b) for b in self.bins]
            return (*(f"[{a}, {b})" for a, b in zip(edges, edges[1:])), OUTSIDE_BINS, MISSING)
        if self.mapping is not None:
            labels = list(dict.fromkeys(label for _, label in self.mapping))
            return tuple(labels if self.unmapped in labels else [*labels, self.unmapped])
        return None

    def codes(self, values, *, fill_value: float, xp) -> tuple[Any, tuple[str, ...]]:
        """Each row's slice (int64, in ``values``' namespace) and the label of each code."""
        values = xp.asarray(values)
        if self.bins is not None:
            return self._bin_codes(values, fill_value, xp), self.fixed_labels()
        if self.mapping is not None:
            return self._mapped_codes(values, xp), self.fixed_labels()
        unique, inverse = xp.unique(values, return_inverse=True)
        labels = tuple(MISSING if v == fill_value else _number_label(float(v)) for v in to_numpy(unique).tolist())
        return inverse.reshape(-1).astype(xp.int64), labels

    def _bin_codes(self, values, fill_value: float, xp):
        edges = xp.asarray(np.asarray(self.bins, dtype="float64"))
        n_bins = len(self.bins) - 1
        index = xp.searchsorted(edges, values.astype(xp.float64), side="right").astype(xp.int64) - 1
        codes = xp.where((index >= 0) & (index < n_bins), index, n_bins)
        return xp.where(values == fill_value, n_bins + 1, codes)

    def _mapped_codes(self, values, xp):
        labels = self.fixed_labels()
        pairs = sorted(self.mapping)
        keys = xp.asarray(np.asarray([v for v, _ in pairs], dtype="float64"))
        key_codes = xp.asarray(np.asarray([labels.index(label) for _, label in pairs], dtype="int64"))
        wide = values.astype(xp.float64)
        pos = xp.minimum(xp.searchsorted(keys, wide, side="left"), len(pairs) - 1)
        return xp.where(keys[pos] == wide, key_codes[pos], labels.index(self.unmapped))


@dataclass
class SliceDefCounts:
    """One slice def's confusion counts of some rows, on the host.

    Attributes
    ----------
    labels : the label of each slice index.
    slice_index : int64 ``(k,)``, the slice of each entry.
    window_key : int64 ``(k,)``, its window (:meth:`rapidseval.core.time.Window.keys`).
    counts : int64 ``(k, n_models, 4)``, columns tn, fp, fn, tp.
    """

    labels: tuple[str, ...]
    slice_index: np.ndarray
    window_key: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls, n_models: int) -> SliceDefCounts:
        return cls((), np.zeros(0, "int64"), np.zeros(0, "int64"), np.zeros((0, n_models, 4), "int64"))


@dataclass
class SliceCounts:
    """One part's counts: slice_by -> :class:`SliceDefCounts`."""

    per_slice: dict[str, SliceDefCounts] = field(default_factory=dict)


@dataclass(frozen=True)
class SliceReduce:
    """The workers' reduction: per slice def, model and window, the confusion counts of a part.

    Attributes
    ----------
    slices : the slice defs.
    target : the label column of the prepared frame.
    window : the metric window (``D``, ``W``, ``M``, ...).
    time_column : the event time the window is taken of.
    fill_value : the job's fill value of a missing feature (labelled ``missing``).
    """

    slices: tuple[SliceDef, ...]
    target: str
    window: str = "M"
    time_column: str = "dropoff_datetime"
    fill_value: float = -1.0

    def reduce(self, frame, probas, thresholds, *, backend, month: str | None = None) -> SliceCounts:
        """Host-side counts of one prepared part (``probas``: one P(y=1) array per model).

        With monthly windows and the part's ``month`` given, every row is in that month's
        window, as in ``monthly.parquet`` (a February trip that ends on 1 March is February's;
        no stray window of the month after the period); other windows are of ``time_column``."""
        n_models = len(probas)
        if len(frame) == 0:
            return SliceCounts({s.label: SliceDefCounts.empty(n_models) for s in self.slices})
        xp = backend.xp
        window = parse_window(self.window)
        if window.label == "M" and month is not None:
            window_keys = xp.full(len(frame), month_index(month) - _EPOCH_MONTH, dtype="int64")
        else:
            window_keys = window.keys(backend.time_us(frame[self.time_column]), xp)
        first_window = int(window_keys.min())
        span = int(window_keys.max()) - first_window + 1
        window_offset = window_keys - first_window
        y_true = backend.asarray(frame[self.target])
        outcomes = [confusion_codes(y_true, xp.asarray(p) > t, xp) for p, t in zip(probas, thresholds)]
        out = {}
        for sdef in self.slices:
            codes, labels = sdef.codes(backend.asarray(frame[sdef.feature]), fill_value=self.fill_value, xp=xp)
            keys = codes * span + window_offset
            tables = [count_by_key(keys, outcome, xp=xp) for outcome in outcomes]
            present = tables[0].keys
            counts = np.stack([t.counts for t in tables], axis=1)  # every model counts every row: same keys
            out[sdef.label] = SliceDefCounts(labels, present // span, present % span + first_window, counts)
        return SliceCounts(out)


_EPOCH_MONTH = month_index("1970-01")  # monthly window keys count months from the epoch
_WINDOW_OFFSET = 1 << 31  # window keys (signed) -> non-negative, below 2**32
_SLICE_STRIDE = 1 << 32   # merged key: slice id * 2**32 + window key + 2**31


class SliceAccumulator:
    """The client's side: the parts' counts summed, then ``slices.parquet`` and check rows.

    Parameters
    ----------
    reduce : the workers' :class:`SliceReduce` (its slice defs and window).
    models : the name of each model, in the order of the parts' ``probas``.
    min_support : a slice with fewer rows in a window is not judged (``supported`` false).
    metric : what the slices are judged and ranked by (:data:`SLICE_METRICS`).
    level, replicates, seed : the bootstrap bands (:func:`rapidseval.replay.bootstrap_bands`).
    """

    def __init__(self, reduce: SliceReduce, models: list[str], *, min_support: int, metric: str = "f1",
                 level: float = 0.95, replicates: int = 1000, seed: int = 0, window_rate: float = 0.01):
        if metric not in SLICE_METRICS:
            raise ValueError(f"slices: metric {metric!r} is not one of {', '.join(SLICE_METRICS)} "
                             "(a slice's metrics come from its confusion counts)")
        self.reduce = reduce
        self.models = list(models)
        self.min_support, self.metric = int(min_support), metric
        self.level, self.replicates, self.seed = level, replicates, seed
        if not 0 < window_rate < 1:
            raise ValueError(f"slices: window_rate must be in (0, 1), got {window_rate}")
        self.window_rate = float(window_rate)
        self._ids: dict[str, dict[str, int]] = {s.label: {} for s in reduce.slices}  # slice label -> id
        self._keys = {s.label: np.zeros(0, "int64") for s in reduce.slices}
        self._counts = {s.label: np.zeros((0, 4 * len(self.models)), "int64") for s in reduce.slices}
        self._table: pd.DataFrame | None = None

    def add(self, counts: SliceCounts) -> None:
        """Add one part's counts (any order; a part with no rows adds nothing)."""
        for slice_by, part in counts.per_slice.items():
            if slice_by not in self._ids:
                raise ValueError(f"slices: counts of {slice_by!r}, which is not one of the job's slices")
            if part.counts.shape[1:] != (len(self.models), 4):
                raise ValueError(f"slices: {slice_by}: counts of {part.counts.shape[1]} models, "
                                 f"expected {len(self.models)} ({', '.join(self.models)})")
            ids = self._ids[slice_by]
            slice_ids = np.asarray([ids.setdefault(label, len(ids)) for label in part.labels], dtype="int64")
            keys = slice_ids[part.slice_index] * _SLICE_STRIDE + (part.window_key + _WINDOW_OFFSET)
            self._keys[slice_by], self._counts[slice_by] = sum_by_key(
                np.concatenate([self._keys[slice_by], keys]),
                np.concatenate([self._counts[slice_by], part.counts.reshape(len(keys), 4 * len(self.models))]))
        self._table = None

    def _counts_frame(self) -> pd.DataFrame:
        """One row per (slice_by, slice, model, window) with rows: the summed counts."""
        window = parse_window(self.reduce.window)
        frames = []
        for order, sdef in enumerate(self.reduce.slices):
            keys, counts = self._keys[sdef.label], self._counts[sdef.label].reshape(-1, len(self.models), 4)
            labels = np.asarray(list(self._ids[sdef.label]), dtype=object)
            ranks = _label_ranks(sdef, list(self._ids[sdef.label]))
            window_key = keys % _SLICE_STRIDE - _WINDOW_OFFSET
            start, end = window.bounds(window_key)
            for m, model in enumerate(self.models):
                slice_ids = keys // _SLICE_STRIDE
                frame = pd.DataFrame({"slice_by": sdef.label, "slice": labels[slice_ids],
                                      "model": model, "window_start": start, "window_end": end,
                                      "_order": order, "_model": m, "_rank": ranks[slice_ids]})
                for c, name in enumerate(_COUNT_ORDER):
                    frame[name] = counts[:, m, c]
                frames.append(frame[frame[list(_COUNT_ORDER)].sum(axis=1) > 0])
        if not frames:
            return pd.DataFrame(columns=["slice_by", "slice", "model", "window_start", "window_end", "_order",
                                         "_model", "_rank", *_COUNT_ORDER])
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values(["_order", "_model", "window_start", "_rank"], kind="stable", ignore_index=True)

    def table(self) -> pd.DataFrame:
        """``slices.parquet``: one row per (slice_by, model, window, slice) with rows.

        Columns :data:`rapidseval.checks.SLICE_COLUMNS`, then :data:`SLICE_EXTRA_COLUMNS`.
        Metrics are sklearn's on the slice's rows (zero division -> 0); ``f1_low``/``f1_high``
        (and ``value_low``/``value_high`` of ``metric``) are the replay's bootstrap bands, of
        supported slices only (NaN below ``min_support``);
        ``supported`` is ``n >= min_support``; ``worse_than_all``: the slice is significantly
        worse than the rest of its window (:meth:`_judge`).
        """
        if self._table is None:
            self._table = self._build_table()
        return self._table.copy()

    def _build_table(self) -> pd.DataFrame:
        frame = self._counts_frame()
        counts = frame[list(_COUNT_ORDER)].astype("int64")
        slice_metrics = add_metrics(counts[list(COUNT_COLUMNS)])
        whole = counts.groupby([frame["_order"], frame["_model"], frame["window_start"]]).transform("sum")
        whole_metrics = add_metrics(whole[list(COUNT_COLUMNS)])
        bands = self._bands(counts.to_numpy())
        out = frame[["slice_by", "slice", "model", "window_start", "window_end"]].copy()
        out["n"] = slice_metrics["n"].astype("int64")
        for name in COUNT_COLUMNS:
            out[name] = counts[name]
        for name in ("precision", "recall", "f1"):
            out[name] = slice_metrics[name]
        out["f1_low"], out["f1_high"] = bands["f1_low"], bands["f1_high"]
        out["accuracy"], out["positive_rate"] = slice_metrics["accuracy"], slice_metrics["positive_rate"]
        out["supported"] = out["n"] >= self.min_support
        out["metric"] = self.metric
        out["value"] = slice_metrics[self.metric]
        out["value_low"], out["value_high"] = bands[f"{self.metric}_low"], bands[f"{self.metric}_high"]
        out["all_n"] = whole_metrics["n"].astype("int64")
        out["all_value"] = whole_metrics[self.metric]
        out["gap"] = out["value"] - out["all_value"]
        rest = whole[list(COUNT_COLUMNS)] - counts[list(COUNT_COLUMNS)]
        out["rest_value"] = add_metrics(rest)[self.metric].to_numpy()
        out["p_worse"] = _p_worse(counts[list(COUNT_COLUMNS)], rest, self.metric, out["supported"].to_numpy(),
                                  rest.sum(axis=1).to_numpy() >= self.min_support)
        out["worse_than_all"] = self._judge(out, frame)
        out = out[SLICE_COLUMNS + SLICE_EXTRA_COLUMNS]
        for col in ("slice_by", "slice", "model", "metric"):
            out[col] = out[col].astype("string")
        for col in ("window_start", "window_end"):
            out[col] = pd.to_datetime(out[col]).astype("datetime64[us]")
        for col in ("n", *COUNT_COLUMNS, "all_n"):
            out[col] = out[col].astype("int64")
        for col in ("supported", "worse_than_all"):
            out[col] = out[col].astype(bool)
        return out.reset_index(drop=True)

    def _judge(self, out: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
        """Which slices are significantly worse than the rest of their window, calibrated per
        (slice_by, model, window): the family of its k judged slices (supported, and the rest
        supported too) is tested at ``window_rate``, each slice one-sided at ``window_rate / k``
        (Bonferroni), so on slices of equal quality at most ``window_rate`` of the windows warn.
        A band below the whole is not enough: with many slices, one of them misses by chance
        (8% of daily windows of 8 equal slices did, measured), and a large slice is half of
        its own whole."""
        judged = out["p_worse"].notna()
        family = judged.groupby([frame["_order"], frame["_model"], frame["window_start"]]).transform("sum")
        return (judged & (out["p_worse"] < self.window_rate / family.clip(lower=1))).to_numpy()

    def _bands(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """The bootstrap bands of the supported rows (tn, fp, fn, tp counts); NaN for the others,
        which are not judged (a slice by a zone's value per day is mostly small: its bands
        would cost most of the time and say little)."""
        supported = counts.sum(axis=1) >= self.min_support
        bands = bootstrap_bands(counts[supported], level=self.level, replicates=self.replicates, seed=self.seed)
        out = {}
        for name, values in bands.items():
            out[name] = np.full(len(counts), np.nan)
            out[name][supported] = values
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Check rows (kind ``slices``, severity ``warn``), one per (slice_by, model, window):
        ``warn`` naming the supported slices whose band lies below all the rows' metric (value:
        the worst such slice's metric, threshold: all the rows'), ``pass`` when none does."""
        table = self.table()
        window = parse_window(self.reduce.window)
        rows = []
        for (slice_by, model, start), group in table.groupby(["slice_by", "model", "window_start"], sort=False):
            supported = group[group["supported"]]
            bad = supported[supported["worse_than_all"]].sort_values("value", kind="stable")
            all_value = float(group["all_value"].iloc[0])
            judged = bad if len(bad) else supported.sort_values("value", kind="stable")
            value = float(judged["value"].iloc[0]) if len(judged) else None
            month = pd.Timestamp(start).strftime("%Y-%m") if window.label == "M" else None
            rows.append(check_row(f"slices {slice_by}", "slices", "warn", held=bad.empty, model=model, month=month,
                                  window_start=start, value=value, threshold=all_value,
                                  detail=self._detail(bad, len(supported), all_value)))
        return rows

    def _detail(self, bad: pd.DataFrame, n_supported: int, all_value: float) -> str:
        metric = self.metric
        test = f"one-sided two-sample test against the rest of the window, {self.window_rate:g} per window"
        if n_supported == 0:  # not "no slice of 0 with at least 500 rows is ..."
            return f"no slice has {self.min_support:,} rows in this window (the minimum support): none judged"
        if bad.empty:
            return (f"no slice of {n_supported} with at least {self.min_support} rows is significantly worse "
                    f"than the rest ({test}); all rows' {metric} {all_value:.4f}")
        named = [f"{r.slice_by}={r.slice} {r.value:.4f} [{r.value_low:.4f}, {r.value_high:.4f}] n={r.n} vs the "
                 f"rest {r.rest_value:.4f} (p {r.p_worse:.1e})" for r in bad.head(_DETAIL_SLICES).itertuples()]
        more = f" and {len(bad) - _DETAIL_SLICES} more" if len(bad) > _DETAIL_SLICES else ""
        return (f"{len(bad)} of {n_supported} slices significantly worse than the rest ({test}): "
                + "; ".join(named) + more)

    def worst(self, n: int, *, model: str | None = None) -> pd.DataFrame:
        """The ``n`` worst supported slices by ``metric`` (lowest value first; the larger slice
        first on a tie), of one model or all; rows of :meth:`table`."""
        table = self.table()
        table = table[table["supported"] & (True if model is None else table["model"] == model)]
        ranked = table.sort_values(["value", "n"], ascending=[True, False], kind="stable")
        return ranked.head(int(n)).reset_index(drop=True)


_DETAIL_SLICES = 10  # a check row's detail names at most this many slices


def _p_worse(slice_counts: pd.DataFrame, rest: pd.DataFrame, metric: str, supported: np.ndarray,
             rest_supported: np.ndarray) -> np.ndarray:
    """One-sided p-value that a slice's metric is below the rest of its window's (a two-sample
    z-test on the two sets of counts, variances by the delta method of
    :func:`rapidseval.checks.compare.metric_variance`); NaN where either side is not supported
    or a metric is undefined."""
    value = add_metrics(slice_counts)[metric].to_numpy(dtype="float64")
    rest_value = add_metrics(rest)[metric].to_numpy(dtype="float64")
    variance = metric_variance(slice_counts, metric) + metric_variance(rest, metric)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (value - rest_value) / np.sqrt(variance)
    p = norm.cdf(z)
    p[(z == -np.inf)] = 0.0
    ok = supported & rest_supported & np.isfinite(value) & np.isfinite(rest_value) & (variance > 0)
    return np.where(ok, p, np.nan)


def _label_ranks(sdef: SliceDef, labels: list[str]) -> np.ndarray:
    """The order of a slice def's labels in its table: bins and mappings as defined, values by
    number (``missing`` last)."""
    fixed = sdef.fixed_labels()
    if fixed is not None:
        position = {label: i for i, label in enumerate(fixed)}
        return np.asarray([position.get(label, len(fixed)) for label in labels], dtype="float64")
    return np.asarray([np.inf if label == MISSING else float(label) for label in labels], dtype="float64")
