"""Each month's features computed once, kept as Parquet, reused by every fold.

A cached month is keyed by the input's fingerprint (size and footer/head
bytes, see :func:`rapidseval.io.sources.inspect_input`), the month (the
``pickup_outside_month`` rule depends on it) and a hash of the
:class:`~rapidseval.features.FeatureSpec`: a changed file, feature list,
target or drop rule gives a new key, never a stale hit.  Each entry holds

* ``<key>.parquet`` -- the prepared frame (features, target, event times),
* ``<key>.counts.parquet`` -- exact value counts per feature (for drift),
* ``<key>.json`` -- the month's row accounting (:class:`PartStats`),

each written to a temporary name and renamed, the JSON last, so an entry
exists only when whole.  Workers write the entries; the cache directory must
be shared by them (a local cluster always is; on a multi-host cluster put it
on shared storage).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..features import FeatureSpec, PartStats

__all__ = ["CachedMonth", "feature_spec_hash", "cache_key", "build_month", "read_month_features", "read_day_counts", "write_atomic",
           "DAY_COLUMN"]

#: bump when the feature code changes what a cached frame holds
#: (2: the counts file holds per-day value counts, for the calibrated drift signal)
CACHE_VERSION = 2

#: the time column whose calendar day the cached value counts are kept by
DAY_COLUMN = "pickup_datetime"


@dataclass(frozen=True)
class CachedMonth:
    """A month's cache entry: where it is and its row accounting."""

    month: str
    key: str
    root: str
    stats: PartStats
    hit: bool

    @property
    def features_path(self) -> Path:
        return Path(self.root) / f"{self.key}.parquet"

    @property
    def counts_path(self) -> Path:
        return Path(self.root) / f"{self.key}.counts.parquet"


def feature_spec_hash(fspec: FeatureSpec) -> str:
    text = json.dumps(dataclasses.asdict(fspec), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_key(fingerprint: str, month: str, fspec: FeatureSpec) -> str:
    """``YYYY-MM-<hash>``: the month's entry name for this input and feature spec."""
    text = json.dumps([CACHE_VERSION, fingerprint, month, feature_spec_hash(fspec)])
    return f"{month}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def _stats_to_json(stats: PartStats) -> dict[str, Any]:
    return dataclasses.asdict(stats)


def _stats_from_json(d: dict[str, Any]) -> PartStats:
    return PartStats(**d)


def write_atomic(path: Path, write) -> None:
    """``write(tmp)`` beside ``path``, then rename it into place (readers never see a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{id(write)}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def build_month(month: str, parts, fspec: FeatureSpec, backend_name: str, *, root: str, fingerprint: str) -> CachedMonth:
    """Return the month's cache entry, building it (read, clean, featurise) if missing.

    A Dask task: ``parts`` are the month's :class:`~rapidseval.io.readers.Part` s.
    """
    from ..backend import get_backend
    from .readers import read_part
    from ..features import prepare, required_columns
    from ..core.time import US_PER_DAY
    from ..shift import count_days

    key = cache_key(fingerprint, month, fspec)
    rootp = Path(root)
    meta = rootp / f"{key}.json"
    if meta.exists():
        return CachedMonth(month, key, str(rootp), _stats_from_json(json.loads(meta.read_text())), hit=True)
    be = get_backend(backend_name)
    rootp.mkdir(parents=True, exist_ok=True)
    frames, total = [], PartStats()
    for part in sorted(parts, key=lambda p: p.index):
        table = read_part(part, required_columns(fspec))
        frame, stats = prepare(be.from_arrow(table), fspec, month=month, backend=be, path=part.uri)
        frames.append(frame)
        total = total.merge(stats)
    frame = be.xdf.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    day = be.time_us(frame[DAY_COLUMN]) // US_PER_DAY
    by_day = count_days(day, {name: be.asarray(frame[name]) for name in fspec.features}, be.xp)
    counts = [pd.DataFrame({"feature": name, "day": c.day, "value": c.value.astype("float64"), "count": c.count})
              for name, c in by_day.items()]
    entry = CachedMonth(month, key, str(rootp), total, hit=False)
    write_atomic(entry.features_path, lambda p: frame.to_parquet(p, index=False))
    write_atomic(entry.counts_path, lambda p: pd.concat(counts, ignore_index=True).to_parquet(p, index=False))
    write_atomic(meta, lambda p: p.write_text(json.dumps(_stats_to_json(total), sort_keys=True)))
    return entry


def read_month_features(entry: CachedMonth, backend, columns: list[str] | None = None):
    """The cached prepared frame (pandas or cuDF)."""
    return backend.xdf.read_parquet(entry.features_path, columns=columns)


def read_day_counts(entry: CachedMonth, features=None) -> dict:
    """feature -> :class:`rapidseval.shift.DayCounts` of the month (per calendar day of
    ``DAY_COLUMN``, sorted by day then value)."""
    from ..shift import DayCounts

    table = pd.read_parquet(entry.counts_path, filters=[("feature", "in", list(features))] if features else None)
    return {
        name: DayCounts(g["day"].to_numpy("int64"), g["value"].to_numpy("float32"), g["count"].to_numpy("int64"))
        for name, g in table.groupby("feature", sort=False)
    }
