"""Synthetic data generation to Parquet: bar >= 1M rows/s on one core.

One month of TLC-like trips is generated and written (zstd Parquet, one row
group per 1M-row chunk) in a single process.  Besides wall-clock rows/s the
benchmark reports rows per CPU-second of the process, so a helper thread
inside pyarrow could not flatter the per-core figure.

    .venv/bin/python -m pytest benchmarks/bench_generate.py --benchmark-only -s
    taskset -c 0 .venv/bin/python -m pytest benchmarks/bench_generate.py --benchmark-only -s
"""

from __future__ import annotations

import os
import time

import pytest

from rapidseval.data.synthetic import generate

SIZES = [int(s) for s in os.environ.get("RAPIDSEVAL_BENCH_GEN_ROWS", "200000,1000000").split(",")]


@pytest.mark.parametrize("scenario", ["none", "march2020"])
@pytest.mark.parametrize("rows", SIZES)
def test_generate_parquet(benchmark, tmp_path, rows, scenario):
    cpu: list[float] = []

    def one_month():
        t0 = time.process_time()
        # scenario_month puts the March-2020 change inside the generated month
        res = generate(tmp_path, "2020-03", "2020-03", rows, scenario=scenario, seed=1,
                       scenario_month="2020-03" if scenario != "none" else None)
        cpu.append(time.process_time() - t0)
        return res.rows["2020-03"]

    n = benchmark.pedantic(one_month, rounds=3, warmup_rounds=1, iterations=1)
    wall = benchmark.stats.stats.median
    rate, cpu_rate = n / wall, n / sorted(cpu[1:])[len(cpu[1:]) // 2]
    benchmark.extra_info.update(rows_written=n, rows_per_s=rate, rows_per_cpu_s=cpu_rate)
    print(f"\ngenerate {scenario} {rows:,} rows/month -> {n:,} rows: {rate / 1e6:.2f}M rows/s wall, "
          f"{cpu_rate / 1e6:.2f}M rows per CPU-second (median of 3)")
    if scenario == "none" and rows >= 1_000_000:
        assert rate >= 1e6, f"bar: >= 1M rows/s to Parquet, got {rate / 1e6:.2f}M"
