"""Each month's prepared features, computed once into the feature cache and reused by every fold.

What an entry of :mod:`rapidseval.io.feature_cache` holds for the backtest: the
prepared frame (features, target, event times), the exact value counts of every
feature per calendar day of :data:`DAY_COLUMN` (for the drift signal) and the
month's row accounting (:class:`~rapidseval.features.PartStats`).  The entry's
key includes a hash of the :class:`~rapidseval.features.FeatureSpec`: a changed
feature list, target or drop rule gives a new key, never a stale hit.

With data checks (``checks.data``), the month's check counts
(:class:`~rapidseval.checks.data.DataCounts`) are computed where the month is read and
featurised and kept beside the entry, ``<key>.checks-<rules hash>.json``: a resumed or
repeated job reads them back, and changed rules compute new ones (reading the month again,
the cached features untouched).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from ..backend import get_backend
from ..checks.data import DataCounts, DataReduce
from ..core.time import US_PER_DAY
from ..features import FeatureSpec, PartStats, prepare, required_columns
from ..io.feature_cache import CachedMonth, ComputedMonth, cache_key, cached_month, read_counts, write_atomic
from ..io.readers import read_part
from ..shift import DayCounts, count_days
from ..spec import JobSpec
from .check_data import data_plan, rules_hash

__all__ = ["DAY_COLUMN", "feature_spec_hash", "build_month", "read_day_counts", "data_checks_path",
           "read_data_checks", "data_check_rows"]

#: the time column whose calendar day the cached value counts are kept by
DAY_COLUMN = "pickup_datetime"


def feature_spec_hash(fspec: FeatureSpec) -> str:
    """A short hash of everything in ``fspec`` (what shapes a cached frame)."""
    text = json.dumps(dataclasses.asdict(fspec), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_month(month: str, parts, fspec: FeatureSpec, backend_name: str, *, root: str,
                fingerprint: str, data: DataReduce | None = None) -> CachedMonth:
    """Return the month's cache entry, building it (read, clean, featurise, count) if missing;
    with ``data``, also the month's data-check counts beside it (:func:`read_data_checks`).

    A Dask task: ``parts`` are the month's :class:`~rapidseval.io.readers.Part` s.
    """
    key = cache_key(fingerprint, month, feature_spec_hash(fspec))
    computed_checks: dict[str, DataCounts] = {}
    compute = functools.partial(_compute_month, month, parts, fspec, backend_name, data, computed_checks)
    entry = cached_month(month, key, root=root, compute=compute, stats_type=PartStats)
    if data is not None:
        path = data_checks_path(entry, data)
        if not path.exists():  # a cached month, new rules: read the month again for them
            counts = computed_checks.get("data") or _month_data_counts(month, parts, fspec, backend_name, data)
            write_atomic(path, lambda p: p.write_text(counts.to_json()))
    return entry


def data_checks_path(entry: CachedMonth, data: DataReduce) -> Path:
    """Where the month's data-check counts for ``data``'s rules are kept (beside the entry)."""
    return Path(entry.root) / f"{entry.key}.checks-{rules_hash(data)}.json"


def read_data_checks(entry: CachedMonth, data: DataReduce) -> DataCounts:
    """The month's data-check counts kept by :func:`build_month`."""
    return DataCounts.from_json(data_checks_path(entry, data).read_text())


def data_check_rows(spec: JobSpec, fspec: FeatureSpec, entries: dict[str, CachedMonth]) -> list[dict[str, Any]]:
    """The backtest's data-check rows (``checks.parquet``): every rule per cached month (no
    replay windows in a backtest); empty without ``checks.data``."""
    data, acc = data_plan(spec, fspec, windows=False)
    if data is None:
        return []
    for month, entry in entries.items():
        acc.add(month, read_data_checks(entry, data))
    return acc.rows()


def read_prepared(part, fspec: FeatureSpec, backend, extra_columns: Sequence[str] = ()) -> tuple[Any, Any, PartStats]:
    """``(raw, frame, stats)`` of one part: its canonical columns as read (the features' and
    ``extra_columns``, which the data checks read), its prepared frame and its row accounting."""
    need = required_columns(fspec)
    for col in extra_columns:
        need.setdefault(col, []).append("checks.data")
    raw = backend.from_arrow(read_part(part, need))
    frame, stats = prepare(raw, fspec, month=part.month, backend=backend, path=part.uri)
    return raw, frame, stats


def _month_data_counts(month: str, parts, fspec: FeatureSpec, backend_name: str, data: DataReduce) -> DataCounts:
    """The data-check counts of a month whose features are already cached (its parts read again)."""
    backend = get_backend(backend_name)
    counts = DataCounts()
    for part in sorted(parts, key=lambda p: p.index):
        raw, frame, _ = read_prepared(part, fspec, backend, data.read_columns())
        counts = counts.merge(data.reduce(raw, frame, month=month, backend=backend))
    return counts


def _compute_month(month: str, parts, fspec: FeatureSpec, backend_name: str, data: DataReduce | None = None,
                   checks_out: dict[str, DataCounts] | None = None) -> ComputedMonth:
    """The month's prepared frame, its per-day value counts and its row accounting (and with
    ``data``, its data-check counts into ``checks_out["data"]``)."""
    backend = get_backend(backend_name)
    frames, total, checks = [], PartStats(), DataCounts()
    for part in sorted(parts, key=lambda p: p.index):
        raw, frame, stats = read_prepared(part, fspec, backend, data.read_columns() if data is not None else ())
        if data is not None:
            checks = checks.merge(data.reduce(raw, frame, month=month, backend=backend))
        del raw
        frames.append(frame)
        total = total.merge(stats)
    if data is not None and checks_out is not None:
        checks_out["data"] = checks
    frame = backend.xdf.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    day = backend.time_us(frame[DAY_COLUMN]) // US_PER_DAY
    by_day = count_days(day, {name: backend.asarray(frame[name]) for name in fspec.features}, backend.xp)
    counts = [pd.DataFrame({"feature": name, "day": c.day, "value": c.value.astype("float64"), "count": c.count})
              for name, c in by_day.items()]
    return ComputedMonth(frame, pd.concat(counts, ignore_index=True), total)


def read_day_counts(entry: CachedMonth, features=None) -> dict[str, DayCounts]:
    """feature -> :class:`rapidseval.shift.DayCounts` of the month (per calendar day of
    :data:`DAY_COLUMN`, sorted by day then value)."""
    table = read_counts(entry, filters=[("feature", "in", list(features))] if features else None)
    return {
        name: DayCounts(g["day"].to_numpy("int64"), g["value"].to_numpy("float32"), g["count"].to_numpy("int64"))
        for name, g in table.groupby("feature", sort=False)
    }
