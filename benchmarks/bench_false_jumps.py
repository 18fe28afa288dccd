"""False jumps on quiet generated streams: how often ``checks.jumps`` pages when nothing changed.

A jump is a verdict a user acts on, once per window: on a quiet stream (scenario ``none``:
the same law every day) every jump is a false page. This runs a study per seed (a forest
trained on January, February to April replayed day by day, ``checks.jumps`` at its defaults:
a week's lag, ``window_rate`` 0.001) and counts the jumps per compared pair of daily windows.

The figure in ``rapidseval/checks/compare.py`` (2 of ~3,800 pairs, 0.05%, over 20 seeds at
~1,000 rows a day and 3 at ~5,000, two models each) came from this procedure::

    RAPIDSEVAL_BENCH_JUMPS="30000,20" .venv/bin/python -m pytest benchmarks/bench_false_jumps.py --benchmark-only -s
    RAPIDSEVAL_BENCH_JUMPS="rows_per_month,seeds"   (default 30000,5; the rate asserted <= 0.3%)
"""

from __future__ import annotations

import os

import pytest

import rapidseval
from rapidseval.data.synthetic import generate

ROWS, SEEDS = (int(x) for x in os.environ.get("RAPIDSEVAL_BENCH_JUMPS", "30000,5").split(","))
MIN_ROWS = 100
BAR = 0.003  # false jumps per pair of quiet daily windows (the test's level is 0.001)


def _job(months, out, seed: int) -> dict:
    return {"name": "quiet", "seed": seed, "backend": "cpu",
            "data": {"source": str(months / "yellow_tripdata_{month}.parquet"), "start": "2020-01", "end": "2020-04"},
            "model": {"kind": "random_forest", "params": {"n_estimators": 20, "max_depth": 8}},
            "evaluation": {"train": ["2020-01"], "test": [], "score": [],
                           "replay": {"months": ["2020-02", "2020-03", "2020-04"], "window": "D",
                                      "min_window_rows": MIN_ROWS},
                           "shift": None},
            "checks": {"jumps": {"metric": "f1", "min_rows": MIN_ROWS}},
            "cluster": {"kind": "threads", "n_workers": 2},
            "output": {"dir": str(out), "report": False}}


def _pairs_and_jumps(result) -> tuple[int, int]:
    """Compared pairs of daily windows (a week apart, both with enough rows) and the jumps among them."""
    replay = result.replay[result.replay["in_period"] & (result.replay["n"] >= MIN_ROWS)]
    jumps = result.checks[(result.checks["kind"] == "jumps") & result.checks["window_start"].notna()]
    lag = 7
    return max(len(replay) - lag, 0), len(jumps)


def test_quiet_streams_rarely_jump(benchmark, tmp_path_factory):
    totals = {"pairs": 0, "jumps": 0}

    def all_seeds():
        for seed in range(SEEDS):
            months = tmp_path_factory.mktemp(f"quiet-{seed}")
            generate(months, "2020-01", "2020-04", ROWS, scenario="none", seed=seed)
            result = rapidseval.run(_job(months, tmp_path_factory.mktemp(f"run-{seed}") / "r", seed))
            pairs, jumps = _pairs_and_jumps(result)
            totals["pairs"] += pairs
            totals["jumps"] += jumps

    benchmark.pedantic(all_seeds, rounds=1, iterations=1)
    rate = totals["jumps"] / max(totals["pairs"], 1)
    benchmark.extra_info.update({"rows_per_month": ROWS, "seeds": SEEDS, **totals, "rate": rate})
    print(f"\nquiet streams, {ROWS:,} rows/month, {SEEDS} seeds: {totals['jumps']} jumps in {totals['pairs']:,} "
          f"pairs of daily windows a week apart ({rate:.2%}; bar {BAR:.1%})")
    assert totals["pairs"] > 0
    assert rate <= BAR, f"{rate:.2%} of quiet window pairs jumped (bar {BAR:.1%})"
