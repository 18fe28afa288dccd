"""Each month's computed frame kept as Parquet, computed once and reused by every fold.

A generic cache: what a month's entry holds is computed by the caller (the
backtest job reads, cleans and featurises the month's parts), and the cache
only keys, stores and finds it.  An entry is keyed by the input's
fingerprint (size and footer/head bytes, see
:func:`rapidseval.io.sources.inspect_input`), the month and a key string the
caller derives from what shapes the frame (a hash of the feature spec): a
changed file, feature list, target or drop rule gives a new key, never a
stale hit.  Each entry holds

* ``<key>.parquet`` -- the computed frame (features, target, event times),
* ``<key>.counts.parquet`` -- a small table beside it (value counts per day, for drift),
* ``<key>.json`` -- the month's statistics (a dataclass, e.g. the row accounting),

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
from typing import Any, Callable

import pandas as pd

__all__ = ["CachedMonth", "ComputedMonth", "cache_key", "cached_month", "read_month_features", "read_counts",
           "write_atomic", "CACHE_VERSION"]

#: bump when the feature code changes what a cached frame holds
#: (2: the counts file holds per-day value counts, for the calibrated drift signal)
CACHE_VERSION = 2


@dataclass(frozen=True)
class CachedMonth:
    """A month's cache entry: where it is and its statistics (the caller's dataclass)."""

    month: str
    key: str
    root: str
    stats: Any
    hit: bool

    @property
    def features_path(self) -> Path:
        return Path(self.root) / f"{self.key}.parquet"

    @property
    def counts_path(self) -> Path:
        return Path(self.root) / f"{self.key}.counts.parquet"

    @property
    def stats_path(self) -> Path:
        return Path(self.root) / f"{self.key}.json"


@dataclass(frozen=True)
class ComputedMonth:
    """What the caller's compute function returns for a month the cache lacks.

    ``frame`` is a pandas or cuDF frame, ``counts`` a pandas table and ``stats``
    a dataclass instance whose fields are JSON values.
    """

    frame: Any
    counts: pd.DataFrame
    stats: Any


def cache_key(fingerprint: str, month: str, spec_key: str) -> str:
    """``YYYY-MM-<hash>``: the month's entry name for this input and ``spec_key`` (what shapes the frame)."""
    text = json.dumps([CACHE_VERSION, fingerprint, month, spec_key])
    return f"{month}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)`` beside ``path``, then rename it into place (readers never see a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{id(write)}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def cached_month(month: str, key: str, *, root: str, compute: Callable[[], ComputedMonth],
                 stats_type: type) -> CachedMonth:
    """Return the month's cache entry under ``root``, computing and writing it if missing.

    Parameters
    ----------
    month : str
    key : str
        The entry's name (:func:`cache_key`).
    root : str
        The cache directory (shared by the workers that write it).
    compute : callable
        ``compute() -> ComputedMonth``, called only when the entry is missing.
    stats_type : type
        The dataclass of the entry's statistics: written with
        :func:`dataclasses.asdict`, read back as ``stats_type(**fields)``.
    """
    entry_root = Path(root)
    stats_path = entry_root / f"{key}.json"
    if stats_path.exists():
        return CachedMonth(month, key, str(entry_root), stats_type(**json.loads(stats_path.read_text())), hit=True)
    entry_root.mkdir(parents=True, exist_ok=True)
    computed = compute()
    entry = CachedMonth(month, key, str(entry_root), computed.stats, hit=False)
    write_atomic(entry.features_path, lambda p: computed.frame.to_parquet(p, index=False))
    write_atomic(entry.counts_path, lambda p: computed.counts.to_parquet(p, index=False))
    write_atomic(stats_path, lambda p: p.write_text(json.dumps(dataclasses.asdict(computed.stats), sort_keys=True)))
    return entry


def read_month_features(entry: CachedMonth, backend, columns: list[str] | None = None):
    """The cached frame (pandas or cuDF, by ``backend``)."""
    return backend.xdf.read_parquet(entry.features_path, columns=columns)


def read_counts(entry: CachedMonth, filters=None) -> pd.DataFrame:
    """The cached counts table (``filters`` as :func:`pandas.read_parquet` takes them)."""
    return pd.read_parquet(entry.counts_path, filters=filters)
