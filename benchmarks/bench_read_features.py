"""Read + features from Parquet on CPU: bar >= 2M rows/s on 2 cores.

Parts of one month are read, cleaned and featurised in parallel (two threads:
pyarrow and NumPy release the GIL), as a run does on a 2-worker cluster.

    .venv/bin/python -m pytest benchmarks/bench_read_features.py --benchmark-only -s
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from rapidseval import get_backend
from rapidseval.io.readers import plan_parts, read_part
from rapidseval.io.sources import inspect_input
from rapidseval.features import FeatureSpec, prepare, required_columns

SIZES = [int(s) for s in os.environ.get("RAPIDSEVAL_BENCH_ROWS", "1000000,6400000").split(",")]


def _read_features(parts, workers):
    be = get_backend("cpu")
    spec = FeatureSpec()
    cols = list(required_columns(spec))

    def one(part):
        frame, stats = prepare(be.from_arrow(read_part(part, cols)), spec, month=part.month, backend=be)
        return stats.rows_read

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(one, parts))


@pytest.mark.parametrize("rows", SIZES)
@pytest.mark.parametrize("workers", [1, 2])
def test_read_features_parquet(benchmark, month_files, rows, workers):
    path = str(month_files[rows])
    info = inspect_input(path, "2020-01")
    parts = plan_parts(info, target_rows=500_000)
    n = benchmark.pedantic(_read_features, args=(parts, workers), rounds=3, warmup_rounds=1)
    assert n == info.rows
    rate = n / benchmark.stats.stats.median
    benchmark.extra_info["rows_per_s"] = rate
    print(f"\nread+features {rows:,} rows, {workers} thread(s), {len(parts)} parts: {rate / 1e6:.2f}M rows/s (median of 3)")
    if workers == 2 and os.cpu_count() >= 2:
        assert rate >= 2e6, f"bar: >= 2M rows/s on 2 cores, got {rate / 1e6:.2f}M"
