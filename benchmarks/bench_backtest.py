"""Rolling-origin backtest end to end on CPU (generated months; features cold each run).

Bars (full size): 36 monthly origins x 3 policies (static, periodic every 3,
drift-triggered), 200k rows/month, 100-tree depth-10 forests, 2 workers: < 15 minutes;
wall time grows at most linearly with the number of months; 2 workers >= 1.7x faster than 1.

Sizes come from ``RAPIDSEVAL_BENCH_BACKTEST="origins,rows_per_month,trees"``
(default ``6,20000,20``: a few minutes' check that it runs). The bars are asserted only
at the full size ``36,200000,100``:

    RAPIDSEVAL_BENCH_BACKTEST=36,200000,100 .venv/bin/python -m pytest benchmarks/bench_backtest.py --benchmark-only -s

Design, so the bar is reachable on 2 cores: every fold's model is fitted once (one
single-threaded forest per worker; training windows of 3 months sampled down to one
month's rows, ``backtest.max_train_rows``), each (model, month) scored once whichever
policies use it, and the staleness grid is limited to a 3-month horizon, so the work is
linear in the number of origins: ~36 fits of 200k rows + ~150 scorings of 200k rows.
"""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

import rapidseval
from rapidseval.months import month_range

ORIGINS, ROWS, TREES = (int(x) for x in os.environ.get("RAPIDSEVAL_BENCH_BACKTEST", "6,20000,20").split(","))
FULL = (ORIGINS, ROWS, TREES) == (36, 200_000, 100)
TRAIN_MONTHS = 3
FIRST = "2018-01"


def _months(origins: int) -> list[str]:
    return month_range(FIRST, month_range(FIRST, "2030-12")[origins + TRAIN_MONTHS - 1])


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    from rapidseval.data.synthetic import generate

    months = _months(ORIGINS)
    out = tmp_path_factory.mktemp("history")
    generate(out, months[0], months[-1], ROWS, scenario="march2020", seed=3,
             scenario_month=months[len(months) // 2])
    return out


def _job(history, tmp, origins: int, workers: int) -> dict:
    months = _months(origins)
    return {
        "name": f"bench_backtest_{origins}_{workers}", "seed": 0, "backend": "cpu",
        "data": {"source": str(history / "yellow_tripdata_{month}.parquet"), "start": months[0], "end": months[-1]},
        "model": {"params": {"n_estimators": TREES, "max_depth": 10}},
        "cluster": {"kind": "local", "n_workers": workers, "threads_per_worker": 1},
        "output": {"dir": str(tmp / f"run-{origins}-{workers}")},
        "backtest": {
            "train_months": TRAIN_MONTHS, "horizon": 3, "max_train_rows": ROWS,
            "cache_dir": str(tmp / f"features-{origins}-{workers}-{time.monotonic_ns()}"),  # cold every run
            "policies": [{"kind": "static"}, {"kind": "periodic", "params": {"every": 3}}, {"kind": "drift_triggered"}],
        },
    }


def _run(history, tmp, origins, workers):
    t0 = time.perf_counter()
    res = rapidseval.run(_job(history, tmp, origins, workers))
    wall = time.perf_counter() - t0
    assert len(res.policies) == 3 and res.backtest["eval_month"].nunique() == origins
    return wall, res


def _row(origins, workers, wall, res) -> dict:
    t = res.timings
    info = res.manifest["backtest"]
    return {"origins": origins, "rows_per_month": ROWS, "trees": TREES, "workers": workers,
            "wall_s": round(wall, 1), "features_s": round(t["features"], 1), "folds_s": round(t["folds"], 1),
            "policies_s": round(t["policies"], 1), "models": info["models_fitted"],
            "extra_scores": info["scores_extra"]}


def test_backtest_bar(benchmark, history, tmp_path):
    """36 origins x 3 policies on 2 workers: < 15 minutes."""
    wall, res = benchmark.pedantic(_run, args=(history, tmp_path, ORIGINS, 2), rounds=1, iterations=1)
    print("\n" + pd.DataFrame([_row(ORIGINS, 2, wall, res)]).to_string(index=False))
    benchmark.extra_info["wall_s"] = wall
    if FULL:
        assert wall < 900, f"bar: < 15 min for 36 origins x 3 policies, got {wall / 60:.1f} min"


def test_backtest_scaling(benchmark, history, tmp_path):
    """Wall time vs months (at most linear) and 1 vs 2 workers (>= 1.7x)."""

    def measure():
        rows = []
        half = max(2, ORIGINS // 2)
        for origins, workers in ((half, 2), (ORIGINS, 2), (ORIGINS, 1)):
            wall, res = _run(history, tmp_path, origins, workers)
            rows.append(_row(origins, workers, wall, res))
        return pd.DataFrame(rows)

    table = benchmark.pedantic(measure, rounds=1, iterations=1)
    print("\n" + table.to_string(index=False))
    half, full, one = (table.iloc[i] for i in range(3))
    growth = (full.wall_s / half.wall_s) / (full.origins / half.origins)
    speedup = one.wall_s / full.wall_s
    print(f"wall time per origin, {full.origins} vs {half.origins} origins: x{growth:.2f} (<= 1.1 is linear); "
          f"2 workers vs 1: {speedup:.2f}x")
    benchmark.extra_info.update({"growth_vs_linear": growth, "speedup_2_workers": speedup})
    if FULL:
        assert growth <= 1.1, f"bar: at most linear in months, got x{growth:.2f} per origin"
        if (os.cpu_count() or 1) >= 2:
            assert speedup >= 1.7, f"bar: 2 workers >= 1.7x faster than 1, got {speedup:.2f}x"
