"""Each month's prepared features, computed once into the feature cache and reused by every fold.

What an entry of :mod:`rapidseval.io.feature_cache` holds for the backtest: the
prepared frame (features, target, event times), the exact value counts of every
feature per calendar day of :data:`DAY_COLUMN` (for the drift signal) and the
month's row accounting (:class:`~rapidseval.features.PartStats`).  The entry's
key includes a hash of the :class:`~rapidseval.features.FeatureSpec`: a changed
feature list, target or drop rule gives a new key, never a stale hit.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json

import pandas as pd

from ..backend import get_backend
from ..core.time import US_PER_DAY
from ..features import FeatureSpec, PartStats, prepare, required_columns
from ..io.feature_cache import CachedMonth, ComputedMonth, cache_key, cached_month, read_counts
from ..io.readers import read_part
from ..shift import DayCounts, count_days

__all__ = ["DAY_COLUMN", "feature_spec_hash", "build_month", "read_day_counts"]

#: the time column whose calendar day the cached value counts are kept by
DAY_COLUMN = "pickup_datetime"


def feature_spec_hash(fspec: FeatureSpec) -> str:
    """A short hash of everything in ``fspec`` (what shapes a cached frame)."""
    text = json.dumps(dataclasses.asdict(fspec), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_month(month: str, parts, fspec: FeatureSpec, backend_name: str, *, root: str,
                fingerprint: str) -> CachedMonth:
    """Return the month's cache entry, building it (read, clean, featurise, count) if missing.

    A Dask task: ``parts`` are the month's :class:`~rapidseval.io.readers.Part` s.
    """
    key = cache_key(fingerprint, month, feature_spec_hash(fspec))
    compute = functools.partial(_compute_month, month, parts, fspec, backend_name)
    return cached_month(month, key, root=root, compute=compute, stats_type=PartStats)


def _compute_month(month: str, parts, fspec: FeatureSpec, backend_name: str) -> ComputedMonth:
    """The month's prepared frame, its per-day value counts and its row accounting."""
    backend = get_backend(backend_name)
    frames, total = [], PartStats()
    for part in sorted(parts, key=lambda p: p.index):
        table = read_part(part, required_columns(fspec))
        frame, stats = prepare(backend.from_arrow(table), fspec, month=month, backend=backend, path=part.uri)
        frames.append(frame)
        total = total.merge(stats)
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
